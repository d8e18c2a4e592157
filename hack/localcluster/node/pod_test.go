package node

import (
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// A pod that was running when the node process went away: a Job's pod (Never) fails
// with the kubelet's ContainerStatusUnknown and exit code 137, a Deployment's
// (Always) runs its container again one restart later, and a container that had
// already ended keeps its end.
func TestAdoptLost(t *testing.T) {
	started := metav1.NewTime(time.Now().Add(-time.Minute))
	running := corev1.ContainerStatus{Name: "c", RestartCount: 2, ContainerID: "local://42",
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}}
	done := corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}}
	for _, tc := range []struct {
		name        string
		policy      corev1.RestartPolicy
		prev        []corev1.ContainerStatus
		wantEnded   bool
		wantPhase   corev1.PodPhase
		wantLost    bool // the lost run is the state (Never) or the last termination (Always)
		wantCount   int32
		wantWaiting bool
	}{
		{"new pod", corev1.RestartPolicyNever, nil, false, corev1.PodPending, false, 0, true},
		{"Job pod that was running", corev1.RestartPolicyNever, []corev1.ContainerStatus{running}, true, corev1.PodFailed, true, 2, false},
		{"Deployment pod that was running", corev1.RestartPolicyAlways, []corev1.ContainerStatus{running}, false, corev1.PodRunning, true, 3, true},
		{"Job pod that had completed", corev1.RestartPolicyNever, []corev1.ContainerStatus{done}, true, corev1.PodSucceeded, false, 0, false},
		{"another container's status", corev1.RestartPolicyNever, []corev1.ContainerStatus{{Name: "other", State: running.State}}, false, corev1.PodPending, false, 0, true},
	} {
		pod := &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: tc.policy, Containers: []corev1.Container{{Name: "c"}}},
			Status: corev1.PodStatus{ContainerStatuses: tc.prev, StartTime: &started}}
		r := newPodRun(nil, pod, "", netip.MustParseAddr("127.0.10.2"))
		c := r.containers[0]
		if got := r.ended(c); got != tc.wantEnded {
			t.Errorf("%s: ended %v, want %v", tc.name, got, tc.wantEnded)
		}
		if got := r.snapshot().Status.Phase; got != tc.wantPhase {
			t.Errorf("%s: phase %s, want %s", tc.name, got, tc.wantPhase)
		}
		lost := c.status.State.Terminated
		if tc.policy == corev1.RestartPolicyAlways {
			lost = c.status.LastTerminationState.Terminated
		}
		gotLost := lost != nil && lost.Reason == lostReason && lost.ExitCode == lostExitCode && lost.StartedAt == started
		if gotLost != tc.wantLost || c.status.RestartCount != tc.wantCount || (c.status.State.Waiting != nil) != tc.wantWaiting {
			t.Errorf("%s: status %+v; want lost %v, restarts %d, waiting %v", tc.name, c.status, tc.wantLost, tc.wantCount, tc.wantWaiting)
		}
		if !r.started.Equal(&started) {
			t.Errorf("%s: start time %v, want the pod's %v", tc.name, r.started, started)
		}
	}
}
