//go:build openblas || blis || dnnl

// Command kernels compares the BLAS kernels kadet could run its products on, on this
// machine: OpenBLAS with the kernels it picks (or the environment pins), with its
// AVX-512 kernels (SkylakeX, Cooperlake) chosen for this process alone, and BLIS. Each
// candidate first multiplies random matrices of odd and edge-tile shapes and is
// refused if any product differs from gonum's pure-Go BLAS; then it times the eleven
// products of one training step of the 784-256-64-256-784 autoencoder at batch 128 and
// the four of scoring a batch of 256, and prints milliseconds and GFLOP/s beside the
// first candidate's.
//
// Run it as the parent (no flags): it builds nothing, it runs this binary again once
// per candidate with the environment that candidate needs (its own process only), and
// the BLIS build (-tags blis) when given --blis BINARY, and the oneDNN build (-tags
// dnnl) when given --dnnl BINARY.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"time"

	"github.com/kadet-dev/kadet/detector/model"
)

// product is C(m x n) = op(A) op(B) with k the inner size.
type product struct {
	name    string
	m, n, k int
	tA, tB  bool
}

// step is one training step of the dense autoencoder (batch 128): four forward
// products, then for each layer the weight gradient (Aᵀ·dY) and, but for the first,
// the input gradient (dY·Wᵀ).
var step = []product{
	{"fwd 784->256", 128, 256, 784, false, false},
	{"fwd 256->64", 128, 64, 256, false, false},
	{"fwd 64->256", 128, 256, 64, false, false},
	{"fwd 256->784", 128, 784, 256, false, false},
	{"dW 256->784", 256, 784, 128, true, false},
	{"dX 256->784", 128, 256, 784, false, true},
	{"dW 64->256", 64, 256, 128, true, false},
	{"dX 64->256", 128, 64, 256, false, true},
	{"dW 256->64", 256, 64, 128, true, false},
	{"dX 256->64", 128, 256, 64, false, true},
	{"dW 784->256", 784, 256, 128, true, false},
}

// score is the forward pass over a batch of 256.
var score = []product{
	{"fwd 784->256", 256, 256, 784, false, false},
	{"fwd 256->64", 256, 64, 256, false, false},
	{"fwd 64->256", 256, 256, 64, false, false},
	{"fwd 256->784", 256, 784, 256, false, false},
}

type result struct {
	Name    string  `json:"name"`
	Kernels string  `json:"kernels"`
	Wrong   string  `json:"wrong,omitempty"`
	StepMs  float64 `json:"stepMs"`
	ScoreMs float64 `json:"scoreMs"`
	GFlops  float64 `json:"gflops"`
}

func main() {
	child := flag.String("child", "", "run as the candidate named, print its result as JSON")
	blisBin := flag.String("blis", "", "a build of this command with -tags blis, to time BLIS too")
	dnnlBin := flag.String("dnnl", "", "a build of this command with -tags dnnl, to time oneDNN's sgemm too")
	reps := flag.Int("reps", 200, "timed repetitions of each set of products")
	flag.Parse()
	if *child != "" {
		r := measure(*child, *reps)
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	self, _ := os.Executable()
	type cand struct {
		name, bin string
		env       []string
	}
	cands := []cand{{"openblas (as the environment has it)", self, nil}}
	if bin := lib(); bin == "openblas" {
		cands = append(cands,
			cand{"openblas SkylakeX (this process)", self, []string{"OPENBLAS_CORETYPE=SkylakeX"}},
			cand{"openblas Cooperlake (this process)", self, []string{"OPENBLAS_CORETYPE=Cooperlake"}},
			cand{"openblas Zen (this process)", self, []string{"OPENBLAS_CORETYPE=Zen"}})
	}
	if *blisBin != "" {
		cands = append(cands, cand{"blis", *blisBin, nil})
	}
	if *dnnlBin != "" {
		// oneDNN runs its products on OpenMP threads: 2 unless OMP_NUM_THREADS says
		// otherwise, spinning after a product unless the wait policy is passive.
		cands = append(cands, cand{"onednn", *dnnlBin, nil},
			cand{"onednn (OMP_WAIT_POLICY=PASSIVE)", *dnnlBin, []string{"OMP_WAIT_POLICY=PASSIVE"}})
	}
	var base *result
	fmt.Printf("%-38s %-12s %10s %10s %9s %s\n", "candidate", "kernels", "step ms", "score ms", "GFLOP/s", "vs first")
	for _, c := range cands {
		cmd := exec.Command(c.bin, "--child", c.name, "--reps", fmt.Sprint(*reps))
		cmd.Env = append(os.Environ(), c.env...)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			fmt.Printf("%-38s failed: %v\n", c.name, err)
			continue
		}
		var r result
		if err := json.Unmarshal(out, &r); err != nil {
			fmt.Printf("%-38s unreadable: %v\n", c.name, err)
			continue
		}
		if r.Wrong != "" {
			fmt.Printf("%-38s %-12s REFUSED: %s\n", r.Name, r.Kernels, r.Wrong)
			continue
		}
		vs := ""
		if base == nil {
			base = &r
		} else {
			vs = fmt.Sprintf("step %.2fx, score %.2fx", base.StepMs/r.StepMs, base.ScoreMs/r.ScoreMs)
		}
		fmt.Printf("%-38s %-12s %10.3f %10.3f %9.1f %s\n", r.Name, r.Kernels, r.StepMs, r.ScoreMs, r.GFlops, vs)
	}
}

// measure validates the library this process loaded, then times it.
func measure(name string, reps int) result {
	r := result{Name: name, Kernels: kernels()}
	if err := model.CheckSgemm(r.Kernels, sgemm, 300); err != nil {
		r.Wrong = err.Error()
		return r
	}
	r.StepMs, r.GFlops = timeSet(step, reps)
	r.ScoreMs, _ = timeSet(score, reps)
	return r
}

func randMat(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.Float64()*2 - 1)
	}
	return x
}

// timeSet runs the products reps times and returns the median milliseconds of a set
// and its GFLOP/s.
func timeSet(set []product, reps int) (float64, float64) {
	rng := rand.New(rand.NewPCG(3, 4))
	type bufs struct{ a, b, c []float32 }
	bs := make([]bufs, len(set))
	flops := 0.0
	for i, p := range set {
		bs[i] = bufs{randMat(rng, p.m*p.k), randMat(rng, p.k*p.n), make([]float32, p.m*p.n)}
		flops += 2 * float64(p.m*p.n*p.k)
	}
	times := make([]float64, 0, reps)
	for r := range reps + 20 {
		start := time.Now()
		for i, p := range set {
			lda, ldb := p.k, p.n
			if p.tA {
				lda = p.m
			}
			if p.tB {
				ldb = p.k
			}
			sgemm(p.tA, p.tB, p.m, p.n, p.k, bs[i].a, lda, bs[i].b, ldb, bs[i].c)
		}
		if r >= 20 { // warm-up
			times = append(times, time.Since(start).Seconds()*1000)
		}
	}
	slices.Sort(times)
	ms := times[len(times)/2]
	return ms, flops / (ms / 1000) / 1e9
}
