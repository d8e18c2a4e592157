package controllers

import (
	"reflect"
	"strings"
	"testing"
	"unsafe"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
)

// The manager's cache keeps of each object what the controller reads and drops the
// rest, every object's managedFields included.
func TestCacheKeepsWhatTheControllerReads(t *testing.T) {
	opts := CacheOptions()
	limits := corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")}
	template := func() corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"job-name": "j"},
				Annotations: map[string]string{"anomaly.kadet.dev/model-version": "v1"}},
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "sidecar", Resources: corev1.ResourceRequirements{Limits: limits}},
					{Name: "trainer", Image: "kadet", Args: []string{"train"}, Env: []corev1.EnvVar{{Name: "A", Value: "b"}},
						Resources: corev1.ResourceRequirements{Requests: limits, Limits: corev1.ResourceList{
							corev1.ResourceMemory: resource.MustParse("512Mi"), corev1.ResourceCPU: resource.MustParse("1")}}}},
				Volumes: []corev1.Volume{{Name: "models"}},
			},
		}
	}
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: "x", Namespace: "ns",
			Labels: map[string]string{builders.LabelDetector: "d", builders.LabelSpecHash: "s", builders.LabelName: "kadet", "team": "a"},
			Annotations: map[string]string{AnnotationAppliedHash: "h", builders.AnnotationModelVersion: "v1",
				"kubectl.kubernetes.io/last-applied-configuration": `{"kind":"Service"}`},
			OwnerReferences: []metav1.OwnerReference{{Kind: "Detector", Name: "d", Controller: ptr.To(true)}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kadet"}}}
	}
	// wantMeta is what a slimmed object keeps: kadet's annotations, and the labels the
	// controller selects by for kinds it lists by label.
	wantMeta := func(labels bool) metav1.ObjectMeta {
		m := meta()
		m.ManagedFields, m.Labels = nil, nil
		if labels {
			m.Labels = map[string]string{builders.LabelDetector: "d", builders.LabelSpecHash: "s"}
		}
		m.Annotations = map[string]string{AnnotationAppliedHash: "h", builders.AnnotationModelVersion: "v1"}
		return m
	}
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}
	kept := func() corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "trainer", Resources: corev1.ResourceRequirements{Limits: limits}}}}}
	}
	keptWithAnnotations := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: template().Annotations}}

	cases := []struct {
		in, want client.Object
		labels   bool
	}{{
		in: &batchv1.Job{ObjectMeta: meta(), Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](2), Selector: selector,
			PodFailurePolicy: &batchv1.PodFailurePolicy{}, Template: template()}, Status: batchv1.JobStatus{Succeeded: 1}},
		want:   &batchv1.Job{Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](2), Template: kept()}, Status: batchv1.JobStatus{Succeeded: 1}},
		labels: true,
	}, {
		in: &appsv1.Deployment{ObjectMeta: meta(), Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: selector,
			Template: template()}, Status: appsv1.DeploymentStatus{ReadyReplicas: 2, ObservedGeneration: 3}},
		want: &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Template: keptWithAnnotations},
			Status: appsv1.DeploymentStatus{ReadyReplicas: 2, ObservedGeneration: 3}},
	}, {
		in: &corev1.PersistentVolumeClaim{ObjectMeta: meta(), Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To(""), AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, VolumeName: "pv"},
			Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}},
		want:   &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("")}},
		labels: true,
	}, {
		in: &corev1.Service{ObjectMeta: meta(), Spec: corev1.ServiceSpec{Selector: map[string]string{"a": "b"},
			Ports: []corev1.ServicePort{{Port: 80}}, ClusterIP: "10.0.0.1"}},
		want: &corev1.Service{},
	}, {
		in:   &networkingv1.NetworkPolicy{ObjectMeta: meta(), Spec: networkingv1.NetworkPolicySpec{PodSelector: *selector}},
		want: &networkingv1.NetworkPolicy{},
	}, {
		in:   &corev1.ServiceAccount{ObjectMeta: meta(), AutomountServiceAccountToken: ptr.To(false), Secrets: []corev1.ObjectReference{{Name: "s"}}},
		want: &corev1.ServiceAccount{},
	}, {
		in:   &rbacv1.Role{ObjectMeta: meta(), Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}}}},
		want: &rbacv1.Role{},
	}, {
		in: &rbacv1.RoleBinding{ObjectMeta: meta(), Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "s"}},
			RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "r"}},
		want: &rbacv1.RoleBinding{},
	}}
	for _, c := range cases {
		transform := transformFor(t, opts.ByObject, c.in)
		reflect.ValueOf(c.want).Elem().FieldByName("ObjectMeta").Set(reflect.ValueOf(wantMeta(c.labels)))
		out, err := transform(c.in.DeepCopyObject())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(out, c.want) {
			t.Errorf("%T cached as\n%+v\nwant\n%+v", c.in, out, c.want)
		}
		// An informer may transform an object it already holds.
		if again, _ := transform(out); !reflect.DeepEqual(again, c.want) {
			t.Errorf("%T transformed twice: %+v", c.in, again)
		}
	}

	// A deleted object's tombstone passes unchanged.
	tomb := toolscache.DeletedFinalStateUnknown{Key: "ns/x", Obj: &batchv1.Job{}}
	if out, err := transformFor(t, opts.ByObject, &batchv1.Job{})(tomb); err != nil || !reflect.DeepEqual(out, tomb) {
		t.Errorf("a tombstone: %+v, %v", out, err)
	}
	// Objects the controller reads whole (ConfigMaps but kadet's training specs, kadet's
	// own kinds) keep everything but their managedFields.
	for _, c := range []struct {
		obj       client.Object
		transform toolscache.TransformFunc
	}{
		{&corev1.ConfigMap{ObjectMeta: kadetChild(meta()), Data: map[string]string{"k": "v"}}, transformFor(t, opts.ByObject, &corev1.ConfigMap{})},
		{&kadetv1.Detector{ObjectMeta: meta(), Spec: kadetv1.DetectorSpec{DataSourceRef: kadetv1.LocalObjectReference{Name: "ds"}}}, opts.DefaultTransform},
	} {
		want := c.obj.DeepCopyObject().(client.Object)
		want.SetManagedFields(nil)
		if out, err := c.transform(c.obj); err != nil || !reflect.DeepEqual(out, want) {
			t.Errorf("%T cached as %+v, %v", c.obj, out, err)
		}
	}
	// A training spec ConfigMap (kadet's: the trainer reads it, the controller its
	// labels) keeps no data; a ConfigMap like it that no Detector controls keeps it.
	spec := &corev1.ConfigMap{ObjectMeta: meta(), Data: map[string]string{"spec.json": "{}"}}
	spec.OwnerReferences[0].APIVersion = kadetv1.GroupVersion.String()
	lookalike := spec.DeepCopy()
	lookalike.OwnerReferences = nil
	transform := transformFor(t, opts.ByObject, spec)
	if out, _ := transform(spec); out.(*corev1.ConfigMap).Data != nil || out.(*corev1.ConfigMap).Labels[builders.LabelSpecHash] != "s" {
		t.Errorf("a spec ConfigMap cached as %+v", out)
	}
	// A ConfigMap no Detector controls (a user's data, anyone's dashboards) is cached
	// with its keys and their digests, the digests dataDigest puts into a spec hash;
	// transformed twice, it stays as it was after the first.
	out, _ := transform(lookalike)
	cm := out.(*corev1.ConfigMap)
	if cm.Data["spec.json"] != contentDigest([]byte("{}")) || cm.Annotations[annotationDigests] == "" {
		t.Errorf("a user's ConfigMap cached as %+v", cm)
	}
	big := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dashboards", Namespace: "monitoring"},
		Data: map[string]string{"a.json": strings.Repeat("x", 1<<20)}, BinaryData: map[string][]byte{"b.bin": make([]byte, 1<<20)}}
	out, _ = transform(big)
	once := out.(*corev1.ConfigMap).DeepCopy()
	if len(once.Data["a.json"])+len(once.BinaryData["b.bin"]) > 200 || string(once.BinaryData["b.bin"]) != contentDigest(make([]byte, 1<<20)) {
		t.Errorf("2 MiB of a user's ConfigMap cached as %d bytes", len(once.Data["a.json"])+len(once.BinaryData["b.bin"]))
	}
	if again, _ := transform(once.DeepCopy()); !reflect.DeepEqual(again, once) {
		t.Errorf("transformed twice: %+v", again)
	}
	// A ConfigMap that comes with the mark set by whoever wrote it is digested all
	// the same: its content is not kept, nor taken for digests.
	forged := big.DeepCopy()
	forged.Data = map[string]string{"a.json": strings.Repeat("x", 1<<20)}
	forged.Annotations = map[string]string{annotationDigests: "sha256"}
	out, _ = transform(forged)
	if cm := out.(*corev1.ConfigMap); cm.Data["a.json"] != contentDigest([]byte(strings.Repeat("x", 1<<20))) {
		t.Errorf("a ConfigMap with a forged mark cached with %d bytes", len(cm.Data["a.json"]))
	}
}

