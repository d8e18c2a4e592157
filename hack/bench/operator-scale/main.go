// Command operator-scale measures the manager under many Detectors on a real
// kube-apiserver and etcd (envtest's, from hack/controlplane.sh) with no kubelet: N
// inline-CSV DataSources and Detectors are applied in bulk, the bench plays the Job and
// Deployment controllers and the kubelet (a finished training pod with its result, a
// rolled-out Deployment) as the controller tests do, and the manager, run as its own
// process from this checkout, brings every Detector to Ready.
//
// It prints the time until all N are Ready, the manager's peak and steady RSS, its
// reconciles and API requests while nothing changes, and its writes per Detector,
// ending with `scale: N detectors ready in X s` and `manager peak RSS: X MB`.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
	"github.com/kadet-dev/kadet/detector/contract"
)

const csvData = "amount,hour\n12.5,3\n80.1,14\n9.0,2\n"

func main() {
	n := flag.Int("detectors", 1000, "Detectors (each with its own DataSource and ConfigMap)")
	namespaces := flag.Int("namespaces", 10, "namespaces to spread them over")
	rest := flag.Duration("rest", 30*time.Second, "how long to watch the manager once everything is Ready")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	workers := flag.Int("workers", 0, "--max-concurrent-reconciles of the manager (0: its default)")
	keep := flag.Bool("keep", false, "keep the manager's log (its path is printed)")
	apiProfile := flag.String("apiserver-cpuprofile", "", "write a 30 s CPU profile of the kube-apiserver from the start of the bulk apply to this file")
	heapProfile := flag.String("manager-heapprofile", "", "write the manager's heap profile at rest to this file")
	memLimit := flag.String("memory-limit", "", "run the manager as under a container memory limit of this size (e.g. 400Mi): Go's limit at 90% of it, as the manager sets it from its cgroup")
	breakdown := flag.Bool("breakdown", false, "print the API server's writes per Detector by resource and verb (the bench's own included)")
	flag.Parse()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		log.Fatal("KUBEBUILDER_ASSETS is not set: run `make bench-scale`, or export KUBEBUILDER_ASSETS=$(hack/controlplane.sh)")
	}
	root := must(filepath.Abs("."))
	if _, err := os.Stat(filepath.Join(root, "config", "crd", "bases")); err != nil {
		log.Fatal("run from the repository root")
	}
	tmp := must(os.MkdirTemp("", "kadet-scale-"))
	defer func() {
		if !*keep {
			os.RemoveAll(tmp)
		}
	}()

	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	// envtest's default /24 of Service addresses holds 254 scoring Services.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16")
	cfg := must(env.Start())
	defer func() { _ = env.Stop() }()
	cfg.QPS, cfg.Burst = 2000, 4000
	scheme := runtime.NewScheme()
	check(clientgoscheme.AddToScheme(scheme))
	check(kadetv1.AddToScheme(scheme))
	c := must(client.NewWithWatch(cfg, client.Options{Scheme: scheme}))

	// The manager gets a kubeconfig of its own, as a pod gets its token.
	user := must(env.ControlPlane.AddUser(envtest.User{Name: "kadet-manager", Groups: []string{"system:masters"}}, nil))
	kubeconfig := filepath.Join(tmp, "kubeconfig")
	check(os.WriteFile(kubeconfig, must(user.KubeConfig()), 0o600))
	managerBin := filepath.Join(tmp, "manager")
	build := exec.Command("go", "build", "-o", managerBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	check(build.Run())
	metricsAddr := freeAddr()
	pprofAddr := freeAddr()
	args := []string{"--metrics-bind-address=" + metricsAddr, "--health-probe-bind-address=0", "--zap-log-level=error", "--metrics-secure=false",
		"--pprof-bind-address=" + pprofAddr}
	if *workers > 0 {
		args = append(args, fmt.Sprintf("--max-concurrent-reconciles=%d", *workers))
	}
	mgr := exec.Command(managerBin, args...)
	mgr.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	if *memLimit != "" {
		q, err := resource.ParseQuantity(*memLimit)
		check(err)
		goLimit := q.Value() / 10 * 9
		mgr.Env = append(mgr.Env, fmt.Sprintf("GOMEMLIMIT=%d", goLimit))
		fmt.Printf("manager memory limit %s: Go's limit %.0f MB\n", *memLimit, mb(goLimit))
	}
	mgrLog := must(os.Create(filepath.Join(tmp, "manager.log")))
	mgr.Stdout, mgr.Stderr = mgrLog, mgrLog
	check(mgr.Start())
	defer func() { _ = mgr.Process.Kill(); _, _ = mgr.Process.Wait() }()
	rss := &rssSampler{pid: mgr.Process.Pid}
	go rss.run()
	waitForMetrics(metricsAddr)
	idle := rss.current()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	for i := range *namespaces {
		check(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName(i)}}))
	}
	sim := &simulator{c: c}
	check(sim.start(ctx))
	ready := &readyCounter{}
	check(ready.start(ctx, c))

	if *apiProfile != "" {
		go func() {
			raw, err := kubernetes.NewForConfigOrDie(cfg).RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", "30").DoRaw(ctx)
			check(err)
			check(os.WriteFile(*apiProfile, raw, 0o644))
		}()
	}
	start := time.Now()
	parallel(*n, 64, func(i int) {
		ns, name := nsName(i%*namespaces), fmt.Sprintf("d%05d", i)
		create(ctx, c, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-csv"},
			Data: map[string]string{"data.csv": csvData}})
		create(ctx, c, &kadetv1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-data"},
			Spec: kadetv1.DataSourceSpec{CSV: &kadetv1.CSVSource{
				ConfigMapKeyRef: &kadetv1.ConfigMapKeyReference{Name: name + "-csv", Key: "data.csv"},
			}}})
		create(ctx, c, &kadetv1.Detector{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: kadetv1.DetectorSpec{
				DataSourceRef: kadetv1.LocalObjectReference{Name: name + "-data"},
				Model:         kadetv1.ModelSpec{Type: kadetv1.Autoencoder},
			}})
	})
	applied := time.Since(start)
	fmt.Printf("applied %d ConfigMaps, DataSources and Detectors in %.1f s\n", *n, applied.Seconds())
	progress := time.Now()
	for ready.count() < *n {
		if ctx.Err() != nil {
			log.Fatalf("only %d of %d Detectors Ready after %s (the manager's log: %s)", ready.count(), *n, *timeout, mgrLog.Name())
		}
		if time.Since(progress) > 10*time.Second {
			progress = time.Now()
			log.Printf("%.0f s: %d Ready, %d Jobs completed, %d Deployments rolled out, manager RSS %.0f MB",
				time.Since(start).Seconds(), ready.count(), sim.jobs.Load(), sim.deployments.Load(), mb(rss.current()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	readyIn := time.Since(start)
	fmt.Printf("CPU seconds until Ready: %s\n", cpuUse(mgr.Process.Pid))
	peakBusy := rss.peak()
	rss.restart()
	fmt.Printf("jobs completed by the bench: %d (last at %.1f s), deployments rolled out: %d (last at %.1f s)\n",
		sim.jobs.Load(), sim.lastJob.Load().Sub(start).Seconds(), sim.deployments.Load(), sim.lastDeployment.Load().Sub(start).Seconds())
	if *keep {
		fmt.Println("manager log:", mgrLog.Name())
	}

	// At rest: nothing changes, so once it has finished what it had in hand the manager
	// should neither reconcile nor write.
	settle(ctx, cfg, metricsAddr, start.Add(readyIn), 5*time.Minute)
	time.Sleep(5 * time.Second)
	before := scrape(metricsAddr)
	time.Sleep(*rest)
	after := scrape(metricsAddr)
	steady := rss.current()
	// The heap profile's ?gc=1 collects first, so the heap read next is what is live.
	resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/heap?gc=1")
	check(err)
	profile := must(io.ReadAll(resp.Body))
	resp.Body.Close()
	live := scrape(metricsAddr).sum("go_memstats_heap_alloc_bytes")
	if *heapProfile != "" {
		check(os.WriteFile(*heapProfile, profile, 0o644))
	}

	// The file-backed part is the binary's pages: Go's memory limit leaves it out.
	fmt.Printf("manager RSS: idle %.0f MB, steady %.0f MB with %d Detectors (anonymous %.0f MB, file-backed %.0f MB)\n",
		mb(idle), mb(steady), *n, mb(rss.field("RssAnon")), mb(rss.field("RssFile")))
	fmt.Printf("manager live heap at rest: %.1f MB\n", live/(1<<20))
	fmt.Printf("at rest for %s: %.0f reconciles, %.0f API requests (%s)\n", *rest,
		after.sum("controller_runtime_reconcile_total")-before.sum("controller_runtime_reconcile_total"),
		after.sum("rest_client_requests_total")-before.sum("rest_client_requests_total"),
		after.byMethod(before))
	writes := 0.0
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		writes += after.sum("rest_client_requests_total", `method="`+m+`"`)
	}
	fmt.Printf("manager writes per Detector: %.1f; reconciles per Detector: %.1f\n", writes/float64(*n),
		after.sum("controller_runtime_reconcile_total", `controller="detector"`)/float64(*n))
	if *breakdown {
		printWrites(ctx, cfg, *n)
	}
	fmt.Printf("scale: %d detectors ready in %.1f s\n", *n, readyIn.Seconds())
	// The peak while measuring at rest apart: the bench's own scrapes and profile make
	// the manager allocate then.
	fmt.Printf("manager peak RSS until Ready: %.0f MB; while settling and measuring at rest: %.0f MB\n", mb(peakBusy), mb(rss.peak()))
	fmt.Printf("manager peak RSS: %.0f MB\n", mb(max(peakBusy, rss.peak())))
}

func nsName(i int) string { return fmt.Sprintf("scale-%02d", i) }

func create(ctx context.Context, c client.Client, obj client.Object) {
	for {
		err := c.Create(ctx, obj)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			log.Fatalf("creating %s: %v", obj.GetName(), err)
		}
		log.Printf("creating %s: %v (retrying)", obj.GetName(), err)
		time.Sleep(100 * time.Millisecond)
	}
}

// simulator plays the Job controller and kubelet (a training Job gets a pod that ends
// with the detector's result, then the Job completes) and the Deployment controller
// (every replica of the newest template is available).
type simulator struct {
	c                       client.WithWatch
	jobs, deployments       atomic.Int64
	lastJob, lastDeployment atomic.Pointer[time.Time]
}

func (s *simulator) start(ctx context.Context) error {
	jobs := make(chan *batchv1.Job, 1<<16)
	deps := make(chan *appsv1.Deployment, 1<<16)
	if err := watchAll(ctx, s.c, &batchv1.JobList{}, func(o runtime.Object) {
		if j := o.(*batchv1.Job); j.Status.CompletionTime == nil {
			jobs <- j
		}
	}); err != nil {
		return err
	}
	if err := watchAll(ctx, s.c, &appsv1.DeploymentList{}, func(o runtime.Object) {
		if d := o.(*appsv1.Deployment); d.Status.ObservedGeneration != d.Generation {
			deps <- d
		}
	}); err != nil {
		return err
	}
	for range 32 {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-jobs:
					s.completeJob(ctx, j)
				case d := <-deps:
					s.rollOut(ctx, d)
				}
			}
		}()
	}
	return nil
}

