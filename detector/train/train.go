// Package train fits a model: shuffled mini-batches, Adam, a held-out validation split,
// early stopping, progress reports and cancellation.
package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/kadet-dev/kadet/detector/model"
)

// Config holds the optimisation settings.
type Config struct {
	Epochs          int
	BatchSize       int
	LearningRate    float64
	ValidationSplit float64
	Seed            int64
	// Patience > 0 stops after that many epochs without a validation loss improvement
	// of at least MinDelta, and keeps the best epoch's weights.
	Patience int
	MinDelta float64
}

// Progress is reported after every epoch.
type Progress struct {
	Epoch, Epochs    int
	Loss, ValLoss    float64 // ValLoss is NaN without a validation split
	SamplesPerSecond float64
	Elapsed, ETA     time.Duration
}

// Split divides rows into training and validation indices, shuffled by seed.
type Split struct {
	Train, Validation []int
}

// SplitRows holds out frac of n rows (at least one when frac > 0 and n > 1).
func SplitRows(n int, frac float64, seed int64) Split {
	idx := rand.New(rand.NewPCG(uint64(seed), 0x73706c6974)).Perm(n) // "split"
	nv := int(math.Round(float64(n) * frac))
	if frac > 0 && nv == 0 && n > 1 {
		nv = 1
	}
	return Split{Train: idx[nv:], Validation: idx[:nv]}
}

// Result says how training went.
type Result struct {
	Epochs           int     // epochs run
	BestEpoch        int     // epoch whose weights were kept
	Loss, ValLoss    float64 // at the kept epoch
	SamplesPerSecond float64
	Duration         time.Duration
	Stopped          bool // stopped early
}

// ErrCanceled wraps the context's error when training is stopped from outside.
var ErrCanceled = errors.New("training canceled")

// Fit trains net on the rows of x (width net.Spec.Inputs) listed in split.Train, with
// labels y for a classifier. It calls progress after each epoch and returns when done,
// when early stopping triggers, or with ErrCanceled when ctx ends; net then holds
// the weights of the best epoch.
func Fit(ctx context.Context, net *model.Network, x, y []float32, split Split, cfg Config, progress func(Progress)) (*Result, error) {
	d := net.Spec.Inputs
	n := len(split.Train)
	if n == 0 {
		return nil, errors.New("no training rows left after the validation split")
	}
	batch := min(cfg.BatchSize, n) // a tiny data set trains in one full batch
	tr, err := model.NewTrainer(net, batch, cfg.LearningRate)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	tr.SeedDropout(cfg.Seed)

	xv, yv := Gather(x, y, d, split.Validation)
	xb := make([]float32, batch*d)
	var yb []float32
	if y != nil {
		yb = make([]float32, batch)
	}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x65706f6368)) // "epoch"
	order := append([]int(nil), split.Train...)
	best := net.Snapshot()
	res := &Result{BestEpoch: 0, ValLoss: math.Inf(1)}
	start := time.Now()
	sinceBest := 0
	var last Progress
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var sum float64
		steps := n / batch // the last partial batch waits for the next shuffle
		for s := 0; s < steps; s++ {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("%w at epoch %d: %w", ErrCanceled, epoch, err)
			}
			for k, r := range order[s*batch : (s+1)*batch] {
				copy(xb[k*d:(k+1)*d], x[r*d:(r+1)*d])
				if yb != nil {
					yb[k] = y[r]
				}
			}
			l, err := tr.Step(xb, yb)
			if err != nil {
				return nil, fmt.Errorf("epoch %d: %w", epoch, err)
			}
			if math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
				return nil, fmt.Errorf("epoch %d: loss became %v; lower the learning rate or scale the features", epoch, l)
			}
			sum += float64(l)
		}
		p := Progress{Epoch: epoch, Epochs: cfg.Epochs, Loss: sum / float64(steps), ValLoss: math.NaN(), Elapsed: time.Since(start)}
		p.SamplesPerSecond = float64(epoch*steps*batch) / p.Elapsed.Seconds()
		p.ETA = time.Duration(float64(p.Elapsed) / float64(epoch) * float64(cfg.Epochs-epoch))
		monitored := p.Loss
		if len(split.Validation) > 0 {
			p.ValLoss = net.Loss(xv, yv, len(split.Validation))
			monitored = p.ValLoss
		}
		res.Epochs, last = epoch, p
		if monitored < res.ValLoss-cfg.MinDelta || res.BestEpoch == 0 {
			res.BestEpoch, res.Loss, res.ValLoss, sinceBest = epoch, p.Loss, monitored, 0
			best = net.Snapshot()
		} else {
			sinceBest++
		}
		if progress != nil {
			progress(p)
		}
		if cfg.Patience > 0 && sinceBest >= cfg.Patience {
			res.Stopped = true
			break
		}
	}
	if cfg.Patience > 0 {
		net.Restore(best)
	} else {
		// Without early stopping the last epoch's weights are the result.
		res.BestEpoch, res.Loss, res.ValLoss = last.Epoch, last.Loss, last.ValLoss
	}
	res.Duration = time.Since(start)
	res.SamplesPerSecond = float64(res.Epochs*(n/batch)*batch) / res.Duration.Seconds()
	if len(split.Validation) == 0 {
		res.ValLoss = math.NaN()
	}
	return res, nil
}

// Gather copies the listed rows of x (width d), and their labels when y is not nil,
// into new dense slices.
func Gather(x, y []float32, d int, rows []int) ([]float32, []float32) {
	xs := make([]float32, 0, len(rows)*d)
	var ys []float32
	for _, r := range rows {
		xs = append(xs, x[r*d:(r+1)*d]...)
		if y != nil {
			ys = append(ys, y[r])
		}
	}
	return xs, ys
}
