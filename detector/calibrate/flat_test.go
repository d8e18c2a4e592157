package calibrate

import (
	"slices"
	"testing"
)

func TestFlatLimits(t *testing.T) {
	// Three features over two segments of 6 and 5 rows: a continuous one (no repeat), a
	// quantised one whose longest run is 5, and one whose run of 6 spans the boundary,
	// so its longest is 4.
	rows := [][3]float32{
		{1, 0, 7}, {2, 0, 8}, {3, 1, 9}, {4, 1, 9}, {5, 1, 9}, {6, 0, 9},
		{7, 2, 9}, {8, 2, 9}, {9, 2, 1}, {10, 2, 2}, {11, 2, 3},
	}
	var x []float32
	for _, r := range rows {
		x = append(x, r[:]...)
	}
	segs := [][2]int{{0, 6}, {6, 11}}
	if got, want := FlatLimits(x, 3, segs, 32), []int{MinFlatLimit, 2 * 5, MinFlatLimit}; !slices.Equal(got, want) {
		t.Errorf("limits %v, want %v", got, want)
	}
	// A limit that does not fit in the window is not checked; none fitting gives nil.
	if got, want := FlatLimits(x, 3, segs, 10), []int{MinFlatLimit, 0, MinFlatLimit}; !slices.Equal(got, want) {
		t.Errorf("window 10: limits %v, want %v", got, want)
	}
	if got := FlatLimits(x, 3, segs, MinFlatLimit); got != nil {
		t.Errorf("window %d: limits %v, want none", MinFlatLimit, got)
	}
	// Feature 2 over one segment: its run of 4 becomes one of 6 (rows 2-7): limit 12.
	if got := FlatLimits(x, 3, [][2]int{{0, 11}}, 32); got[2] != 12 {
		t.Errorf("one segment: limit %d for a longest run of 6, want 12", got[2])
	}
}
