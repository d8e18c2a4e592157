package controllers

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
)

// The suite runs the controllers against a real kube-apiserver and etcd (envtest). No
// kubelet or controller-manager runs: tests play their part by writing Job, pod and
// Deployment status themselves.
var (
	testEnv   *envtest.Environment
	k8sClient client.Client
	testCfg   = builders.Config{Image: "kadet/detector:test", ImagePullPolicy: corev1.PullNever}
)

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/controlplane.sh)")
		os.Exit(1)
	}
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	// Controller logs stay quiet unless KADET_TEST_VERBOSE is set.
	level := zapcore.ErrorLevel
	if os.Getenv("KADET_TEST_VERBOSE") != "" {
		level = zapcore.DebugLevel
	}
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(level)))
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := testEnv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = testEnv.Stop() }()

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(kadetv1.AddToScheme(scheme))
	if k8sClient, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The controllers run as a user holding exactly the RBAC generated into config/rbac,
	// so a missing +kubebuilder:rbac marker fails these tests.
	managerCfg, err := managerUser(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "granting the manager's RBAC:", err)
		return 1
	}
	managerCfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &writeCounter{next: rt} })
	mgr, err := ctrl.NewManager(managerCfg, ctrl.Options{
		Scheme:     scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Cache:      CacheOptions(), // as the manager runs
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&DataSourceReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Workers: 4, AllowLocalTargets: true}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&DetectorReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("kadet"), Config: testCfg,
		Clock: testClock, Workers: 4,
	}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	code := m.Run()
	cancel()
	<-done
	return code
}

// managerUser binds config/rbac/role.yaml to a new user and returns its config.
func managerUser(admin *rest.Config) (*rest.Config, error) {
	raw, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(raw, role); err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := k8sClient.Create(ctx, role); err != nil {
		return nil, err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kadet-manager"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "kadet-manager"}},
	}
	if err := k8sClient.Create(ctx, binding); err != nil {
		return nil, err
	}
	// The secret reader exists, bound nowhere: tests bind it in their namespace.
	raw, err = os.ReadFile(filepath.Join("..", "config", "rbac", "secret_reader_role.yaml"))
	if err != nil {
		return nil, err
	}
	reader := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(raw, reader); err != nil {
		return nil, err
	}
	if err := k8sClient.Create(ctx, reader); err != nil {
		return nil, err
	}
	user, err := testEnv.AddUser(envtest.User{Name: "kadet-manager"}, admin)
	if err != nil {
		return nil, err
	}
	return user.Config(), nil
}

// allowSecrets lets the manager read Secrets in ns, as a RoleBinding of the chart's
// secret reader (rbac.secretReaderNamespaces) does.
func allowSecrets(t *testing.T, ns string) {
	t.Helper()
	create(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kadet-secret-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "kadet-secret-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "kadet-manager"}},
	})
}

// newNamespace gives a test its own namespace, so tests cannot see each other's objects.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kadet-test-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

const (
	timeout  = 20 * time.Second
	interval = 100 * time.Millisecond
)

// writeCounter counts the manager's writes to the API server (every request but
// reads), so a test can check a pass that finds nothing to do writes nothing.
type writeCounter struct{ next http.RoundTripper }

var managerWrites struct {
	sync.Mutex
	n    int
	last []string
}

func (w *writeCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		managerWrites.Lock()
		managerWrites.n++
		managerWrites.last = append(managerWrites.last, req.Method+" "+req.URL.Path)
		if len(managerWrites.last) > 50 {
			managerWrites.last = managerWrites.last[1:]
		}
		managerWrites.Unlock()
	}
	return w.next.RoundTrip(req)
}
