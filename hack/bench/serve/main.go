// Command serve load-tests a real `detector serve` on loopback with the dense MNIST
// autoencoder (784-256-64-256-784): latency at batch 1 under a fixed 1,000 requests/s,
// the highest throughput at batch 1 and batch 256 (client and server share the
// machine's cores), served throughput against in-process scoring of the same batches,
// and the server's memory over a soak run.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/pipeline"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/hack/mnist"
)

var debugAddr string

func main() {
	// The benchmark times kadet as it runs: with the kernels it chooses for itself.
	choice := model.ChooseKernels()
	if choice != "" {
		fmt.Println("kadet kernels:", choice)
	}
	detector := flag.String("detector", "bin/detector", "detector binary to serve with")
	phase := flag.Duration("phase", 10*time.Second, "length of each measured phase")
	soak := flag.Duration("soak", 60*time.Second, "length of the memory soak run")
	workers := flag.Int("workers", 8, "concurrent connections for the throughput phases")
	gen := flag.String("load", "wrk", "load generator of the throughput phases: wrk (Debian's, on PATH) or go (net/http, which costs the shared cores about twice what wrk does)")
	flag.StringVar(&debugAddr, "debug-addr", "", "pass --debug-addr to the server, to profile it under load")
	flag.Parse()
	if err := run(*detector, *phase, *soak, *workers, *gen); err != nil {
		fmt.Fprintln(os.Stderr, "serve bench:", err)
		os.Exit(1)
	}
}

