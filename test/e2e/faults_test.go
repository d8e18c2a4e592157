package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/contract"
)

// 10. The model volume fills up while a retrained model is saved. The volume is a
// real 4 MiB filesystem (a tmpfs, mounted by the test, which needs root) behind a
// PersistentVolume bound to the Detector's claim. Training fails with "no space left
// on device" in the Detector's status, the previous model keeps serving, no partial
// model is ever visible on the volume, and freeing space lets the next retraining
// through.
func TestFullModelVolumeKeepsServing(t *testing.T) {
	start := time.Now()
	ns := namespace(t, "full")
	vol := filepath.Join(env.dir, "tiny-volume-"+ns)
	if err := os.MkdirAll(vol, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", vol, "tmpfs", 0, "size=4m,mode=0777"); err != nil {
		t.Skipf("mounting a small tmpfs needs root (CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(vol, syscall.MNT_DETACH) })
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-models"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("4Mi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName:              "kadet-tiny",
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: vol}},
			ClaimRef:                      &corev1.ObjectReference{Namespace: ns, Name: "cards-models"},
		},
	}
	if err := env.client.Create(context.Background(), pv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.client.Delete(context.Background(), pv) })

	mustKubectl(t, cardManifest("cards", cardCSV(400, 3), 5, "  storage: {storageClassName: kadet-tiny, size: 4Mi}\n"), "apply", "-n", ns, "-f", "-")
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/cards")
	first := getDetector(t, ns, "cards").Status.ServedVersion
	if first == "" {
		t.Fatal("no served version")
	}

	// Fill what is left, then retrain.
	filler, err := os.Create(filepath.Join(vol, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 16<<10)
	for {
		if _, err := filler.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	filler.Close()
	filled := time.Now()
	mustKubectl(t, nil, "annotate", "-n", ns, "detector/cards", builders.AnnotationRetrain+"=full", "--overwrite")

	var failedMsg string
	waitFor(t, "the failed retraining in the Detector's status", 3*time.Minute, func() (bool, error) {
		det := getDetector(t, ns, "cards")
		c := apimeta.FindStatusCondition(det.Status.Conditions, kadetv1.TrainingFailedCondition)
		if c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "no space left on device") {
			failedMsg = c.Message
			return true, nil
		}
		// No partial model is ever visible while it fails.
		return false, checkVolume(vol, first)
	})
	t.Logf("retraining failed %s after the volume filled: %s", time.Since(filled).Round(time.Millisecond), failedMsg)
	det := getDetector(t, ns, "cards")
	if det.Status.ServedVersion != first || !apimeta.IsStatusConditionTrue(det.Status.Conditions, kadetv1.ReadyCondition) {
		t.Fatalf("served %s (Ready %v); want %s still served and Ready", det.Status.ServedVersion, readyCondition(det), first)
	}
	urls, err := scoringURLs(context.Background(), ns, "cards", det.Spec.Scoring.Port)
	if err != nil || len(urls) == 0 {
		t.Fatalf("no ready scoring pod: %v", err)
	}
	resp, err := detect(urls[0], normalRecords)
	if err != nil || resp.Model.Version != first {
		t.Fatalf("scoring after the failure: %v, %+v", err, resp)
	}
	if err := checkVolume(vol, first); err != nil {
		t.Fatal(err)
	}

	// Space again: the next retraining saves and serves a new version.
	if err := os.Remove(filepath.Join(vol, "filler")); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	mustKubectl(t, nil, "annotate", "-n", ns, "detector/cards", builders.AnnotationRetrain+"=freed", "--overwrite")
	waitFor(t, "a new version served", 3*time.Minute, func() (bool, error) {
		det := getDetector(t, ns, "cards")
		return det.Status.ServedVersion != first && det.Status.ServedVersion != "" && !apimeta.IsStatusConditionTrue(det.Status.Conditions, kadetv1.TrainingFailedCondition), nil
	})
	t.Logf("recovered %s after space was freed (served %s); scenario took %s", time.Since(freed).Round(time.Millisecond),
		getDetector(t, ns, "cards").Status.ServedVersion, time.Since(start).Round(time.Millisecond))
}

