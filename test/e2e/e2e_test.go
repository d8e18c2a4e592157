// Package e2e runs kadet for real: a local cluster (real etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler, one node whose pods are processes; see
// hack/localcluster), kadet installed by its Helm chart (the manager a pod of the local
// node, under the chart's ServiceAccount and ClusterRole), and the detector
// binary in the training and scoring pods it creates. Each test drives it with
// kubectl and YAML, as a user would, and checks what the pods actually did.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
)

const image = "ghcr.io/kadet-dev/kadet:e2e"

// env is the cluster every test shares.
var env struct {
	root, dir, bin, kubectl, kubeconfig, clusterDir string
	client                                          client.Client
	cluster                                         *exec.Cmd
	mu                                              sync.Mutex
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test-e2e`, which builds the control plane")
		return 1
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	dir, err := os.MkdirTemp("", "kadet-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	keep := os.Getenv("KADET_E2E_KEEP") != ""
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	env.root, env.dir, env.bin = root, dir, filepath.Join(dir, "bin")
	env.kubectl = filepath.Join(assets, "kubectl")
	start := time.Now()
	for _, b := range []struct{ dir, out, pkg string }{
		{root, "manager", "."},
		{root, "detector", "./detector/cmd/detector"},
		{filepath.Join(root, "hack", "localcluster"), "localcluster", "."},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(env.bin, b.out), b.pkg)
		cmd.Dir, cmd.Stderr = b.dir, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", b.out, err)
			return 1
		}
	}
	fmt.Fprintf(os.Stderr, "e2e: binaries built in %s\n", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	clusterDir := filepath.Join(dir, "cluster")
	env.clusterDir = clusterDir
	cidr := fmt.Sprintf("127.%d.%d.0/24", 100+rand.IntN(100), rand.IntN(250))
	logf, err := os.Create(filepath.Join(dir, "localcluster.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.cluster = exec.Command(filepath.Join(env.bin, "localcluster"), "up", "--dir", clusterDir, "--assets", assets,
		"--image", strings.Split(image, ":")[0]+"="+env.bin, "--pod-cidr", cidr)
	env.cluster.Stdout, env.cluster.Stderr = logf, logf
	env.cluster.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := env.cluster.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		_ = env.cluster.Process.Signal(syscall.SIGTERM)
		_ = env.cluster.Wait()
		if keep {
			fmt.Fprintf(os.Stderr, "e2e: logs kept in %s\n", dir)
		}
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(clusterDir, "ready")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			fmt.Fprintf(os.Stderr, "the local cluster did not start:\n%s\n", b)
			return 1
		}
		time.Sleep(100 * time.Millisecond)
	}
	env.kubeconfig = filepath.Join(clusterDir, "kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", env.kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(kadetv1.AddToScheme(scheme))
	if env.client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := installChart(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if out, err := kubectl(nil, "wait", "--for=condition=established", "--timeout=60s", "crd/detectors.anomaly.kadet.dev", "crd/datasources.anomaly.kadet.dev", "crd/modelversions.anomaly.kadet.dev"); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n%s", err, out)
		return 1
	}
	if err := waitForManager(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: cluster, CRDs and manager up in %s\n", time.Since(start).Round(time.Millisecond))
	return m.Run()
}

// The manager runs as users install it: `helm install` of charts/kadet, so it is a pod
// under the chart's ServiceAccount and ClusterRole, and a permission the chart lacks
// fails a test. Its image maps to the binaries built above, as the detector's does.
const (
	managerNamespace  = "kadet-system"
	managerDeployment = "kadet-manager"
)

func installChart() error {
	helm := os.Getenv("KADET_HELM")
	if helm == "" {
		return fmt.Errorf("KADET_HELM is not set: run `make test-e2e`, which builds helm from the Go module proxy")
	}
	repo, tag, _ := strings.Cut(image, ":")
	cmd := exec.Command(helm, "install", "kadet", filepath.Join(env.root, "charts", "kadet"),
		"--kubeconfig", env.kubeconfig, "--namespace", managerNamespace, "--create-namespace",
		"--set", "image.repository="+repo, "--set", "image.tag="+tag, "--set", "logLevel=debug",
		// The local cluster's Prometheus listens on the host's loopback address.
		"--set", "allowLocalPrometheus=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("helm install: %v\n%s", err, out)
	}
	return nil
}

// waitForManager waits until the manager's Deployment has a ready pod.
func waitForManager() error {
	out, err := kubectl(nil, "rollout", "status", "-n", managerNamespace, "deployment/"+managerDeployment, "--timeout=2m")
	if err != nil {
		logs, _ := kubectl(nil, "logs", "-n", managerNamespace, "deployment/"+managerDeployment, "--tail=50")
		return fmt.Errorf("the manager installed by the chart is not ready: %v\n%s\n%s", err, out, logs)
	}
	return nil
}

// startManager brings the manager's Deployment back to one replica and waits for it.
func startManager() error {
	env.mu.Lock()
	defer env.mu.Unlock()
	if out, err := kubectl(nil, "scale", "-n", managerNamespace, "deployment/"+managerDeployment, "--replicas=1"); err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return waitForManager()
}

// stopManager kills the manager without warning, as a node failure would: no replica
// is left to replace it, and its pod goes without a grace period.
func stopManager() {
	env.mu.Lock()
	defer env.mu.Unlock()
	if out, err := kubectl(nil, "scale", "-n", managerNamespace, "deployment/"+managerDeployment, "--replicas=0"); err != nil {
		fmt.Fprintf(os.Stderr, "scaling the manager to 0: %v\n%s", err, out)
	}
	if out, err := kubectl(nil, "delete", "pod", "-n", managerNamespace, "-l", "app.kubernetes.io/name=kadet",
		"--grace-period=0", "--force", "--wait=true"); err != nil {
		fmt.Fprintf(os.Stderr, "killing the manager: %v\n%s", err, out)
	}
}

func kubectl(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(env.kubectl, append([]string{"--kubeconfig", env.kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustKubectl(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	out, err := kubectl(stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// namespace makes a namespace for one test; when the test fails, what is in it is
// printed, so a failure in CI can be read without the cluster.
func namespace(t *testing.T, name string) string {
	t.Helper()
	mustKubectl(t, nil, "create", "namespace", name)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		out, _ := kubectl(nil, "get", "-n", name, "detectors,datasources,jobs,deployments,pods,pvc,configmaps", "-o", "wide")
		t.Logf("namespace %s:\n%s", name, out)
		out, _ = kubectl(nil, "get", "-n", name, "detectors", "-o", "yaml")
		t.Logf("detectors:\n%s", out)
		out, _ = kubectl(nil, "logs", "-n", name, "-l", builders.LabelComponent+"="+builders.ComponentTraining, "--tail=20")
		t.Logf("training logs:\n%s", out)
	})
	return name
}

// waitFor polls ok until it reports done, failing the test after timeout with the
// last error ok returned (errors are retried, as the condition may not hold yet).
func waitFor(t *testing.T, what string, timeout time.Duration, ok func() (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) {
			done, err := ok()
			last = err
			return done, nil
		})
	if err != nil {
		t.Fatalf("%s: not within %s (last: %v)", what, timeout, last)
	}
}

func getDetector(t *testing.T, ns, name string) *kadetv1.Detector {
	t.Helper()
	det := &kadetv1.Detector{}
	if err := env.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, det); err != nil {
		t.Fatal(err)
	}
	return det
}

// scoringURLs are the URLs of det's Ready, not terminating scoring pods. The
// apiserver refuses loopback addresses in EndpointSlices, so the tests route as
// kube-proxy would from them: over ready pods.
func scoringURLs(ctx context.Context, ns, det string, port int32) ([]string, error) {
	pods := &corev1.PodList{}
	if err := env.client.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{
		builders.LabelDetector: det, builders.LabelComponent: builders.ComponentScoring,
	}); err != nil {
		return nil, err
	}
	var urls []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				urls = append(urls, fmt.Sprintf("http://%s:%d", p.Status.PodIP, port))
			}
		}
	}
	return urls, nil
}

type detectResponse struct {
	Model struct {
		Version string `json:"version"`
		Digest  string `json:"digest"`
	} `json:"model"`
	Results []struct {
		Score   float64 `json:"score"`
		Anomaly bool    `json:"anomaly"`
	} `json:"results"`
	Error string `json:"error"`
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func detect(url string, records []map[string]float64) (*detectResponse, error) {
	return postDetect(url, map[string]any{"records": records})
}

func detectInstances(url string, instances [][]float32) (*detectResponse, error) {
	return postDetect(url, map[string]any{"instances": instances})
}

func postDetect(url string, request any) (*detectResponse, error) {
	body, _ := json.Marshal(request)
	resp, err := httpClient.Post(url+"/v1/detect", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out detectResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("%s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, out.Error)
	}
	return &out, nil
}

func readyCondition(det *kadetv1.Detector) *metav1.Condition {
	return meta.FindStatusCondition(det.Status.Conditions, "Ready")
}

// events lists the events about a Detector with a reason.
func events(t *testing.T, ns, det, reason string) []eventsv1.Event {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := env.client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == det && e.Regarding.Kind == "Detector" && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// cardCSV makes n card transactions like config/samples/card-transactions.yaml's
// (amount, hour, merchant_risk, distance_km), with a fixed seed.
func cardCSV(n int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	b.WriteString("amount,hour,merchant_risk,distance_km\n")
	for i := 0; i < n; i++ {
		amount := 18 + 6*rng.NormFloat64()
		if amount < 1 {
			amount = 1
		}
		dist := 8 * rng.NormFloat64()
		if dist < 0 {
			dist = -dist
		}
		fmt.Fprintf(&b, "%.2f,%d,%.3f,%.1f\n", amount, 7+rng.IntN(16), 0.3*rng.Float64(), dist)
	}
	return b.String()
}

// cardManifest is a ConfigMap holding data, its DataSource and a Detector.
func cardManifest(name, data string, epochs int, extra string) []byte {
	cm := map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name + "-data"},
		"data": map[string]string{"transactions.csv": data},
	}
	cmJSON, _ := json.Marshal(cm)
	return []byte(fmt.Sprintf(`%s
---
apiVersion: anomaly.kadet.dev/v1alpha1
kind: DataSource
metadata: {name: %[2]s}
spec:
  csv:
    configMapKeyRef: {name: %[2]s-data, key: transactions.csv}
    columns: [amount, hour, merchant_risk, distance_km]
---
apiVersion: anomaly.kadet.dev/v1alpha1
kind: Detector
metadata: {name: %[2]s}
spec:
  dataSourceRef: {name: %[2]s}
  model: {type: Autoencoder, hiddenLayers: [16, 8], latentSize: 3}
  training: {epochs: %[3]d, batchSize: 16}
  threshold: {method: Percentile, percentile: 99}
%[4]s`, cmJSON, name, epochs, extra))
}

var normalRecords = []map[string]float64{
	{"amount": 18.5, "hour": 12, "merchant_risk": 0.10, "distance_km": 4},
	{"amount": 24.0, "hour": 20, "merchant_risk": 0.05, "distance_km": 9},
	{"amount": 12.7, "hour": 9, "merchant_risk": 0.20, "distance_km": 3},
}

var outlierRecords = []map[string]float64{
	{"amount": 2400, "hour": 3, "merchant_risk": 0.95, "distance_km": 900},
	{"amount": 950, "hour": 14, "merchant_risk": 0.90, "distance_km": 12},
	{"amount": 15, "hour": 11, "merchant_risk": 0.10, "distance_km": 3000},
}

// load sends scoring requests to a Detector's ready pods until stopped, as kube-proxy
// routes to ready endpoints: the list is refreshed every 50 ms, requests go round it,
// and none is retried. Each answer or error goes to record, from any of the workers.
type load struct {
	stop      func()
	wg        sync.WaitGroup
	mu        sync.Mutex
	urls      []string
	refreshes atomic.Int64 // lists of ready pods read from the API
}

func startLoad(ns, det string, port int32, workers int, pause time.Duration, record func(*detectResponse, error)) *load {
	return startLoadFunc(ns, det, port, workers, pause, func(url string) { record(detect(url, normalRecords[:1])) })
}

// startLoadFunc is startLoad with the request left to send: send is called with the
// URL of a ready pod, from any of the workers.
func startLoadFunc(ns, det string, port int32, workers int, pause time.Duration, send func(url string)) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{stop: cancel}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for ctx.Err() == nil {
			if u, err := scoringURLs(ctx, ns, det, port); err == nil {
				l.mu.Lock()
				l.urls = u
				l.mu.Unlock()
				l.refreshes.Add(1)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				u := l.ready()
				if len(u) == 0 {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				send(u[i%len(u)])
				time.Sleep(pause)
			}
		}()
	}
	return l
}

// ready is the list of ready pods the load is sending to.
func (l *load) ready() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.urls)
}

// awaitRefresh returns once the load has read the list of ready pods again, begun
// after this call: from then on its workers choose from what the API said after the
// caller's last observation (a request already on its way still goes where it was
// sent).
func (l *load) awaitRefresh() {
	// A read in progress may have begun before the call: wait for the one after it.
	for n := l.refreshes.Load(); l.refreshes.Load() < n+2; {
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop ends the load and waits for its last requests.
func (l *load) Stop() {
	l.stop()
	l.wg.Wait()
}