func (s *simulator) completeJob(ctx context.Context, job *batchv1.Job) {
	msg := must(json.Marshal(contract.TrainingResult{
		Version: "20261129-120000-" + job.Name[len(job.Name)-8:], Digest: "sha256:" + job.Name, Threshold: 1,
	}))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: job.Namespace, GenerateName: job.Name + "-",
			Labels: map[string]string{batchv1.JobNameLabel: job.Name}},
		Spec: *job.Spec.Template.Spec.DeepCopy(),
	}
	if err := s.c.Create(ctx, pod); err != nil {
		log.Printf("pod of %s: %v", job.Name, err)
		return
	}
	now := metav1.Now()
	pod.Status = corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{
		Name: builders.TrainerContainer, Image: pod.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			Message: string(msg), StartedAt: now, FinishedAt: now,
		}},
	}}}
	retry(ctx, func() error { return s.c.Status().Update(ctx, pod) })
	retry(ctx, func() error {
		cur := &batchv1.Job{}
		if err := s.c.Get(ctx, client.ObjectKeyFromObject(job), cur); err != nil {
			return err
		}
		start := metav1.NewTime(now.Add(-time.Second))
		cur.Status.StartTime, cur.Status.CompletionTime, cur.Status.Succeeded = &start, &now, 1
		cur.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
		return s.c.Status().Update(ctx, cur)
	})
	s.jobs.Add(1)
	s.lastJob.Store(new(time.Now()))
}

