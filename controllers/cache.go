package controllers

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unique"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
)

// CacheOptions is how the manager keeps what it watches: of each object, only what the
// controller reads. Every object loses its managedFields, which nothing reads. Of the
// children kadet applies whole from its builders (Services, NetworkPolicies,
// ServiceAccounts, Roles, RoleBindings) the cache keeps the metadata alone: the
// controller reads their applied-hash annotation and owner, nothing else. Of Jobs and
// Deployments it keeps the status and what the conditions are computed from (a
// trainer's memory limit explains an out-of-memory kill, the backoff limit its
// retries, a Deployment's template annotations name the model it serves); of PVCs the labels and
// the storage class; of training spec ConfigMaps the metadata. With 10,000 Detectors
// the pod specs were the largest part of the manager's heap after object metadata.
// Nothing writes these objects from the cache.
// With namespaces, only those namespaces' objects are watched and cached (a
// namespace-scoped install, whose Roles grant nothing elsewhere); cluster-scoped
// objects (CustomResourceDefinitions) are watched as before.
func CacheOptions(namespaces ...string) cache.Options {
	var only map[string]cache.Config
	for _, ns := range namespaces {
		if only == nil {
			only = map[string]cache.Config{}
		}
		only[ns] = cache.Config{}
	}
	return cache.Options{
		DefaultNamespaces: only,
		DefaultTransform:  keepAll,
		ByObject: map[client.Object]cache.ByObject{
			&batchv1.Job{}: {Transform: keep(selectLabels, func(j *batchv1.Job) {
				j.Spec = batchv1.JobSpec{BackoffLimit: j.Spec.BackoffLimit, Template: corev1.PodTemplateSpec{
					Spec: corev1.PodSpec{Containers: trainerMemoryLimit(j.Spec.Template.Spec.Containers)}}}
			})},
			&appsv1.Deployment{}: {Transform: keep(noLabels, func(d *appsv1.Deployment) {
				d.Spec = appsv1.DeploymentSpec{Replicas: d.Spec.Replicas, Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Annotations: d.Spec.Template.Annotations}}}
			})},
			&corev1.PersistentVolumeClaim{}: {Transform: keep(selectLabels, func(c *corev1.PersistentVolumeClaim) {
				c.Spec = corev1.PersistentVolumeClaimSpec{StorageClassName: c.Spec.StorageClassName}
				c.Status = corev1.PersistentVolumeClaimStatus{}
			})},
			&corev1.Service{}:             {Transform: keep(noLabels, func(s *corev1.Service) { s.Spec, s.Status = corev1.ServiceSpec{}, corev1.ServiceStatus{} })},
			&networkingv1.NetworkPolicy{}: {Transform: keep(noLabels, func(n *networkingv1.NetworkPolicy) { n.Spec = networkingv1.NetworkPolicySpec{} })},
			&corev1.ServiceAccount{}: {Transform: keep(noLabels, func(s *corev1.ServiceAccount) {
				s.Secrets, s.ImagePullSecrets, s.AutomountServiceAccountToken = nil, nil, nil
			})},
			&corev1.ConfigMap{}: {Transform: func(o any) (any, error) {
				if cm, ok := o.(*corev1.ConfigMap); ok {
					switch {
					case isSpecConfigMap(cm):
						cm.Data, cm.BinaryData = nil, nil
					case !isDetectorChild(cm):
						digestsOnly(cm)
					}
				}
				return keepAll(o)
			}},
			&rbacv1.Role{}:        {Transform: keep(noLabels, func(r *rbacv1.Role) { r.Rules = nil })},
			&rbacv1.RoleBinding{}: {Transform: keep(noLabels, func(b *rbacv1.RoleBinding) { b.Subjects, b.RoleRef = nil, rbacv1.RoleRef{} })},
		},
	}
}

// annotationDigests marks a cached ConfigMap whose values are their digests, with
// digestMark: a value of this process's own, so a ConfigMap that arrives with the
// annotation set (by anyone who may write it) is digested all the same.
const annotationDigests = "anomaly.kadet.dev/cached-digests"

var digestMark = func() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

// isDetectorChild is true of an object a kadet Detector controls.
func isDetectorChild(o metav1.Object) bool {
	_, ok := detectorOf(metav1.GetControllerOfNoCopy(o))
	return ok
}

// detectorOf is the name of the kadet Detector ref points at, if it does.
func detectorOf(ref *metav1.OwnerReference) (string, bool) {
	if ref == nil || ref.Kind != "Detector" || ref.APIVersion != kadetv1.GroupVersion.String() {
		return "", false
	}
	return ref.Name, true
}

// controllerRef is the reference by which det controls its children.
func controllerRef(det *kadetv1.Detector) *metav1.OwnerReference {
	return metav1.NewControllerRef(det, kadetv1.GroupVersion.WithKind("Detector"))
}

