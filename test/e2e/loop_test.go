package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
)

// Three standard deviations of the card data's amount (6) and distance (a half-normal
// of scale 8: 4.8).
const (
	amountShift   = 18
	distanceShift = 15
)

// cardRecord draws one transaction as cardCSV does, amount and distance moved by
// their shifts when shifted.
func cardRecord(rng *rand.Rand, shifted bool) map[string]float64 {
	amount := max(18+6*rng.NormFloat64(), 1)
	dist := 8 * rng.NormFloat64()
	if dist < 0 {
		dist = -dist
	}
	if shifted {
		amount += amountShift
		dist += distanceShift
	}
	return map[string]float64{"amount": amount, "hour": float64(7 + rng.IntN(16)), "merchant_risk": 0.3 * rng.Float64(), "distance_km": dist}
}

// shiftedCSV is cardCSV with the shift applied.
func shiftedCSV(n int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	b.WriteString("amount,hour,merchant_risk,distance_km\n")
	for range n {
		r := cardRecord(rng, true)
		fmt.Fprintf(&b, "%.2f,%.0f,%.3f,%.1f\n", r["amount"], r["hour"], r["merchant_risk"], r["distance_km"])
	}
	return b.String()
}

// traffic sends batches of records to a Detector's ready pods, as startLoad does, from
// a distribution the test can shift; no request is retried.
type traffic struct {
	*load
	shifted       atomic.Bool
	paused        atomic.Bool
	rows, failed  atomic.Int64
	mu            sync.Mutex
	firstFailures []string
}

func startTraffic(ns, det string, batch int, pause time.Duration) *traffic {
	tr := &traffic{}
	rng := rand.New(rand.NewPCG(99, 1))
	var rngMu sync.Mutex
	tr.load = startLoadFunc(ns, det, 8080, 1, pause, func(url string) {
		if tr.paused.Load() {
			return
		}
		rngMu.Lock()
		recs := make([]map[string]float64, batch)
		for i := range recs {
			recs[i] = cardRecord(rng, tr.shifted.Load())
		}
		rngMu.Unlock()
		if _, err := detect(url, recs); err != nil {
			tr.failed.Add(1)
			tr.mu.Lock()
			if len(tr.firstFailures) < 3 {
				tr.firstFailures = append(tr.firstFailures, err.Error())
			}
			tr.mu.Unlock()
			return
		}
		tr.rows.Add(int64(batch))
	})
	return tr
}

func (tr *traffic) check(t *testing.T) {
	t.Helper()
	if n := tr.failed.Load(); n > 0 {
		t.Fatalf("%d requests failed (%d rows answered); first: %v", n, tr.rows.Load(), tr.firstFailures)
	}
}

// postJSON posts v and wants 200.
func postJSON(url string, v any) error {
	body, _ := json.Marshal(v)
	resp, err := httpClient.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return nil
}

func driftedOf(det *kadetv1.Detector) *metav1.Condition {
	return apimeta.FindStatusCondition(det.Status.Conditions, kadetv1.DriftedCondition)
}

// loopManifest is a Detector on a CSV behind url with a drift policy and a gated
// promotion.
func loopManifest(name, url, retraining, promotion string) []byte {
	return []byte(fmt.Sprintf(`apiVersion: anomaly.kadet.dev/v1alpha1
kind: DataSource
metadata: {name: %[1]s}
spec:
  csv: {url: '%[2]s/transactions.csv', columns: [amount, hour, merchant_risk, distance_km]}
---
apiVersion: anomaly.kadet.dev/v1alpha1
kind: Detector
metadata: {name: %[1]s}
spec:
  dataSourceRef: {name: %[1]s}
  model: {type: Autoencoder, hiddenLayers: [16, 8], latentSize: 3}
  training: {epochs: 30, batchSize: 32}
  threshold: {method: Percentile, percentile: 99}
  retraining: %[3]s
  promotion: %[4]s
`, name, url, retraining, promotion))
}

