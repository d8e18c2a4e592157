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
	scores, sq := rowScores(out, win, starts, rows, w, f, causal, explain)
	return scores, sq, nil
}

// CausalScores is SequenceScores by rule Causal, without explanations, for several
// runs at once (each scaled, in time order, of at least a window of rows): one pass
// through the network for them all, as a watcher warming up many entities needs, where
// a pass per run would fill a batch for a few windows each.
func CausalScores(net *model.Network, runs [][]float32) ([][]float32, error) {
	w, f := net.Spec.Window, net.Spec.Features()
	starts := make([][]int, len(runs))
	var win []float32
	for i, x := range runs {
		rows := len(x) / f
		if rows < w {
			return nil, &data.Error{Source: "input", Msg: fmt.Sprintf("%d rows are fewer than the model's window of %d rows: send a run of at least %d rows in time order", rows, w, w)}
		}
		starts[i] = WindowStarts(rows, w, 1)
		win = append(win, Windows(x, f, w, starts[i])...)
	}
	out := net.Forward(win, len(win)/(w*f))
	scores := make([][]float32, len(runs))
	at := 0
	for i, x := range runs {
		n := len(starts[i]) * w * f
		scores[i], _ = rowScores(out[at:at+n], win[at:at+n], starts[i], len(x)/f, w, f, true, false)
		at += n
	}
	return scores, nil
}

// rowScores is each row's score (and, with explain, each feature's share of it) from
// the network's output for the windows win starting at starts.
func rowScores(out, win []float32, starts []int, rows, w, f int, causal, explain bool) ([]float32, []float32) {
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
	return scores, sq
}
