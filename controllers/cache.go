package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions is how the manager keeps what it watches: of each object, only what the
// controller reads. Every object loses its managedFields, which nothing reads. Of the
// children kadet applies whole from its builders (Services, NetworkPolicies,
// ServiceAccounts, Roles, RoleBindings) the cache keeps the metadata alone: the
// controller reads their applied-hash annotation and owner, nothing else. Of Jobs and
// Deployments it keeps the status and what the conditions are computed from (a
// trainer's memory limit explains an out-of-memory kill, the backoff limit its
// retries, a template's annotations name the model it serves); of PVCs the labels and
// the storage class. With 10,000 Detectors the pod specs were the largest part of the
// manager's heap after object metadata. Nothing writes these objects from the cache.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&batchv1.Job{}: {Transform: keep(func(j *batchv1.Job) {
				j.Spec = batchv1.JobSpec{BackoffLimit: j.Spec.BackoffLimit, Template: slimTemplate(j.Spec.Template, false)}
			})},
			&appsv1.Deployment{}: {Transform: keep(func(d *appsv1.Deployment) {
				d.Spec = appsv1.DeploymentSpec{Replicas: d.Spec.Replicas, Template: slimTemplate(d.Spec.Template, true)}
			})},
			&corev1.PersistentVolumeClaim{}: {Transform: keep(func(c *corev1.PersistentVolumeClaim) {
				c.Spec = corev1.PersistentVolumeClaimSpec{StorageClassName: c.Spec.StorageClassName}
				c.Status = corev1.PersistentVolumeClaimStatus{}
			})},
			&corev1.Service{}:             {Transform: keep(func(s *corev1.Service) { s.Spec, s.Status = corev1.ServiceSpec{}, corev1.ServiceStatus{} })},
			&networkingv1.NetworkPolicy{}: {Transform: keep(func(n *networkingv1.NetworkPolicy) { n.Spec = networkingv1.NetworkPolicySpec{} })},
			&corev1.ServiceAccount{}: {Transform: keep(func(s *corev1.ServiceAccount) {
				s.Secrets, s.ImagePullSecrets, s.AutomountServiceAccountToken = nil, nil, nil
			})},
			&rbacv1.Role{}:        {Transform: keep(func(r *rbacv1.Role) { r.Rules = nil })},
			&rbacv1.RoleBinding{}: {Transform: keep(func(b *rbacv1.RoleBinding) { b.Subjects, b.RoleRef = nil, rbacv1.RoleRef{} })},
		},
	}
}

// keep is a cache transform that drops an object's managedFields and whatever slim
// drops. Anything else (a tombstone of a deleted object) passes unchanged; slim must be
// idempotent, as the informer may transform an object twice.
func keep[T client.Object](slim func(T)) toolscache.TransformFunc {
	return func(o any) (any, error) {
		if t, ok := o.(T); ok {
			t.SetManagedFields(nil)
			slim(t)
		}
		return o, nil
	}
}

// slimTemplate keeps a pod template's containers' names and resources, and its
// annotations when asked.
func slimTemplate(t corev1.PodTemplateSpec, annotations bool) corev1.PodTemplateSpec {
	containers := make([]corev1.Container, len(t.Spec.Containers))
	for i, c := range t.Spec.Containers {
		containers[i] = corev1.Container{Name: c.Name, Resources: c.Resources}
	}
	out := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers}}
	if annotations {
		out.Annotations = t.Annotations
	}
	return out
}
