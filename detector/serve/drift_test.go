package serve

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kadet-dev/kadet/detector/drift"
	"github.com/kadet-dev/kadet/detector/internal/gen"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/preprocess"
)

// writeDriftModel saves an autoencoder whose file summarises 1,000 training rows: each
// feature uniform over [0, 10).
func writeDriftModel(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 3000)
	for i := range x {
		x[i] = float32(rng.Float64() * 10)
	}
	spec := model.Spec{Type: model.Autoencoder, Inputs: 3, Hidden: []int{4}, Latent: 2, Activation: model.Tanh}
	gen.Save(t, dir, gen.Model(t, "fraud", spec, 1, features, preprocess.Standardize, x, gen.Summarized()),
		time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC), nil)
}

// gauges reads the value of each series of a gauge family by its one label's value.
func gauges(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			key := ""
			if len(m.GetLabel()) > 0 {
				key = m.GetLabel()[0].GetValue()
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestDriftFollowsRequests sends rows like the training rows, then rows whose amount
// moved out of its range: only amount's PSI rises past the limit, on /metrics and in
// the report.
func TestDriftFollowsRequests(t *testing.T) {
	dir := t.TempDir()
	writeDriftModel(t, dir)
	s, ts, reg := newServer(t, dir, Options{DriftWindow: 200})
	rng := rand.New(rand.NewPCG(5, 6))
	send := func(n int, amountShift float64) {
		var rows []string
		for range n {
			rows = append(rows, fmt.Sprintf("[%g, %g, %g]", rng.Float64()*10+amountShift, rng.Float64()*10, rng.Float64()*10))
		}
		if code, body := call(t, ts, "POST", "/v1/detect", `{"instances": [`+strings.Join(rows, ",")+`]}`); code != 200 {
			t.Fatalf("detect: %d %v", code, body)
		}
	}
	send(200, 0)
	psi := gauges(t, reg, "kadet_feature_drift")
	if len(psi) != 3 {
		t.Fatalf("kadet_feature_drift has %d series, want one per feature: %v", len(psi), psi)
	}
	for f, v := range psi {
		if v >= drift.DefaultFeaturePSI {
			t.Errorf("rows like the training rows: %s PSI %.3f", f, v)
		}
	}
	if rows := gauges(t, reg, "kadet_drift_window_rows")[""]; rows != 200 {
		t.Errorf("kadet_drift_window_rows %v, want 200", rows)
	}
	send(100, 30) // half the window
	psi = gauges(t, reg, "kadet_feature_drift")
	if psi["amount"] < drift.DefaultFeaturePSI || psi["hour"] >= drift.DefaultFeaturePSI || psi["distance"] >= drift.DefaultFeaturePSI {
		t.Errorf("amount moved: PSI %v, want amount above %v and the others below", psi, drift.DefaultFeaturePSI)
	}
	_, rep, ok := s.Drift()
	if top := rep.Top(drift.DefaultFeaturePSI, 3); !ok || len(top) != 1 || top[0].Name != "amount" {
		t.Errorf("drifted features %+v, want amount alone", top)
	}
}
