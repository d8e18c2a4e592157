// Package cluster starts a whole Kubernetes cluster on loopback: etcd and
// kube-apiserver (through controller-runtime's envtest, with service accounts
// admitted), kube-controller-manager, kube-scheduler, and one local node whose pods
// are processes (package node).
package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	localnode "github.com/kadet-dev/kadet/hack/localcluster/node"
)

// Controllers are the kube-controller-manager loops the cluster runs: enough for Jobs,
// Deployments, garbage collection, service accounts, namespaces and
// hostPath-provisioned PVCs. The endpoint controllers are left out: the apiserver
// refuses loopback addresses in EndpointSlices, so Services here have no endpoints
// (reach pods by their IP or with kubectl port-forward).
var Controllers = []string{
	"job-controller", "deployment-controller", "replicaset-controller",
	"garbage-collector-controller", "serviceaccount-controller",
	"root-ca-certificate-publisher-controller", "ttl-after-finished-controller",
	"node-lifecycle-controller",
	"namespace-controller", "persistentvolume-binder-controller",
	"persistentvolume-protection-controller", "persistentvolumeclaim-protection-controller",
	"pod-garbage-collector-controller",
}

// Options configure Start.
type Options struct {
	// Assets holds etcd, kube-apiserver, kube-controller-manager and kube-scheduler
	// (hack/controlplane.sh prints it).
	Assets string
	// Dir receives the kubeconfig, the CA, the components' logs and the node's pods.
	Dir string
	// NodeName names the local node.
	NodeName string
	// PodCIDR and Images are the node's (see node.Config).
	PodCIDR netip.Prefix
	Images  map[string]string
	// Logf receives progress messages.
	Logf func(format string, args ...any)
}

// Cluster is a running cluster.
type Cluster struct {
	// Kubeconfig is the path of an admin kubeconfig.
	Kubeconfig string
	Client     kubernetes.Interface

	opts     Options
	apiURL   *url.URL
	env      *envtest.Environment
	procs    []*exec.Cmd
	provider *localnode.Provider
	stopNode context.CancelFunc
	nodeDone <-chan struct{}
	// apiserver is the kube-apiserver started by RestartAPIServer (nil: envtest's);
	// apiserverDone is closed once it has exited and been reaped.
	apiserver     *exec.Cmd
	apiserverDone chan struct{}
}

// Start brings the cluster up and returns once the node is Ready and schedulable.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.NodeName == "" {
		o.NodeName = "local-node"
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the local node runs as root: it gives each container a mount namespace of its own (CAP_SYS_ADMIN)")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		if _, err := os.Stat(filepath.Join(o.Assets, b)); err != nil {
			return nil, fmt.Errorf("control plane binary %s missing from %s (run hack/controlplane.sh)", b, o.Assets)
		}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	c = &Cluster{opts: o}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()

	c.env = &envtest.Environment{BinaryAssetsDirectory: o.Assets, ControlPlaneStartTimeout: 2 * time.Minute}
	apiArgs := c.env.ControlPlane.GetAPIServer().Configure()
	// envtest turns ServiceAccount admission off because it runs no controller
	// manager; this cluster does, and its pods need their tokens.
	apiArgs.Disable("disable-admission-plugins")
	o.Logf("starting etcd and kube-apiserver")
	cfg, err := c.env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	admin, err := c.env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		return nil, err
	}
	c.Kubeconfig = filepath.Join(o.Dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kc, 0o600); err != nil {
		return nil, err
	}
	caFile := filepath.Join(o.Dir, "ca.crt")
	if err := os.WriteFile(caFile, cfg.CAData, 0o644); err != nil {
		return nil, err
	}
	if c.Client, err = kubernetes.NewForConfig(admin.Config()); err != nil {
		return nil, err
	}

	certDir := c.env.ControlPlane.APIServer.CertDir
	o.Logf("starting kube-controller-manager and kube-scheduler")
	if err := c.startProc(o, "kube-controller-manager",
		"--kubeconfig="+c.Kubeconfig,
		"--leader-elect=false", "--secure-port=0", "--bind-address=127.0.0.1",
		"--controllers="+strings.Join(Controllers, ","),
		"--service-account-private-key-file="+filepath.Join(certDir, "sa-signer.key"),
		"--root-ca-file="+caFile,
		"--enable-hostpath-provisioner",
		"--node-monitor-grace-period=40s",
	); err != nil {
		return nil, err
	}
	if err := c.startProc(o, "kube-scheduler",
		"--kubeconfig="+c.Kubeconfig, "--leader-elect=false", "--secure-port=0", "--bind-address=127.0.0.1",
	); err != nil {
		return nil, err
	}
	if err := c.defaultStorageClass(ctx); err != nil {
		return nil, err
	}

	u, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, err
	}
	c.apiURL = u
	o.Logf("starting node %s", o.NodeName)
	if err := c.startNode(ctx, o, u); err != nil {
		return nil, err
	}
	if err := c.waitSchedulable(ctx, o.NodeName); err != nil {
		return nil, err
	}
	return c, nil
}

