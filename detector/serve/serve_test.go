package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/internal/gen"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/preprocess"
)

var features = []string{"amount", "hour", "distance"}

// writeModel saves a small autoencoder as a new version in dir and returns the version.
func writeModel(t testing.TB, dir string, seed int64, at time.Time) string {
	t.Helper()
	return gen.Save(t, dir, fraudModel(t, seed), at, nil)
}

// fraudModel is a small untrained autoencoder over features.
func fraudModel(t testing.TB, seed int64, opts ...gen.ModelOption) *artifact.Model {
	t.Helper()
	spec := model.Spec{Type: model.Autoencoder, Inputs: 3, Hidden: []int{4}, Latent: 2, Activation: model.Tanh}
	return gen.Model(t, "fraud", spec, seed, features, preprocess.Standardize, []float32{10, 3, 1, 20, 14, 2, 15, 9, 3}, opts...)
}

func newServer(t testing.TB, dir string, opts Options) (*Server, *httptest.Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.ModelDir, opts.Registry = dir, reg
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s := New(opts)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts, reg
}

func call(t testing.TB, ts *httptest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: response is not JSON: %q", method, path, raw)
	}
	return resp.StatusCode, out
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	v := writeModel(t, dir, 1, time.Unix(1e9, 0))
	_, ts, reg := newServer(t, dir, Options{})
	code, out := call(t, ts, "POST", "/v1/detect", `{"instances": [[12, 4, 1.5], [9000, 3, 400]]}`)
	if code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	m := out["model"].(map[string]any)
	if m["version"] != v || m["name"] != "fraud" || m["threshold"] != 0.5 || !strings.HasPrefix(m["digest"].(string), "sha256:") {
		t.Fatalf("model %v", m)
	}
	results := out["results"].([]any)
	normal, odd := results[0].(map[string]any), results[1].(map[string]any)
	if odd["anomaly"] != true || odd["score"].(float64) <= 1 || odd["score"].(float64) != odd["raw"].(float64)/0.5 {
		t.Fatalf("outlier %v", odd)
	}
	if normal["score"].(float64) >= odd["score"].(float64) {
		t.Fatalf("normal row scores %v, outlier %v", normal["score"], odd["score"])
	}
	exp := odd["explanation"].([]any)
	if len(exp) != 3 {
		t.Fatalf("explanation %v", exp)
	}
	var total float64
	for _, e := range exp {
		total += e.(map[string]any)["share"].(float64)
	}
	if total < 0.999 || total > 1.001 { // three features: the top three are all of it
		t.Fatalf("shares sum to %v", total)
	}

	// Records by name, in any order, give the same scores.
	code, byName := call(t, ts, "POST", "/v1/detect", `{"records": [{"hour": 4, "distance": 1.5, "amount": 12}]}`)
	if code != 200 || byName["results"].([]any)[0].(map[string]any)["score"] != normal["score"] {
		t.Fatalf("%d %v vs %v", code, byName, normal)
	}
	if got := testutil.ToFloat64(findCounter(t, reg, "kadet_records_scored_total")); got != 3 {
		t.Fatalf("records scored %v", got)
	}
}

