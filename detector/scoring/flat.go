package scoring

// flatRuns returns, for each of rows (x, width f, one run in time order) and each
// feature, the length of the run of identical values that ends at it, counted within
// the window of w rows that ends there (a stream sees no more). Nil when limits is nil.
func flatRuns(x []float32, f, rows, w int, limits []int) []int {
	if limits == nil {
		return nil
	}
	runs := make([]int, rows*f)
	for j := 0; j < f; j++ {
		if limits[j] == 0 {
			continue
		}
		run := 0
		for r := 0; r < rows; r++ {
			if r > 0 && x[r*f+j] == x[(r-1)*f+j] {
				run++
			} else {
				run = 1
			}
			runs[r*f+j] = min(run, w)
		}
	}
	return runs
}

// flatScore is how far past its limit the longest over-limit run at a row goes (run /
// limit, above 1), and which features hold such runs (their share of the row's
// explanation, equal among them); 0 and nil when no run passes its limit.
func flatScore(runs []int, limits []int, r, f int) (float64, []int) {
	var score float64
	var stuck []int
	for j := 0; j < f; j++ {
		if lim := limits[j]; lim > 0 && runs[r*f+j] > lim {
			stuck = append(stuck, j)
			score = max(score, float64(runs[r*f+j])/float64(lim))
		}
	}
	return score, stuck
}
