package builders

import (
	"crypto/sha256"
	"encoding/hex"
	"path"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/detector/contract"
)

// BacktestJobName names the Job that backtests version over the range request: one
// Job per request and version.
func BacktestJobName(det *kadetv1.Detector, request, version string) string {
	sum := sha256.Sum256([]byte(request + "\x00" + version))
	return det.Name + "-backtest-" + hex.EncodeToString(sum[:])[:10]
}

// BacktestJob runs `detector backtest` as the training Job runs `detector train`: the
// same identity, volumes and Secrets (it reads the same Prometheus) and the same
// limits, on the served version over the requested range ending now. It goes an hour
// after it ends; its result is in the ModelVersion by then.
func BacktestJob(det *kadetv1.Detector, plan *TrainingPlan, version, request string, cfg Config) *batchv1.Job {
	job := TrainingJob(det, plan, cfg)
	job.ObjectMeta = objectMeta(det, BacktestJobName(det, request, version), ComponentBacktest)
	job.Spec.Template.Labels = commonLabels(det, ComponentBacktest)
	job.Spec.TTLSecondsAfterFinished = ptr.To[int32](3600)
	job.Spec.BackoffLimit = ptr.To[int32](1)
	c := &job.Spec.Template.Spec.Containers[0]
	c.Args = []string{"backtest",
		"--spec", path.Join(SpecDir, contract.SpecFileName),
		"--model", path.Join(ModelDir, version),
		"--range", request,
		"--merge-gap", mergeGap(det)}
	c.Env = []corev1.EnvVar{blasThreads(TrainerContainer)}
	return job
}