func (s *simulator) rollOut(ctx context.Context, d *appsv1.Deployment) {
	retry(ctx, func() error {
		cur := &appsv1.Deployment{}
		if err := s.c.Get(ctx, client.ObjectKeyFromObject(d), cur); err != nil {
			return err
		}
		if cur.Status.ObservedGeneration == cur.Generation {
			return nil
		}
		r := *cur.Spec.Replicas
		cur.Status = appsv1.DeploymentStatus{ObservedGeneration: cur.Generation, Replicas: r, UpdatedReplicas: r, ReadyReplicas: r, AvailableReplicas: r}
		return s.c.Status().Update(ctx, cur)
	})
	s.deployments.Add(1)
	s.lastDeployment.Store(new(time.Now()))
}

func retry(ctx context.Context, f func() error) {
	for ctx.Err() == nil {
		if err := f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watchAll lists and watches every object of list's kind, calling f on each added or
// modified one; it re-watches from the last version when the server ends a watch.
func watchAll(ctx context.Context, c client.WithWatch, list client.ObjectList, f func(runtime.Object)) error {
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			l := list.DeepCopyObject().(client.ObjectList)
			return l, c.List(ctx, l, &client.ListOptions{Raw: &opts})
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			l := list.DeepCopyObject().(client.ObjectList)
			return c.Watch(ctx, l, &client.ListOptions{Raw: &opts})
		},
	}
	item := itemOf(list)
	_, informer := toolscache.NewInformerWithOptions(toolscache.InformerOptions{
		ListerWatcher: lw, ObjectType: item,
		Handler: toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { f(o.(runtime.Object)) },
			UpdateFunc: func(_, o any) { f(o.(runtime.Object)) },
		},
	})
	go informer.RunWithContext(ctx)
	return nil
}

