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
	t.permuteRows(EntityTimeOrder(nil, t.Timestamps))
}

// groupByEntity puts the rows in EntityTimeOrder.
func (t *Table) groupByEntity() {
	if t.Entities == nil {
		return
	}
	t.permuteRows(EntityTimeOrder(t.Entities, t.Timestamps))
}

// EntityTimeOrder is the order of rows (their entities and timestamps) that training
// puts them in: the rows of each entity together, entities in the order they first
// appear, each entity's rows in time order (ByTime) or, without timestamps (ts nil), in
// their order. Nil entities are one entity.
func EntityTimeOrder(entities, ts []string) []int {
	n := max(len(entities), len(ts))
	entityOf := func(i int) string { return "" }
	if entities != nil {
		entityOf = func(i int) string { return entities[i] }
	}
	first := map[string]int{}
	for i := range n {
		if _, ok := first[entityOf(i)]; !ok {
			first[entityOf(i)] = i
		}
	}
	var byTime func(a, b int) bool
	if ts != nil {
		byTime = ByTime(ts)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		if ea, eb := first[entityOf(idx[a])], first[entityOf(idx[b])]; ea != eb {
			return ea < eb
		}
		return byTime != nil && byTime(idx[a], idx[b])
	})
	return idx
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

// permuteRows puts the rows in the order idx gives (row indices), moving every per-row
// slice the table has with them.
func (t *Table) permuteRows(idx []int) {
	if slices.IsSorted(idx) {
		return
	}
	d := len(t.Columns)
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