// checkVolume fails unless the volume's model versions are exactly want (hidden
// partial folders and the feedback folder aside, which the scoring pods never list as
// versions) and no version folder is incomplete.
func checkVolume(vol string, want string) error {
	entries, err := os.ReadDir(vol)
	if err != nil {
		return err
	}
	var versions []string
	for _, e := range entries {
		// The feedback folder is the scoring pods', beside the versions.
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && e.Name() != contract.FeedbackDirName {
			versions = append(versions, e.Name())
			if _, err := os.Stat(filepath.Join(vol, e.Name(), "model.kadet")); err != nil {
				return errors.New("version " + e.Name() + " has no model file: a partial model is visible")
			}
		}
	}
	if len(versions) != 1 || versions[0] != want {
		return errors.New("volume holds versions " + strings.Join(versions, ", ") + "; want only " + want)
	}
	return nil
}

// 11. The manager installed by the chart serves /metrics over HTTPS to callers the API
// server authorizes: no token gets 401, a ServiceAccount without the metrics reader 403,
// one bound to it the metrics.
func TestManagerMetricsNeedAuthorization(t *testing.T) {
	ns := namespace(t, "scraper")
	pods := &corev1.PodList{}
	if err := env.client.List(context.Background(), pods, client.InNamespace(managerNamespace),
		client.MatchingLabels{"app.kubernetes.io/component": "manager"}); err != nil || len(pods.Items) != 1 || pods.Items[0].Status.PodIP == "" {
		t.Fatalf("the manager pod: %v %+v", err, pods.Items)
	}
	url := "https://" + pods.Items[0].Status.PodIP + ":8080/metrics"
	mustKubectl(t, nil, "create", "serviceaccount", "-n", ns, "prometheus")
	mustKubectl(t, nil, "create", "serviceaccount", "-n", ns, "nosy")
	mustKubectl(t, nil, "create", "clusterrolebinding", ns+"-metrics", "--clusterrole=kadet-metrics-reader", "--serviceaccount="+ns+":prometheus")
	t.Cleanup(func() { _, _ = kubectl(nil, "delete", "clusterrolebinding", ns+"-metrics") })

	get := func(token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		// The certificate is self-signed, as kubebuilder's layout serves it.
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d; want 401", code)
	}
	if code, _ := get(strings.TrimSpace(mustKubectl(t, nil, "create", "token", "-n", ns, "nosy"))); code != http.StatusForbidden {
		t.Errorf("a token without the metrics reader: %d; want 403", code)
	}
	token := strings.TrimSpace(mustKubectl(t, nil, "create", "token", "-n", ns, "prometheus"))
	waitFor(t, "the bound token to be authorized", 30*time.Second, func() (bool, error) {
		code, body := get(token)
		return code == http.StatusOK && strings.Contains(body, "controller_runtime_reconcile_total"), nil
	})
}

