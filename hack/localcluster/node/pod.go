package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// maxTerminationMessage is the kubelet's cap on a termination message.
const maxTerminationMessage = 4096

// podRun is one pod on the node: its folder, IP and containers.
type podRun struct {
	p   *Provider
	dir string
	ip  netip.Addr

	mu         sync.Mutex
	pod        *corev1.Pod
	started    metav1.Time
	volumesOK  bool
	containers []*containerRun
	stopping   bool
	finished   bool          // every container has ended for good
	stop       chan struct{} // closed when the pod is being deleted
	done       chan struct{} // closed when every container has ended for good
}

// containerRun is one container: its status, the current process and readiness.
type containerRun struct {
	spec   corev1.Container
	status corev1.ContainerStatus
	proc   *os.Process
	runEnd chan struct{} // closed when the current process has exited
	grace  time.Duration
}

func newPodRun(p *Provider, pod *corev1.Pod, dir string, ip netip.Addr) *podRun {
	r := &podRun{p: p, dir: dir, ip: ip, pod: pod, started: metav1.Now(),
		stop: make(chan struct{}), done: make(chan struct{})}
	if pod.Status.StartTime != nil {
		r.started = *pod.Status.StartTime
	}
	for _, c := range pod.Spec.Containers {
		cr := &containerRun{spec: c, status: corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
		}}
		r.adoptLost(cr, pod.Status.ContainerStatuses)
		r.containers = append(r.containers, cr)
	}
	return r
}

// lostExitCode and lostReason are what the kubelet reports for a container that was
// running when its node went down and that no runtime knows of after the restart.
const (
	lostExitCode = 137
	lostReason   = "ContainerStatusUnknown"
)

// adoptLost carries over the status of a container that ran on this node before
// the node process restarted (the API still has it): one that was running has lost
// its process, so, as the kubelet does after a reboot, it is terminated with
// ContainerStatusUnknown and exit code 137, and runs again only if the pod's restart
// policy restarts a failed container; one that had ended keeps its end.
func (r *podRun) adoptLost(c *containerRun, prev []corev1.ContainerStatus) {
	for _, ps := range prev {
		if ps.Name != c.spec.Name {
			continue
		}
		c.status.RestartCount, c.status.LastTerminationState = ps.RestartCount, ps.LastTerminationState
		switch {
		case ps.State.Terminated != nil:
			c.status.State = ps.State
		case ps.State.Running != nil:
			lost := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: lostExitCode, Reason: lostReason,
				Message:   "The container could not be located when the node restarted. The container used to be Running",
				StartedAt: ps.State.Running.StartedAt, FinishedAt: metav1.Now(), ContainerID: ps.ContainerID,
			}}
			if r.restarts(lostExitCode) {
				c.status.LastTerminationState = lost
				c.status.RestartCount++
			} else {
				c.status.State = lost
			}
		}
	}
}

// ended tells whether c has terminated for good: it ended before the node restarted
// and its restart policy does not run it again.
func (r *podRun) ended(c *containerRun) bool {
	t := c.status.State.Terminated
	return t != nil && !r.restarts(int(t.ExitCode))
}

// run prepares the volumes (retrying while, say, a ConfigMap does not exist yet, as
// the kubelet does), then runs every container to its end.
func (r *podRun) run() {
	defer close(r.done)
	r.p.changed(r.snapshot())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()

	var toRun []*containerRun
	for _, c := range r.containers {
		if !r.ended(c) {
			toRun = append(toRun, c)
		}
	}
	var mounts map[string]string
	for len(toRun) > 0 {
		var err error
		mounts, err = r.p.prepareVolumes(ctx, r.pod, r.dir, r.ip.String())
		if err == nil {
			break
		}
		r.setWaiting("ContainerCreating", err.Error())
		select {
		case <-r.stop:
			r.finishStopped()
			return
		case <-time.After(2 * time.Second):
		}
	}
	r.mu.Lock()
	r.volumesOK = true
	r.mu.Unlock()

	if len(r.pod.Spec.InitContainers) > 0 {
		r.setWaiting("CreateContainerConfigError", "the local node does not run init containers")
		<-r.stop
		r.finishStopped()
		return
	}
	var wg sync.WaitGroup
	for _, c := range toRun {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.runContainer(ctx, c, mounts)
		}()
	}
	wg.Wait()
	r.p.changed(r.snapshot())
	// Under the lock with terminate: whichever comes second removes the pod.
	r.mu.Lock()
	r.finished = true
	stopping := r.stopping
	r.mu.Unlock()
	if stopping {
		r.finishStopped()
	}
}

