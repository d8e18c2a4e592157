package scoring

import (
	"math"
	"testing"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/preprocess"
	"github.com/kadet-dev/kadet/detector/seasonal"
)

// A stream's score of its newest row is the causal score the same row gets in a whole
// run, for every run of a batch; the expected values are the reconstruction in the
// data's units; a dense model scores the row alone.
func TestScoreNewestIsTheCausalScoreOfTheLastRow(t *testing.T) {
	const w, f, rows, runs = 4, 2, 9, 3
	for _, spec := range []model.Spec{
		{Type: model.LSTMAutoencoder, Inputs: w * f, Window: w, Hidden: []int{3}, Latent: 2, Activation: model.Tanh},
		{Type: model.Autoencoder, Inputs: f, Hidden: []int{3}, Latent: 1, Activation: model.Tanh},
	} {
		t.Run(spec.Type, func(t *testing.T) {
			net, err := model.New(spec, 1)
			if err != nil {
				t.Fatal(err)
			}
			scaler := &preprocess.Scaler{Kind: "Standardize", Offset: []float32{10, -3}, Scale: []float32{2, 0.5}}
			m := &artifact.Model{Network: net, Meta: artifact.Metadata{
				Features: []string{"a", "b"}, Scaler: scaler, ScoringRule: contract.ScoringCausal,
				Threshold: artifact.Threshold{Value: 0.05},
			}}
			n := RunRows(m)
			// Three different runs; each run's newest row is scored from its last n rows.
			var batch []float32
			whole := make([][]Scored, runs)
			for k := range runs {
				run := make([]float32, rows*f)
				for i := range run {
					run[i] = float32(10*math.Sin(float64(i+7*k)*0.6)) + scaler.Offset[i%f]
				}
				if whole[k], err = Score(m, run); err != nil {
					t.Fatal(err)
				}
				batch = append(batch, run[(rows-n)*f:]...)
			}
			got, err := ScoreNewest(m, batch, runs, seasonal.NoTime, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, g := range got {
				want := whole[k][rows-1]
				if math.Abs(g.Raw-want.Raw) > 1e-6*math.Max(1, want.Raw) || g.Anomaly != want.Anomaly {
					t.Errorf("run %d: newest scores %+v; the run's last row %+v", k, g.Scored, want)
				}
				var sum float32
				for _, s := range g.Shares {
					sum += s
				}
				if math.Abs(float64(sum)-1) > 1e-5 {
					t.Errorf("run %d: shares %v sum to %v", k, g.Shares, sum)
				}
				// Expected, scaled back, reproduces the squared errors behind Raw.
				last := batch[((k+1)*n-1)*f : (k+1)*n*f]
				var se float64
				for j := range f {
					e := float64((g.Expected[j] - last[j]) / scaler.Scale[j])
					se += e * e
				}
				if math.Abs(se/f-g.Raw) > 1e-4*math.Max(1, g.Raw) {
					t.Errorf("run %d: expected %v against observed %v gives error %v; raw %v", k, g.Expected, last, se/f, g.Raw)
				}
			}
			if _, err := ScoreNewest(m, batch[:len(batch)-1], runs, seasonal.NoTime, nil, nil); err == nil {
				t.Error("a short batch scored")
			}
		})
	}
}
