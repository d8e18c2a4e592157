package e2e

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/hack/promtest"
)

// 7. Metrics in: a real Prometheus beside the cluster, with two days of history of one
// metric and a live exporter of another that has only just started. A sequence-model
// Detector on the history becomes Ready from it; one on the new metric says
// InsufficientData, then becomes Ready by itself once enough seconds have been scraped.
func TestPrometheusDetectorsBecomeReady(t *testing.T) {
	start := time.Now()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	exporter := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := float64(time.Now().Unix())
		fmt.Fprintf(w, "# TYPE kadet_e2e_young gauge\nkadet_e2e_young %g\n", 50+10*math.Sin(2*math.Pi*s/60))
	})}
	go func() { _ = exporter.Serve(l) }()
	t.Cleanup(func() { _ = exporter.Close() })

	end := time.Now().Truncate(time.Minute)
	values := make([]float64, 2*24*60)
	for i := range values {
		values[i] = 100 + 20*math.Sin(2*math.Pi*float64(i)/1440) + float64(i%7)
	}
	srv := promtest.Start(t, promtest.Options{
		History: []promtest.Series{{Metric: "kadet_e2e_load", Labels: map[string]string{"service": "checkout"},
			Start: end.Add(-time.Duration(len(values)-1) * time.Minute), Step: time.Minute, Values: values}},
		Targets: []string{l.Addr().String()},
	})
	// The new metric exists once Prometheus has scraped it (before that its DataSource
	// says NoSeries): from then on its rows grow by one a second.
	waitFor(t, "the first scrape of the new metric", time.Minute, func() (bool, error) {
		resp, err := http.Get(srv.URL + "/api/v1/query?query=kadet_e2e_young")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `"__name__":"kadet_e2e_young"`), err
	})
	ns := namespace(t, "metrics")
	mustKubectl(t, []byte(fmt.Sprintf(`apiVersion: anomaly.kadet.dev/v1alpha1
kind: DataSource
metadata: {name: load}
spec:
  prometheus: {url: %[1]q, queries: [{name: load, query: 'kadet_e2e_load{service="checkout"}'}], range: 36h, step: 5m}
---
apiVersion: anomaly.kadet.dev/v1alpha1
kind: Detector
metadata: {name: load}
spec:
  dataSourceRef: {name: load}
  model: {type: ConvAutoencoder, window: 16}
  training: {epochs: 5}
---
apiVersion: anomaly.kadet.dev/v1alpha1
kind: DataSource
metadata: {name: young}
spec:
  prometheus: {url: %[1]q, queries: [{name: young, query: kadet_e2e_young}], range: 10m, step: 1s}
---
apiVersion: anomaly.kadet.dev/v1alpha1
kind: Detector
metadata: {name: young}
spec:
  dataSourceRef: {name: young}
  model: {type: ConvAutoencoder, window: 8}
  training: {epochs: 3}
`, srv.URL)), "apply", "-n", ns, "-f", "-")

	// The young metric has been scraped for seconds: 100 rows are needed.
	var insufficient string
	waitFor(t, "InsufficientData on the young metric", 3*time.Minute, func() (bool, error) {
		d := getDetector(t, ns, "young")
		if c := readyCondition(d); c != nil && c.Reason == kadetv1.ReasonInsufficientData {
			insufficient = c.Message
			return true, nil
		}
		if c := readyCondition(d); c != nil && c.Status == "True" {
			return false, fmt.Errorf("Ready before InsufficientData was seen: %s", c.Message)
		}
		return false, nil
	})
	if !strings.Contains(insufficient, "of 100 rows; enough in about") {
		t.Errorf("InsufficientData says %q", insufficient)
	}
	t.Logf("young metric: %s", insufficient)
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/load")
	t.Logf("detector on two days of history Ready after %s", time.Since(start).Round(time.Second))
	det := getDetector(t, ns, "load")
	if m := det.Status.Model; m == nil || m.ScoringRule != "Causal" || m.Data == nil || m.Data.Rows != 36*12+1 || m.Data.Entities != 1 {
		t.Errorf("model %+v: want one scoring causally, trained on 433 rows of one entity", det.Status.Model)
	}

	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/young")
	t.Logf("detector on the young metric Ready after %s", time.Since(start).Round(time.Second))
}
