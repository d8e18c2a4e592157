package preprocess

import (
	"math"
	"reflect"
	"slices"
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

// The row-selecting variants see exactly what a copy of those rows would show.
func TestFitAndSummarizeSelectedRows(t *testing.T) {
	const d = 3
	x := make([]float32, 50*d)
	for i := range x {
		x[i] = float32((i*37)%101) / 7
	}
	rows := []int{44, 3, 17, 9, 30, 31, 0, 12}
	var picked []float32
	for _, r := range rows {
		picked = append(picked, x[r*d:(r+1)*d]...)
	}
	for _, kind := range []string{Standardize, MinMax} {
		want, err := Fit(kind, picked, d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := FitRows(kind, x, d, rows)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: fitted on selected rows %+v, on their copy %+v", kind, got, want)
		}
		all, _ := Fit(kind, x, d)
		if reflect.DeepEqual(all, want) {
			t.Fatalf("%s: the selection made no difference; the test data cannot tell", kind)
		}
	}
	names := []string{"a", "b", "c"}
	if got, want := SummarizeRows(x, names, rows), Summarize(picked, names); !reflect.DeepEqual(got, want) {
		t.Fatalf("summary of selected rows %+v, of their copy %+v", got, want)
	}
	if _, err := FitRows(Standardize, x, d, []int{}); err == nil {
		t.Fatal("fitting on no rows was accepted")
	}
	if _, err := Fit(MinMax, nil, d); err == nil {
		t.Fatal("fitting on no data was accepted")
	}
}

// Features summarised a block at a time get the same figures as one column at a time,
// across block boundaries (blocks of 2 features over 5).
func TestSummarizeInBlocks(t *testing.T) {
	const n, d = 40, 5
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32((i*53)%97) - float32(i%d)*10
	}
	defer func(b int) { summaryBlockBytes = b }(summaryBlockBytes)
	summaryBlockBytes = 2 * 8 * n
	got := Summarize(x, []string{"a", "b", "c", "d", "e"})
	for j := range d {
		col := make([]float64, n)
		var sum float64
		for i := range n {
			col[i] = float64(x[i*d+j])
			sum += col[i]
		}
		slices.Sort(col)
		g := got[j]
		if g.Min != col[0] || g.Max != col[n-1] || math.Abs(g.Mean-sum/n) > 1e-9 || g.Quantiles["p50"] != Quantile(col, 0.5) {
			t.Fatalf("feature %d: %+v; column min %v max %v mean %v median %v", j, g, col[0], col[n-1], sum/n, Quantile(col, 0.5))
		}
	}
}

func TestFitEntityScalesByTheEntitysOwnStatistics(t *testing.T) {
	// The model-wide scaler over two entities: a at 10 ms, b at 800 ms.
	model, err := Fit(Standardize, []float32{9, 5, 11, 5, 790, 7, 810, 9}, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Entity a, its second feature constant in its rows 0 and 1 (row 2 is not its).
	a, err := model.FitEntity([]float32{9, 5, 11, 5, 1000, 1000}, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != Standardize || a.Offset[0] != 10 || a.Scale[0] != 1 {
		t.Errorf("entity a's first feature: offset %v scale %v; want its own 10 and 1", a.Offset[0], a.Scale[0])
	}
	// Constant for the entity: its own level, the model's scale (not 1 in its units).
	if a.Offset[1] != 5 || a.Scale[1] != model.Scale[1] {
		t.Errorf("entity a's constant feature: offset %v scale %v; want 5 and the model's %v", a.Offset[1], a.Scale[1], model.Scale[1])
	}
	// Scaled by its own, 12 ms is two deviations for a; by the model's it is noise.
	if got := a.Transform(nil, []float32{12, 5})[0]; got != 2 {
		t.Errorf("a's 12 ms scaled to %v; want 2", got)
	}
	if got := model.Transform(nil, []float32{12, 5})[0]; got > -0.9 {
		t.Errorf("the model's scaler puts a's 12 ms at %v: the test's premise is wrong", got)
	}
	mm, _ := Fit(MinMax, []float32{0, 10, 100, 30}, 2)
	e, err := mm.FitEntity([]float32{4, 20, 6, 20}, nil)
	if err != nil || e.Kind != MinMax || e.Offset[0] != 4 || e.Scale[0] != 2 || e.Offset[1] != 20 || e.Scale[1] != mm.Scale[1] {
		t.Errorf("MinMax entity scaler %+v, %v; want offset [4 20], scale [2 %v]", e, err, mm.Scale[1])
	}
	if _, err := model.FitEntity([]float32{1, 2, 3}, nil); err == nil {
		t.Error("rows of the wrong width fitted")
	}
}
