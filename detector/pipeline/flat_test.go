package pipeline

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/scoring"
)

// writeFlat writes rows of time,load,up: load a cycle, up constant at 1 (a flat
// metric such as Prometheus's up, a replica count or a feature flag).
func writeFlat(t *testing.T, path string, rows int, onlyUp bool) {
	t.Helper()
	var b strings.Builder
	if onlyUp {
		b.WriteString("time,up\n")
	} else {
		b.WriteString("time,load,up\n")
	}
	for i := range rows {
		fmt.Fprintf(&b, "%d", 1_700_000_000+60*i)
		if !onlyUp {
			fmt.Fprintf(&b, ",%.4f", 10+3*math.Sin(2*math.Pi*float64(i)/40)+0.05*float64(i%3))
		}
		b.WriteString(",1\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A constant series, or a constant feature beside a moving one, trains every
// sequence model, with and without the likelihood stage, to a finite threshold; the
// flat rows score as normal, and the flat feature moving is an anomaly that names it.
func TestFlatSeriesTrainAndFlagAMove(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		onlyUp bool
		model  contract.ModelType
		norm   *contract.Normalization
	}{
		{"constant series, conv", true, contract.ConvAutoencoder, nil},
		{"constant series, LSTM", true, contract.LSTMAutoencoder, nil},
		{"constant series, conv, likelihood", true, contract.ConvAutoencoder, &contract.Normalization{Method: contract.NormalizationLikelihood}},
		{"constant feature beside a cycle, conv, likelihood", false, contract.ConvAutoencoder, &contract.Normalization{Method: contract.NormalizationLikelihood}},
		{"constant feature beside a cycle, LSTM", false, contract.LSTMAutoencoder, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".csv")
			writeFlat(t, path, 600, tc.onlyUp)
			req := metricRequest(path, contract.Model{Type: tc.model}, 0.1)
			req.Data.CSV.LabelColumn = ""
			req.Training.Epochs = 10
			req.Threshold.Percentile = new(contract.DefaultStreamPercentile)
			req.Normalization = tc.norm
			out, err := Train(context.Background(), req, filepath.Join(dir, "models-"+strings.ReplaceAll(tc.name, " ", "_")), Options{})
			if err != nil {
				t.Fatalf("training on a flat series: %v", err)
			}
			m, err := artifact.Load(out.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if th := m.Meta.Threshold.Value; !(th > 0) || math.IsInf(th, 0) {
				t.Fatalf("threshold %v", th)
			}
			f := len(m.Meta.Features)
			rows := 80
			x := make([]float32, 0, rows*f)
			for i := range rows {
				if !tc.onlyUp {
					x = append(x, float32(10+3*math.Sin(2*math.Pi*float64(i)/40)+0.05*float64(i%3)))
				}
				up := float32(1)
				if i == 60 {
					up = 0 // the flat metric moves once
				}
				x = append(x, up)
			}
			res, shares, err := scoring.ScoreExplained(m, nil, x, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res[:60] {
				if r.Anomaly || math.IsNaN(r.Score) {
					t.Fatalf("flat row %d: score %v anomaly %v", i, r.Score, r.Anomaly)
				}
			}
			r := res[60]
			if !r.Anomaly || math.IsNaN(r.Score) || math.IsInf(r.Score, 0) {
				t.Fatalf("the flat feature's move scored %v (anomaly %v), want a finite anomaly", r.Score, r.Anomaly)
			}
			top, best := "", float32(-1)
			for j, s := range shares[60*f : 61*f] {
				if s > best {
					top, best = m.Meta.Features[j], s
				}
			}
			if top != "up" {
				t.Errorf("the move's top feature is %q (shares %v), want up", top, shares[60*f:61*f])
			}
		})
	}
}
