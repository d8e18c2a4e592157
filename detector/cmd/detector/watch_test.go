package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/hack/promtest"
)

// `detector serve --watch` on a model trained from Prometheus exports each entity's
// newest score on /metrics; a broken watch request stops it with its reason.
func TestServeWatchExportsScores(t *testing.T) {
	end := time.Now().Truncate(time.Minute)
	var history []promtest.Series
	for p, pod := range []string{"a", "b"} {
		v := make([]float64, 240)
		for i := range v {
			v[i] = 10 + float64((i+p)%17)
		}
		history = append(history, promtest.Series{Metric: "queue_depth", Labels: map[string]string{"pod": pod},
			Start: end.Add(-239 * time.Minute), Step: time.Minute, Values: v})
	}
	srv := promtest.Start(t, promtest.Options{History: history})
	dir := t.TempDir()
	code, stdout, stderr := detector(t, context.Background(), "train", "--prometheus-url", srv.URL, "--query", "depth=queue_depth",
		"--range", "4h", "--step", "1m", "--entity-labels", "pod", "--model", "ConvAutoencoder", "--window", "8", "--epochs", "2",
		"--out", dir)
	if code != contract.ExitOK {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	// A sequence model on Prometheus gets the likelihood stage by default, as a Detector does.
	if !strings.Contains(stdout, `"normalization":"Likelihood"`) {
		t.Errorf("train on Prometheus without --normalization: no Likelihood stage in its result: %s", stdout)
	}
	req := contract.WatchRequest{APIVersion: contract.APIVersion, Kind: contract.WatchKind,
		Detector:   contract.ObjectKey{Namespace: "ops", Name: "depth"},
		Prometheus: contract.ResolvedPrometheus{URL: srv.URL, Step: "1m"}, Interval: "1s"}
	b, _ := json.Marshal(req)
	watchFile := filepath.Join(dir, "watch.json")
	if err := os.WriteFile(watchFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		code, _, _ := detector(t, ctx, "serve", "--model-dir", dir, "--addr", addr, "--watch", watchFile, "--shutdown-delay", "0s")
		done <- code
	}()
	defer func() { cancel(); <-done }()
	var metrics string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			metrics = string(body)
			if strings.Contains(metrics, `pod="b"`) {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, want := range []string{
		`kadet_anomaly_score{detector="depth",namespace="ops",pod="a"}`,
		`kadet_anomaly{detector="depth",namespace="ops",pod="b"} 0`,
		`kadet_expected_value{detector="depth",feature="depth",namespace="ops",pod="a"}`,
		`kadet_watch_entities 2`,
		`kadet_anomaly_raw_score{detector="depth",namespace="ops",pod="a"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s:\n%s", want, metrics)
		}
	}

	// A watch request that is not one is refused before serving, naming the file.
	bad := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(bad, []byte(`{"apiVersion":"anomaly.kadet.dev/v1alpha1","kind":"WatchRequest","prometheus":{"url":"http://x","step":"1m"},"interval":"10ms"}`), 0o644)
	code, _, stderr = detector(t, context.Background(), "serve", "--model-dir", dir, "--addr", "127.0.0.1:0", "--watch", bad)
	if code != contract.ExitInvalidInput || !strings.Contains(stderr, bad) || !strings.Contains(stderr, `interval "10ms" is not a duration of at least 1s`) {
		t.Errorf("bad watch request: exit %d: %s", code, stderr)
	}
}
