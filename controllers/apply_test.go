package controllers

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
)

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

// A, then B, then A again while the cache still shows A: the write back to A must
// happen, and the stale copy must not pass for A rolled out.
func TestApplyDoesNotTrustAStaleCache(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	cache := &frozenCache{Client: k8sClient, objs: map[client.ObjectKey]*appsv1.Deployment{}}
	r := &DetectorReconciler{Client: cache}
	det := detector(ns, "aba", "x")
	det.UID = "uid-aba"
	deployment := func(version string) *appsv1.Deployment {
		return builders.ScoringDeployment(det, &kadetv1.ModelStatus{Version: version, Digest: "sha256:" + version}, nil, testCfg)
	}
	served := func() string {
		t.Helper()
		cur := &appsv1.Deployment{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(deployment("a")), cur); err != nil {
			t.Fatal(err)
		}
		return cur.Spec.Template.Annotations[builders.AnnotationModelVersion]
	}

	if err := r.apply(ctx, deployment("a")); err != nil {
		t.Fatal(err)
	}
	stale := &appsv1.Deployment{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(deployment("a")), stale); err != nil {
		t.Fatal(err)
	}
	cache.objs[client.ObjectKeyFromObject(stale)] = stale // the cache saw A, and nothing after
	if err := r.apply(ctx, deployment("b")); err != nil {
		t.Fatal(err)
	}
	if v := served(); v != "b" {
		t.Fatalf("serving %q after applying b", v)
	}
	if !r.cacheBehind("Deployment", stale) {
		t.Error("the cache's copy of A passes for the Deployment after B was written")
	}
	if err := r.apply(ctx, deployment("a")); err != nil {
		t.Fatal(err)
	}
	if v := served(); v != "a" {
		t.Fatalf("serving %q: the write back to a was skipped because the stale cache already showed a", v)
	}
	// Once the cache catches up, a pass with nothing to change writes nothing.
	caughtUp := &appsv1.Deployment{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(stale), caughtUp); err != nil {
		t.Fatal(err)
	}
	cache.objs[client.ObjectKeyFromObject(stale)] = caughtUp
	if r.cacheBehind("Deployment", caughtUp) {
		t.Error("an up-to-date copy counts as behind")
	}
	before := caughtUp.ResourceVersion
	if err := r.apply(ctx, deployment("a")); err != nil {
		t.Fatal(err)
	}
	after := &appsv1.Deployment{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(stale), after); err != nil || after.ResourceVersion != before {
		t.Fatalf("an unchanged apply wrote (resourceVersion %s -> %s, %v)", before, after.ResourceVersion, err)
	}
	// What the cache shows needs no memo: it would otherwise hold an entry for every
	// child of every Detector this process ever applied.
	r.applied.Range(func(k, _ any) bool {
		t.Errorf("the memo still holds %v once the cache shows the write", k)
		return true
	})
}
