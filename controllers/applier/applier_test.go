package applier

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The tests apply to a real kube-apiserver and etcd (envtest).
var k8sClient client.Client

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/controlplane.sh)")
		os.Exit(1)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if k8sClient, err = client.New(cfg, client.Options{Scheme: scheme.Scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

const owner = client.FieldOwner("applier-test")

// frozenCache answers reads from copies the test chooses, as an informer cache that
// has not yet seen the latest writes; writes go to the API server.
type frozenCache struct {
	client.Client
	objs map[client.ObjectKey]*appsv1.Deployment
}

func (f *frozenCache) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	d, ok := f.objs[key]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "deployments"}, key.Name)
	}
	d.DeepCopyInto(obj.(*appsv1.Deployment))
	return nil
}

func namespace(t *testing.T, name string) string {
	t.Helper()
	if err := k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// deployment is a Deployment whose pods carry version in an annotation.
func deployment(ns, version string) *appsv1.Deployment {
	labels := map[string]string{"app": "scoring"}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scoring"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"version": version}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "detector", Image: "kadet/detector:test"}}},
			},
		},
	}
}

// A, then B, then A again while the cache still shows A: the write back to A must
// happen, and the stale copy must not pass for A rolled out. Once the cache catches
// up, an apply with nothing to change writes nothing, and the memo forgets.
func TestApplyDoesNotTrustAStaleCache(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "aba")
	cache := &frozenCache{Client: k8sClient, objs: map[client.ObjectKey]*appsv1.Deployment{}}
	var memo Memo
	key := client.ObjectKeyFromObject(deployment(ns, "a"))
	served := func() string {
		t.Helper()
		cur := &appsv1.Deployment{}
		if err := k8sClient.Get(ctx, key, cur); err != nil {
			t.Fatal(err)
		}
		return cur.Spec.Template.Annotations["version"]
	}
	if err := Apply(ctx, cache, &memo, owner, deployment(ns, "a")); err != nil {
		t.Fatal(err)
	}
	stale := &appsv1.Deployment{}
	if err := k8sClient.Get(ctx, key, stale); err != nil {
		t.Fatal(err)
	}
	cache.objs[key] = stale // the cache saw A, and nothing after
	if err := Apply(ctx, cache, &memo, owner, deployment(ns, "b")); err != nil {
		t.Fatal(err)
	}
	if v := served(); v != "b" {
		t.Fatalf("serving %q after applying b", v)
	}
	if !memo.Behind("Deployment", stale) {
		t.Error("the cache's copy of A passes for the Deployment after B was written")
	}
	if err := Apply(ctx, cache, &memo, owner, deployment(ns, "a")); err != nil {
		t.Fatal(err)
	}
	if v := served(); v != "a" {
		t.Fatalf("serving %q: the write back to a was skipped because the stale cache already showed a", v)
	}
	caughtUp := &appsv1.Deployment{}
	if err := k8sClient.Get(ctx, key, caughtUp); err != nil {
		t.Fatal(err)
	}
	cache.objs[key] = caughtUp
	if memo.Behind("Deployment", caughtUp) {
		t.Error("an up-to-date copy counts as behind")
	}
	before := caughtUp.ResourceVersion
	if err := Apply(ctx, cache, &memo, owner, deployment(ns, "a")); err != nil {
		t.Fatal(err)
	}
	after := &appsv1.Deployment{}
	if err := k8sClient.Get(ctx, key, after); err != nil || after.ResourceVersion != before {
		t.Fatalf("an unchanged apply wrote (resourceVersion %s -> %s, %v)", before, after.ResourceVersion, err)
	}
	// What the cache shows needs no memo: it would otherwise hold an entry for every
	// object this process ever applied.
	if n := memo.Len(); n != 0 {
		t.Errorf("the memo holds %d writes once the cache shows them", n)
	}
}

