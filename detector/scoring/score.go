// Package scoring turns a model and records into scores: rows one by one, or a run of
// rows in time order for a sequence model. The CLI, the server and training's
// calibration all score through it.
package scoring

import (
	"fmt"
	"sync"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/normalize"
	"github.com/kadet-dev/kadet/detector/preprocess"
)

// Scored is one record's result. Score is the normalised contract every model type
// shares: raw / threshold, so Score > 1 means anomaly; with the model's likelihood
// stage (package normalize), the likelihood score of raw / threshold, 1 again being
// the threshold. For a sequence model, a value
// repeated for longer than its feature's limit (see calibrate.FlatLimits) makes the
// row an anomaly too, scored run / limit when that is higher, with the features named
// in Stuck.
type Scored struct {
	Score   float64  `json:"score"`
	Raw     float64  `json:"raw"`
	Anomaly bool     `json:"anomaly"`
	Stuck   []string `json:"stuck,omitempty"`
}

// flag marks s an anomaly stuck on the features at idx, flat (run / limit, above 1)
// being its score when that is higher.
func (s *Scored) flag(flat float64, idx []int, names []string) {
	s.Score = max(s.Score, flat)
	s.Anomaly = true
	for _, j := range idx {
		s.Stuck = append(s.Stuck, names[j])
	}
}

// explainStuck gives the stuck features all of a row's explanation, in equal shares:
// their reconstruction error is what does not explain the anomaly.
func explainStuck(shares []float32, idx []int) {
	clear(shares)
	for _, j := range idx {
		shares[j] = 1 / float32(len(idx))
	}
}

// Score scales rows (width = the model's features, in its order) and scores them. It is
// the one scoring path: the CLI and the server both call it.
func Score(m *artifact.Model, x []float32) ([]Scored, error) {
	out, _, err := score(m, nil, x, false, 0, nil)
	return out, err
}

// ScoreRun is Score for one entity's run, scaled by sc (the entity's scaler,
// Metadata.EntityScaler; nil for the model's), whose first inSample rows the model
// trained on: their network scores enter the likelihood stage raised by its in-sample
// gap, as a watching pod's warm-up takes them. times are the rows' unix times, for a
// model whose scores follow the hour (nil: not known).
func ScoreRun(m *artifact.Model, sc *preprocess.Scaler, x []float32, inSample int, times []int64) ([]Scored, error) {
	out, _, err := score(m, sc, x, false, inSample, times)
	return out, err
}

// ScoreExplained is Score plus each feature's share of each row's reconstruction error
// (rows x features; nil for a classifier), for rows scaled by sc (nil: the model's
// scaler) at unix times times (nil: not known; a model whose scores follow the hour
// then scores each as a typical hour).
func ScoreExplained(m *artifact.Model, sc *preprocess.Scaler, x []float32, times []int64) ([]Scored, []float32, error) {
	return score(m, sc, x, true, 0, times)
}

// scaledPool holds the buffers scaled rows are scored from: nothing returned refers
// to them, and fresh ones per batch (800 KB for 256 MNIST images) were page faults
// and garbage on every call.
var scaledPool = sync.Pool{New: func() any { return new([]float32) }}

// score scales x with sc (the model's scaler when nil) and scores it.
func score(m *artifact.Model, sc *preprocess.Scaler, x []float32, explain bool, inSample int, times []int64) ([]Scored, []float32, error) {
	if sc == nil {
		sc = m.Meta.Scaler
	}
	d := len(m.Meta.Features)
	if d == 0 || len(x)%d != 0 {
		return nil, nil, fmt.Errorf("%d values do not form rows of %d features", len(x), d)
	}
	rows := len(x) / d
	buf := scaledPool.Get().(*[]float32)
	defer scaledPool.Put(buf)
	if cap(*buf) < len(x) {
		*buf = make([]float32, len(x))
	}
	scaled := sc.Transform((*buf)[:len(x)], x)
	var raw, shares []float32
	switch {
	case m.Network.Spec.Sequence():
		// The rows are one run in time order; each is scored within its windows.
		var err error
		if raw, shares, err = SequenceScores(m.Network, scaled, rows, m.Meta.Stride, m.Meta.ScoringRule, explain); err != nil {
			return nil, nil, err
		}
	case explain:
		raw, shares = m.Network.Explain(scaled, rows)
	default:
		raw = m.Network.Scores(scaled, rows)
	}
	t := m.Meta.Threshold.Value
	out := make([]Scored, rows)
	for i, r := range raw {
		s := float64(r) / t
		if times != nil {
			s /= m.Meta.Seasons.Factor(times[i])
		}
		out[i] = Scored{Score: s, Raw: float64(r), Anomaly: s > 1}
	}
	if n := m.Meta.Normalization; n.Enabled() && m.Network.Spec.Sequence() {
		// The rows are one entity's run: its likelihood starts from the model's prior.
		var st normalize.State
		for i := range out {
			u := out[i].Score
			if i < inSample {
				u *= n.Gap()
			}
			out[i].Score = n.Next(&st, u)
			out[i].Anomaly = out[i].Score > 1
		}
	}
	if limits := m.Meta.FlatLimits; limits != nil {
		runs := flatRuns(x, d, rows, m.Network.Spec.Window, limits)
		for i := range out {
			if flat, idx := flatScore(runs, limits, i, d); flat > 1 {
				out[i].flag(flat, idx, m.Meta.Features)
				if shares != nil {
					explainStuck(shares[i*d:(i+1)*d], idx)
				}
			}
		}
	}
	return out, shares, nil
}
