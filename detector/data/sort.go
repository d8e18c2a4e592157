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

// groupByEntity puts the rows of each entity together, entities in the order they
// first appear, each entity's rows in time order (numeric when every timestamp is a
// number, else as text) or, without timestamps, in their order.
func (t *Table) groupByEntity() {
	if t.Entities == nil {
		return
	}
	first := map[string]int{}
	for i, e := range t.Entities {
		if _, ok := first[e]; !ok {
			first[e] = i
		}
	}
	n, d := t.Rows(), len(t.Columns)
	nums, numeric := make([]float64, n), t.Timestamps != nil
	for i := 0; numeric && i < n; i++ {
		v, err := strconv.ParseFloat(t.Timestamps[i], 64)
		numeric, nums[i] = err == nil, v
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ea, eb := first[t.Entities[idx[a]]], first[t.Entities[idx[b]]]
		switch {
		case ea != eb:
			return ea < eb
		case t.Timestamps == nil:
			return false
		case numeric:
			return nums[idx[a]] < nums[idx[b]]
		}
		return t.Timestamps[idx[a]] < t.Timestamps[idx[b]]
	})
	if slices.IsSorted(idx) {
		return
	}
	x := make([]float32, 0, len(t.X))
	ents := make([]string, 0, n)
	lines := make([]int, 0, n)
	var ts []string
	var labels []float32
	for _, i := range idx {
		x = append(x, t.X[i*d:(i+1)*d]...)
		ents = append(ents, t.Entities[i])
		lines = append(lines, t.Lines[i])
		if t.Timestamps != nil {
			ts = append(ts, t.Timestamps[i])
		}
		if t.Labels != nil {
			labels = append(labels, t.Labels[i])
		}
	}
	t.X, t.Entities, t.Lines, t.Timestamps, t.Labels = x, ents, lines, ts, labels
}
