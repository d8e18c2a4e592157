package scoring

import (
	"fmt"

	"github.com/kadet-dev/kadet/detector/contract"

	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/model"
)

// Sequence models see windows of consecutive rows. Each row's score is the mean, over
// the windows that contain it, of that row's reconstruction error in the window, so an
// anomaly maps back to its own rows and timestamps rather than smearing over a window.

// WindowStarts lists the first row of each window of length w over rows, every stride
// rows, with a last window ending at the last row so no row goes unscored.
func WindowStarts(rows, w, stride int) []int {
	if rows < w {
		return nil
	}
	var starts []int
	for s := 0; s+w <= rows; s += stride {
		starts = append(starts, s)
	}
	if last := rows - w; starts[len(starts)-1] != last {
		starts = append(starts, last)
	}
	return starts
}

// Windows copies the windows starting at starts out of rows of width f.
func Windows(x []float32, f, w int, starts []int) []float32 {
	out := make([]float32, 0, len(starts)*w*f)
	for _, s := range starts {
		out = append(out, x[s*f:(s+w)*f]...)
	}
	return out
}

// SequenceScores scores each of rows (already scaled) from the reconstruction errors of
// the windows that hold it, by rule (contract.ScoringAllWindows when empty), and, when
// explain is set, gives each feature's share of that score.
//
// AllWindows averages a row's error over every window that holds it, stepping by
// stride. Causal takes a row's error in the window that ends at it (every window, so
// every row has one); the first window-1 rows, which no window ends at, take theirs
// from the first window.
func SequenceScores(net *model.Network, x []float32, rows, stride int, rule string, explain bool) ([]float32, []float32, error) {
	w, f := net.Spec.Window, net.Spec.Features()
	if rows < w {
		return nil, nil, &data.Error{Source: "input", Msg: fmt.Sprintf("%d rows are fewer than the model's window of %d rows: send a run of at least %d rows in time order", rows, w, w)}
	}
	causal := rule == contract.ScoringCausal
	if causal {
		stride = 1
	}
	starts := WindowStarts(rows, w, stride)
	win := Windows(x, f, w, starts)
	out := net.Forward(win, len(starts))
	sq := make([]float32, rows*f) // summed squared errors per row and feature
	count := make([]float32, rows)
	for k, s := range starts {
		for p := 0; p < w; p++ {
			if causal && p != w-1 && s != 0 {
				continue
			}
			r := s + p
			count[r]++
			for j := 0; j < f; j++ {
				e := out[(k*w+p)*f+j] - win[(k*w+p)*f+j]
				sq[r*f+j] += e * e
			}
		}
	}
	scores := make([]float32, rows)
	for r := range scores {
		var total float32
		for j := 0; j < f; j++ {
			total += sq[r*f+j]
		}
		scores[r] = total / (count[r] * float32(f))
		if explain && total > 0 {
			for j := 0; j < f; j++ {
				sq[r*f+j] /= total
			}
		}
	}
	if !explain {
		sq = nil
	}
	return scores, sq, nil
}
