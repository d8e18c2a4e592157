package builders

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

// ComponentPruning labels the Jobs that remove old model versions.
const ComponentPruning = "pruning"

// PruneJobName names the Job that removes versions: one Job per set of versions.
func PruneJobName(det *kadetv1.Detector, versions []string) string {
	sum := sha256.Sum256([]byte(strings.Join(versions, ",")))
	return det.Name + "-prune-" + hex.EncodeToString(sum[:])[:10]
}

// PruneJob runs `detector prune` on the model volume to remove versions; only a pod
// mounts the volume, so removal is a Job. It runs as the trainer (the pod needs no API
// access) and is not retried past one failure.
func PruneJob(det *kadetv1.Detector, versions []string, cfg Config) *batchv1.Job {
	labels := commonLabels(det, ComponentPruning)
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: objectMeta(det, PruneJobName(det, versions), ComponentPruning),
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](1),
			TTLSecondsAfterFinished: ptr.To[int32](3600),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					AutomountServiceAccountToken: ptr.To(false),
					SecurityContext:              podSecurityContext(),
					Volumes:                      []corev1.Volume{modelVolume(det, false), tmpVolume},
					Containers: []corev1.Container{{
						Name: "prune", Image: cfg.Image, ImagePullPolicy: cfg.ImagePullPolicy,
						Command: cfg.command(),
						Args:    []string{"prune", "--model-dir", ModelDir, "--versions", strings.Join(versions, ",")},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "models", MountPath: ModelDir},
							{Name: "tmp", MountPath: TmpDir},
						},
						TerminationMessagePath:   corev1.TerminationMessagePathDefault,
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						SecurityContext:          containerSecurityContext(),
					}},
				},
			},
		},
	}
}
