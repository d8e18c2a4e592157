package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/kadet-dev/kadet/hack/localcluster/node"
)

// TestMain lets this test binary be the node's container init, as the localcluster
// binary is in real use.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == node.InitCommand {
		fmt.Fprintln(os.Stderr, node.RunInit(os.Args[2]))
		os.Exit(127)
	}
	os.Exit(m.Run())
}

func startCluster(t *testing.T) *Cluster {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run through make test, which builds the control plane")
	}
	cidr := netip.MustParsePrefix(fmt.Sprintf("127.%d.%d.0/24", 100+rand.IntN(100), rand.IntN(250)))
	start := time.Now()
	c, err := Start(context.Background(), Options{
		Assets: assets, Dir: t.TempDir(), PodCIDR: cidr,
		Images: map[string]string{"busybox": "/bin", "python": "/usr/bin"},
		Logf:   t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster up in %s", time.Since(start).Round(time.Millisecond))
	return c
}

// waitFor polls ok until it reports done, failing the test after timeout with the
// last error ok returned (errors are retried, as the condition may not hold yet).
func waitFor(t *testing.T, what string, timeout time.Duration, ok func() (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) {
			done, err := ok()
			last = err
			return done, nil
		})
	if err != nil {
		t.Fatalf("%s: not within %s (last error: %v)", what, timeout, last)
	}
}

func processAlive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func pidOf(t *testing.T, cs corev1.ContainerStatus) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimPrefix(cs.ContainerID, "local://"))
	if err != nil {
		t.Fatalf("container ID %q: %v", cs.ContainerID, err)
	}
	return pid
}

