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
// the threshold. For a sequence model, a value repeated for longer than its feature's
// limit (see calibrate.FlatLimits) scores run / limit when that is higher, so without
// the stage it makes the row an anomaly; with the stage, that score goes through the
// stage like any rise of the error, so a series whose values repeat as a matter of
// course is not flagged for each repeat. The features of a stuck row that is an
// anomaly are named in Stuck.
type Scored struct {
	Score   float64  `json:"score"`
	Raw     float64  `json:"raw"`
	Anomaly bool     `json:"anomaly"`
	Stuck   []string `json:"stuck,omitempty"`
}

// judge scores a row from u (raw / threshold over the hour's factor) and flat (run /
// limit of its stuck features at idx, 0 when none): the higher of the two, through the
// likelihood stage n with the entity's state st when st is not nil. It says whether
// the row is an anomaly because features are stuck; they are then named in Stuck.
func (s *Scored) judge(n *normalize.Config, st *normalize.State, u, flat float64, idx []int, names []string) bool {
	s.Score = max(u, flat)
	if st != nil {
		s.Score = n.Next(st, s.Score)
	}
	s.Anomaly = s.Score > 1
	if !s.Anomaly || !(flat > 1) {
		return false
	}
	for _, j := range idx {
		s.Stuck = append(s.Stuck, names[j])
	}
	return true
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
	n := m.Meta.Normalization
	// The rows are one entity's run: its likelihood starts from the model's prior.
	var st *normalize.State
	if n.Enabled() && m.Network.Spec.Sequence() {
		st = new(normalize.State)
	}
	limits := m.Meta.FlatLimits
	runs := flatRuns(x, d, rows, m.Network.Spec.Window, limits)
	out := make([]Scored, rows)
	for i, r := range raw {
		u := float64(r) / t
		if times != nil {
			u /= m.Meta.Seasons.Factor(times[i])
		}
		if st != nil && i < inSample {
			u *= n.Gap()
		}
		var flat float64
		var idx []int
		if runs != nil {
			flat, idx = flatScore(runs, limits, i, d)
		}
		out[i].Raw = float64(r)
		if out[i].judge(n, st, u, flat, idx, m.Meta.Features) && shares != nil {
			explainStuck(shares[i*d:(i+1)*d], idx)
		}
	}
	return out, shares, nil
}
