package scoring

import (
	"math"
	"slices"
	"testing"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/normalize"
	"github.com/kadet-dev/kadet/detector/preprocess"
	"github.com/kadet-dev/kadet/detector/seasonal"
)

// A value repeated past its feature's limit makes a row an anomaly, in a whole run and
// in a stream alike, names the feature and gets the row's whole explanation; the
// reconstruction's raw score is left as it is, and a model file with no limits (older
// files) flags nothing for a flat line.
func TestStuckValues(t *testing.T) {
	const w, f, rows, limit, stuckFrom = 12, 2, 60, 5, 30
	net, err := model.New(model.Spec{Type: model.LSTMAutoencoder, Inputs: w * f, Window: w, Hidden: []int{3}, Latent: 2, Activation: model.Tanh}, 1)
	if err != nil {
		t.Fatal(err)
	}
	scaler := &preprocess.Scaler{Kind: "Standardize", Offset: []float32{0, 0}, Scale: []float32{1, 1}}
	m := &artifact.Model{Network: net, Meta: artifact.Metadata{
		Features: []string{"a", "b"}, Scaler: scaler, ScoringRule: contract.ScoringCausal,
		Threshold: artifact.Threshold{Value: 1e6}, // no reconstruction error reaches it
	}}
	x := make([]float32, rows*f)
	for r := range rows {
		x[r*f] = float32(math.Sin(float64(r) * 0.3))
		x[r*f+1] = float32(math.Cos(float64(r) * 0.7))
		if r >= stuckFrom { // b repeats its value from row stuckFrom-1 on
			x[r*f+1] = x[(stuckFrom-1)*f+1]
		}
	}
	plain, err := Score(m, x)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range plain {
		if s.Anomaly || s.Stuck != nil {
			t.Fatalf("row %d flagged %+v by a model with no flat-line limits", i, s)
		}
	}

	m.Meta.FlatLimits = []int{limit, limit}
	got, shares, err := ScoreExplained(m, nil, x, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range got {
		// Row stuckFrom-1 starts the run; the run is limit+1 long at stuckFrom-1+limit.
		run := min(max(i-(stuckFrom-1)+1, 1), w)
		want := run > limit
		if s.Anomaly != want {
			t.Errorf("row %d (run %d, limit %d): anomaly %v", i, run, limit, s.Anomaly)
		}
		if s.Raw != plain[i].Raw {
			t.Errorf("row %d: raw %v, %v without limits", i, s.Raw, plain[i].Raw)
		}
		if !want {
			continue
		}
		if wantScore := float64(run) / limit; math.Abs(s.Score-wantScore) > 1e-12 || !slices.Equal(s.Stuck, []string{"b"}) {
			t.Errorf("row %d: score %v stuck %v, want %v [b]", i, s.Score, s.Stuck, wantScore)
		}
		if sh := shares[i*f : (i+1)*f]; sh[0] != 0 || sh[1] != 1 {
			t.Errorf("row %d: shares %v, want all on b", i, sh)
		}
	}

	// A stream sees each newest row with its window: the same verdicts.
	var batch []float32
	for end := w - 1; end < rows; end++ {
		batch = append(batch, x[(end-w+1)*f:(end+1)*f]...)
	}
	newest, err := ScoreNewest(m, batch, rows-w+1, seasonal.NoTime, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, n := range newest {
		i := k + w - 1
		if n.Anomaly != got[i].Anomaly || n.Score != got[i].Score || !slices.Equal(n.Stuck, got[i].Stuck) {
			t.Errorf("row %d: stream %+v, whole run %+v", i, n.Scored, got[i])
		}
		if n.Stuck != nil && (n.Shares[0] != 0 || n.Shares[1] != 1) {
			t.Errorf("row %d: stream shares %v, want all on b", i, n.Shares)
		}
	}
}

// With the likelihood stage, a stuck run is judged against the entity's past like any
// rise of its error: the first one is an anomaly, with its feature named, while a
// series whose values repeat as a matter of course stops being flagged for it. A stream
// and a whole run score alike.
func TestStuckValuesThroughTheStage(t *testing.T) {
	const w, f, rows, limit, every, stuck = 12, 2, 1200, 5, 24, 8
	net, err := model.New(model.Spec{Type: model.LSTMAutoencoder, Inputs: w * f, Window: w, Hidden: []int{3}, Latent: 2, Activation: model.Tanh}, 1)
	if err != nil {
		t.Fatal(err)
	}
	stage := &normalize.Config{Method: normalize.Likelihood, Transform: normalize.Plain, LongWindow: 200, ShortWindow: 3,
		Target: 1e-4, Prior: normalize.Prior{Std: normalize.MinPlainStd},
		AnomalyWeight: normalize.DefaultAnomalyWeight, UpdateCap: normalize.DefaultUpdateCap}
	m := &artifact.Model{Network: net, Meta: artifact.Metadata{
		Features: []string{"a", "b"}, ScoringRule: contract.ScoringCausal, FlatLimits: []int{limit, limit},
		Scaler:    &preprocess.Scaler{Kind: "Standardize", Offset: []float32{0, 0}, Scale: []float32{1, 1}},
		Threshold: artifact.Threshold{Value: 1e6}, Normalization: stage,
	}}
	// b holds its value for stuck rows every every rows, from the first window's end.
	x := make([]float32, rows*f)
	for r := range rows {
		x[r*f] = float32(math.Sin(float64(r) * 0.3))
		x[r*f+1] = float32(math.Cos(float64(r) * 0.7))
		if r >= w && (r-w)%every > 0 && (r-w)%every < stuck {
			x[r*f+1] = x[(r-1)*f+1]
		}
	}
	got, err := ScoreRun(m, nil, x, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	firstFlagged, lastFlagged := -1, -1
	for i, s := range got {
		if s.Anomaly {
			if firstFlagged < 0 {
				firstFlagged = i
			}
			lastFlagged = i
		} else if s.Stuck != nil {
			t.Errorf("row %d: not an anomaly, but stuck on %v", i, s.Stuck)
		}
	}
	if firstFlagged < w || firstFlagged >= w+stuck || !slices.Equal(got[firstFlagged].Stuck, []string{"b"}) {
		t.Fatalf("the first stuck run (rows %d-%d) was not flagged stuck on b: first anomaly at row %d", w, w+stuck-1, firstFlagged)
	}
	if lastFlagged >= rows/2 {
		t.Errorf("a stuck run every %d rows was still flagged at row %d of %d: the stage did not learn it", every, lastFlagged, rows)
	}
	t.Logf("stuck runs flagged from row %d to row %d", firstFlagged, lastFlagged)

	var batch []float32
	for end := w - 1; end < rows; end++ {
		batch = append(batch, x[(end-w+1)*f:(end+1)*f]...)
	}
	// The stream's state starts where the whole run's stands at the first window's
	// end: fed the same scores of the rows before (none of them stuck).
	var st normalize.State
	for i := range w - 1 {
		stage.Next(&st, got[i].Raw/m.Meta.Threshold.Value)
	}
	states := []*normalize.State{&st}
	for k := range rows - w + 1 {
		n, err := ScoreNewest(m, batch[k*w*f:(k+1)*w*f], 1, seasonal.NoTime, states, nil)
		if err != nil {
			t.Fatal(err)
		}
		i := k + w - 1
		if n[0].Anomaly != got[i].Anomaly || math.Abs(n[0].Score-got[i].Score) > 1e-9 || !slices.Equal(n[0].Stuck, got[i].Stuck) {
			t.Fatalf("row %d: stream %+v, whole run %+v", i, n[0].Scored, got[i])
		}
	}
}
