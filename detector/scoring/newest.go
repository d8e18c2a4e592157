package scoring

import (
	"fmt"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/normalize"
	"github.com/kadet-dev/kadet/detector/preprocess"
)

// Newest is the score of the last row of one run, as a stream sees it.
type Newest struct {
	Scored
	// Shares are each feature's share of the row's squared reconstruction error (nil
	// for a classifier).
	Shares []float32
	// Expected is the model's reconstruction of the row, in the data's own units (nil
	// for a classifier).
	Expected []float32
}

// RunRows is how many rows ScoreNewest needs per run: the model's window, or one row
// for a model that sees rows one at a time.
func RunRows(m *artifact.Model) int {
	if m.Network.Spec.Sequence() {
		return m.Network.Spec.Window
	}
	return 1
}

// ScoreNewest scores the last row of each of runs runs of RunRows(m) rows (x holds
// them one after another, each in time order, unscaled) from the window that ends at
// it, so no score depends on a later row: the rule a watching detector needs, and
// the Causal rule of SequenceScores. All runs go through the network as one batch.
// With states (one per run: its entity's) and the model's likelihood stage, each
// score goes through the stage and updates its entity's state; without, it is raw /
// threshold. With scalers (one per run: its entity's, Metadata.EntityScaler), each run
// is scaled by its own; without, by the model's. at is the newest rows' unix time
// (seasonal.NoTime when not known), for a model whose scores follow the hour.
func ScoreNewest(m *artifact.Model, x []float32, runs int, at int64, states []*normalize.State, scalers []*preprocess.Scaler) ([]Newest, error) {
	f, w := len(m.Meta.Features), RunRows(m)
	if f == 0 || len(x) != runs*w*f {
		return nil, fmt.Errorf("%d values are not %d runs of %d rows of %d features", len(x), runs, w, f)
	}
	if states != nil && len(states) != runs {
		return nil, fmt.Errorf("%d normalization states for %d runs", len(states), runs)
	}
	norm := m.Meta.Normalization
	if !norm.Enabled() || !m.Network.Spec.Sequence() {
		states = nil
	}
	if runs == 0 {
		return nil, nil
	}
	if scalers != nil && len(scalers) != runs {
		return nil, fmt.Errorf("%d scalers for %d runs", len(scalers), runs)
	}
	scalerOf := func(k int) *preprocess.Scaler {
		if scalers == nil {
			return m.Meta.Scaler
		}
		return scalers[k]
	}
	var scaled []float32
	if scalers == nil {
		scaled = m.Meta.Scaler.Transform(nil, x)
	} else {
		scaled = make([]float32, len(x))
		for k, sc := range scalers {
			sc.Transform(scaled[k*w*f:(k+1)*w*f], x[k*w*f:(k+1)*w*f])
		}
	}
	res := make([]Newest, runs)
	t := m.Meta.Threshold.Value
	if m.Network.Spec.Type == model.MLPClassifier {
		for k, p := range m.Network.Scores(scaled, runs) {
			raw := float64(p)
			res[k].Scored = Scored{Score: raw / t, Raw: raw, Anomaly: raw/t > 1}
		}
		return res, nil
	}
	out := m.Network.Forward(scaled, runs) // one record per run: a window, or a row
	shares := make([]float32, runs*f)
	expected := make([]float32, runs*f)
	for k := range res {
		last := (k*w + w - 1) * f
		var total float32
		for j := 0; j < f; j++ {
			e := out[last+j] - scaled[last+j]
			shares[k*f+j] = e * e
			total += e * e
		}
		if total > 0 {
			for j := 0; j < f; j++ {
				shares[k*f+j] /= total
			}
		}
		raw := float64(total / float32(f))
		res[k] = Newest{
			Scored: Scored{Raw: raw},
			Shares: shares[k*f : (k+1)*f : (k+1)*f], Expected: expected[k*f : (k+1)*f : (k+1)*f],
		}
		copy(res[k].Expected, out[last:last+f])
		var flat float64
		var idx []int
		if limits := m.Meta.FlatLimits; limits != nil {
			flat, idx = flatScore(flatRuns(x[k*w*f:(k+1)*w*f], f, w, w, limits), limits, w-1, f)
		}
		var st *normalize.State
		if states != nil {
			st = states[k]
		}
		if res[k].judge(norm, st, raw/t/m.Meta.Seasons.Factor(at), flat, idx, m.Meta.Features) {
			explainStuck(res[k].Shares, idx)
		}
	}
	for k := range res {
		scalerOf(k).Inverse(res[k].Expected, res[k].Expected)
	}
	return res, nil
}
