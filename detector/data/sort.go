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
	t.sortRows(t.byTime())
}

// groupByEntity puts the rows of each entity together, entities in the order they
// first appear, each entity's rows in time order (as SortByTime orders them) or,
// without timestamps, in their order.
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
	byTime := t.byTime()
	t.sortRows(func(a, b int) bool {
		if ea, eb := first[t.Entities[a]], first[t.Entities[b]]; ea != eb {
			return ea < eb
		}
		return byTime != nil && byTime(a, b)
	})
}

// byTime orders rows a and b by timestamp (ByTime); nil for a table without
// timestamps.
func (t *Table) byTime() func(a, b int) bool {
	if t.Timestamps == nil {
		return nil
	}
	return ByTime(t.Timestamps)
}

// ByTime orders timestamps ts[a] and ts[b] as training orders rows: numerically when
// every timestamp is a number, else as text (ISO 8601 sorts correctly as text).
func ByTime(ts []string) func(a, b int) bool {
	nums := make([]float64, len(ts))
	for i, s := range ts {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return func(a, b int) bool { return ts[a] < ts[b] }
		}
		nums[i] = v
	}
	return func(a, b int) bool { return nums[a] < nums[b] }
}

// sortRows puts the rows in the stable order less gives (on row indices), moving
// every per-row slice the table has with them.
func (t *Table) sortRows(less func(a, b int) bool) {
	n, d := t.Rows(), len(t.Columns)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return less(idx[a], idx[b]) })
	if slices.IsSorted(idx) {
		return
	}
	x := make([]float32, 0, len(t.X))
	for _, i := range idx {
		x = append(x, t.X[i*d:(i+1)*d]...)
	}
	t.X = x
	t.Timestamps, t.Lines = permuted(t.Timestamps, idx), permuted(t.Lines, idx)
	t.Labels, t.Entities = permuted(t.Labels, idx), permuted(t.Entities, idx)
}

// permuted is s in the order idx gives; nil stays nil.
func permuted[T any](s []T, idx []int) []T {
	if s == nil {
		return nil
	}
	out := make([]T, len(idx))
	for k, i := range idx {
		out[k] = s[i]
	}
	return out
}