// 15. The loop: a serving Detector's traffic shifts (amount and distance by three
// standard deviations); Drifted names those two features before a window of shifted
// rows has passed; one retraining starts (on the data behind the URL, which has
// shifted too); the new version scores in shadow, passes the gate and is promoted;
// Drifted clears. No request fails.
func TestDriftRetrainShadowPromote(t *testing.T) {
	start := time.Now()
	ns := namespace(t, "loop")
	var csv atomicString
	csv.Store(cardCSV(1000, 21))
	url := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, csv.Load()) }))
	mustKubectl(t, loopManifest("loop", url, "{onDrift: {window: 500, for: 10s, minInterval: 1h}}",
		"{policy: Automatic, shadowRows: 400}"), "apply", "-n", ns, "-f", "-")
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/loop")
	first := getDetector(t, ns, "loop").Status.ServedVersion
	tr := startTraffic(ns, "loop", 10, 20*time.Millisecond)
	defer tr.Stop()
	waitFor(t, "Drifted NoDrift on ordinary traffic", 3*time.Minute, func() (bool, error) {
		c := driftedOf(getDetector(t, ns, "loop"))
		return c != nil && c.Reason == kadetv1.ReasonNoDrift, nil
	})
	t.Logf("%s: Drifted %s on %d ordinary rows", time.Since(start).Round(time.Second), kadetv1.ReasonNoDrift, tr.rows.Load())

	// The shift, in bursts of 10 rows, until the pod's own PSI says both moved.
	tr.paused.Store(true)
	time.Sleep(200 * time.Millisecond)
	csv.Store(shiftedCSV(1000, 22))
	rng := rand.New(rand.NewPCG(7, 7))
	urls, err := scoringURLs(context.Background(), ns, "loop", 8080)
	if err != nil || len(urls) != 1 {
		t.Fatalf("scoring pods %v: %v", urls, err)
	}
	shifted := 0
	shiftAt := time.Now()
	for shifted < 500 {
		recs := make([]map[string]float64, 10)
		for i := range recs {
			recs[i] = cardRecord(rng, true)
		}
		if _, err := detect(urls[0], recs); err != nil {
			t.Fatal(err)
		}
		shifted += 10
		m := metricsOf(urls[0])
		if metricValue(m, `kadet_feature_drift{feature="amount"}`) >= 0.25 && metricValue(m, `kadet_feature_drift{feature="distance_km"}`) >= 0.25 {
			break
		}
	}
	t.Logf("the pod's PSI put amount and distance_km past 0.25 after %d shifted rows (window 500)", shifted)
	var det *kadetv1.Detector
	waitFor(t, "Drifted naming amount and distance_km", 2*time.Minute, func() (bool, error) {
		det = getDetector(t, ns, "loop")
		c := driftedOf(det)
		return c != nil && c.Status == metav1.ConditionTrue, nil
	})
	msg := driftedOf(det).Message
	if !strings.HasPrefix(msg, "features amount, distance_km moved") && !strings.HasPrefix(msg, "features distance_km, amount moved") {
		t.Fatalf("Drifted says %q; want it to name amount and distance_km, and nothing else", msg)
	}
	tDrifted := time.Since(shiftAt)
	t.Logf("Drifted %s after the shift, with %d shifted rows in the window: %s", tDrifted.Round(time.Second), shifted, msg)

	// People label what they see now: ten ordinary records of the shifted traffic and
	// ten outliers. The retraining and the gate read them from the model volume.
	var marks []map[string]any
	for i := range 20 {
		rec := cardRecord(rng, true)
		if i >= 10 {
			rec["amount"], rec["distance_km"] = 900+100*float64(i), 1500
		}
		marks = append(marks, map[string]any{"record": rec, "anomaly": i >= 10})
	}
	if err := postJSON(urls[0]+"/v1/feedback", map[string]any{"marks": marks}); err != nil {
		t.Fatalf("feedback: %v", err)
	}

	tr.shifted.Store(true)
	tr.paused.Store(false)
	var shadowAt, promotedAt time.Duration
	waitFor(t, "a new version promoted", 5*time.Minute, func() (bool, error) {
		det = getDetector(t, ns, "loop")
		if sh := det.Status.Shadow; sh != nil && shadowAt == 0 {
			shadowAt = time.Since(shiftAt)
		}
		if sh := det.Status.Shadow; sh != nil && sh.Decision == kadetv1.ShadowRejected {
			return false, fmt.Errorf("the retrained version was rejected: %s", sh.Message)
		}
		return det.Status.ServedVersion != first && det.Status.Shadow != nil && det.Status.Shadow.Decision == kadetv1.ShadowPromoted, nil
	})
	promotedAt = time.Since(shiftAt)
	t.Logf("shadow from %s after the shift, promoted and served at %s: %s", shadowAt.Round(time.Second), promotedAt.Round(time.Second), det.Status.Shadow.Message)
	if !strings.Contains(det.Status.Shadow.Message, "on 20 labelled marks (10 anomalies)") {
		t.Fatalf("the gate did not compare the models on the 20 labelled marks: %s", det.Status.Shadow.Message)
	}
	if m := det.Status.Model.Metrics; m["feedbackMarks"] != 20 {
		t.Fatalf("the retraining's metrics %v; want it to have scored the 20 labelled marks", m)
	}
	waitFor(t, "Drifted cleared", 3*time.Minute, func() (bool, error) {
		det = getDetector(t, ns, "loop")
		c := driftedOf(det)
		return c != nil && c.Reason == kadetv1.ReasonNoDrift, nil
	})
	t.Logf("Drifted cleared %s after the shift: %s", time.Since(shiftAt).Round(time.Second), driftedOf(det).Message)
	tr.Stop()
	tr.check(t)
	if n := len(events(t, ns, "loop", "RetrainingStarted")); n != 1 {
		t.Fatalf("%d retrainings started, want exactly one", n)
	}
	versions := &kadetv1.ModelVersionList{}
	if err := env.client.List(context.Background(), versions, client.InNamespace(ns), client.MatchingLabels{builders.LabelDetector: "loop"}); err != nil {
		t.Fatal(err)
	}
	if len(versions.Items) != 2 {
		t.Fatalf("%d ModelVersions, want the first and the retrained one", len(versions.Items))
	}
	t.Logf("%d rows answered, 0 failed; scenario took %s", tr.rows.Load(), time.Since(start).Round(time.Second))
}

