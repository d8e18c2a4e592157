// Package node is a virtual-kubelet provider that runs each container of a pod as a
// local process: its command and args, its environment (downward API included), its
// working directory and its volumes bind-mounted at the paths the pod names, inside a
// mount namespace of its own. Each pod gets a loopback address as its IP. It exists so
// the operator's real Jobs and Deployments can run on a machine without a container
// runtime; it is development tooling, not part of kadet.
package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// hostIP is the node's address: pods reach it and the apiserver reaches the node's
// kubelet API there.
const hostIP = "127.0.0.1"

// Config configures a Provider.
type Config struct {
	// StateDir holds a folder per pod: volumes, logs, termination messages.
	StateDir string
	// Images maps an image (with or without its tag; "*" for any) to a host folder
	// that stands for the image's PATH: command "detector" runs DIR/detector.
	Images map[string]string
	// PodCIDR is the loopback range pod IPs come from, e.g. 127.0.10.0/24. Two
	// clusters on one machine need different ranges.
	PodCIDR netip.Prefix
	// APIServerHost and APIServerPort are given to pods as KUBERNETES_SERVICE_HOST/PORT.
	APIServerHost, APIServerPort string
	// Memory is the node's memory capacity, also the default memory limit.
	Memory resource.Quantity
	// InitBinary is the program that understands InitCommand (default: this one).
	InitBinary string
	// Logf receives the provider's own messages.
	Logf func(format string, args ...any)
}

// Provider implements virtual-kubelet's nodeutil.Provider and node.PodNotifier.
type Provider struct {
	cfg    Config
	client kubernetes.Interface

	mu     sync.Mutex
	pods   map[string]*podRun // by namespace/name
	ips    map[netip.Addr]bool
	notify func(*corev1.Pod)
	// crashed is set by Crash: nothing more reaches the API, and pods keep their
	// folders for the node that starts after this one.
	crashed bool
}

// New returns a provider using client to read ConfigMaps, Secrets and PVCs and to
// request service account tokens.
func New(cfg Config, client kubernetes.Interface) (*Provider, error) {
	if cfg.InitBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.InitBinary = exe
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if !cfg.PodCIDR.IsValid() || !cfg.PodCIDR.Addr().IsLoopback() {
		return nil, fmt.Errorf("pod CIDR %s: want a loopback range such as 127.0.10.0/24", cfg.PodCIDR)
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "pods"), 0o755); err != nil {
		return nil, err
	}
	return &Provider{cfg: cfg, client: client, pods: map[string]*podRun{}, ips: map[netip.Addr]bool{}}, nil
}

// ConfigureNode fills in the node's capacity, address and kubelet port.
func (p *Provider) ConfigureNode(n *corev1.Node, kubeletPort int32) {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: p.cfg.Memory,
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	n.Status.Capacity = capacity
	n.Status.Allocatable = capacity.DeepCopy()
	// Only an InternalIP: a Hostname address sends the apiserver to the system DNS.
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: hostIP}}
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = kubeletPort
	n.Status.NodeInfo.OperatingSystem = runtime.GOOS
	n.Status.NodeInfo.Architecture = runtime.GOARCH
	n.Status.NodeInfo.KubeletVersion = "v1.37.2-localnode"
	n.Status.NodeInfo.ContainerRuntimeVersion = "local-process://1"
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[corev1.LabelOSStable] = runtime.GOOS
	n.Labels[corev1.LabelArchStable] = runtime.GOARCH
}

func key(ns, name string) string { return ns + "/" + name }