func findCounter(t testing.TB, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: "x"}, func() float64 {
				return mf.GetMetric()[0].GetCounter().GetValue()
			})
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func TestDetectRefusesBadRequests(t *testing.T) {
	dir := t.TempDir()
	writeModel(t, dir, 1, time.Unix(1e9, 0))
	_, ts, _ := newServer(t, dir, Options{MaxBodyBytes: 4096, MaxInstances: 5})
	tests := []struct {
		name, body string
		code       int
		field      string
		want       string
	}{
		{"wrong width", `{"instances": [[1,2,3], [1,2]]}`, 400, "instances[1]", "has 2 values; the model takes 3 features"},
		{"string value", `{"instances": [[1,2,3], [1,"two",3]]}`, 400, "instances[1][1]", "got string, want a number"},
		{"NaN literal", `{"instances": [[1,NaN,3]]}`, 400, "", "malformed JSON at line 1, column"},
		{"beyond float32", `{"instances": [[1,1e39,3]]}`, 400, "instances[0][1]", "not a finite float32 number"},
		{"unknown column", `{"records": [{"amount":1,"hour":2,"distance":3},{"amount":1,"hour":2,"distance":3,"colour":1}]}`, 400,
			"records[1].colour", "unknown column (model features: amount, hour, distance)"},
		{"missing column", `{"records": [{"amount":1,"hour":2}]}`, 400, "records[0]", `missing column "distance"`},
		{"record value not a number", `{"records": [{"amount":"1","hour":2,"distance":3}]}`, 400, "records[0].amount", `"1" is not a number`},
		{"both forms", `{"instances": [[1,2,3]], "records": [{"amount":1}]}`, 400, "", "not both"},
		{"neither", `{}`, 400, "", `body needs "instances"`},
		{"unknown field", `{"inputs": []}`, 400, "", `unknown field "inputs"`},
		{"empty body", ``, 400, "", "body is empty or cut short"},
		{"cut short", `{"instances": [[1,2`, 400, "", "body is empty or cut short"},
		{"syntax error on line 2", "{\"instances\":\n [[1,2,3]]]}", 400, "", "malformed JSON at line 2"},
		{"empty instances", `{"instances": []}`, 400, "instances", "is empty"},
		{"too many instances", `{"instances": [[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3]]}`, 400, "instances", "at most 5 per request"},
		{"oversize", `{"instances": [[1,2,3` + strings.Repeat(" ", 5000) + `]]}`, 413, "", "exceeds the limit of 4096"},
		{"two values", `{"instances": [[1,2,3]]} {}`, 400, "", "more than one JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := call(t, ts, "POST", "/v1/detect", tt.body)
			msg, _ := out["error"].(string)
			field, _ := out["field"].(string)
			if code != tt.code || !strings.Contains(msg, tt.want) || field != tt.field {
				t.Fatalf("%d %q field %q; want %d %q field %q", code, msg, field, tt.code, tt.want, tt.field)
			}
		})
	}
}

func TestOpenInferenceProtocol(t *testing.T) {
	dir := t.TempDir()
	v := writeModel(t, dir, 1, time.Unix(1e9, 0))
	_, ts, _ := newServer(t, dir, Options{})
	for _, path := range []string{"/v2/health/live", "/v2/health/ready", "/healthz", "/readyz", "/v2/models/fraud/ready"} {
		if code, out := call(t, ts, "GET", path, ""); code != 200 {
			t.Fatalf("%s: %d %v", path, code, out)
		}
	}
	code, meta := call(t, ts, "GET", "/v2/models/fraud", "")
	if code != 200 || meta["name"] != "fraud" || meta["versions"].([]any)[0] != v ||
		fmt.Sprint(meta["inputs"].([]any)[0].(map[string]any)["shape"]) != "[-1 3]" {
		t.Fatalf("%d %v", code, meta)
	}
	_, detect := call(t, ts, "POST", "/v1/detect", `{"instances": [[12, 4, 1.5], [9000, 3, 400]]}`)
	want := []any{detect["results"].([]any)[0].(map[string]any)["score"], detect["results"].([]any)[1].(map[string]any)["score"]}
	for name, data := range map[string]string{"flat": `[12, 4, 1.5, 9000, 3, 400]`, "nested": `[[12, 4, 1.5], [9000, 3, 400]]`} {
		code, out := call(t, ts, "POST", "/v2/models/fraud/infer",
			`{"id": "r1", "inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP32", "data": `+data+`}]}`)
		if code != 200 || out["id"] != "r1" || out["model_version"] != v {
			t.Fatalf("%s: %d %v", name, code, out)
		}
		outputs := out["outputs"].([]any)
		score := outputs[0].(map[string]any)
		anomaly := outputs[2].(map[string]any)
		if fmt.Sprint(score["data"]) != fmt.Sprint(want) || fmt.Sprint(anomaly["data"]) != "[false true]" {
			t.Fatalf("%s: outputs %v; want scores %v", name, outputs, want)
		}
	}
	for _, tt := range []struct {
		path, body string
		code       int
		want       string
	}{
		{"/v2/models/other/infer", `{}`, 404, `no model "other" here; this server serves "fraud"`},
		{"/v2/models/fraud/infer", `{"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [1,2,3,4,5,6,7,8]}]}`, 400, "is [2 4]; the model takes [n, 3]"},
		{"/v2/models/fraud/infer", `{"inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP32", "data": [1,2,3]}]}`, 400, "holds 3 values; shape [2 3] needs 6"},
		{"/v2/models/fraud/infer", `{"inputs": [{"name": "input", "shape": [1, 3], "datatype": "BYTES", "data": ["a"]}]}`, 400, `"BYTES" is not supported`},
		{"/v2/models/fraud/infer", `{"inputs": []}`, 400, "has 0 tensors"},
	} {
		code, out := call(t, ts, "POST", tt.path, tt.body)
		if code != tt.code || !strings.Contains(out["error"].(string), tt.want) {
			t.Fatalf("%s %s: %d %v; want %d %q", tt.path, tt.body, code, out, tt.code, tt.want)
		}
	}
}

