// Command manager runs the kadet controllers.
package main

import (
	"context"
	"flag"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers"
	"github.com/kadet-dev/kadet/controllers/builders"
)

func main() {
	var (
		metricsAddr, probeAddr, pprofAddr, image, pullPolicy, command string
		leaderElect, secureMetrics                                    bool
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0", "address of Go's /debug/pprof endpoints; 0 (the default) disables them")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "serve /metrics over HTTPS (a self-signed certificate) to callers the API server authenticates and authorizes for GET /metrics; false serves plain HTTP to anyone")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect a leader so only one replica reconciles")
	flag.StringVar(&image, "detector-image", "ghcr.io/kadet-dev/kadet:latest", "image of training and scoring pods")
	flag.StringVar(&pullPolicy, "detector-image-pull-policy", "IfNotPresent", "pull policy of the detector image")
	flag.StringVar(&command, "detector-command", strings.Join(builders.DefaultCommand, " "), "command that runs the detector binary in the image")
	opts := zap.Options{}
	watch := flag.String("watch-namespaces", "", "comma-separated namespaces whose DataSources and Detectors kadet manages, and whose objects alone it watches and caches; empty: every namespace")
	peers := flag.String("scoring-peer-namespaces", "monitoring", "comma-separated namespaces whose pods a Detector's default NetworkPolicy admits to its scoring pods, besides its own namespace (where Prometheus scrapes them from)")
	flag.BoolVar(&allowLocalPrometheus, "allow-local-prometheus", false, "let the manager check Prometheus DataSources at loopback and link-local addresses (its own, a cloud metadata service); training and scoring pods are not affected")
	flag.IntVar(&workers, "max-concurrent-reconciles", 4, "Detectors (and DataSources) reconciled at once; one object is never reconciled twice at once")
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")
	if limit := memoryLimit(); limit > 0 {
		log.Info("Go memory limit set to 90% of the container's", "bytes", limit)
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(kadetv1.AddToScheme(scheme))

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOptions(metricsAddr, secureMetrics),
		HealthProbeBindAddress: probeAddr,
		PprofBindAddress:       pprofAddr,
		Cache:                  controllers.CacheOptions(namespaceList(*watch)...),
		LeaderElection:         leaderElect,
		LeaderElectionID:       "kadet-manager.anomaly.kadet.dev",
	})
	if err != nil {
		log.Error(err, "cannot create manager")
		os.Exit(1)
	}
	cfg := builders.Config{
		Image: image, ImagePullPolicy: corev1.PullPolicy(pullPolicy), Command: strings.Fields(command),
		ScoringPeerNamespaces: namespaceList(*peers),
	}
	if err := setup(mgr, cfg); err != nil {
		log.Error(err, "cannot set up controllers")
		os.Exit(1)
	}
	utilruntime.Must(mgr.AddHealthzCheck("healthz", healthz.Ping))
	utilruntime.Must(mgr.AddReadyzCheck("readyz", healthz.Ping))

	log.Info("starting manager", "detectorImage", image)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

// namespaceList splits a flag's comma-separated namespaces.
func namespaceList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
}

// workers is --max-concurrent-reconciles.
var workers = 4

// allowLocalPrometheus is --allow-local-prometheus.
var allowLocalPrometheus bool

// setup registers kadet's indexes and controllers with mgr.
func setup(mgr ctrl.Manager, cfg builders.Config) error {
	if err := controllers.SetupIndexes(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if err := (&controllers.DataSourceReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Workers: workers, AllowLocalTargets: allowLocalPrometheus,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&controllers.DetectorReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("kadet"), Config: cfg, Workers: workers,
	}).SetupWithManager(mgr)
}

// memoryLimit makes the Go runtime collect garbage harder as the heap nears 90% of the
// container's memory limit (cgroup v2 memory.max), instead of growing to twice the live
// heap and being killed at the limit. GOMEMLIMIT, when set, wins. It returns the limit
// set, or 0.
func memoryLimit() int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	raw, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	container, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil || container <= 0 { // "max": no limit
		return 0
	}
	limit := container / 10 * 9
	debug.SetMemoryLimit(limit)
	return limit
}

// metricsOptions serves /metrics, over HTTPS with authentication and authorization by
// the API server (TokenReview, SubjectAccessReview) when secure, as kubebuilder's layout
// does: a scraper needs a token whose subject may get the /metrics URL.
func metricsOptions(addr string, secure bool) metricsserver.Options {
	o := metricsserver.Options{BindAddress: addr, SecureServing: secure}
	if secure {
		o.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return o
}
