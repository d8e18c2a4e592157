// Package scoring turns a model and records into scores: rows one by one, or a run of
// rows in time order for a sequence model. The CLI, the server and training's
// calibration all score through it.
package scoring

import (
	"fmt"
	"sync"

	"github.com/kadet-dev/kadet/detector/artifact"
)

// Scored is one record's result. Score is the normalised contract every model type
// shares: raw / threshold, so Score > 1 means anomaly.
type Scored struct {
	Score   float64 `json:"score"`
	Raw     float64 `json:"raw"`
	Anomaly bool    `json:"anomaly"`
}

// Score scales rows (width = the model's features, in its order) and scores them. It is
// the one scoring path: the CLI and the server both call it.
func Score(m *artifact.Model, x []float32) ([]Scored, error) {
	out, _, err := score(m, x, false)
	return out, err
}

// ScoreExplained is Score plus each feature's share of each row's reconstruction error
// (rows x features; nil for a classifier).
func ScoreExplained(m *artifact.Model, x []float32) ([]Scored, []float32, error) {
	return score(m, x, true)
}

// scaledPool holds the buffers scaled rows are scored from: nothing returned refers
// to them, and fresh ones per batch (800 KB for 256 MNIST images) were page faults
// and garbage on every call.
var scaledPool = sync.Pool{New: func() any { return new([]float32) }}

func score(m *artifact.Model, x []float32, explain bool) ([]Scored, []float32, error) {
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
	scaled := m.Meta.Scaler.Transform((*buf)[:len(x)], x)
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
		out[i] = Scored{Score: s, Raw: float64(r), Anomaly: s > 1}
	}
	return out, shares, nil
}