// 12. The control plane goes away while a training Job runs: the kube-apiserver is
// restarted (SIGTERM, SIGKILL after 10 s, started again with the same flags: see
// hack/localcluster), then etcd is frozen (SIGSTOP) for 20 s. Pods keep running; the
// manager loses its lease and restarts or rides it out; afterwards the Detector
// converges with the result recorded once: one Job, one ModelVersion, Ready.
func TestControlPlaneOutagesDuringTraining(t *testing.T) {
	start := time.Now()
	ns := namespace(t, "outage")
	// About 40 s of training on 2 cores: longer than the two outages.
	startSlowTraining(t, ns, 12000)
	_, etcd := controlPlanePids(t)
	restartsBefore := managerRestarts(t)

	restarted := time.Now()
	restartAPIServer(t)
	t.Logf("kube-apiserver restarted and ready in %s", time.Since(restarted).Round(time.Millisecond))
	requireActiveJob(t, ns, "the apiserver came back")
	if err := syscall.Kill(etcd, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd (pid %d) frozen at %s for 20s", etcd, time.Since(start).Round(time.Millisecond))
	time.Sleep(20 * time.Second)
	if err := syscall.Kill(etcd, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/slow")
	t.Logf("Ready %s after etcd came back", time.Since(back).Round(time.Millisecond))

	jobs, versions := jobsAndVersions(t, ns)
	det := getDetector(t, ns, "slow")
	if len(jobs.Items) != 1 || len(versions.Items) != 1 || det.Status.Model == nil || versions.Items[0].Spec.Version != det.Status.Model.Version {
		t.Fatalf("%d Jobs, %d ModelVersions, model %+v; want one of each, recorded once", len(jobs.Items), len(versions.Items), det.Status.Model)
	}
	if err := waitForManager(); err != nil {
		t.Fatal(err)
	}
	t.Logf("one Job, one ModelVersion (%s); the manager restarted %d times; scenario took %s",
		det.Status.Model.Version, managerRestarts(t)-restartsBefore, time.Since(start).Round(time.Millisecond))
}

// 14. The node process dies during training and starts again (hack/localcluster's
// node crash: every pod's processes SIGKILLed, no lease or status meanwhile; after the
// restart, a pod that was running is lost, as the kubelet reports after a reboot).
// The training pod fails with ContainerStatusUnknown, the Job's backoffLimit (1)
// gives it a second pod, the Detector names the attempt and the cause while that runs,
// and it becomes Ready with one Job and one ModelVersion. The manager's own pod dies
// with the node and comes back too.
func TestNodeCrashDuringTraining(t *testing.T) {
	start := time.Now()
	ns := namespace(t, "nodecrash")
	// About 15 s of training on 2 cores: the crash comes while it runs.
	startSlowTraining(t, ns, 4000)
	requireActiveJob(t, ns, "the crash")
	down := time.Now()
	signalCluster(t, syscall.SIGUSR2)
	defer func() { // the scenarios after this one need the node, whatever happens here
		if nodeDown() {
			_ = env.cluster.Process.Signal(syscall.SIGUSR2)
		}
	}()
	waitFor(t, "the node down", time.Minute, func() (bool, error) { return nodeDown(), nil })
	t.Logf("node crashed at %s; down for 10s", time.Since(start).Round(time.Millisecond))
	time.Sleep(10 * time.Second)
	signalCluster(t, syscall.SIGUSR2)
	waitFor(t, "the node up", time.Minute, func() (bool, error) { return !nodeDown(), nil })
	up := time.Now()

	var said string
	waitFor(t, "the Detector to name the retry and the lost pod", 3*time.Minute, func() (bool, error) {
		c := apimeta.FindStatusCondition(getDetector(t, ns, "slow").Status.Conditions, kadetv1.TrainedCondition)
		if c != nil && strings.Contains(c.Message, "attempt 2 of 2") && strings.Contains(c.Message, "ContainerStatusUnknown") {
			said = c.Message
			return true, nil
		}
		return false, nil
	})
	t.Logf("%s after the node came back, Trained says: %s", time.Since(up).Round(time.Millisecond), said)
	if strings.Contains(said, "memory") {
		t.Errorf("a pod lost with its node is blamed on memory: %s", said)
	}
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/slow")
	t.Logf("Ready %s after the node came back (%s after it went down)", time.Since(up).Round(time.Millisecond), time.Since(down).Round(time.Millisecond))

	jobs, versions := jobsAndVersions(t, ns)
	if len(jobs.Items) != 1 || jobs.Items[0].Status.Failed != 1 || jobs.Items[0].Status.Succeeded != 1 || len(versions.Items) != 1 {
		t.Fatalf("%d Jobs (%+v), %d ModelVersions; want one Job with a failed and a succeeded pod, one ModelVersion",
			len(jobs.Items), jobs.Items, len(versions.Items))
	}
	if err := waitForManager(); err != nil {
		t.Fatal(err)
	}
	t.Logf("scenario took %s", time.Since(start).Round(time.Millisecond))
}

// startSlowTraining applies Detector "slow" (2,000 rows, epochs epochs) in ns and
// returns once its training Job reports its second epoch.
func startSlowTraining(t *testing.T, ns string, epochs int) {
	t.Helper()
	mustKubectl(t, cardManifest("slow", cardCSV(2000, 5), epochs, ""), "apply", "-n", ns, "-f", "-")
	waitFor(t, "training under way", 3*time.Minute, func() (bool, error) {
		tr := getDetector(t, ns, "slow").Status.Training
		return tr != nil && tr.Epoch >= 2, nil
	})
}

// jobsAndVersions lists ns's Jobs and ModelVersions.
func jobsAndVersions(t *testing.T, ns string) (*batchv1.JobList, *kadetv1.ModelVersionList) {
	t.Helper()
	jobs := &batchv1.JobList{}
	if err := env.client.List(context.Background(), jobs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	versions := &kadetv1.ModelVersionList{}
	if err := env.client.List(context.Background(), versions, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	return jobs, versions
}

// requireActiveJob fails the test unless ns's one training Job is still running at
// the moment named by when: a fault after training ended would prove nothing.
func requireActiveJob(t *testing.T, ns, when string) {
	t.Helper()
	jobs, _ := jobsAndVersions(t, ns)
	if len(jobs.Items) != 1 || jobs.Items[0].Status.Active != 1 {
		t.Fatalf("want one running training Job at %s, got %+v: the scenario needs a longer run", when, jobs.Items)
	}
}

// signalCluster sends sig to the local cluster's process (see hack/localcluster for
// the faults SIGUSR1 and SIGUSR2 stand for).
func signalCluster(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := env.cluster.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// nodeDown tells whether the local cluster's node is crashed.
func nodeDown() bool {
	_, err := os.Stat(filepath.Join(env.clusterDir, "node-down"))
	return err == nil
}

// restartAPIServer restarts the local cluster's kube-apiserver and returns once it is
// ready again.
func restartAPIServer(t *testing.T) {
	t.Helper()
	log := filepath.Join(env.clusterDir, "apiserver-restarts")
	lines := func() int {
		b, _ := os.ReadFile(log)
		return strings.Count(string(b), "\n")
	}
	before := lines()
	signalCluster(t, syscall.SIGUSR1)
	waitFor(t, "the kube-apiserver restarted and ready", 3*time.Minute, func() (bool, error) { return lines() > before, nil })
}

// controlPlanePids finds the local cluster's kube-apiserver (by the port of the
// kubeconfig's server) and the etcd it uses.
func controlPlanePids(t *testing.T) (apiserver, etcd int) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", env.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	args := func(pid string) []string {
		raw, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		return strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	}
	find := func(binary, flag, value string) (int, []string) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			a := args(e.Name())
			if len(a) == 0 || filepath.Base(a[0]) != binary {
				continue
			}
			for _, arg := range a {
				if v, ok := strings.CutPrefix(arg, flag+"="); ok && strings.Contains(v, value) {
					return pid, a
				}
			}
		}
		t.Fatalf("no %s with %s=%s", binary, flag, value)
		return 0, nil
	}
	apiserver, apiArgs := find("kube-apiserver", "--secure-port", u.Port())
	etcdURL := ""
	for _, a := range apiArgs {
		if v, ok := strings.CutPrefix(a, "--etcd-servers="); ok {
			etcdURL = strings.Split(v, ",")[0]
		}
	}
	etcd, _ = find("etcd", "--listen-client-urls", etcdURL)
	return apiserver, etcd
}

// managerRestarts is the restart count of the manager's container.
func managerRestarts(t *testing.T) int32 {
	t.Helper()
	pods := &corev1.PodList{}
	if err := env.client.List(context.Background(), pods, client.InNamespace(managerNamespace),
		client.MatchingLabels{"app.kubernetes.io/component": "manager"}); err != nil {
		t.Fatal(err)
	}
	var n int32
	for _, p := range pods.Items {
		for _, c := range p.Status.ContainerStatuses {
			n += c.RestartCount
		}
	}
	return n
}

// 13. One of two scoring pods is SIGKILLed under steady load. The client sends to the
// ready pods, as kube-proxy routes to ready endpoints (it refreshes the list every
// 50 ms), and never retries: the failed share is what callers see.
func TestScoringPodKilledUnderLoad(t *testing.T) {
	start := time.Now()
	ns := namespace(t, "kill")
	mustKubectl(t, cardManifest("cards", cardCSV(400, 6), 10, "  scoring: {replicas: 2}\n"), "apply", "-n", ns, "-f", "-")
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/cards")
	port := getDetector(t, ns, "cards").Spec.Scoring.Port
	waitFor(t, "two ready scoring pods", 2*time.Minute, func() (bool, error) {
		u, err := scoringURLs(context.Background(), ns, "cards", port)
		return len(u) == 2, err
	})

	var (
		mu          sync.Mutex
		ok, fail    atomic.Int64
		firstErrors []string
		lastFailure atomic.Int64 // unix nanoseconds
	)
	traffic := startLoad(ns, "cards", port, 4, 0, func(_ *detectResponse, err error) {
		if err == nil {
			ok.Add(1)
			return
		}
		fail.Add(1)
		lastFailure.Store(time.Now().UnixNano())
		mu.Lock()
		if len(firstErrors) < 3 {
			firstErrors = append(firstErrors, err.Error())
		}
		mu.Unlock()
	})
	loadStart := time.Now()
	time.Sleep(10 * time.Second)
	victim := strings.TrimPrefix(traffic.ready()[0], "http://")
	failedBefore := fail.Load()
	killed := time.Now()
	if out, err := exec.Command("pkill", "-KILL", "-f", "serve .*--addr "+regexp.QuoteMeta(victim)).CombinedOutput(); err != nil {
		t.Fatalf("killing the scoring process at %s: %v %s", victim, err, out)
	}
	waitFor(t, "the killed pod out of the ready list", time.Minute, func() (bool, error) {
		u, err := scoringURLs(context.Background(), ns, "cards", port)
		for _, x := range u {
			if strings.Contains(x, victim) {
				return false, err
			}
		}
		return true, err
	})
	left := time.Now()
	t.Logf("the killed pod left the ready list %s after the kill", left.Sub(killed).Round(time.Millisecond))
	time.Sleep(20 * time.Second)
	traffic.Stop()
	loadEnd := time.Now()
	total := ok.Load() + fail.Load()
	share := float64(fail.Load()) / float64(total)
	t.Logf("%d requests, %d failed (%.3f%%; %d before the kill), first errors %v; scenario took %s", total, fail.Load(), 100*share,
		failedBefore, firstErrors, time.Since(start).Round(time.Millisecond))
	if total < 1000 {
		t.Fatalf("only %d requests: the load is too light to measure", total)
	}
	// A SIGKILLed process drops what it was answering, and requests routed to it fail
	// until it leaves the ready list; no server can change that, so what is checked is
	// that failures stop there: none before the kill, none once the pod is out.
	if failedBefore != 0 {
		t.Errorf("%d requests failed before the kill", failedBefore)
	}
	if last := time.Unix(0, lastFailure.Load()); fail.Load() > 0 && last.After(left.Add(time.Second)) {
		t.Errorf("a request failed %s after the killed pod left the ready list", last.Sub(left).Round(time.Millisecond))
	}
	if fail.Load() > 0 {
		rate := float64(total) / loadEnd.Sub(loadStart).Seconds()
		t.Logf("failures spanned %s after the kill; at %.0f requests a second, 0.1%% holds over a window of %.0f s or more around one kill",
			time.Unix(0, lastFailure.Load()).Sub(killed).Round(time.Millisecond), rate, float64(fail.Load())/(0.001*rate))
	}
}
