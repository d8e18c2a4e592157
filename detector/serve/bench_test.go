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

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/preprocess"
)

// BenchmarkDetectMNIST1 is one batch-1 /v1/detect request to the dense MNIST-shaped
// autoencoder, through the handler without the network.
func BenchmarkDetectMNIST1(b *testing.B) {
	dir := b.TempDir()
	spec := model.Spec{Type: model.Autoencoder, Inputs: 784, Hidden: []int{256}, Latent: 64, Activation: model.ReLU}
	net, _ := model.New(spec, 1)
	names := make([]string, 784)
	for i := range names {
		names[i] = "px"
	}
	x := make([]float32, 784)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range x {
		x[i] = rng.Float32()
	}
	sc, _ := preprocess.Fit(preprocess.None, x, 784)
	meta := artifact.Metadata{Name: "m", Model: spec, Features: names, Scaler: sc,
		Threshold: artifact.Threshold{Method: "Fixed", Value: 1}, Image: &artifact.ImageShape{Rows: 28, Cols: 28}}
	raw, digest, _ := artifact.Encode(meta, net)
	if _, err := artifact.Save(dir, artifact.NewVersion(time.Unix(1e9, 0), digest), map[string][]byte{artifact.FileName: raw}); err != nil {
		b.Fatal(err)
	}
	s := New(Options{ModelDir: dir, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Reload(); err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	body, _ := json.Marshal(map[string]any{"instances": [][]float32{x}})
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
