package scoring

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/model"
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

// Under the causal rule a row's score depends on no later row: scoring a run cut off
// right after the row gives it the same score. Under AllWindows it does depend on them.
func TestCausalScoresIgnoreLaterRows(t *testing.T) {
	const w, f, rows = 4, 2, 12
	net, err := model.New(model.Spec{Type: model.LSTMAutoencoder, Inputs: w * f, Window: w, Hidden: []int{3}, Latent: 2,
		Activation: model.Tanh}, 1)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, rows*f)
	for i := range x {
		x[i] = float32(math.Sin(float64(i) * 0.7))
	}
	full, _, err := SequenceScores(net, x, rows, 1, contract.ScoringCausal, false)
	if err != nil {
		t.Fatal(err)
	}
	for r := w - 1; r < rows; r++ {
		cut, _, err := SequenceScores(net, x[:(r+1)*f], r+1, 1, contract.ScoringCausal, false)
		if err != nil {
			t.Fatal(err)
		}
		if cut[r] != full[r] {
			t.Errorf("row %d: causal score %v on the whole run, %v on the run ending at it", r, full[r], cut[r])
		}
	}
	all, _, _ := SequenceScores(net, x, rows, 1, contract.ScoringAllWindows, false)
	cut, _, _ := SequenceScores(net, x[:(w+1)*f], w+1, 1, contract.ScoringAllWindows, false)
	if all[w] == cut[w] {
		t.Errorf("row %d scores %v under AllWindows whether or not later rows follow", w, all[w])
	}
	// A stride does not thin the causal rule out: every row still has its window.
	strided, _, _ := SequenceScores(net, x, rows, 3, contract.ScoringCausal, false)
	if !reflect.DeepEqual(strided, full) {
		t.Errorf("causal scores with stride 3 %v; want %v", strided, full)
	}
}

// Runs scored together in one pass score as each does alone, for an LSTM and a Conv
// over rows, whose graph fills fixed batches; a run shorter than the window is refused.
func TestCausalScoresOfManyRunsAreEachRunsScores(t *testing.T) {
	const w, f = 4, 2
	for _, spec := range []model.Spec{
		{Type: model.LSTMAutoencoder, Inputs: w * f, Window: w, Hidden: []int{3}, Latent: 2, Activation: model.Tanh},
		{Type: model.ConvAutoencoder, Inputs: w * f, Window: w, Channels: []int{2}, Kernel: 3, Latent: 2, Activation: model.ReLU},
	} {
		t.Run(spec.Type, func(t *testing.T) {
			net, err := model.New(spec, 1)
			if err != nil {
				t.Fatal(err)
			}
			var runs [][]float32
			for k, rows := range []int{4, 9, 70, 5} { // 70 rows: more windows than one graph batch
				x := make([]float32, rows*f)
				for i := range x {
					x[i] = float32(math.Sin(float64(i*(k+1)) * 0.3))
				}
				runs = append(runs, x)
			}
			got, err := CausalScores(net, runs)
			if err != nil {
				t.Fatal(err)
			}
			for k, x := range runs {
				want, _, err := SequenceScores(net, x, len(x)/f, 1, contract.ScoringCausal, false)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got[k], want) {
					t.Errorf("run %d: together %v, alone %v", k, got[k], want)
				}
			}
			if _, err := CausalScores(net, [][]float32{runs[1], runs[0][:3*f]}); err == nil || !strings.Contains(err.Error(), "3 rows are fewer than the model's window of 4") {
				t.Errorf("a run of 3 rows: %v", err)
			}
		})
	}
}
