package scoring

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/normalize"
	"github.com/kadet-dev/kadet/detector/preprocess"
)

// With an entity column, a sequence model scores each entity's rows of a file as its
// own series (its own windows and likelihood state), whatever the rows of other
// entities between them; the scores come back in the file's order. A missing entity
// column, and an entity with fewer rows than the window, are refused by name.
func TestCSVScoresEachEntityAsItsOwnSeries(t *testing.T) {
	const w, f = 4, 2
	net, err := model.New(model.Spec{Type: model.LSTMAutoencoder, Inputs: w * f, Window: w, Hidden: []int{3}, Latent: 2, Activation: model.Tanh}, 1)
	if err != nil {
		t.Fatal(err)
	}
	norm, err := normalize.New(&contract.Normalization{Method: contract.NormalizationLikelihood}, 1e-3)
	if err != nil {
		t.Fatal(err)
	}
	norm.SetPriors([][]float64{{0.1, 0.3, 0.2, 0.05, 0.5, 0.1, 0.2}})
	m := &artifact.Model{Network: net, Meta: artifact.Metadata{
		Features: []string{"a", "b"}, Scaler: &preprocess.Scaler{Kind: "Standardize", Offset: []float32{0, 0}, Scale: []float32{1, 1}},
		ScoringRule: contract.ScoringCausal, Threshold: artifact.Threshold{Value: 0.05}, Normalization: norm,
	}}
	// Two entities on scales a hundred times apart, their rows interleaved.
	var b strings.Builder
	b.WriteString("pod,a,b\n")
	alone := map[string][]float32{}
	for i := range 12 {
		for _, pod := range []string{"small", "large"} {
			scale := map[string]float64{"small": 0.01, "large": 1}[pod]
			va, vb := scale*math.Sin(float64(i)*0.7), scale*math.Cos(float64(i)*0.4)
			fmt.Fprintf(&b, "%s,%g,%g\n", pod, va, vb)
			alone[pod] = append(alone[pod], float32(va), float32(vb))
		}
	}
	var out bytes.Buffer
	st, err := CSV(m, strings.NewReader(b.String()), &out, "two.csv", CSVOptions{Delimiter: ',', EntityColumn: "pod"})
	if err != nil || st.Rows != 24 {
		t.Fatalf("CSV: %d rows, %v", st.Rows, err)
	}
	recs, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]Scored{}
	for pod, x := range alone {
		if want[pod], err = Score(m, x); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	for _, rec := range recs[1:] {
		pod := rec[0]
		got, _ := strconv.ParseFloat(rec[3], 64)
		exp := want[pod][seen[pod]].Score
		if math.Abs(got-exp) > 1e-5*max(1, math.Abs(exp)) {
			t.Errorf("%s row %d: score %v in the file, %v scored alone", pod, seen[pod], got, exp)
		}
		seen[pod]++
	}
	// Without the entity column the file is one series: the interleaved rows score
	// otherwise, which the test above would catch if the column were ignored.
	var mixed bytes.Buffer
	if _, err := CSV(m, strings.NewReader(b.String()), &mixed, "two.csv", CSVOptions{Delimiter: ',', EntityColumn: ""}); err != nil {
		t.Fatal(err)
	}
	if mixed.String() == out.String() {
		t.Error("scoring without the entity column gave the same file: the test cannot tell the two apart")
	}

	if _, err := CSV(m, strings.NewReader(b.String()), &bytes.Buffer{}, "two.csv", CSVOptions{Delimiter: ',', EntityColumn: "host"}); err == nil || !strings.Contains(err.Error(), `entity column "host" is not in the header`) {
		t.Errorf("missing entity column: %v", err)
	}
	short := b.String() + "lonely,1,2\n"
	if _, err := CSV(m, strings.NewReader(short), &bytes.Buffer{}, "two.csv", CSVOptions{Delimiter: ',', EntityColumn: "pod"}); err == nil || !strings.Contains(err.Error(), `entity "lonely"`) ||
		!strings.Contains(err.Error(), "fewer than the model's window") {
		t.Errorf("an entity of one row: %v", err)
	}
}
