package serve

import (
	"fmt"

	"github.com/kadet-dev/kadet/detector/artifact"
)

// topFeatures is how many features (or image regions) an explanation names.
const topFeatures = 3

// explainer names the features, or for images the regions of a 4 x 4 grid, that carry
// the largest shares of a record's reconstruction error. It is built once per loaded
// model: a profile of batch-1 MNIST requests spent more on formatting the 16 region
// names and sorting 784 shares per request than on scoring.
type explainer struct {
	labels []string // one per feature, or per image region
	region []int    // image pixel -> index into labels; nil for tabular features
}

func newExplainer(meta artifact.Metadata) *explainer {
	im := meta.Image
	if im == nil {
		return &explainer{labels: meta.Features}
	}
	rh, cw := (im.Rows+3)/4, (im.Cols+3)/4
	e := &explainer{region: make([]int, im.Rows*im.Cols)}
	index := map[int]int{} // grid cell -> label; a grid of tiny images has empty cells
	for p := range e.region {
		r, c := p/im.Cols/rh, p%im.Cols/cw
		k, ok := index[r*4+c]
		if !ok {
			k = len(e.labels)
			index[r*4+c] = k
			e.labels = append(e.labels, fmt.Sprintf("rows %d-%d, cols %d-%d",
				r*rh, min((r+1)*rh, im.Rows)-1, c*cw, min((c+1)*cw, im.Cols)-1))
		}
		e.region[p] = k
	}
	return e
}

// explain returns the topFeatures largest contributions, largest first (ties: the
// earlier feature first).
func (e *explainer) explain(shares []float32) []Contribution {
	var sums [16]float64
	values := func(k int) float64 { return float64(shares[k]) }
	n := len(shares)
	if e.region != nil {
		for p, v := range shares {
			sums[e.region[p]] += float64(v)
		}
		values = func(k int) float64 { return sums[k] }
		n = len(e.labels)
	}
	top := make([]Contribution, 0, topFeatures)
	for k := 0; k < n; k++ {
		v := values(k)
		if len(top) == topFeatures && v <= top[len(top)-1].Share {
			continue
		}
		i := len(top)
		if i < topFeatures {
			top = append(top, Contribution{})
		} else {
			i--
		}
		for i > 0 && top[i-1].Share < v {
			top[i] = top[i-1]
			i--
		}
		top[i] = Contribution{Feature: e.labels[k], Share: v}
	}
	return top
}
