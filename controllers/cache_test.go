package controllers

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The manager's cache keeps of a Job or Deployment what the controller reads (status,
// metadata, the template's annotations, each container's name and resources) and
// drops the rest of the pod template and every object's managedFields.
func TestCacheKeepsWhatTheControllerReads(t *testing.T) {
	opts := CacheOptions()
	limits := corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")}
	template := func() corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"anomaly.kadet.dev/model-version": "v1"}},
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "trainer", Image: "kadet", Args: []string{"train"},
					Env: []corev1.EnvVar{{Name: "A", Value: "b"}}, Resources: corev1.ResourceRequirements{Limits: limits}}},
				Volumes: []corev1.Volume{{Name: "models"}},
			},
		}
	}
	meta := metav1.ObjectMeta{Name: "x", Labels: map[string]string{"l": "v"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kadet"}}}
	job := &batchv1.Job{ObjectMeta: meta, Spec: batchv1.JobSpec{Template: template()},
		Status: batchv1.JobStatus{Succeeded: 1}}
	dep := &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Template: template()},
		Status: appsv1.DeploymentStatus{ReadyReplicas: 2}}
	for _, c := range []struct {
		obj      client.Object
		template func(client.Object) *corev1.PodTemplateSpec
	}{
		{job, func(o client.Object) *corev1.PodTemplateSpec { return &o.(*batchv1.Job).Spec.Template }},
		{dep, func(o client.Object) *corev1.PodTemplateSpec { return &o.(*appsv1.Deployment).Spec.Template }},
	} {
		var transform toolscache.TransformFunc
		for k, v := range opts.ByObject {
			if _, same := k.(*batchv1.Job); same == (c.obj == job) {
				transform = v.Transform
			}
		}
		if transform == nil {
			t.Fatalf("no transform for %T", c.obj)
		}
		out, err := transform(c.obj.DeepCopyObject())
		if err != nil {
			t.Fatal(err)
		}
		o := out.(client.Object)
		tpl := c.template(o)
		ctr := tpl.Spec.Containers
		if len(o.GetManagedFields()) != 0 || o.GetLabels()["l"] != "v" || tpl.Annotations["anomaly.kadet.dev/model-version"] != "v1" ||
			len(ctr) != 1 || ctr[0].Name != "trainer" || !ctr[0].Resources.Limits.Memory().Equal(resource.MustParse("512Mi")) {
			t.Errorf("%T lost what the controller reads: %+v", c.obj, o)
		}
		if ctr[0].Image != "" || ctr[0].Args != nil || ctr[0].Env != nil || tpl.Spec.Volumes != nil {
			t.Errorf("%T kept the rest of its pod template: %+v", c.obj, tpl.Spec)
		}
		switch v := o.(type) {
		case *batchv1.Job:
			if v.Status.Succeeded != 1 {
				t.Errorf("the Job's status changed: %+v", v.Status)
			}
		case *appsv1.Deployment:
			if v.Status.ReadyReplicas != 2 {
				t.Errorf("the Deployment's status changed: %+v", v.Status)
			}
		}
	}
	other, err := opts.DefaultTransform(&corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"k": "v"}})
	if err != nil || len(other.(*corev1.ConfigMap).ManagedFields) != 0 || other.(*corev1.ConfigMap).Data["k"] != "v" {
		t.Errorf("a ConfigMap: %+v, %v", other, err)
	}
}
