package preprocess

import (
	"math"
	"testing"
)

func TestScalers(t *testing.T) {
	// Two features: a varying one and a constant one.
	x := []float32{1, 5, 2, 5, 3, 5, 6, 5}
	tests := []struct {
		kind             string
		wantLo, wantHi   float32 // range of feature 0 after scaling
		wantMean, wantSd float64
	}{
		{Standardize, -1.0690, 1.6036, 0, 1},
		{MinMax, 0, 1, 0.4, 0.3742},
		{None, 1, 6, 3, 1.8708},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			s, err := Fit(tt.kind, x, 2)
			if err != nil {
				t.Fatal(err)
			}
			y := s.Transform(nil, x)
			var sum, sq float64
			lo, hi := y[0], y[0]
			for i := 0; i < 4; i++ {
				v := float64(y[2*i])
				sum, sq = sum+v, sq+v*v
				lo, hi = min(lo, y[2*i]), max(hi, y[2*i])
				if tt.kind != None && y[2*i+1] != 0 {
					t.Fatalf("constant feature scaled to %v", y[2*i+1])
				}
			}
			mean := sum / 4
			sd := math.Sqrt(sq/4 - mean*mean)
			if math.Abs(float64(lo-tt.wantLo)) > 1e-3 || math.Abs(float64(hi-tt.wantHi)) > 1e-3 ||
				math.Abs(mean-tt.wantMean) > 1e-3 || math.Abs(sd-tt.wantSd) > 1e-3 {
				t.Fatalf("range [%v, %v] mean %v sd %v", lo, hi, mean, sd)
			}
			if err := s.Validate(2); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := Fit("Log", x, 2); err == nil {
		t.Fatal("unknown scaling accepted")
	}
	bad := &Scaler{Kind: Standardize, Offset: []float32{0}, Scale: []float32{0}}
	if bad.Validate(1) == nil {
		t.Fatal("zero scale accepted")
	}
}

func TestSummarize(t *testing.T) {
	x := make([]float32, 101)
	for i := range x {
		x[i] = float32(i)
	}
	s := Summarize(x, []string{"v"})[0]
	if s.Min != 0 || s.Max != 100 || s.Mean != 50 || s.Quantiles["p50"] != 50 || s.Quantiles["p99"] != 99 || s.Quantiles["p25"] != 25 {
		t.Fatalf("%+v", s)
	}
}