// finishStopped removes a deleted pod from the API (its processes are gone, so the
// grace period has nothing left to wait for) and from the node.
func (r *podRun) finishStopped() {
	defer r.p.forget(r)
	r.p.mu.Lock()
	crashed := r.p.crashed
	r.p.mu.Unlock()
	if crashed {
		return // a crashed node says nothing more; the pod stays in the API
	}
	r.p.changed(r.snapshot())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	uid := r.pod.UID
	err := r.p.client.CoreV1().Pods(r.pod.Namespace).Delete(ctx, r.pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &uid},
	})
	// Not found or another UID: the pod is already gone from the API.
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		r.p.cfg.Logf("deleting pod %s/%s: %v", r.pod.Namespace, r.pod.Name, err)
	}
}

func (r *podRun) setWaiting(reason, msg string) {
	r.mu.Lock()
	for _, c := range r.containers {
		if c.status.State.Terminated == nil && c.status.State.Running == nil {
			c.status.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
		}
	}
	r.mu.Unlock()
	r.p.changed(r.snapshot())
}

// runContainer starts c, restarts it as the pod's restartPolicy says, and returns
// when it will not run again.
func (r *podRun) runContainer(ctx context.Context, c *containerRun, mounts map[string]string) {
	backoff := time.Second
	for {
		started := time.Now()
		exit, err := r.startAndWait(ctx, c, mounts)
		if err != nil {
			// Could not start (unmapped image, bad env reference): report and retry.
			r.mu.Lock()
			c.status.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerError", Message: err.Error()}}
			r.mu.Unlock()
			r.p.changed(r.snapshot())
		} else {
			r.p.changed(r.snapshot())
			if !r.restarts(exit) {
				return
			}
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		if err == nil {
			r.mu.Lock()
			c.status.LastTerminationState = c.status.State
			c.status.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off %s restarting failed container %s", backoff, c.spec.Name)}}
			c.status.RestartCount++
			r.mu.Unlock()
			r.p.changed(r.snapshot())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 20*time.Second)
	}
}

// restarts tells whether a container that exited with code runs again.
func (r *podRun) restarts(code int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return false
	}
	switch r.pod.Spec.RestartPolicy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return code != 0
	}
	return true
}

// startAndWait runs one process for c and waits for it. The process is this program
// in InitCommand mode, in a new mount namespace and process group, killed if the
// node dies.
func (r *podRun) startAndWait(ctx context.Context, c *containerRun, mounts map[string]string) (int, error) {
	env, err := r.p.containerEnv(ctx, r.pod, &c.spec, r.ip.String())
	if err != nil {
		return 0, err
	}
	vars := envMap(env)
	argv := make([]string, 0, len(c.spec.Command)+len(c.spec.Args))
	for _, a := range append(append([]string(nil), c.spec.Command...), c.spec.Args...) {
		argv = append(argv, expand(a, vars))
	}
	bin, err := r.p.binary(c.spec.Image, c.spec.Command)
	if err != nil {
		return 0, err
	}
	spec := InitSpec{Binary: bin, Args: argv, WorkingDir: c.spec.WorkingDir}
	for _, m := range c.spec.VolumeMounts {
		src, ok := mounts[m.Name]
		if !ok {
			return 0, fmt.Errorf("volumeMount %q names no volume of the pod", m.Name)
		}
		if m.SubPath != "" {
			src = filepath.Join(src, m.SubPath)
			if err := os.MkdirAll(src, 0o755); err != nil {
				return 0, err
			}
		}
		spec.Mounts = append(spec.Mounts, Mount{Source: src, Target: m.MountPath, ReadOnly: m.ReadOnly})
	}
	cdir := filepath.Join(r.dir, "containers", c.spec.Name)
	if err := os.MkdirAll(cdir, 0o755); err != nil {
		return 0, err
	}
	termPath := filepath.Join(cdir, "termination-log")
	if err := os.WriteFile(termPath, nil, 0o666); err != nil {
		return 0, err
	}
	if tp := c.spec.TerminationMessagePath; tp != "" {
		spec.Mounts = append(spec.Mounts, Mount{Source: termPath, Target: tp})
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return 0, err
	}

	r.mu.Lock()
	restart := c.status.RestartCount
	r.mu.Unlock()
	logw, err := newLogWriter(r.logPath(c.spec.Name, restart))
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(r.p.cfg.InitBinary, InitCommand, string(specJSON))
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logw.stdout, logw.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Unshareflags: syscall.CLONE_NEWNS,
		Setpgid:      true,
		Pdeathsig:    syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		logw.close()
		return 0, fmt.Errorf("starting %s: %w", bin, err)
	}
	logw.closeWriters()

	grace := 30 * time.Second
	if g := r.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	runEnd := make(chan struct{})
	r.mu.Lock()
	c.proc, c.runEnd, c.grace = cmd.Process, runEnd, grace
	c.status.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
	c.status.ContainerID = fmt.Sprintf("local://%d", cmd.Process.Pid)
	c.status.Started = ptr.To(true)
	c.status.Ready = c.spec.ReadinessProbe == nil
	stopping := r.stopping
	r.mu.Unlock()
	if stopping {
		r.signal(c, grace)
	}
	r.p.changed(r.snapshot())

	probeCtx, stopProbes := context.WithCancel(ctx)
	go r.probe(probeCtx, c, c.spec.ReadinessProbe, true)
	go r.probe(probeCtx, c, c.spec.LivenessProbe, false)

	werr := cmd.Wait()
	stopProbes()
	logw.wait(2 * time.Second)
	close(runEnd)

	code := 0
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		} else {
			code = ee.ExitCode()
		}
	} else if werr != nil {
		code = 128
	}
	msg := readTermination(termPath)
	if msg == "" && code != 0 && c.spec.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
		msg = tailLog(r.logPath(c.spec.Name, restart), 80, 2048)
	}
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	r.mu.Lock()
	var startedAt metav1.Time
	if c.status.State.Running != nil {
		startedAt = c.status.State.Running.StartedAt
	}
	c.proc = nil
	c.status.Ready = false
	c.status.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: int32(code), Reason: reason, Message: msg,
		StartedAt: startedAt, FinishedAt: metav1.Now(), ContainerID: c.status.ContainerID,
	}}
	r.mu.Unlock()
	return code, nil
}