func run(detector string, phase, soak time.Duration, workers int, gen string) error {
	work, err := os.MkdirTemp("", "kadet-serve-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dir, err := mnist.Dir()
	if err != nil {
		return err
	}
	images, err := mnist.TestSet(dir)
	if err != nil {
		return err
	}
	// One epoch on the digit 1: the timings do not depend on how well it learned.
	models := filepath.Join(work, "models")
	out, err := pipeline.Train(context.Background(), mnist.AutoencoderRequest(dir, 1, 0.1, 1), models, pipeline.Options{})
	if err != nil {
		return err
	}
	m, err := artifact.Load(out.Dir)
	if err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{"serve", "--model-dir", models, "--addr", addr}
	if debugAddr != "" {
		args = append(args, "--debug-addr", debugAddr)
	}
	srv := exec.Command(detector, args...)
	srv.Stderr = io.Discard
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	url := "http://" + addr
	if err := waitReady(url); err != nil {
		return err
	}
	d := len(m.Meta.Features)
	body := func(rows int, offset int) []byte {
		inst := make([][]float32, rows)
		for i := range inst {
			r := (offset + i) % images.Rows()
			inst[i] = images.X[r*d : (r+1)*d]
		}
		b, _ := json.Marshal(map[string]any{"instances": inst})
		return b
	}
	one, batch := make([][]byte, 64), body(256, 0)
	for i := range one {
		one[i] = body(1, i)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers * 2, MaxConnsPerHost: workers * 2}}
	post := func(b []byte) error {
		resp, err := client.Post(url+"/v1/detect", "application/json", bytes.NewReader(b))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	// Warm up connections and the server's allocator.
	for i := 0; i < 200; i++ {
		if err := post(one[i%len(one)]); err != nil {
			return err
		}
	}

	// The throughput phases run closed loops: each connection sends its next request
	// when the last is answered.
	closedLoop := func(bodies [][]byte, conns int, d time.Duration) (float64, int, error) {
		rps, errs := goClosedLoop(post, bodies, conns, d)
		return rps, errs, nil
	}
	if gen == "wrk" {
		closedLoop = func(bodies [][]byte, conns int, d time.Duration) (float64, int, error) {
			return wrkClosedLoop(work, url+"/v1/detect", bodies, conns, d)
		}
	} else if gen != "go" {
		return fmt.Errorf("--load %q: want wrk or go", gen)
	}

	fmt.Printf("kadet BLAS (in process): %s, %s kernels; %d cores shared by client and server; throughput load from %s\n", model.BLAS, model.BLASKernels(), nprocs(), gen)
	before, err := serverBuckets(url)
	if err != nil {
		return err
	}
	lat, errs1k := fixedRate(post, one, 1000, phase)
	p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99)
	after, err := serverBuckets(url)
	if err != nil {
		return err
	}
	fmt.Printf("%-34s %10s %10s %10s %8s\n", "phase", "req/s", "records/s", "p50/p99ms", "errors")
	fmt.Printf("%-34s %10.0f %10.0f %4.2f/%-5.2f %8d\n", "batch 1 at a fixed 1000 req/s", float64(len(lat))/phase.Seconds(), float64(len(lat))/phase.Seconds(), ms(p50), ms(p99), errs1k)
	fmt.Printf("%-34s %s\n", "  the same, timed by the server", bucketShares(before, after))
	rps1, errs1, err := closedLoop(one, workers, phase)
	if err != nil {
		return err
	}
	fmt.Printf("%-34s %10.0f %10.0f %10s %8d\n", fmt.Sprintf("batch 1, %d connections", workers), rps1, rps1, "", errs1)
	rps256, errs256, err := closedLoop([][]byte{batch}, workers/2, phase)
	if err != nil {
		return err
	}
	fmt.Printf("%-34s %10.0f %10.0f %10s %8d\n", fmt.Sprintf("batch 256, %d connections", workers/2), rps256, rps256*256, "", errs256)

	in1, in256 := inProcess(m, images, 1, phase/2), inProcess(m, images, 256, phase/2)
	fmt.Printf("in-process scoring records/s: batch 1 %.0f, batch 256 %.0f\n", in1, in256)
	fmt.Printf("served / in-process: batch 1 %.2f, batch 256 %.2f\n", rps1/in1, rps256*256/in256)

	rssBefore, err := rss(srv.Process.Pid)
	if err != nil {
		return err
	}
	_, soakErrs, err := closedLoop(one, workers, soak)
	if err != nil {
		return err
	}
	rssAfter, _ := rss(srv.Process.Pid)
	fmt.Printf("server RSS over a %s batch-1 soak: %.1f MiB -> %.1f MiB (%d errors)\n", soak, float64(rssBefore)/1024, float64(rssAfter)/1024, soakErrs)
	fmt.Printf("serve p99 ms at 1k rps: %.2f; max rps batch1: %.0f\n", ms(p99), rps1)
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitReady(url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("server at %s not ready after 30s", url)
}

// fixedRate sends requests at rate per second, open loop (a slow answer does not delay
// the next request), and returns every latency and the errors.
func fixedRate(post func([]byte) error, bodies [][]byte, rate int, d time.Duration) ([]time.Duration, int) {
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		next := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(next))
		wg.Add(1)
		go func(b []byte) {
			defer wg.Done()
			t := time.Now()
			if err := post(b); err != nil {
				errs.Add(1)
				return
			}
			el := time.Since(t)
			mu.Lock()
			lat = append(lat, el)
			mu.Unlock()
		}(bodies[i%len(bodies)])
	}
	wg.Wait()
	return lat, int(errs.Load())
}

// goClosedLoop runs workers that each send the next request as soon as the last is
// answered, and returns requests/s and errors.
func goClosedLoop(post func([]byte) error, bodies [][]byte, workers int, d time.Duration) (float64, int) {
	var done, errs atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; time.Now().Before(stop); i += workers {
				if err := post(bodies[i%len(bodies)]); err != nil {
					errs.Add(1)
				} else {
					done.Add(1)
				}
			}
		}(w)
	}
	start := time.Now()
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds(), int(errs.Load())
}

