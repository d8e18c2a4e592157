package data

import (
	"slices"
	"sort"
	"strconv"
)

// SortByTime orders the rows by its timestamp column: numerically when every
// timestamp is a number, else as text (ISO 8601 sorts correctly as text).
func (t *Table) SortByTime() {
	if t.Timestamps == nil {
		return
	}
	n, d := t.Rows(), len(t.Columns)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	nums := make([]float64, n)
	numeric := true
	for i, ts := range t.Timestamps {
		v, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			numeric = false
			break
		}
		nums[i] = v
	}
	sort.SliceStable(idx, func(a, b int) bool {
		if numeric {
			return nums[idx[a]] < nums[idx[b]]
		}
		return t.Timestamps[idx[a]] < t.Timestamps[idx[b]]
	})
	if slices.IsSorted(idx) {
		return
	}
	x := make([]float32, 0, len(t.X))
	ts := make([]string, 0, n)
	lines := make([]int, 0, n)
	var labels []float32
	for _, i := range idx {
		x = append(x, t.X[i*d:(i+1)*d]...)
		ts = append(ts, t.Timestamps[i])
		lines = append(lines, t.Lines[i])
		if t.Labels != nil {
			labels = append(labels, t.Labels[i])
		}
	}
	t.X, t.Timestamps, t.Lines, t.Labels = x, ts, lines, labels
}