// allocateIP takes want when it is a free address of the pod range (a pod that ran on
// the node before it restarted keeps its IP), else the lowest free one (skipping .0
// and .1).
func (p *Provider) allocateIP(want string) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, err := netip.ParseAddr(want); err == nil && p.cfg.PodCIDR.Contains(a) && !p.ips[a] {
		p.ips[a] = true
		return a, nil
	}
	a := p.cfg.PodCIDR.Masked().Addr().Next().Next()
	for ; p.cfg.PodCIDR.Contains(a); a = a.Next() {
		if !p.ips[a] {
			p.ips[a] = true
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free pod IP in %s", p.cfg.PodCIDR)
}

func (p *Provider) releaseIP(a netip.Addr) {
	p.mu.Lock()
	delete(p.ips, a)
	p.mu.Unlock()
}

// CreatePod starts pod's containers in the background.
func (p *Provider) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	k := key(pod.Namespace, pod.Name)
	p.mu.Lock()
	_, exists := p.pods[k]
	p.mu.Unlock()
	if exists {
		return nil
	}
	ip, err := p.allocateIP(pod.Status.PodIP)
	if err != nil {
		return err
	}
	dir := filepath.Join(p.cfg.StateDir, "pods", string(pod.UID))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.releaseIP(ip)
		return err
	}
	r := newPodRun(p, pod.DeepCopy(), dir, ip)
	p.mu.Lock()
	p.pods[k] = r
	p.mu.Unlock()
	go r.run()
	return nil
}

// UpdatePod takes the pod's new metadata; a running process cannot change its spec.
func (p *Provider) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	r := p.get(pod.Namespace, pod.Name)
	if r == nil {
		return errdefs.NotFoundf("pod %s/%s is not on this node", pod.Namespace, pod.Name)
	}
	r.mu.Lock()
	r.pod.ObjectMeta = *pod.ObjectMeta.DeepCopy()
	r.mu.Unlock()
	return nil
}

// DeletePod stops pod's processes: SIGTERM, then SIGKILL after the grace period.
// It returns at once; the pod leaves the API when its processes have exited.
func (p *Provider) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	r := p.get(pod.Namespace, pod.Name)
	if r == nil {
		return errdefs.NotFoundf("pod %s/%s is not on this node", pod.Namespace, pod.Name)
	}
	grace := int64(30)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	if pod.DeletionGracePeriodSeconds != nil {
		grace = *pod.DeletionGracePeriodSeconds
	}
	r.terminate(time.Duration(grace) * time.Second)
	return nil
}

func (p *Provider) get(ns, name string) *podRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pods[key(ns, name)]
}

// forget drops a finished pod and its folder (kept after a crash).
func (p *Provider) forget(r *podRun) {
	p.mu.Lock()
	if p.pods[key(r.pod.Namespace, r.pod.Name)] == r {
		delete(p.pods, key(r.pod.Namespace, r.pod.Name))
	}
	crashed := p.crashed
	p.mu.Unlock()
	p.releaseIP(r.ip)
	if crashed {
		return
	}
	if err := os.RemoveAll(r.dir); err != nil {
		p.cfg.Logf("removing %s: %v", r.dir, err)
	}
}

// GetPod returns the pod with its current status.
func (p *Provider) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	r := p.get(namespace, name)
	if r == nil {
		return nil, errdefs.NotFoundf("pod %s/%s is not on this node", namespace, name)
	}
	return r.snapshot(), nil
}

// GetPodStatus returns the pod's current status.
func (p *Provider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

// GetPods lists every pod on the node.
func (p *Provider) GetPods(ctx context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	runs := make([]*podRun, 0, len(p.pods))
	for _, r := range p.pods {
		runs = append(runs, r)
	}
	p.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(runs))
	for _, r := range runs {
		out = append(out, r.snapshot())
	}
	return out, nil
}

// NotifyPods registers the callback that carries status changes to the apiserver.
func (p *Provider) NotifyPods(ctx context.Context, cb func(*corev1.Pod)) {
	p.mu.Lock()
	p.notify = cb
	p.mu.Unlock()
}

func (p *Provider) changed(pod *corev1.Pod) {
	p.mu.Lock()
	cb := p.notify
	if p.crashed {
		cb = nil
	}
	p.mu.Unlock()
	if cb != nil {
		cb(pod)
	}
}