func itemOf(list client.ObjectList) runtime.Object {
	switch list.(type) {
	case *batchv1.JobList:
		return &batchv1.Job{}
	case *appsv1.DeploymentList:
		return &appsv1.Deployment{}
	case *kadetv1.DetectorList:
		return &kadetv1.Detector{}
	}
	panic(fmt.Sprintf("no item type for %T", list))
}

// readyCounter counts Detectors whose Ready condition is True for their generation.
type readyCounter struct {
	mu    sync.Mutex
	ready map[string]bool
}

func (r *readyCounter) start(ctx context.Context, c client.WithWatch) error {
	r.ready = map[string]bool{}
	return watchAll(ctx, c, &kadetv1.DetectorList{}, func(o runtime.Object) {
		d := o.(*kadetv1.Detector)
		cond := apimeta.FindStatusCondition(d.Status.Conditions, kadetv1.ReadyCondition)
		ok := cond != nil && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == d.Generation
		r.mu.Lock()
		r.ready[d.Namespace+"/"+d.Name] = ok
		r.mu.Unlock()
	})
}

func (r *readyCounter) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ok := range r.ready {
		if ok {
			n++
		}
	}
	return n
}

// rssSampler follows a process's resident set every 100 ms; the kernel's high-water
// mark (VmHWM) catches peaks between samples.
type rssSampler struct {
	pid int
	max atomic.Int64
}

