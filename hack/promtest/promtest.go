// Package promtest runs a real Prometheus (Debian's prometheus and promtool) for tests:
// history is written as OpenMetrics and turned into TSDB blocks with promtool, then a
// server is started on a loopback port over that data folder and stopped when the test
// ends.
package promtest

import (
	"bytes"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Series is one series of history: values at Start, Start+Step, ...; NaN writes a NaN
// sample, and Skip leaves a step out.
type Series struct {
	Metric string
	Labels map[string]string
	Start  time.Time
	Step   time.Duration
	Values []float64
	Skip   map[int]bool
}

// Options start a server.
type Options struct {
	History []Series
	// WebConfig is the content of --web.config.file (TLS, basic auth).
	WebConfig string
	// Scheme is "https" when WebConfig serves TLS.
	Scheme string
	// Targets are host:port addresses Prometheus scrapes at ScrapeInterval (1s when
	// not given): live data.
	Targets        []string
	ScrapeInterval time.Duration
	// ScrapeConfigs are more scrape_configs entries, as YAML list items.
	ScrapeConfigs string
	// RuleFiles are globs of rule files, evaluated every EvaluationInterval (1s when
	// not given); files added later load on Reload.
	RuleFiles          []string
	EvaluationInterval time.Duration
}

// Server is a running Prometheus.
type Server struct {
	URL string
	Dir string
	Pid int
	cmd *exec.Cmd
	log *syncBuffer
}

// T is what the helpers need of a test: testing.TB has it, and so can a benchmark
// program outside `go test`.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
	Cleanup(func())
}

// Binaries returns the paths of prometheus and promtool, failing the test with what to
// install when they are missing.
func Binaries(t T) (prometheus, promtool string) {
	t.Helper()
	p, err1 := exec.LookPath("prometheus")
	pt, err2 := exec.LookPath("promtool")
	if err1 != nil || err2 != nil {
		t.Fatal("prometheus and promtool are not installed: `apt-get install prometheus` (make test and .ci/run install them)")
	}
	return p, pt
}

// Start writes the history into blocks and starts Prometheus on a free loopback port.
func Start(t T, opt Options) *Server {
	t.Helper()
	prom, promtool := Binaries(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if len(opt.History) > 0 {
		om := filepath.Join(dir, "history.om")
		if err := os.WriteFile(om, OpenMetrics(opt.History), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", om, data).CombinedOutput(); err != nil {
			t.Fatalf("promtool: %v\n%s", err, out)
		}
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	eval := opt.EvaluationInterval
	if eval == 0 {
		eval = time.Second
	}
	config := fmt.Sprintf("global: {scrape_interval: 15s, evaluation_interval: %s}\n", eval)
	if len(opt.RuleFiles) > 0 {
		config += "rule_files: ['" + strings.Join(opt.RuleFiles, "', '") + "']\n"
	}
	if len(opt.Targets) > 0 || opt.ScrapeConfigs != "" {
		config += "scrape_configs:\n"
	}
	if len(opt.Targets) > 0 {
		interval := opt.ScrapeInterval
		if interval == 0 {
			interval = time.Second
		}
		config += fmt.Sprintf("- job_name: test\n  scrape_interval: %s\n  static_configs:\n  - targets: ['%s']\n",
			interval, strings.Join(opt.Targets, "', '"))
	}
	config += opt.ScrapeConfigs
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	args := []string{"--config.file=" + cfg, "--storage.tsdb.path=" + data, "--web.listen-address=127.0.0.1:" + port,
		"--storage.tsdb.retention.time=3650d"}
	if opt.WebConfig != "" {
		wc := filepath.Join(dir, "web.yml")
		if err := os.WriteFile(wc, []byte(opt.WebConfig), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--web.config.file="+wc)
	}
	log := &syncBuffer{}
	cmd := exec.Command(prom, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	scheme := "http"
	if opt.Scheme != "" {
		scheme = opt.Scheme
	}
	s := &Server{URL: scheme + "://127.0.0.1:" + port, Dir: dir, Pid: cmd.Process.Pid, cmd: cmd, log: log}
	// Readiness: with TLS or auth the probe is refused or fails its handshake, but the
	// port answering is enough once the log says the server is ready.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if strings.Contains(log.String(), "Server is ready to receive web requests") {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not become ready:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Reload makes Prometheus read its configuration and rule files again (SIGHUP) and
// waits until it has.
func (s *Server) Reload(t T) {
	t.Helper()
	const done = "Completed loading of configuration file"
	before := strings.Count(s.log.String(), done)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(s.log.String(), done) == before {
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not reload:\n%s", s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(s.log.String(), "Error loading config") || strings.Contains(s.log.String(), "loading groups failed") {
		t.Fatalf("prometheus refused its configuration:\n%s", s.log.String())
	}
}

// Log is what Prometheus has logged so far.
func (s *Server) Log() string { return s.log.String() }

// syncBuffer collects the server's log while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Ready reports whether an http server answers /-/ready.
func (s *Server) Ready() bool {
	resp, err := http.Get(s.URL + "/-/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// OpenMetrics renders history as OpenMetrics text: families together, a TYPE line
// before each, samples in time order, and # EOF.
func OpenMetrics(history []Series) []byte {
	byMetric := map[string][]Series{}
	var names []string
	for _, s := range history {
		if _, ok := byMetric[s.Metric]; !ok {
			names = append(names, s.Metric)
		}
		byMetric[s.Metric] = append(byMetric[s.Metric], s)
	}
	var b bytes.Buffer
	for _, name := range names {
		fmt.Fprintf(&b, "# TYPE %s gauge\n", name)
		for _, s := range byMetric[name] {
			labels := labelText(s.Labels)
			for i, v := range s.Values {
				if s.Skip[i] {
					continue
				}
				ts := s.Start.Add(time.Duration(i) * s.Step)
				val := strconv.FormatFloat(v, 'g', -1, 64)
				if math.IsNaN(v) {
					val = "NaN"
				}
				fmt.Fprintf(&b, "%s%s %s %s\n", name, labels, val, strconv.FormatFloat(float64(ts.UnixMilli())/1000, 'f', 3, 64))
			}
		}
	}
	b.WriteString("# EOF\n")
	return b.Bytes()
}

func labelText(l map[string]string) string {
	if len(l) == 0 {
		return ""
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, l[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func freePort(t T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
