package serve

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kadet-dev/kadet/detector/internal/gen"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/preprocess"
)

// BenchmarkDetectMNIST1 is one batch-1 /v1/detect request to the dense MNIST-shaped
// autoencoder, through the handler without the network.
func BenchmarkDetectMNIST1(b *testing.B) {
	s, body := mnistServer(b)
	h := s.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/detect", bytes.NewReader(body)))
		if rec.Code != 200 {
			b.Fatal(rec.Body.String())
		}
	}
}

// mnistServer serves a dense MNIST-shaped autoencoder and returns a batch-1 body.
func mnistServer(b *testing.B) (*Server, []byte) {
	dir := b.TempDir()
	spec := model.Spec{Type: model.Autoencoder, Inputs: 784, Hidden: []int{256}, Latent: 64, Activation: model.ReLU}
	names := make([]string, 784)
	for i := range names {
		names[i] = "px"
	}
	x := make([]float32, 784)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range x {
		x[i] = rng.Float32()
	}
	gen.Save(b, dir, gen.Model(b, "m", spec, 1, names, preprocess.None, x, gen.Threshold(1), gen.Image(28, 28)), time.Unix(1e9, 0), nil)
	s := New(Options{ModelDir: dir, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Reload(); err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"instances": [][]float32{x}})
	return s, body
}

// BenchmarkDetectMNIST1Loopback is the same request over loopback HTTP from 8
// concurrent clients, as hack/bench/serve sends it.
func BenchmarkDetectMNIST1Loopback(b *testing.B) {
	s, body := mnistServer(b)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(ts.URL+"/v1/detect", "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