func TestLocalCluster(t *testing.T) {
	c := startCluster(t)
	stopped := false
	defer func() {
		if !stopped {
			c.Stop()
		}
	}()
	ctx := context.Background()
	ns := "default"
	pods := c.Client.CoreV1().Pods(ns)

	if _, err := c.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"greeting.txt": "hello from a configmap"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("a failing Job reports its exit code, termination message and logs", func(t *testing.T) {
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "fails"},
			Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](0), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Volumes: []corev1.Volume{
					{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
					{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				},
				Containers: []corev1.Container{{
					Name: "main", Image: "busybox:1.36", Command: []string{"sh", "-c"},
					Args: []string{`echo "me=$(POD_NAME) ip=$POD_IP cpus=$CPUS ref=$(REF) opt=${OPT-unset}"; cat /etc/cfg/greeting.txt; echo; ` +
						`test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo token-mounted; ` +
						`ls -A /tmp | wc -l; echo "it went wrong" > /dev/termination-log; exit 3`},
					Env: []corev1.EnvVar{
						{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
						{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
						{Name: "CPUS", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
						{Name: "REF", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
							LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "greeting.txt"}}},
						{Name: "OPT", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
							LocalObjectReference: corev1.LocalObjectReference{Name: "no-such-secret"}, Key: "k", Optional: ptr.To(true)}}},
					},
					VolumeMounts: []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/cfg"}, {Name: "tmp", MountPath: "/tmp"}},
				}},
			}}},
		}
		if _, err := c.Client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "job failed", time.Minute, func() (bool, error) {
			j, err := c.Client.BatchV1().Jobs(ns).Get(ctx, "fails", metav1.GetOptions{})
			return err == nil && j.Status.Failed == 1, err
		})
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "job-name=fails"})
		if err != nil || len(list.Items) != 1 {
			t.Fatalf("pods of the job: %v, %v", list, err)
		}
		pod := list.Items[0]
		term := pod.Status.ContainerStatuses[0].State.Terminated
		if pod.Status.Phase != corev1.PodFailed || term == nil || term.ExitCode != 3 || term.Message != "it went wrong\n" {
			t.Fatalf("phase %s, terminated %+v", pod.Status.Phase, term)
		}
		raw, err := pods.GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			t.Fatalf("logs through the apiserver and the node's kubelet API: %v", err)
		}
		want := fmt.Sprintf("me=%s ip=%s cpus=%d ref=hello from a configmap opt=unset\nhello from a configmap\ntoken-mounted\n0\n",
			pod.Name, pod.Status.PodIP, runtimeCPUs(t, c))
		if string(raw) != want {
			t.Fatalf("logs:\n%s\nwant:\n%s", raw, want)
		}
	})

	t.Run("a Deployment becomes available through its readiness probe, and deleting a pod ends its process", func(t *testing.T) {
		labels := map[string]string{"app": "web"}
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					Containers: []corev1.Container{{
						Name: "web", Image: "python", Command: []string{"python3", "-m", "http.server", "--bind", "$(POD_IP)", "8080"},
						Env:            []corev1.EnvVar{{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}},
						Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}}},
					}},
				}}},
		}
		if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "2 available replicas", time.Minute, func() (bool, error) {
			d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			return err == nil && d.Status.AvailableReplicas == 2, err
		})
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			t.Fatal(err)
		}
		ips := map[string]bool{}
		for _, p := range list.Items {
			ips[p.Status.PodIP] = true
		}
		if len(ips) != 2 {
			t.Fatalf("pods share an IP: %v", ips)
		}
		victim := list.Items[0]
		pid := pidOf(t, victim.Status.ContainerStatuses[0])
		if !processAlive(pid) {
			t.Fatalf("process %d of a Running pod is not alive", pid)
		}
		start := time.Now()
		if err := pods.Delete(ctx, victim.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "deleted pod gone from the API", 15*time.Second, func() (bool, error) {
			_, err := pods.Get(ctx, victim.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), err
		})
		if processAlive(pid) {
			t.Fatalf("process %d outlived its deleted pod", pid)
		}
		t.Logf("pod deleted in %s (python exits on SIGTERM; the grace period is 5s)", time.Since(start).Round(time.Millisecond))
		waitFor(t, "replacement pod available", time.Minute, func() (bool, error) {
			d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			return err == nil && d.Status.AvailableReplicas == 2, err
		})
	})

	t.Run("a container that exits is restarted under restartPolicy Always", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "flaky"}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"sh", "-c", "echo run; exit 1"}}},
		}}
		if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "two restarts", time.Minute, func() (bool, error) {
			p, err := pods.Get(ctx, "flaky", metav1.GetOptions{})
			return err == nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 2, err
		})
		p, _ := pods.Get(ctx, "flaky", metav1.GetOptions{})
		if p.Status.Phase != corev1.PodRunning {
			t.Fatalf("a restarting pod is %s, want Running", p.Status.Phase)
		}
		if last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.ExitCode != 1 {
			t.Fatalf("last termination: %+v", last)
		}
		raw, err := pods.GetLogs("flaky", &corev1.PodLogOptions{Previous: true}).DoRaw(ctx)
		if err != nil || string(raw) != "run\n" {
			t.Fatalf("previous logs: %q, %v", raw, err)
		}
	})

	t.Run("a crashed node's pods lose their processes; after its restart a Job retries and a Deployment's pods run again", func(t *testing.T) {
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "long"},
			Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](1), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"sleep", "600"}}},
			}}},
		}
		if _, err := c.Client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var jobPod corev1.Pod
		waitFor(t, "the Job's pod running", time.Minute, func() (bool, error) {
			list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "job-name=long"})
			if err != nil || len(list.Items) != 1 || len(list.Items[0].Status.ContainerStatuses) == 0 ||
				list.Items[0].Status.ContainerStatuses[0].State.Running == nil {
				return false, err
			}
			jobPod = list.Items[0]
			return true, nil
		})
		web, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(web.Items) != 2 {
			t.Fatalf("the web pods: %v, %v", web, err)
		}
		pids := []int{pidOf(t, jobPod.Status.ContainerStatuses[0])}
		for _, p := range web.Items {
			pids = append(pids, pidOf(t, p.Status.ContainerStatuses[0]))
		}

		c.CrashNode()
		for _, pid := range pids {
			if processAlive(pid) {
				t.Errorf("process %d outlived the node's crash", pid)
			}
		}
		// Nothing is said to the API: the pods look as they did.
		if p, err := pods.Get(ctx, jobPod.Name, metav1.GetOptions{}); err != nil || p.Status.Phase != corev1.PodRunning {
			t.Fatalf("the Job's pod after the crash: %v, %v", p.Status.Phase, err)
		}
		if err := c.StartNode(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the Job's lost pod failed and retried", time.Minute, func() (bool, error) {
			j, err := c.Client.BatchV1().Jobs(ns).Get(ctx, "long", metav1.GetOptions{})
			return err == nil && j.Status.Failed == 1 && j.Status.Active == 1, err
		})
		p, err := pods.Get(ctx, jobPod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if term := p.Status.ContainerStatuses[0].State.Terminated; p.Status.Phase != corev1.PodFailed || term == nil ||
			term.Reason != "ContainerStatusUnknown" || term.ExitCode != 137 {
			t.Fatalf("the lost Job pod: phase %s, terminated %+v", p.Status.Phase, term)
		}
		waitFor(t, "the web pods running again, each on its IP", time.Minute, func() (bool, error) {
			for _, before := range web.Items {
				p, err := pods.Get(ctx, before.Name, metav1.GetOptions{})
				if err != nil || len(p.Status.ContainerStatuses) == 0 {
					return false, err
				}
				cs := p.Status.ContainerStatuses[0]
				last := cs.LastTerminationState.Terminated
				if !cs.Ready || cs.RestartCount != before.Status.ContainerStatuses[0].RestartCount+1 || last == nil ||
					last.Reason != "ContainerStatusUnknown" || p.Status.PodIP != before.Status.PodIP {
					return false, fmt.Errorf("pod %s: ready %v, restarts %d, last %+v, IP %s (was %s)", p.Name, cs.Ready,
						cs.RestartCount, last, p.Status.PodIP, before.Status.PodIP)
				}
			}
			return true, nil
		})
		if err := c.Client.BatchV1().Jobs(ns).Delete(ctx, "long", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("the apiserver restarts and clients carry on", func(t *testing.T) {
		if err := c.RestartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		// The controllers and the node reconnect: a new pod is scheduled and runs.
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "after-restart"}, Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"true"}}},
		}}
		if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		created := time.Now()
		waitFor(t, "a pod created after the restart to succeed", time.Minute, func() (bool, error) {
			p, err := pods.Get(ctx, "after-restart", metav1.GetOptions{})
			return err == nil && p.Status.Phase == corev1.PodSucceeded, err
		})
		t.Logf("a pod created after the restart succeeded in %s", time.Since(created).Round(time.Millisecond))
		// A second restart finds the apiserver the first one started.
		if err := c.RestartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("stopping the cluster leaves no process behind", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "sleeper"}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"sh", "-c", "sleep 600 & wait"}}},
		}}
		if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var pid int
		waitFor(t, "sleeper running", time.Minute, func() (bool, error) {
			p, err := pods.Get(ctx, "sleeper", metav1.GetOptions{})
			if err != nil || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Running == nil {
				return false, err
			}
			pid = pidOf(t, p.Status.ContainerStatuses[0])
			return true, nil
		})
		children := childPIDs(pid)
		if len(children) == 0 {
			t.Fatalf("sh %d has no child sleep", pid)
		}
		c.Stop()
		stopped = true
		for _, p := range append(children, pid) {
			if processAlive(p) {
				t.Errorf("process %d is still alive after the cluster stopped", p)
			}
		}
	})
}

func runtimeCPUs(t *testing.T, c *Cluster) int64 {
	t.Helper()
	n, err := c.Client.CoreV1().Nodes().Get(context.Background(), "local-node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Status.Capacity.Cpu().Value()
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}