// startProc starts a control-plane binary that dies with this process.
func (c *Cluster) startProc(o Options, name string, args ...string) error {
	logf, err := os.Create(filepath.Join(o.Dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(o.Assets, name), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	c.procs = append(c.procs, cmd)
	go func() { _ = cmd.Wait(); logf.Close() }()
	return nil
}

// defaultStorageClass lets PVCs without a class be provisioned as host folders (under
// /tmp/hostpath_pv, where kube-controller-manager's hostPath provisioner puts them).
func (c *Cluster) defaultStorageClass(ctx context.Context) error {
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: "standard", Annotations: map[string]string{
			"storageclass.kubernetes.io/is-default-class": "true",
		}},
		Provisioner: "kubernetes.io/host-path",
	}
	_, err := c.Client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func (c *Cluster) startNode(ctx context.Context, o Options, apiURL *url.URL) error {
	cert, err := selfSignedCert()
	if err != nil {
		return err
	}
	// The kubelet API (logs, port-forward) on a free loopback port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().(*net.TCPAddr)
	l.Close()

	prov, err := localnode.New(localnode.Config{
		StateDir: filepath.Join(o.Dir, "node"), Images: o.Images, PodCIDR: o.PodCIDR,
		APIServerHost: apiURL.Hostname(), APIServerPort: apiURL.Port(),
		Memory: memory(), Logf: o.Logf,
	}, c.Client)
	if err != nil {
		return err
	}
	c.provider = prov
	mux := http.NewServeMux()
	n, err := nodeutil.NewNode(o.NodeName,
		func(pc nodeutil.ProviderConfig) (nodeutil.Provider, node.NodeProvider, error) {
			prov.ConfigureNode(pc.Node, int32(addr.Port))
			return prov, nil, nil
		},
		nodeutil.WithClient(c.Client),
		func(cfg *nodeutil.NodeConfig) error {
			cfg.HTTPListenAddr = addr.String()
			cfg.Handler = api.InstrumentHandler(mux)
			cfg.SkipDownwardAPIResolution = true // the provider resolves status.podIP itself
			cfg.NumWorkers = 4
			return nil
		},
		nodeutil.AttachProviderRoutes(mux),
		nodeutil.WithTLSConfig(func(t *tls.Config) error {
			t.Certificates = []tls.Certificate{cert}
			return nil
		}),
	)
	if err != nil {
		return err
	}
	nctx, cancel := context.WithCancel(context.Background())
	c.stopNode = cancel
	done := make(chan struct{})
	c.nodeDone = done
	go func() {
		defer close(done)
		if err := n.Run(nctx); err != nil && !errors.Is(err, context.Canceled) {
			o.Logf("node stopped: %v", err)
		}
	}()
	return n.WaitReady(ctx, time.Minute)
}

// CrashNode ends the node as a host that loses power does: every pod's processes are
// SIGKILLed, and the node stops renewing its lease and reporting pod status. The
// pods stay in the API as they were last reported; StartNode brings the node back.
func (c *Cluster) CrashNode() {
	if c.provider == nil {
		return
	}
	c.opts.Logf("crashing node %s: its pods' processes are killed", c.opts.NodeName)
	c.provider.Crash()
	c.stopNode()
	select {
	case <-c.nodeDone:
	case <-time.After(10 * time.Second):
	}
	c.provider, c.stopNode = nil, nil
}

// StartNode starts the node again after CrashNode, from nothing but its folder, as
// a kubelet does after a reboot: a pod that was running there has lost its processes
// (a Job's pod fails with ContainerStatusUnknown, a Deployment's restarts).
func (c *Cluster) StartNode(ctx context.Context) error {
	if c.provider != nil {
		return errors.New("the node is running")
	}
	c.opts.Logf("starting node %s again", c.opts.NodeName)
	return c.startNode(ctx, c.opts, c.apiURL)
}

// RestartAPIServer stops the kube-apiserver (SIGTERM, as a control-plane upgrade or a
// crash loop does) and starts it again with the same command line, certificates and
// etcd, returning once it answers /readyz. Clients see refused connections meanwhile.
func (c *Cluster) RestartAPIServer(ctx context.Context) error {
	pid, err := c.apiserverPid()
	if err != nil {
		return err
	}
	args, err := procStrings(pid, "cmdline")
	if err != nil {
		return err
	}
	env, err := procStrings(pid, "environ")
	if err != nil {
		return err
	}
	c.opts.Logf("stopping kube-apiserver (pid %d)", pid)
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	// Its graceful shutdown drains requests for up to a minute; a kubelet gives a
	// control-plane pod less before SIGKILL, and so does this.
	for killAt := start.Add(apiserverGrace); c.running(pid); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(killAt) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	logf, err := os.OpenFile(filepath.Join(c.opts.Dir, "kube-apiserver.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting kube-apiserver again: %w", err)
	}
	c.opts.Logf("kube-apiserver stopped in %s, started again (pid %d)", time.Since(start).Round(time.Millisecond), cmd.Process.Pid)
	// Stop stops it with the other processes, before envtest removes its certificates.
	c.procs = append(c.procs, cmd)
	done := make(chan struct{})
	c.apiserver, c.apiserverDone = cmd, done
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		body, err := c.Client.CoreV1().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			c.opts.Logf("kube-apiserver ready %s after it was stopped", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver not ready 2 minutes after its restart: %v", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// apiserverPid is the running kube-apiserver's: the one RestartAPIServer started, or
// envtest's, found among this process's children by its secure port.
func (c *Cluster) apiserverPid() (int, error) {
	if c.apiserver != nil {
		return c.apiserver.Process.Pid, nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after the last ")".
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		var state string
		var ppid int
		if _, err := fmt.Sscan(rest, &state, &ppid); err != nil || ppid != self {
			continue
		}
		args, err := procStrings(pid, "cmdline")
		if err == nil && filepath.Base(args[0]) == "kube-apiserver" && slices.Contains(args, "--secure-port="+c.apiURL.Port()) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no kube-apiserver child with --secure-port=%s", c.apiURL.Port())
}

// procStrings reads a NUL-separated /proc/PID file (cmdline, environ).
func procStrings(pid int, file string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), file))
	if err != nil {
		return nil, err
	}
	out := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(out) == 0 || out[0] == "" {
		return nil, fmt.Errorf("/proc/%d/%s is empty", pid, file)
	}
	return out, nil
}

// apiserverGrace is how long RestartAPIServer lets the kube-apiserver shut down.
const apiserverGrace = 10 * time.Second

// running tells whether the kube-apiserver pid has not exited: the one
// RestartAPIServer started, or envtest's, which envtest reaps.
func (c *Cluster) running(pid int) bool {
	if c.apiserverDone != nil {
		select {
		case <-c.apiserverDone:
			return false
		default:
			return true
		}
	}
	return syscall.Kill(pid, 0) == nil
}

// waitSchedulable waits for node-lifecycle-controller to lift the not-ready taint the
// apiserver puts on every new node.
func (c *Cluster) waitSchedulable(ctx context.Context, name string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil && len(n.Spec.Taints) == 0 {
			sa, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
			if err == nil && sa != nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("node %s did not become schedulable within a minute (see kube-controller-manager.log)", name)
}

// Stop stops the node's pods, then the node, the controllers and the control plane.
// etcd's data goes with it, so the folders of provisioned volumes are removed too:
// nothing could claim them again.
func (c *Cluster) Stop() {
	var provisioned []string
	if c.Client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if pvs, err := c.Client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{}); err == nil {
			for _, pv := range pvs.Items {
				if pv.Annotations["pv.kubernetes.io/provisioned-by"] == "kubernetes.io/host-path" && pv.Spec.HostPath != nil &&
					strings.HasPrefix(pv.Spec.HostPath.Path, "/tmp/hostpath_pv/") {
					provisioned = append(provisioned, pv.Spec.HostPath.Path)
				}
			}
		}
		cancel()
	}
	defer func() {
		for _, p := range provisioned {
			_ = os.RemoveAll(p)
		}
	}()
	if c.provider != nil {
		c.provider.Shutdown(5 * time.Second)
	}
	if c.stopNode != nil {
		c.stopNode()
		select {
		case <-c.nodeDone:
		case <-time.After(5 * time.Second):
		}
	}
	for _, p := range c.procs {
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
	}
	for _, p := range c.procs {
		done := make(chan struct{})
		go func() { _, _ = p.Process.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
		}
	}
	if c.env != nil {
		_ = c.env.Stop()
	}
}

func selfSignedCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localnode"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// memory is the machine's memory, from /proc/meminfo (16Gi when unreadable).
func memory() resource.Quantity {
	b, err := os.ReadFile("/proc/meminfo")
	if err == nil {
		var kb int64
		for _, line := range strings.Split(string(b), "\n") {
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				return *resource.NewQuantity(kb*1024, resource.BinarySI)
			}
		}
	}
	return resource.MustParse("16Gi")
}
