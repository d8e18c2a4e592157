package serve

import (
	"sync"

	"github.com/kadet-dev/kadet/detector/preprocess"
	"github.com/kadet-dev/kadet/detector/scoring"
)

// maxBatchRows bounds how many queued rows one scoring pass takes.
const maxBatchRows = 256

// job is one request's rows waiting to be scored.
type job struct {
	l        *loaded
	x        []float32
	times    []int64            // the rows' unix times, or nil; only a job scored alone has them
	scaler   *preprocess.Scaler // the rows' entity's scaler, or nil for the model's; as times
	n        int
	scored   []scoring.Scored
	shares   []float32
	err      error
	finished bool
}

// alone says whether j's rows carry what no other job's share (times, a scaler), so it
// is scored on its own.
func (j *job) alone() bool { return j.times != nil || j.scaler != nil }

// batcher scores concurrent requests together: while one request's rows are being
// scored, others queue, and the next pass scores all queued rows of the same model in
// one matrix product, which reads the weights once instead of once per request. No
// goroutine runs it: whichever waiting request finds the scorer free takes the next
// batch, so an idle server adds no latency and nothing needs stopping.
type batcher struct {
	mu    sync.Mutex
	free  *sync.Cond
	busy  bool
	queue []*job
	// score scores a job: the batch's first, with every batched job's rows in x.
	score func(j *job) ([]scoring.Scored, []float32, error)
}

func newBatcher(score func(*job) ([]scoring.Scored, []float32, error)) *batcher {
	b := &batcher{score: score}
	b.free = sync.NewCond(&b.mu)
	return b
}

// do scores j's rows and returns when they are done.
func (b *batcher) do(j *job) {
	b.mu.Lock()
	b.queue = append(b.queue, j)
	for !j.finished {
		if b.busy {
			b.free.Wait()
			continue
		}
		b.busy = true
		batch := b.take()
		b.mu.Unlock()
		b.run(batch)
		b.mu.Lock()
		for _, done := range batch {
			done.finished = true
		}
		b.busy = false
		b.free.Broadcast()
	}
	b.mu.Unlock()
}

// take removes the next batch from the queue: the first job and every following job
// of the same model, up to maxBatchRows rows (a larger first job goes alone).
func (b *batcher) take() []*job {
	first := b.queue[0]
	batch := []*job{first}
	rows := first.n
	rest := b.queue[:0]
	// A sequence model's rows are one run in time: requests are never mixed.
	sequence := first.l.model.Network != nil && first.l.model.Network.Spec.Sequence()
	for _, j := range b.queue[1:] {
		if !sequence && !first.alone() && !j.alone() && j.l == first.l && rows+j.n <= maxBatchRows {
			batch = append(batch, j)
			rows += j.n
		} else {
			rest = append(rest, j)
		}
	}
	// Clear the tail so finished jobs are not kept alive by the backing array.
	for i := len(rest); i < len(b.queue); i++ {
		b.queue[i] = nil
	}
	b.queue = rest
	return batch
}

// run scores a batch in one pass and hands each job its rows' results.
func (b *batcher) run(batch []*job) {
	first := *batch[0]
	if len(batch) > 1 {
		size := 0
		for _, j := range batch {
			size += len(j.x)
		}
		first.x = make([]float32, 0, size)
		for _, j := range batch {
			first.x = append(first.x, j.x...)
		}
	}
	scored, shares, err := b.score(&first)
	d := len(batch[0].l.model.Meta.Features)
	off := 0
	for _, j := range batch {
		j.err = err
		if err == nil {
			j.scored = scored[off : off+j.n]
			if shares != nil {
				j.shares = shares[off*d : (off+j.n)*d]
			}
		}
		off += j.n
	}
}
