package serve

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/scoring"
)

// Concurrent requests are batched, and each still gets its own rows' results. Numbers
// are compared to 1e-5 relative (1e-6 absolute near zero): OpenBLAS sums a product in
// an order that depends on how many rows it has, so a row scored in a batch can differ
// from the same row scored alone in the last bits; another request's rows differ by
// far more.
func TestBatchedRequestsGetTheirOwnResults(t *testing.T) {
	dir := t.TempDir()
	writeModel(t, dir, 1, time.Unix(1e9, 0))
	_, ts, _ := newServer(t, dir, Options{})
	const clients = 40
	bodies := make([]string, clients)
	want := make([]any, clients)
	for i := range bodies {
		rows := make([]string, 1+i%3)
		for r := range rows {
			rows[r] = fmt.Sprintf("[%d, %d, %d]", i*7+r, (i+r)%24, i%5)
		}
		bodies[i] = `{"instances": [` + strings.Join(rows, ",") + `]}`
		code, out := call(t, ts, "POST", "/v1/detect", bodies[i])
		// The reference answers come from requests scored one at a time; a failed one
		// would leave nothing to compare with.
		if results, _ := out["results"].([]any); code != http.StatusOK || len(results) != len(rows) {
			t.Fatalf("reference request %d: %d %v", i, code, out)
		}
		want[i] = out["results"]
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients*5)
	for round := 0; round < 5; round++ {
		for i := range bodies {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				resp, err := http.Post(ts.URL+"/v1/detect", "application/json", strings.NewReader(bodies[i]))
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				var out map[string]any
				if err := json.Unmarshal(b, &out); err != nil || resp.StatusCode != http.StatusOK || !sameJSON(out["results"], want[i]) {
					errs <- fmt.Errorf("client %d got %s; want results %v", i, b, want[i])
				}
			}(i)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestBatcherCombinesQueuedJobs(t *testing.T) {
	m := &loaded{model: &artifact.Model{Meta: artifact.Metadata{Features: []string{"a"}}}}
	other := &loaded{model: &artifact.Model{Meta: artifact.Metadata{Features: []string{"a"}}}}
	var mu sync.Mutex
	var passes []int
	release := make(chan struct{})
	b := newBatcher(func(j *job) ([]scoring.Scored, []float32, error) {
		x := j.x
		mu.Lock()
		first := len(passes) == 0
		passes = append(passes, len(x))
		mu.Unlock()
		if first {
			<-release // hold the scorer so the others queue up
		}
		out := make([]scoring.Scored, len(x))
		for i, v := range x {
			out[i].Raw = float64(v)
		}
		return out, nil, nil
	})
	var wg sync.WaitGroup
	jobs := make([]*job, 12)
	for i := range jobs {
		l := m
		if i == 11 {
			l = other // a job of another model goes in its own pass
		}
		jobs[i] = &job{l: l, x: []float32{float32(i)}, n: 1}
	}
	wg.Add(1)
	go func() { defer wg.Done(); b.do(jobs[0]) }()
	for b.queueLen() != 0 || !b.isBusy() {
		time.Sleep(time.Millisecond)
	}
	for k, j := range jobs[1:] {
		wg.Add(1)
		go func(j *job) { defer wg.Done(); b.do(j) }(j)
		for b.queueLen() != k+1 { // enqueue in order
			time.Sleep(100 * time.Microsecond)
		}
	}
	close(release)
	wg.Wait()
	if fmt.Sprint(passes) != "[1 10 1]" {
		t.Fatalf("passes scored %v rows; want [1 10 1]", passes)
	}
	for i, j := range jobs {
		if len(j.scored) != 1 || j.scored[0].Raw != float64(i) {
			t.Fatalf("job %d got %v", i, j.scored)
		}
	}
}

func (b *batcher) queueLen() int { b.mu.Lock(); defer b.mu.Unlock(); return len(b.queue) }
func (b *batcher) isBusy() bool  { b.mu.Lock(); defer b.mu.Unlock(); return b.busy }

// sameJSON compares decoded JSON values: structure, strings and booleans exactly,
// numbers to 1e-5 relative (plus 1e-6 for shares near zero, which are differences of
// nearly equal values).
func sameJSON(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if !sameJSON(v, b[k]) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameJSON(a[i], b[i]) {
				return false
			}
		}
		return true
	case float64:
		b, ok := b.(float64)
		return ok && math.Abs(a-b) <= 1e-6+1e-5*math.Max(math.Abs(a), math.Abs(b))
	default:
		return a == b
	}
}