func TestNoModelIs503(t *testing.T) {
	dir := t.TempDir()
	s, ts, _ := newServer(t, dir, Options{})
	for _, tt := range []struct{ method, path string }{
		{"GET", "/readyz"}, {"GET", "/v2/health/ready"}, {"POST", "/v1/detect"}, {"POST", "/v2/models/x/infer"},
	} {
		code, out := call(t, ts, tt.method, tt.path, `{"instances": [[1,2,3]]}`)
		if code != 503 || !strings.Contains(fmt.Sprint(out), "no model in "+dir) {
			t.Fatalf("%s %s: %d %v", tt.method, tt.path, code, out)
		}
	}
	if code, _ := call(t, ts, "GET", "/healthz", ""); code != 200 {
		t.Fatal("liveness must not depend on a model")
	}
	// The first model arrives and is picked up.
	writeModel(t, dir, 1, time.Unix(1e9, 0))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, ts, "GET", "/readyz", ""); code != 200 {
		t.Fatal("not ready after the model arrived")
	}
}

func TestReloadSwapsGoodModelsAndRefusesCorruptOnes(t *testing.T) {
	dir := t.TempDir()
	v1 := writeModel(t, dir, 1, time.Unix(1e9, 0))
	s, ts, reg := newServer(t, dir, Options{})
	v2 := writeModel(t, dir, 2, time.Unix(2e9, 0))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	_, out := call(t, ts, "POST", "/v1/detect", `{"instances": [[1,2,3]]}`)
	if got := out["model"].(map[string]any)["version"]; got != v2 || v1 == v2 {
		t.Fatalf("serving %v; want %v", got, v2)
	}
	// A newer version whose file is corrupt is refused, counted, and v2 keeps serving.
	v3 := writeModel(t, dir, 3, time.Unix(3e9, 0))
	path := filepath.Join(dir, v3, artifact.FileName)
	b, _ := os.ReadFile(path)
	b[len(b)/2] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "digest does not match") {
		t.Fatalf("corrupt model: %v", err)
	}
	_ = s.Reload() // refused once, not again and again
	_, out = call(t, ts, "POST", "/v1/detect", `{"instances": [[1,2,3]]}`)
	if got := out["model"].(map[string]any)["version"]; got != v2 {
		t.Fatalf("serving %v after a corrupt model; want %v", got, v2)
	}
	if got := testutil.ToFloat64(findCounter(t, reg, "kadet_model_load_failures_total")); got != 1 {
		t.Fatalf("load failures %v", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	info := slices.IndexFunc(mfs, func(mf *dto.MetricFamily) bool { return mf.GetName() == "kadet_model_info" })
	if info < 0 {
		t.Fatal("no kadet_model_info after a reload")
	}
	// One series: the replaced model's is dropped, not left at 1 beside the new one.
	if m := mfs[info].GetMetric(); len(m) != 1 || !strings.Contains(m[0].String(), v2) {
		t.Fatalf("model info %v; want one series for %s", m, v2)
	}
}

// A pinned version's file replaced on the volume after training (a valid model file of
// its own, so its own digest checks out) is refused: the digest its ModelVersion
// recorded is not the file's. The pod stays unready rather than serve it.
func TestPinnedVersionWithAnotherDigestIsRefused(t *testing.T) {
	dir := t.TempDir()
	v := writeModel(t, dir, 1, time.Unix(1e9, 0))
	trained, err := artifact.Load(filepath.Join(dir, v))
	if err != nil {
		t.Fatal(err)
	}
	_, ts, _ := newServer(t, dir, Options{Version: v, Digest: trained.Digest})
	if code, _ := call(t, ts, "GET", "/readyz", ""); code != 200 {
		t.Fatal("the trained file is refused")
	}
	other := t.TempDir()
	w := writeModel(t, other, 2, time.Unix(1e9, 0))
	b, err := os.ReadFile(filepath.Join(other, w, artifact.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, v, artifact.FileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := New(Options{ModelDir: dir, Version: v, Digest: trained.Digest, Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "recorded with "+trained.Digest) {
		t.Fatalf("a replaced file: %v", err)
	}
	if s.Model() != nil {
		t.Fatal("the replaced file is served")
	}
	if got := testutil.ToFloat64(findCounter(t, reg, "kadet_model_load_failures_total")); got != 1 {
		t.Fatalf("load failures %v", got)
	}
}

// TestReloadUnderLoad swaps models while clients score without pause: no request fails.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	writeModel(t, dir, 1, time.Unix(1e9, 0))
	s, ts, _ := newServer(t, dir, Options{})
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := ts.Client().Post(ts.URL+"/v1/detect", "application/json", strings.NewReader(`{"instances": [[1,2,3],[4,5,6]]}`))
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
				if resp != nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	versions := map[string]bool{}
	for i := 2; i <= 21; i++ {
		writeModel(t, dir, int64(i), time.Unix(1e9+int64(i)*1e3, 0))
		if err := s.Reload(); err != nil {
			t.Fatal(err)
		}
		versions[s.current.Load().version] = true
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 100 || len(versions) != 20 {
		t.Fatalf("%d ok, %d failed across %d swaps", ok.Load(), failed.Load(), len(versions))
	}
}

func TestServeDrainsOnShutdown(t *testing.T) {
	dir := t.TempDir()
	writeModel(t, dir, 1, time.Unix(1e9, 0))
	const delay = 500 * time.Millisecond
	s := New(Options{ModelDir: dir, ShutdownDelay: delay, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, ln, 5*time.Second) }()
	url := "http://" + ln.Addr().String()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server never became ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopped := time.Now()
	cancel()
	// During the shutdown delay the server still scores, but tells probes it is going.
	time.Sleep(50 * time.Millisecond)
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatalf("readyz during the shutdown delay: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz during the shutdown delay: %d, want 503", resp.StatusCode)
	}
	resp, err = http.Post(url+"/v1/detect", "application/json", strings.NewReader(`{"instances": [[1,2,3]]}`))
	if err != nil {
		t.Fatalf("detect during the shutdown delay: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("detect during the shutdown delay: %d", resp.StatusCode)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not finish")
	}
	if waited := time.Since(stopped); waited < delay {
		t.Fatalf("stopped accepting after %s, before the %s delay", waited, delay)
	}
	if !s.draining.Load() {
		t.Fatal("not marked draining")
	}
	if resp, err := http.Get(url + "/readyz"); err == nil {
		resp.Body.Close()
		t.Fatal("still accepting after shutdown")
	}
}

// FuzzDecodeDetect: no body makes the decoder panic, and accepted rows have the
// model's width and finite values.
func FuzzDecodeDetect(f *testing.F) {
	for _, seed := range []string{
		`{"instances": [[1,2,3]]}`, `{"records": [{"amount":1,"hour":2,"distance":3}]}`,
		`{"instances": [[1,"x",3]]}`, `{"instances": [[1,2`, "{\"records\": [{\"amount\": 1e400}]}", `[]`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rows, err := decodeDetect(body, features, 100)
		x, n := rows.x, rows.n
		if err != nil {
			if _, ok := err.(*RequestError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if len(x) != n*len(features) || n == 0 {
			t.Fatalf("%d values for %d rows", len(x), n)
		}
		for _, v := range x {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("non-finite value %v accepted", v)
			}
		}
		// The fast path must agree with encoding/json on what it accepts.
		if fx, fn, ok := fastInstances(body, len(features), 100); ok {
			std, err := decodeDetectStd(body, features, 100)
			sx, sn := std.x, std.n
			if err != nil || sn != fn || !slices.Equal(sx, fx) {
				t.Fatalf("fast path read %v (%d rows), encoding/json %v (%d rows, %v)", fx, fn, sx, sn, err)
			}
		}
	})
}

// A sequence model (an LSTM, or a ConvAutoencoder over windows) scores a run of rows,
// each row by the windows around it, and says how many rows a shorter run lacks.
func TestSequenceModelScoresRuns(t *testing.T) {
	for _, spec := range []model.Spec{
		{Type: model.LSTMAutoencoder, Inputs: 4 * 3, Window: 4, Hidden: []int{5}, Latent: 2, Activation: model.Tanh},
		{Type: model.ConvAutoencoder, Inputs: 4 * 3, Window: 4, Channels: []int{2}, Kernel: 3, Latent: 2, Activation: model.Tanh},
	} {
		t.Run(spec.Type, func(t *testing.T) { sequenceScoresRuns(t, spec) })
	}
}

// A model whose scores follow the hour of the day takes each row's time, as
// "timestamps" (REST) or the input tensor "timestamp" (OIP), and divides each row's
// score by its hour's factor; rows without times are refused, saying what to send.
func TestSeasonalModelTakesTimestamps(t *testing.T) {
	dir := t.TempDir()
	spec := model.Spec{Type: model.ConvAutoencoder, Inputs: 4 * 3, Window: 4, Channels: []int{2}, Kernel: 3, Latent: 2, Activation: model.Tanh}
	// Hours alternate between factors 1 and 4.
	gen.Save(t, dir, gen.Model(t, "pump", spec, 1, features, preprocess.Standardize, []float32{1, 2, 3, 4, 5, 6}, gen.Threshold(1), gen.Seasons(1, 4)), time.Unix(1e9, 0), nil)
	_, ts, _ := newServer(t, dir, Options{})
	rows := `[[1,2,3],[2,3,4],[3,4,5],[9,1,6]]`
	scores := func(out map[string]any) []float64 {
		var s []float64
		for _, r := range out["results"].([]any) {
			s = append(s, r.(map[string]any)["score"].(float64))
		}
		return s
	}
	// 00:00 (factor 1) and 01:00 (factor 4) UTC, the same rows.
	code, even := call(t, ts, "POST", "/v1/detect", `{"instances": `+rows+`, "timestamps": [0, 60, 120, 180]}`)
	if code != 200 {
		t.Fatalf("%d %v", code, even)
	}
	code, odd := call(t, ts, "POST", "/v1/detect", `{"instances": `+rows+`, "timestamps": ["1970-01-01T01:00:00Z", 3660, 3720, "1970-01-01T01:03:00+00:00"]}`)
	if code != 200 {
		t.Fatalf("%d %v", code, odd)
	}
	for i, s := range scores(even) {
		if got := scores(odd)[i]; math.Abs(got*4-s) > 1e-9*max(1, s) {
			t.Errorf("row %d: score %v at 01:00, %v at 00:00; want a quarter", i, got, s)
		}
	}
	// OIP: the same rows at 01:00 score alike.
	code, out := call(t, ts, "POST", "/v2/models/pump/infer", `{"inputs": [{"name": "timestamp", "shape": [4], "datatype": "INT64", "data": [3600, 3660, 3720, 3780]},
		{"name": "input", "shape": [4, 3], "datatype": "FP32", "data": `+rows+`}]}`)
	if code != 200 {
		t.Fatalf("infer: %d %v", code, out)
	}
	for i, v := range out["outputs"].([]any)[0].(map[string]any)["data"].([]any) {
		if want := scores(odd)[i]; math.Abs(v.(float64)-want) > 1e-9*max(1, want) {
			t.Errorf("infer row %d: score %v, REST %v", i, v, want)
		}
	}
	for _, c := range []struct{ path, body, want string }{
		{"/v1/detect", `{"instances": ` + rows + `}`, `timestamps: model scores each row against its UTC hour of the day (seasonality Day): send "timestamps"`},
		{"/v1/detect", `{"instances": ` + rows + `, "timestamps": [0, 60]}`, "timestamps: has 2 times for 4 rows"},
		{"/v1/detect", `{"instances": ` + rows + `, "timestamps": [0, 60, "noon", 180]}`, `timestamps[2]: "noon" is not a time`},
		{"/v2/models/pump/infer", `{"inputs": [{"name": "input", "shape": [4, 3], "datatype": "FP32", "data": ` + rows + `}]}`, `inputs: model scores each row against its UTC hour of the day (seasonality Day): add an input tensor "timestamp"`},
		{"/v2/models/pump/infer", `{"inputs": [{"name": "input", "shape": [4, 3], "datatype": "FP32", "data": ` + rows + `}, {"name": "timestamp", "shape": [3], "datatype": "INT64", "data": [1, 2, 3]}]}`, "inputs[1].shape: is [3]; the timestamps of 4 rows are [4]"},
	} {
		code, out := call(t, ts, "POST", c.path, c.body)
		if code != 400 || !strings.Contains(fmt.Sprint(out["error"]), c.want) {
			t.Errorf("%s %s: %d %v, want 400 saying %q", c.path, c.body, code, out, c.want)
		}
	}
	code, meta := call(t, ts, "GET", "/v2/models/pump", "")
	if code != 200 || !strings.Contains(fmt.Sprint(meta["inputs"]), "timestamp") {
		t.Errorf("metadata %d %v: want the timestamp input listed", code, meta)
	}
	resp, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "divided by its UTC hour of the day&#39;s factor: 00:00 1.00, 01:00 4.00, 02:00 1.00"; !strings.Contains(string(page), want) {
		t.Errorf("the model page does not say %q", want)
	}
}

// A model that scales each entity by its own statistics takes the rows' entity ("entity"
// in REST, parameters.entity in OIP): the same rows score by that entity's scaler, an
// entity it did not train on is scaled by the rows sent, and rows without an entity
// are refused, naming one the model knows.
func TestEntityScaledModelTakesTheEntity(t *testing.T) {
	dir := t.TempDir()
	spec := model.Spec{Type: model.ConvAutoencoder, Inputs: 4 * 3, Window: 4, Channels: []int{2}, Kernel: 3, Latent: 2, Activation: model.Tanh}
	m := gen.Model(t, "pump", spec, 1, features, preprocess.Standardize, []float32{1, 2, 3, 4, 5, 6}, gen.Threshold(1))
	m.Meta.EntityScalers = map[string]*preprocess.Scaler{
		`pod="fast"`: {Kind: preprocess.Standardize, Offset: []float32{1, 2, 3}, Scale: []float32{1, 1, 1}},
		`pod="slow"`: {Kind: preprocess.Standardize, Offset: []float32{100, 200, 300}, Scale: []float32{50, 50, 50}},
	}
	gen.Save(t, dir, m, time.Unix(1e9, 0), nil)
	_, ts, _ := newServer(t, dir, Options{})
	rows := `[[1,2,3],[2,3,4],[3,4,5],[9,1,6]]`
	scoreOf := func(body string) []float64 {
		t.Helper()
		code, out := call(t, ts, "POST", "/v1/detect", body)
		if code != 200 {
			t.Fatalf("%s: %d %v", body, code, out)
		}
		var s []float64
		for _, r := range out["results"].([]any) {
			s = append(s, r.(map[string]any)["score"].(float64))
		}
		return s
	}
	fast, slow := scoreOf(`{"instances": `+rows+`, "entity": "pod=\"fast\""}`), scoreOf(`{"instances": `+rows+`, "entity": "pod=\"slow\""}`)
	if slices.Equal(fast, slow) {
		t.Errorf("entities fast and slow scored the same rows alike (%v): the entity's scaler was not used", fast)
	}
	// An entity the model did not see is scaled by the rows sent: its own level.
	if got := scoreOf(`{"instances": ` + rows + `, "entity": "pod=\"new\""}`); slices.Equal(got, slow) {
		t.Errorf("a new entity scored as slow: %v", got)
	}
	code, out := call(t, ts, "POST", "/v2/models/pump/infer", `{"parameters": {"entity": "pod=\"slow\""}, "inputs": [{"name": "input", "shape": [4, 3], "datatype": "FP32", "data": `+rows+`}]}`)
	if code != 200 {
		t.Fatalf("infer: %d %v", code, out)
	}
	for i, v := range out["outputs"].([]any)[0].(map[string]any)["data"].([]any) {
		if math.Abs(v.(float64)-slow[i]) > 1e-9*max(1, slow[i]) {
			t.Errorf("infer row %d: score %v, REST %v", i, v, slow[i])
		}
	}
	for _, c := range []struct{ path, body, want string }{
		{"/v1/detect", `{"instances": ` + rows + `}`, `entity: model scales each entity by its own statistics (scaleBy Entity): send "entity", one of the 2 it trained on, such as "pod=\"fast\""`},
		{"/v2/models/pump/infer", `{"inputs": [{"name": "input", "shape": [4, 3], "datatype": "FP32", "data": ` + rows + `}]}`, `parameters.entity: model scales each entity`},
	} {
		code, out := call(t, ts, "POST", c.path, c.body)
		if code != 400 || !strings.Contains(fmt.Sprint(out["error"]), c.want) {
			t.Errorf("%s %s: %d %v, want 400 saying %q", c.path, c.body, code, out, c.want)
		}
	}
}

func sequenceScoresRuns(t *testing.T, spec model.Spec) {
	dir := t.TempDir()
	gen.Save(t, dir, gen.Model(t, "pump", spec, 1, features, preprocess.Standardize, []float32{1, 2, 3, 4, 5, 6}, gen.Threshold(1)), time.Unix(1e9, 0), nil)
	_, ts, _ := newServer(t, dir, Options{})
	code, out := call(t, ts, "POST", "/v1/detect", `{"instances": [[1,2,3],[2,3,4],[3,4,5],[4,5,6],[5,6,7],[6,7,8]]}`)
	if code != 200 || len(out["results"].([]any)) != 6 {
		t.Fatalf("%d %v", code, out)
	}
	code, out = call(t, ts, "POST", "/v1/detect", `{"instances": [[1,2,3],[2,3,4]]}`)
	if code != 400 || !strings.Contains(out["error"].(string), "2 rows are fewer than the model's window of 4 rows") {
		t.Fatalf("%d %v", code, out)
	}
}
