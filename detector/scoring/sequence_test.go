package scoring

import (
	"reflect"
	"testing"
)

func TestWindowStartsCoverEveryRow(t *testing.T) {
	tests := []struct {
		rows, w, stride int
		want            []int
	}{
		{rows: 3, w: 4, stride: 1, want: nil},
		{rows: 4, w: 4, stride: 1, want: []int{0}},
		{rows: 6, w: 4, stride: 1, want: []int{0, 1, 2}},
		// The stride does not reach the end: a last window ends at the last row.
		{rows: 7, w: 4, stride: 2, want: []int{0, 2, 3}},
		{rows: 8, w: 4, stride: 4, want: []int{0, 4}},
		{rows: 5, w: 1, stride: 1, want: []int{0, 1, 2, 3, 4}},
	}
	for _, tt := range tests {
		if got := WindowStarts(tt.rows, tt.w, tt.stride); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("WindowStarts(%d, %d, %d) = %v; want %v", tt.rows, tt.w, tt.stride, got, tt.want)
		}
	}
}

func TestWindowsCopiesRowsInOrder(t *testing.T) {
	x := []float32{0, 10, 1, 11, 2, 12, 3, 13} // 4 rows of 2 features
	got := Windows(x, 2, 2, []int{0, 2})
	want := []float32{0, 10, 1, 11, 2, 12, 3, 13}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Windows = %v; want %v", got, want)
	}
	got = Windows(x, 2, 3, []int{1})
	if want := []float32{1, 11, 2, 12, 3, 13}; !reflect.DeepEqual(got, want) {
		t.Errorf("Windows = %v; want %v", got, want)
	}
}