// kadetChild is m controlled by a kadet Detector, not a training spec (a watch or
// progress ConfigMap, which the controller reads).
func kadetChild(m metav1.ObjectMeta) metav1.ObjectMeta {
	m.OwnerReferences[0].APIVersion = kadetv1.GroupVersion.String()
	delete(m.Labels, builders.LabelSpecHash)
	return m
}

// Strings that many cached objects share are kept once: two objects decoded apart
// come out of the cache's transforms sharing their namespace, label and owner strings.
func TestCacheSharesMetadataStrings(t *testing.T) {
	opts := CacheOptions()
	decoded := func() *corev1.ConfigMap {
		// Built from bytes, as a decoder builds them, so no two share memory.
		s := func(v string) string { return string([]byte(v)) }
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: s("x"), Namespace: s("team-a"),
			Labels:          map[string]string{s(builders.LabelDetector): s("fraud")},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: s("anomaly.kadet.dev/v1alpha1"), Kind: s("Detector"), Name: s("fraud")}}}}
	}
	a, b := decoded(), decoded()
	if unsafe.StringData(a.Namespace) == unsafe.StringData(b.Namespace) {
		t.Fatal("the test's objects share memory before the transform")
	}
	for _, o := range []*corev1.ConfigMap{a, b} {
		if _, err := transformFor(t, opts.ByObject, o)(o); err != nil {
			t.Fatal(err)
		}
	}
	labelKey := func(cm *corev1.ConfigMap) string {
		for k := range cm.Labels {
			return k
		}
		return ""
	}
	for what, pair := range map[string][2]string{
		"namespace":           {a.Namespace, b.Namespace},
		"label key":           {labelKey(a), labelKey(b)},
		"label value":         {a.Labels[builders.LabelDetector], b.Labels[builders.LabelDetector]},
		"owner's API version": {a.OwnerReferences[0].APIVersion, b.OwnerReferences[0].APIVersion},
		"owner's name":        {a.OwnerReferences[0].Name, b.OwnerReferences[0].Name},
	} {
		if unsafe.StringData(pair[0]) != unsafe.StringData(pair[1]) {
			t.Errorf("the %s is kept twice", what)
		}
	}
}

func transformFor(t *testing.T, byObject map[client.Object]cache.ByObject, obj client.Object) toolscache.TransformFunc {
	t.Helper()
	for k, v := range byObject {
		if reflect.TypeOf(k) == reflect.TypeOf(obj) {
			return v.Transform
		}
	}
	t.Fatalf("no transform for %T", obj)
	return nil
}