// An unstructured object (a third party's kind, as a PrometheusRule is) goes through
// the same skip: applied once, then no write while it is unchanged; a field another
// manager owns stays.
func TestApplyUnstructured(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "unstructured")
	desired := func(v string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind("ConfigMap")
		u.SetNamespace(ns)
		u.SetName("rules")
		_ = unstructured.SetNestedField(u.Object, v, "data", "rule")
		return u
	}
	var memo Memo
	if err := Apply(ctx, k8sClient, &memo, owner, desired("a")); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "rules"}, cm); err != nil || cm.Data["rule"] != "a" || cm.Annotations[AnnotationHash] == "" {
		t.Fatalf("applied: %+v, %v", cm, err)
	}
	// Another manager adds a key of its own.
	cm.Data["theirs"] = "kept"
	if err := k8sClient.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	before := cm.ResourceVersion
	if err := Apply(ctx, k8sClient, &memo, owner, desired("a")); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(cm), cm); err != nil || cm.ResourceVersion != before {
		t.Fatalf("an unchanged apply wrote (resourceVersion %s -> %s, %v)", before, cm.ResourceVersion, err)
	}
	if err := Apply(ctx, k8sClient, &memo, owner, desired("b")); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(cm), cm); err != nil || cm.Data["rule"] != "b" || cm.Data["theirs"] != "kept" {
		t.Fatalf("after a change: %v, %v; want rule b and the other manager's key kept", cm.Data, err)
	}
	if err := Apply(ctx, k8sClient, &memo, owner, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "x"}}); err == nil {
		t.Error("an object without its kind applied")
	}
}

// An object of the desired name that the desired object's controller does not control
// (someone's own ConfigMap, or another owner's) is refused, not taken over, in the
// typed and the unstructured form; the controller's own is applied.
func TestApplyRefusesAnObjectItsControllerDoesNotControl(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "takeover")
	ours := metav1.OwnerReference{APIVersion: "anomaly.kadet.dev/v1alpha1", Kind: "Detector", Name: "foo", UID: "uid-foo",
		Controller: new(true)}
	theirs := ours
	theirs.Name, theirs.UID = "bar", "uid-bar"
	for _, tc := range []struct {
		name   string
		owners []metav1.OwnerReference
		err    string
	}{
		{"no controller", nil, "ConfigMap takeover/no-controller exists and has no controller"},
		{"another controller", []metav1.OwnerReference{theirs}, "ConfigMap takeover/another-controller exists and is controlled by Detector bar"},
		{"ours", []metav1.OwnerReference{ours}, ""},
	} {
		for _, form := range []string{"typed", "unstructured"} {
			t.Run(tc.name+"/"+form, func(t *testing.T) {
				name := strings.ReplaceAll(tc.name, " ", "-")
				existing := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: tc.owners},
					Data: map[string]string{"team": "data"}}
				if err := k8sClient.Create(ctx, existing); err != nil && !apierrors.IsAlreadyExists(err) {
					t.Fatal(err)
				}
				var desired client.Object = &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: []metav1.OwnerReference{ours}},
					Data:       map[string]string{"team": "kadet's"}}
				if form == "unstructured" {
					u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
					if err != nil {
						t.Fatal(err)
					}
					desired = &unstructured.Unstructured{Object: u}
				}
				var memo Memo
				err := Apply(ctx, k8sClient, &memo, owner, desired)
				cur := &corev1.ConfigMap{}
				if gerr := k8sClient.Get(ctx, client.ObjectKeyFromObject(existing), cur); gerr != nil {
					t.Fatal(gerr)
				}
				var nc *NotControlledError
				switch {
				case tc.err == "":
					if err != nil || cur.Data["team"] != "kadet's" {
						t.Fatalf("applying over its own object: %v, data %v", err, cur.Data)
					}
				case !errors.As(err, &nc) || err.Error() != tc.err:
					t.Fatalf("err = %v, want a *NotControlledError %q", err, tc.err)
				case cur.Data["team"] != "data" || cur.Annotations[AnnotationHash] != "" || len(cur.OwnerReferences) != len(tc.owners):
					t.Fatalf("the object was taken over: %+v", cur)
				}
			})
		}
	}
}
