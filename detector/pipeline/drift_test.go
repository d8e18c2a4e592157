package pipeline

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/drift"
	"github.com/kadet-dev/kadet/detector/scoring"
)

// sensorRows draws n rows as writeSensors does (no anomalies), with shift added to
// the first two sensors.
func sensorRows(rng *rand.Rand, n int, shift float64) []float32 {
	x := make([]float32, 0, n*8)
	for range n {
		z1, z2 := rng.NormFloat64(), rng.NormFloat64()
		v := []float64{z1, z2, z1 + z2, z1 - z2, 2 * z1, 0.5 * z2, z1 + 0.3*z2, -z2}
		for j, s := range v {
			val := s*10 + 100 + rng.NormFloat64()*0.3
			if j < 2 {
				val += shift
			}
			x = append(x, float32(val))
		}
	}
	return x
}

// trainSensors trains the sensor autoencoder and loads it with its drift monitor.
func trainSensors(t *testing.T) (*artifact.Model, drift.Reference) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "train.csv")
	writeSensors(t, path, 4000, 0, 11)
	out, err := Train(context.Background(), request(path, contract.Autoencoder), filepath.Join(dir, "models"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := artifact.Load(filepath.Join(out.Dir, artifact.FileName))
	if err != nil {
		t.Fatal(err)
	}
	c := m.Meta.Calibration
	if c == nil || len(c.Scores) == 0 || math.Abs(c.ExpectedAnomalyRate-0.01) > 1e-9 {
		t.Fatalf("model file's calibration summary %+v, want scores and an expected rate of 0.01 (percentile 99)", c)
	}
	return m, drift.Reference{Features: drift.FromSummary(m.Meta.Data), Scores: c.Scores}
}

func scores(t *testing.T, m *artifact.Model, x []float32) []float64 {
	t.Helper()
	res, err := scoring.Score(m, x)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(res))
	for i, r := range res {
		out[i] = r.Score
	}
	return out
}

// TestNoDriftOnAMillionStationaryRows scores a million rows from the training
// distribution with a trained model and measures drift every 1,000 rows: no feature
// and no score distribution may reach its limit.
func TestNoDriftOnAMillionStationaryRows(t *testing.T) {
	if testing.Short() {
		t.Skip("a million rows")
	}
	m, ref := trainSensors(t)
	mon := drift.NewMonitor(ref, drift.DefaultWindow)
	rng := rand.New(rand.NewPCG(12, 13))
	var worstPSI, worstKS float64
	alarms := 0
	for range 1000 {
		x := sensorRows(rng, 1000, 0)
		mon.Observe(x, scores(t, m, x))
		r := mon.Report()
		for _, f := range r.Features {
			worstPSI = max(worstPSI, f.PSI)
		}
		worstKS = max(worstKS, r.ScoreKS)
		if len(r.Top(drift.DefaultFeaturePSI, 1)) > 0 || r.ScoreKS >= drift.DefaultScoreKS {
			alarms++
		}
	}
	t.Logf("1,000,000 stationary rows, 1,000 reports: %d drift alarms; largest PSI %.4f, largest score KS %.4f", alarms, worstPSI, worstKS)
	if alarms > 0 {
		t.Errorf("%d drift alarms on stationary data", alarms)
	}
}

// TestDriftFoundWithinTheWindow moves two sensors by three standard deviations after a
// full window of ordinary rows and counts the rows until both are named.
func TestDriftFoundWithinTheWindow(t *testing.T) {
	m, ref := trainSensors(t)
	mon := drift.NewMonitor(ref, drift.DefaultWindow)
	rng := rand.New(rand.NewPCG(14, 15))
	x := sensorRows(rng, drift.DefaultWindow, 0)
	mon.Observe(x, scores(t, m, x))
	delay := -1
	for n := 10; n <= drift.DefaultWindow; n += 10 {
		x := sensorRows(rng, 10, 30) // the sensors' standard deviation is 10
		mon.Observe(x, scores(t, m, x))
		top := mon.Report().Top(drift.DefaultFeaturePSI, 2)
		if len(top) == 2 && (top[0].Name == "s1" || top[0].Name == "s2") && (top[1].Name == "s1" || top[1].Name == "s2") && top[0].Name != top[1].Name {
			delay = n
			break
		}
	}
	r := mon.Report()
	t.Logf("s1 and s2 moved by 3 sd: both named after %d rows (window %d); score KS then %.3f; PSI %+v", delay, drift.DefaultWindow, r.ScoreKS, r.Top(0, 4))
	if delay < 0 {
		t.Fatalf("the moved sensors were not named within the window: %+v", r.Top(0, 8))
	}
	if named := r.Top(drift.DefaultFeaturePSI, 8); len(named) != 2 {
		t.Errorf("named %+v, want s1 and s2 alone", named)
	}
}
