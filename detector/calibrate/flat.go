package calibrate

// A stuck metric (an exporter repeating its last value, a frozen sensor) hardly moves a
// reconstruction error: a model reconstructs a flat line about as well as the noisy
// signal it learnt, often better. Sequence models therefore also flag a value repeated
// for longer than the training data ever repeated it. The limit is per feature:
// quantised signals repeat values as a matter of course, continuous ones almost never.

// MinFlatLimit is the shortest limit: a value repeated MinFlatLimit times in a row is
// never flagged, however continuous the feature was in training.
const MinFlatLimit = 8

// FlatLimitFactor is how much longer than its longest run in training a run must be to
// be flagged: training ranges are short, and a run seen once may come back longer.
const FlatLimitFactor = 2

// FlatLimits returns, per feature of the rows in x (width f), the longest run of
// identical consecutive values a sequence model lets pass: FlatLimitFactor times the
// longest run within any segment ([from, to) row ranges, each in time order), and at
// least MinFlatLimit. A feature whose limit would not fit in a window of window rows
// gets 0 (not checked): a scoring pod only ever holds the window that ends at a row.
// Nil when no feature is checked.
func FlatLimits(x []float32, f int, segs [][2]int, window int) []int {
	longest := make([]int, f)
	for _, sg := range segs {
		for j := 0; j < f; j++ {
			run := 0
			for r := sg[0]; r < sg[1]; r++ {
				if r > sg[0] && x[r*f+j] == x[(r-1)*f+j] {
					run++
				} else {
					run = 1
				}
				longest[j] = max(longest[j], run)
			}
		}
	}
	limits := make([]int, f)
	checked := false
	for j, l := range longest {
		if l == 0 { // no rows
			continue
		}
		if lim := max(FlatLimitFactor*l, MinFlatLimit); lim < window {
			limits[j], checked = lim, true
		}
	}
	if !checked {
		return nil
	}
	return limits
}
