package node

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestPhase(t *testing.T) {
	exited := func(code int32) corev1.ContainerState {
		return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}
	}
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	creating := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	for _, tc := range []struct {
		name     string
		policy   corev1.RestartPolicy
		stopping bool
		states   []corev1.ContainerState
		want     corev1.PodPhase
	}{
		{"not started", corev1.RestartPolicyNever, false, []corev1.ContainerState{creating}, corev1.PodPending},
		{"running", corev1.RestartPolicyNever, false, []corev1.ContainerState{running}, corev1.PodRunning},
		{"one of two still running", corev1.RestartPolicyNever, false, []corev1.ContainerState{exited(1), running}, corev1.PodRunning},
		{"Never, exit 0", corev1.RestartPolicyNever, false, []corev1.ContainerState{exited(0)}, corev1.PodSucceeded},
		{"Never, exit 2", corev1.RestartPolicyNever, false, []corev1.ContainerState{exited(2)}, corev1.PodFailed},
		// Between an exit and the restart the pod must not look terminal: that is final.
		{"Always, just exited 0", corev1.RestartPolicyAlways, false, []corev1.ContainerState{exited(0)}, corev1.PodRunning},
		{"Always, just exited 1", corev1.RestartPolicyAlways, false, []corev1.ContainerState{exited(1)}, corev1.PodRunning},
		{"OnFailure, exit 1 restarts", corev1.RestartPolicyOnFailure, false, []corev1.ContainerState{exited(1)}, corev1.PodRunning},
		{"OnFailure, exit 0 is done", corev1.RestartPolicyOnFailure, false, []corev1.ContainerState{exited(0)}, corev1.PodSucceeded},
		{"Always, deleted, exited on SIGTERM", corev1.RestartPolicyAlways, true, []corev1.ContainerState{exited(143)}, corev1.PodFailed},
		{"Always, deleted, exited 0", corev1.RestartPolicyAlways, true, []corev1.ContainerState{exited(0)}, corev1.PodSucceeded},
	} {
		r := &podRun{ip: netip.MustParseAddr("127.0.10.2"), stopping: tc.stopping,
			pod: &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: tc.policy}}}
		for _, st := range tc.states {
			r.containers = append(r.containers, &containerRun{status: corev1.ContainerStatus{State: st}})
		}
		if got := r.snapshot().Status.Phase; got != tc.want {
			t.Errorf("%s: phase %s, want %s", tc.name, got, tc.want)
		}
	}
}