func readTermination(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > maxTerminationMessage {
		b = b[:maxTerminationMessage]
	}
	return string(b)
}

// terminate stops the pod: no more restarts, SIGTERM to every process group, SIGKILL
// to what is left after grace; a negative grace is SIGKILL at once, with no SIGTERM
// (a node that dies).
func (r *podRun) terminate(grace time.Duration) {
	r.mu.Lock()
	if r.stopping {
		r.mu.Unlock()
		return
	}
	r.stopping = true
	close(r.stop)
	containers := append([]*containerRun(nil), r.containers...)
	finished := r.finished
	r.mu.Unlock()
	if finished {
		// A completed Job's pod: nothing runs, remove it now.
		go r.finishStopped()
		return
	}
	for _, c := range containers {
		r.signal(c, grace)
	}
}

// signal sends SIGTERM to c's process group, and SIGKILL when it has not exited
// within grace.
func (r *podRun) signal(c *containerRun, grace time.Duration) {
	r.mu.Lock()
	proc, runEnd := c.proc, c.runEnd
	r.mu.Unlock()
	if proc == nil {
		return
	}
	if grace < 0 {
		_ = syscall.Kill(-proc.Pid, syscall.SIGKILL)
		return
	}
	_ = syscall.Kill(-proc.Pid, syscall.SIGTERM)
	go func() {
		select {
		case <-runEnd:
		case <-time.After(grace):
			_ = syscall.Kill(-proc.Pid, syscall.SIGKILL)
		}
	}()
}

// snapshot is the pod as the apiserver should see it.
func (r *podRun) snapshot() *corev1.Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	pod := r.pod.DeepCopy()
	st := corev1.PodStatus{
		Phase:     corev1.PodPending,
		HostIP:    hostIP,
		HostIPs:   []corev1.HostIP{{IP: hostIP}},
		PodIP:     r.ip.String(),
		PodIPs:    []corev1.PodIP{{IP: r.ip.String()}},
		StartTime: &r.started,
		QOSClass:  r.pod.Status.QOSClass,
	}
	running, succeeded, failed, ready := 0, 0, 0, 0
	for _, c := range r.containers {
		cs := c.status.DeepCopy()
		st.ContainerStatuses = append(st.ContainerStatuses, *cs)
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			succeeded++
		case cs.State.Terminated != nil:
			failed++
		case cs.State.Waiting != nil && cs.RestartCount > 0:
			running++ // between restarts the pod is still Running
		}
		if cs.Ready {
			ready++
		}
	}
	n := len(r.containers)
	// A terminal phase is final in the API, so a pod whose containers will restart
	// stays Running while one of them has just exited.
	willRestart := !r.stopping && (r.pod.Spec.RestartPolicy == corev1.RestartPolicyAlways ||
		r.pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure && failed > 0)
	switch {
	case running > 0 || (willRestart && succeeded+failed > 0):
		st.Phase = corev1.PodRunning
	case n > 0 && succeeded+failed == n && failed == 0:
		st.Phase = corev1.PodSucceeded
	case n > 0 && succeeded+failed == n:
		st.Phase = corev1.PodFailed
	}
	cond := func(t corev1.PodConditionType, ok bool) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: r.started}
	}
	allReady := n > 0 && ready == n && !r.stopping
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, r.volumesOK),
		cond(corev1.PodInitialized, true),
		cond(corev1.ContainersReady, allReady),
		cond(corev1.PodReady, allReady),
		cond(corev1.PodScheduled, true),
	}
	pod.Status = st
	return pod
}

func (r *podRun) logPath(container string, restart int32) string {
	return filepath.Join(r.dir, "logs", container, fmt.Sprintf("%d.log", restart))
}