// 16. A bad candidate: the data behind the URL is corrupted (every row the same
// constant), a retraining trains on it, the new version's anomaly rate in shadow is far
// above its calibration's: the gate rejects it, its ModelVersion says why, the served
// version never changes, and no request fails.
func TestBadCandidateRejected(t *testing.T) {
	start := time.Now()
	ns := namespace(t, "gate")
	var csv atomicString
	csv.Store(cardCSV(1000, 31))
	url := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, csv.Load()) }))
	mustKubectl(t, loopManifest("gate", url, "{}", "{policy: Automatic, shadowRows: 300}"), "apply", "-n", ns, "-f", "-")
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/gate")
	good := getDetector(t, ns, "gate").Status.ServedVersion
	tr := startTraffic(ns, "gate", 5, 20*time.Millisecond)
	defer tr.Stop()
	versions := sync.Map{}
	var corrupted strings.Builder
	corrupted.WriteString("amount,hour,merchant_risk,distance_km\n")
	rng := rand.New(rand.NewPCG(5, 5))
	for range 1000 {
		fmt.Fprintf(&corrupted, "%.2f,0,0,%.1f\n", 0.01*rng.Float64(), 0.1*rng.Float64())
	}
	csv.Store(corrupted.String())
	mustKubectl(t, nil, "annotate", "-n", ns, "detector/gate", builders.AnnotationRetrain+"=corrupted", "--overwrite")
	var det *kadetv1.Detector
	waitFor(t, "the candidate decided", 5*time.Minute, func() (bool, error) {
		det = getDetector(t, ns, "gate")
		if det.Status.ServedVersion != good {
			return false, fmt.Errorf("the served version changed to %s", det.Status.ServedVersion)
		}
		sh := det.Status.Shadow
		if sh != nil {
			versions.Store(sh.Version, true)
		}
		return sh != nil && sh.Decision != kadetv1.ShadowPending, nil
	})
	sh := det.Status.Shadow
	if sh.Decision != kadetv1.ShadowRejected {
		t.Fatalf("the corrupted candidate %s was %s: %s", sh.Version, sh.Decision, sh.Message)
	}
	mv := &kadetv1.ModelVersion{}
	if err := env.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "gate-" + sh.Version}, mv); err != nil {
		t.Fatal(err)
	}
	if mv.Status.Phase != kadetv1.ModelRejected || !strings.Contains(mv.Status.Message, "is above 2 x the rate its calibration expects") {
		t.Fatalf("ModelVersion %s: phase %s, message %q", mv.Name, mv.Status.Phase, mv.Status.Message)
	}
	if n := len(events(t, ns, "gate", "ModelRejected")); n != 1 {
		t.Fatalf("%d ModelRejected events, want 1", n)
	}
	t.Logf("rejected %s after %s: %s", sh.Version, time.Since(start).Round(time.Second), sh.Message)
	// The pods stop scoring it in shadow and keep serving the good version.
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=3m", "detector/gate")
	time.Sleep(2 * time.Second)
	tr.Stop()
	tr.check(t)
	if det = getDetector(t, ns, "gate"); det.Status.ServedVersion != good {
		t.Fatalf("served %s after the rejection, want %s", det.Status.ServedVersion, good)
	}
	t.Logf("%d rows answered, 0 failed; scenario took %s", tr.rows.Load(), time.Since(start).Round(time.Second))
}
