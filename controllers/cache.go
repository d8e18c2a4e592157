package controllers

import (
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
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: keepAll,
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
				if cm, ok := o.(*corev1.ConfigMap); ok && isSpecConfigMap(cm) {
					cm.Data, cm.BinaryData = nil, nil
				}
				return keepAll(o)
			}},
			&rbacv1.Role{}:        {Transform: keep(noLabels, func(r *rbacv1.Role) { r.Rules = nil })},
			&rbacv1.RoleBinding{}: {Transform: keep(noLabels, func(b *rbacv1.RoleBinding) { b.Subjects, b.RoleRef = nil, rbacv1.RoleRef{} })},
		},
	}
}

// isSpecConfigMap is true of a training spec ConfigMap kadet wrote: immutable, read
// by the trainer alone (the controller compares its spec-hash label), and the largest
// object kept per Detector when kept whole.
func isSpecConfigMap(cm *corev1.ConfigMap) bool {
	owner := metav1.GetControllerOf(cm)
	_, spec := cm.Labels[builders.LabelSpecHash]
	return spec && owner != nil && owner.Kind == "Detector" && owner.APIVersion == kadetv1.GroupVersion.String()
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
