// Package scoped runs the manager as a namespace-scoped install runs it: under the RBAC
// the chart renders with watchNamespaces, its cache limited to those namespaces, on a
// real kube-apiserver and etcd (envtest).
package scoped

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers"
	"github.com/kadet-dev/kadet/controllers/builders"
)

var (
	admin  client.Client
	config *rest.Config
	scheme = runtime.NewScheme()
)

func TestMain(m *testing.M) {
	for _, env := range []string{"KUBEBUILDER_ASSETS", "KADET_HELM"} {
		if os.Getenv(env) == "" {
			fmt.Fprintf(os.Stderr, "%s is not set: run `make test`, which builds it from the Go module proxy\n", env)
			os.Exit(1)
		}
	}
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(kadetv1.AddToScheme(scheme))
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		os.Exit(1)
	}
	config = cfg
	code := 1
	if admin, err = client.New(cfg, client.Options{Scheme: scheme}); err == nil {
		code = m.Run()
	} else {
		fmt.Fprintln(os.Stderr, err)
	}
	_ = env.Stop()
	os.Exit(code)
}

// The chart installed with watchNamespaces={team-a}: its ServiceAccount and RBAC, as
// helm renders them, are all the manager holds. A Detector in team-a trains (every
// object before the training Job is created with those rights); one in team-b is left
// alone: kadet neither sees nor writes it.
func TestManagerUnderNamespaceScopedRBAC(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ns := range []string{"kadet-system", "team-a", "team-b"} {
		g.Expect(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}
	out, err := exec.Command(os.Getenv("KADET_HELM"), "template", "kadet", filepath.Join("..", "..", "charts", "kadet"),
		"--namespace", "kadet-system", "--set", "watchNamespaces={team-a}",
		"--show-only", "templates/rbac.yaml", "--show-only", "templates/serviceaccount.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	for _, doc := range strings.Split(string(out), "\n---") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		if len(u.Object) > 0 {
			g.Expect(admin.Create(ctx, u)).To(Succeed(), "%s %s", u.GetKind(), u.GetName())
		}
	}
	// The manager is the chart's ServiceAccount, nothing more.
	mcfg := rest.CopyConfig(config)
	mcfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:kadet-system:kadet",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kadet-system", "system:authenticated"}}
	mgr, err := ctrl.NewManager(mcfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: controllers.CacheOptions("team-a")})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(controllers.SetupIndexes(ctx, mgr.GetFieldIndexer())).To(Succeed())
	g.Expect((&controllers.DataSourceReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}).SetupWithManager(mgr)).To(Succeed())
	g.Expect((&controllers.DetectorReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("kadet"),
		Config: builders.Config{Image: "kadet/detector:test"}}).SetupWithManager(mgr)).To(Succeed())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()

	for _, ns := range []string{"team-a", "team-b"} {
		for _, o := range []client.Object{
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tx-csv"}, Data: map[string]string{"data.csv": "amount,hour\n12.5,3\n80.1,14\n9.0,2\n"}},
			&kadetv1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tx"}, Spec: kadetv1.DataSourceSpec{CSV: &kadetv1.CSVSource{
				ConfigMapKeyRef: &kadetv1.ConfigMapKeyReference{Name: "tx-csv", Key: "data.csv"}}}},
			&kadetv1.Detector{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fraud"}, Spec: kadetv1.DetectorSpec{
				DataSourceRef: kadetv1.LocalObjectReference{Name: "tx"}, Model: kadetv1.ModelSpec{Type: kadetv1.Autoencoder}}},
		} {
			g.Expect(admin.Create(ctx, o)).To(Succeed())
		}
	}
	g.Eventually(func(g Gomega) {
		jobs := &batchv1.JobList{}
		g.Expect(admin.List(ctx, jobs, client.InNamespace("team-a"))).To(Succeed())
		g.Expect(jobs.Items).To(HaveLen(1))
		det := &kadetv1.Detector{}
		g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "fraud"}, det)).To(Succeed())
		g.Expect(apimeta.FindStatusCondition(det.Status.Conditions, kadetv1.TrainedCondition)).To(HaveField("Reason", kadetv1.ReasonTraining))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) {
		jobs := &batchv1.JobList{}
		g.Expect(admin.List(ctx, jobs, client.InNamespace("team-b"))).To(Succeed())
		g.Expect(jobs.Items).To(BeEmpty())
		for _, o := range []client.Object{&kadetv1.Detector{}, &kadetv1.DataSource{}} {
			name := "fraud"
			if _, ok := o.(*kadetv1.DataSource); ok {
				name = "tx"
			}
			g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: "team-b", Name: name}, o)).To(Succeed())
			g.Expect(o.(interface{ GetConditions() []metav1.Condition }).GetConditions()).To(BeEmpty())
		}
	}, 2*time.Second, 200*time.Millisecond).Should(Succeed())
	cancel()
	g.Expect(<-done).To(Succeed())
}