// serverBuckets reads the server's cumulative request-duration histogram for
// POST /v1/detect from /metrics: upper bound in seconds -> requests.
func serverBuckets(url string) (map[float64]uint64, error) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the server's metrics: %w", err)
	}
	out := map[float64]uint64{}
	fam := fams["kadet_http_request_duration_seconds"]
	if fam == nil {
		return nil, fmt.Errorf("the server exports no kadet_http_request_duration_seconds")
	}
	for _, m := range fam.GetMetric() {
		route := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == "route" {
				route = l.GetValue()
			}
		}
		if route != "POST /v1/detect" {
			continue
		}
		for _, b := range m.GetHistogram().GetBucket() {
			out[b.GetUpperBound()] += b.GetCumulativeCount()
		}
	}
	return out, nil
}

// bucketShares says what share of the requests between two readings the server
// answered within each of its first few bucket bounds: the time inside the server,
// without the client's and the kernel's part.
func bucketShares(before, after map[float64]uint64) string {
	var bounds []float64
	for b := range after {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	total := float64(after[bounds[len(bounds)-1]] - before[bounds[len(bounds)-1]])
	var parts []string
	for _, b := range bounds {
		if b > 0.005 {
			break
		}
		parts = append(parts, fmt.Sprintf("%.2f%% within %g ms", 100*float64(after[b]-before[b])/max(1, total), b*1000))
	}
	return strings.Join(parts, ", ")
}

// wrkScript sends the bodies in turn, each request formatted once, and prints wrk's
// counts as JSON at the end.
const wrkScript = `
local bodies, reqs, n = {}, {}, 0
for _, path in ipairs({%s}) do
  local f = assert(io.open(path, "rb"))
  bodies[#bodies + 1] = f:read("*a")
  f:close()
end
init = function(args)
  for i, b in ipairs(bodies) do
    reqs[i] = wrk.format("POST", nil, {["Content-Type"] = "application/json"}, b)
  end
end
request = function()
  n = n %% #reqs + 1
  return reqs[n]
end
done = function(s, latency, requests)
  io.write(string.format('{"requests":%%d,"us":%%d,"status":%%d,"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d}\n',
    s.requests, s.duration, s.errors.status, s.errors.connect, s.errors.read, s.errors.write, s.errors.timeout))
end
`

// wrkClosedLoop runs Debian's wrk (one thread, conns connections) for d and returns
// answered requests/s and errors: non-2xx answers and socket errors.
func wrkClosedLoop(work, url string, bodies [][]byte, conns int, d time.Duration) (float64, int, error) {
	dir, err := os.MkdirTemp(work, "wrk-")
	if err != nil {
		return 0, 0, err
	}
	var paths []string
	for i, b := range bodies {
		p := filepath.Join(dir, fmt.Sprintf("body-%d.json", i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return 0, 0, err
		}
		paths = append(paths, strconv.Quote(p))
	}
	script := filepath.Join(dir, "load.lua")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(wrkScript, strings.Join(paths, ", "))), 0o644); err != nil {
		return 0, 0, err
	}
	cmd := exec.Command("wrk", "-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(d.Seconds())), "--timeout", "5s", "-s", script, url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("wrk: %w: %s (install Debian's wrk, or run with --load go)", err, stderr.String())
	}
	var res struct{ Requests, Us, Status, Connect, Read, Write, Timeout int64 }
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || res.Us == 0 {
		return 0, 0, fmt.Errorf("reading wrk's result: %v\n%s", err, out)
	}
	errs := res.Status + res.Connect + res.Read + res.Write + res.Timeout
	return float64(res.Requests-res.Status) / (float64(res.Us) / 1e6), int(errs), nil
}

// inProcess scores the same batches through the same scoring path without HTTP.
func inProcess(m *artifact.Model, images *data.Table, batch int, d time.Duration) float64 {
	dim := len(m.Meta.Features)
	n := 0
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		r := (i * batch) % (images.Rows() - batch)
		if _, _, err := scoring.ScoreExplained(m, nil, images.X[r*dim:(r+batch)*dim], nil); err != nil {
			panic(err)
		}
		n += batch
	}
	return float64(n) / time.Since(start).Seconds()
}

func percentile(v []time.Duration, q float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rss is a process's resident memory in KiB.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

func nprocs() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