func (s *rssSampler) run() {
	for {
		v := s.current()
		if v == 0 {
			return
		}
		if v > s.max.Load() {
			s.max.Store(v)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *rssSampler) field(name string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func (s *rssSampler) current() int64 { return s.field("VmRSS") }
func (s *rssSampler) peak() int64    { return max(s.max.Load(), s.field("VmHWM")) }

// restart forgets the peak so far, the kernel's too (clear_refs 5 resets VmHWM), so the
// next peak is of what follows alone.
func (s *rssSampler) restart() {
	s.max.Store(0)
	check(os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.pid), []byte("5"), 0))
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// metrics is one scrape of the manager's /metrics: series line -> value.
type metrics map[string]float64

var sample = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?) (\S+)$`)

func scrape(addr string) metrics {
	resp, err := http.Get("http://" + addr + "/metrics")
	check(err)
	defer resp.Body.Close()
	m := metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if s := sample.FindStringSubmatch(sc.Text()); s != nil {
			m[s[1]], _ = strconv.ParseFloat(s[3], 64)
		}
	}
	return m
}

// sum adds the series of metric name whose labels include each of labels (`k="v"`).
func (m metrics) sum(name string, labels ...string) float64 {
	t := 0.0
	for k, v := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(k, l)
		}
		if ok {
			t += v
		}
	}
	return t
}

// byMethod lists the API requests made since before, by HTTP method.
func (m metrics) byMethod(before metrics) string {
	var parts []string
	for _, verb := range []string{"GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "DELETE"} {
		key := `method="` + verb + `"`
		if d := m.sum("rest_client_requests_total", key) - before.sum("rest_client_requests_total", key); d > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", verb, d))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func waitForMetrics(addr string) {
	for range 600 {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Fatal("the manager's /metrics never answered")
}

func freeAddr() string {
	l := must(net.Listen("tcp", "127.0.0.1:0"))
	defer l.Close()
	return l.Addr().String()
}

func parallel(n, workers int, f func(i int)) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

func must[T any](v T, err error) T {
	check(err)
	return v
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// printWrites prints the kube-apiserver's count of write requests per Detector, by
// resource and verb: the manager's and the bench's together.
func printWrites(ctx context.Context, cfg *rest.Config, n int) {
	counts := apiWrites(ctx, cfg)
	fmt.Println("API server writes per Detector (verb, resource, code):")
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		fmt.Printf("  %-50s %.2f\n", k, counts[k]/float64(n))
	}
}

// apiWrites reads the API server's count of writes so far by verb, resource and code.
func apiWrites(ctx context.Context, cfg *rest.Config) map[string]float64 {
	raw, err := kubernetes.NewForConfigOrDie(cfg).RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	check(err)
	re := regexp.MustCompile(`^apiserver_request_total\{(.*)\} (\S+)$`)
	label := func(labels, name string) string {
		m := regexp.MustCompile(name + `="([^"]*)"`).FindStringSubmatch(labels)
		if m == nil {
			return ""
		}
		return m[1]
	}
	counts := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		verb := label(m[1], "verb")
		if verb == "GET" || verb == "LIST" || verb == "WATCH" {
			continue
		}
		key := fmt.Sprintf("%-8s %s%s", verb, label(m[1], "resource"), "/"+label(m[1], "subresource"))
		v, _ := strconv.ParseFloat(m[2], 64)
		counts[strings.TrimSuffix(key, "/")+" "+label(m[1], "code")] += v
	}
	return counts
}

// settle waits (up to limit) until the manager has nothing queued or in hand and has
// started no reconcile for two seconds, and says how long that took after the last
// Detector got Ready and which writes reached the API server meanwhile.
func settle(ctx context.Context, cfg *rest.Config, metricsAddr string, readyAt time.Time, limit time.Duration) {
	start, before := time.Now(), apiWrites(ctx, cfg)
	reconciles := func(m metrics) float64 { return m.sum("controller_runtime_reconcile_total") }
	last, lastChange := reconciles(scrape(metricsAddr)), readyAt
	for time.Since(start) < limit {
		// Each scrape makes the manager render every Detector's series (24 MB of
		// garbage at 10,000): once a second is already 15 to 30 times as often as
		// Prometheus usually scrapes.
		time.Sleep(time.Second)
		m := scrape(metricsAddr)
		if r := reconciles(m); r != last {
			last, lastChange = r, time.Now()
		}
		if m.sum("workqueue_depth")+m.sum("controller_runtime_active_workers") == 0 && time.Since(lastChange) >= 2*time.Second {
			break
		}
	}
	var writes []string
	after := apiWrites(ctx, cfg)
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if d := after[k] - before[k]; d > 0 && !strings.Contains(k, "leases") {
			writes = append(writes, fmt.Sprintf("%s: %.0f", strings.Join(strings.Fields(k), " "), d))
		}
	}
	settled := "settled"
	if time.Since(start) >= limit {
		settled = "still busy"
	}
	fmt.Printf("manager %s: its last reconcile %.1f s after the last Ready; API writes meanwhile: %s\n",
		settled, max(lastChange.Sub(readyAt), 0).Seconds(), orNone(strings.Join(writes, ", ")))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// cpuUse sums user and system CPU time of the manager, the control plane's processes
// and the bench itself, so the bench shows where the machine's time went.
func cpuUse(managerPid int) string {
	ticks := func(pid string) float64 {
		raw, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return 0
		}
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
		u, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		return (u + st) / 100 // USER_HZ
	}
	parts := []string{fmt.Sprintf("manager %.1f", ticks(strconv.Itoa(managerPid))), fmt.Sprintf("bench %.1f", ticks("self"))}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(cmd), os.Getenv("KUBEBUILDER_ASSETS")) {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.1f", filepath.Base(strings.Split(string(cmd), "\x00")[0]), ticks(e.Name())))
	}
	return strings.Join(parts, ", ")
}