// digestsOnly replaces every value of a ConfigMap that is not a Detector's with its
// digest (contentDigest), keys kept: the controller needs of a data ConfigMap only
// whether a key is there and whether its content changed, and reads the content
// itself when it did. Any ConfigMap of the cluster is cached, and their contents
// would cost the manager their size (200 ConfigMaps of 1 MiB, 200 MiB).
func digestsOnly(cm *corev1.ConfigMap) {
	if cm.Annotations[annotationDigests] == digestMark {
		return // transformed before
	}
	for k, v := range cm.Data {
		cm.Data[k] = contentDigest([]byte(v))
	}
	for k, b := range cm.BinaryData {
		cm.BinaryData[k] = []byte(contentDigest(b))
	}
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[annotationDigests] = digestMark
}

// contentDigest is the digest data content goes into a spec hash by.
func contentDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// configMapValue is key's value in a ConfigMap, from Data or BinaryData.
func configMapValue(cm *corev1.ConfigMap, key string) ([]byte, bool) {
	if v, ok := cm.Data[key]; ok {
		return []byte(v), true
	}
	b, ok := cm.BinaryData[key]
	return b, ok
}

// isSpecConfigMap is true of a training spec ConfigMap kadet wrote: immutable, read
// by the trainer alone (the controller compares its spec-hash label), and the largest
// object kept per Detector when kept whole.
func isSpecConfigMap(cm *corev1.ConfigMap) bool {
	_, spec := cm.Labels[builders.LabelSpecHash]
	return spec && isDetectorChild(cm)
}

// keepAll is the cache transform of objects the controller reads whole: only their
// managedFields go, and their metadata's shared strings are kept once.
func keepAll(o any) (any, error) {
	if m, ok := o.(metav1.Object); ok {
		m.SetManagedFields(nil)
		internMeta(m, nil)
	}
	return o, nil
}

// keep is a cache transform that drops an object's managedFields, its labels but those
// keepLabel accepts, its annotations but kadet's (kadet's children carry the
// app.kubernetes.io labels for people and other tools; a hand-made Service may carry
// kubectl's whole last-applied configuration) and whatever slim drops. Anything else
// (a tombstone of a deleted object) passes unchanged; slim must be idempotent, as the
// informer may transform an object twice.
func keep[T client.Object](keepLabel func(string) bool, slim func(T)) toolscache.TransformFunc {
	return func(o any) (any, error) {
		if t, ok := o.(T); ok {
			t.SetManagedFields(nil)
			internMeta(t, keepLabel)
			slim(t)
		}
		return o, nil
	}
}

// Which label and annotation keys a cached object keeps: selectLabels, the labels the
// controller selects or compares children by (Jobs by Detector, component and spec
// hash; a PVC by Detector); noLabels none, for kinds the controller finds by name and
// owner alone; kadetOwnedKey kadet's own annotations.
var (
	selectLabels = func(k string) bool {
		return k == builders.LabelDetector || k == builders.LabelComponent || k == builders.LabelSpecHash
	}
	noLabels      = func(string) bool { return false }
	everything    = func(string) bool { return true }
	kadetOwnedKey = func(k string) bool { return strings.HasPrefix(k, kadetv1.GroupVersion.Group+"/") }
)

// internMeta makes the strings an object's metadata shares with thousands of others
// (its namespace, label keys and values, annotation keys, its owner's kind, API
// version and name) one copy each: decoding gives every object its own. With a
// keepLabel, only the labels it accepts and kadet's annotations stay; with nil, all.
func internMeta(m metav1.Object, keepLabel func(string) bool) {
	keepAnnotation := kadetOwnedKey
	if keepLabel == nil {
		keepLabel, keepAnnotation = everything, everything
	}
	m.SetNamespace(unique.Make(m.GetNamespace()).Value())
	m.SetLabels(internMap(m.GetLabels(), true, keepLabel))
	m.SetAnnotations(internMap(m.GetAnnotations(), false, keepAnnotation))
	refs := m.GetOwnerReferences()
	for i := range refs {
		r := &refs[i]
		r.APIVersion, r.Kind, r.Name = unique.Make(r.APIVersion).Value(), unique.Make(r.Kind).Value(), unique.Make(r.Name).Value()
	}
}

// internMap is in with its keys (and values, when they are shared like labels' rather
// than one object's own like most annotations') interned, without the keys keep
// refuses; nil when none is left.
func internMap(in map[string]string, values bool, keep func(string) bool) map[string]string {
	var out map[string]string
	for k, v := range in {
		if !keep(k) {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(in))
		}
		if values {
			v = unique.Make(v).Value()
		}
		out[unique.Make(k).Value()] = v
	}
	return out
}

// trainerMemoryLimit is containers cut to the trainer's memory limit, if it has one:
// all the controller reads of a Job's pod template (it explains an out-of-memory
// kill). A container and its resource maps cost about 1.8 KB an object.
func trainerMemoryLimit(containers []corev1.Container) []corev1.Container {
	for _, c := range containers {
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && c.Name == builders.TrainerContainer {
			return []corev1.Container{{Name: c.Name, Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{corev1.ResourceMemory: q}}}}
		}
	}
	return nil
}
