package evaluate

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestAUROCAndAUPRC(t *testing.T) {
	tests := []struct {
		name         string
		scores       []float32
		labels       []float32
		auroc, auprc float64
	}{
		{"perfect", []float32{0.1, 0.2, 0.8, 0.9}, []float32{0, 0, 1, 1}, 1, 1},
		{"reversed", []float32{0.9, 0.8, 0.2, 0.1}, []float32{0, 0, 1, 1}, 0, 0.5 * (1.0/3 + 2.0/4)},
		// pairs (pos, neg): (0.8 > 0.1) (0.8 > 0.4) (0.35 > 0.1) (0.35 < 0.4) -> 3/4
		{"one swap", []float32{0.1, 0.4, 0.35, 0.8}, []float32{0, 0, 1, 1}, 0.75, 0.5 * (1 + 2.0/3)},
		{"all tied", []float32{1, 1, 1, 1}, []float32{0, 1, 0, 1}, 0.5, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AUROC(tt.scores, tt.labels); math.Abs(got-tt.auroc) > 1e-12 {
				t.Errorf("AUROC = %v; want %v", got, tt.auroc)
			}
			if got := AUPRC(tt.scores, tt.labels); math.Abs(got-tt.auprc) > 1e-12 {
				t.Errorf("AUPRC = %v; want %v", got, tt.auprc)
			}
		})
	}
	if !math.IsNaN(AUROC([]float32{1, 2}, []float32{0, 0})) || !math.IsNaN(AUPRC([]float32{1, 2}, []float32{1, 1})) {
		t.Error("one class only must be undefined")
	}
}

func TestAUROCOfRandomScoresIsAboutHalf(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s, l := make([]float32, 20000), make([]float32, 20000)
	for i := range s {
		s[i] = rng.Float32()
		if rng.Float32() < 0.3 {
			l[i] = 1
		}
	}
	if a := AUROC(s, l); math.Abs(a-0.5) > 0.02 {
		t.Fatalf("AUROC of noise = %v", a)
	}
}

func TestAtThreshold(t *testing.T) {
	m := Evaluate([]float32{0.1, 0.5, 0.6, 0.9, 0.95}, []float32{0, 0, 1, 0, 1}, 0.55)
	if m.TP != 2 || m.FP != 1 || m.TN != 2 || m.FN != 0 || m.Anomalies != 2 || m.Rows != 5 {
		t.Fatalf("counts %+v", m)
	}
	if math.Abs(m.Precision-2.0/3) > 1e-12 || m.Recall != 1 || math.Abs(m.F1-0.8) > 1e-12 {
		t.Fatalf("precision %v recall %v f1 %v", m.Precision, m.Recall, m.F1)
	}
}