// Crash ends the node as a host that loses power does: every pod's processes are
// SIGKILLed and nothing more is said to the API (no status, no deletion). The pods'
// folders stay, as a disk does; a node started afterwards on the same StateDir finds
// its pods in the API and treats the ones that were running as lost (see newPodRun).
func (p *Provider) Crash() {
	p.mu.Lock()
	p.crashed = true
	runs := make([]*podRun, 0, len(p.pods))
	for _, r := range p.pods {
		runs = append(runs, r)
	}
	p.mu.Unlock()
	for _, r := range runs {
		r.terminate(-1)
	}
	for _, r := range runs {
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
		}
	}
}

// Shutdown stops every pod's processes (SIGTERM, SIGKILL after grace) so none
// outlives the node.
func (p *Provider) Shutdown(grace time.Duration) {
	p.mu.Lock()
	runs := make([]*podRun, 0, len(p.pods))
	for _, r := range p.pods {
		runs = append(runs, r)
	}
	p.mu.Unlock()
	for _, r := range runs {
		r.terminate(grace)
	}
	for _, r := range runs {
		select {
		case <-r.done:
		case <-time.After(grace + 5*time.Second):
		}
	}
}

// GetContainerLogs serves `kubectl logs`.
func (p *Provider) GetContainerLogs(ctx context.Context, namespace, podName, containerName string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	r := p.get(namespace, podName)
	if r == nil {
		return nil, errdefs.NotFoundf("pod %s/%s is not on this node", namespace, podName)
	}
	return r.logs(ctx, containerName, opts)
}

// RunInContainer would serve `kubectl exec`: a process cannot be entered.
func (p *Provider) RunInContainer(ctx context.Context, namespace, podName, containerName string, cmd []string, attach api.AttachIO) error {
	return fmt.Errorf("the local node does not support exec")
}

// AttachToContainer would serve `kubectl attach`.
func (p *Provider) AttachToContainer(ctx context.Context, namespace, podName, containerName string, attach api.AttachIO) error {
	return fmt.Errorf("the local node does not support attach")
}

// GetStatsSummary is not collected by the local node.
func (p *Provider) GetStatsSummary(context.Context) (*statsv1alpha1.Summary, error) {
	return nil, fmt.Errorf("the local node does not collect stats")
}

// GetMetricsResource is not collected by the local node.
func (p *Provider) GetMetricsResource(context.Context) ([]*dto.MetricFamily, error) {
	return nil, fmt.Errorf("the local node does not collect metrics")
}

// PortForward serves `kubectl port-forward`: the pod's port is on its loopback IP.
func (p *Provider) PortForward(ctx context.Context, namespace, podName string, port int32, stream io.ReadWriteCloser) error {
	r := p.get(namespace, podName)
	if r == nil {
		return errdefs.NotFoundf("pod %s/%s is not on this node", namespace, podName)
	}
	defer stream.Close()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(r.ip.String(), fmt.Sprint(port)))
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(conn, stream); done <- struct{}{} }()
	go func() { _, _ = io.Copy(stream, conn); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// binary maps a container's image and command to a host program.
func (p *Provider) binary(image string, command []string) (string, error) {
	if len(command) == 0 {
		return "", fmt.Errorf("container has no command: the local node cannot read an image's entrypoint")
	}
	dir, ok := p.cfg.Images[image]
	if !ok {
		name := image
		if i := strings.IndexByte(name, '@'); i >= 0 {
			name = name[:i]
		}
		if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
			name = name[:i]
		}
		dir, ok = p.cfg.Images[name]
	}
	if !ok {
		dir, ok = p.cfg.Images["*"]
	}
	if !ok {
		return "", fmt.Errorf("image %q is not mapped to a host folder (localcluster --image)", image)
	}
	bin := filepath.Join(dir, filepath.Base(command[0]))
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("image %q: %s is not an executable file", image, bin)
	}
	return bin, nil
}
