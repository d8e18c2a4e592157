package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions is how the manager keeps what it watches. Every object loses its
// managedFields, which nothing reads. Jobs and Deployments also lose their pod
// templates' specs but for each container's name and resources (the controller reads a
// trainer's memory limit to explain an out-of-memory kill, and a template's annotations
// to know the model it serves): with 10,000 Detectors the pod specs were the largest
// part of the manager's heap after object metadata. Nothing writes these objects from
// the cache; kadet applies them whole from its builders.
func CacheOptions() cache.Options {
	strip := cache.TransformStripManagedFields()
	slim := func(o any) (any, error) {
		o, err := strip(o)
		if err != nil {
			return o, err
		}
		switch v := o.(type) {
		case *batchv1.Job:
			slimTemplate(&v.Spec.Template)
		case *appsv1.Deployment:
			slimTemplate(&v.Spec.Template)
		}
		return o, nil
	}
	return cache.Options{
		DefaultTransform: strip,
		ByObject: map[client.Object]cache.ByObject{
			&batchv1.Job{}:       {Transform: toolscache.TransformFunc(slim)},
			&appsv1.Deployment{}: {Transform: toolscache.TransformFunc(slim)},
		},
	}
}

// slimTemplate keeps a pod template's metadata and its containers' names and
// resources.
func slimTemplate(t *corev1.PodTemplateSpec) {
	containers := make([]corev1.Container, len(t.Spec.Containers))
	for i, c := range t.Spec.Containers {
		containers[i] = corev1.Container{Name: c.Name, Resources: c.Resources}
	}
	t.Spec = corev1.PodSpec{Containers: containers}
}
