// Command localcluster runs a Kubernetes cluster on this machine without a container
// runtime: a real control plane on loopback and one node whose pods are local
// processes. `make demo` and the end-to-end tests use it.
//
//	localcluster up --dir DIR --assets ASSETS --image IMAGE=HOSTDIR [--pod-cidr 127.0.10.0/24]
//
// writes DIR/kubeconfig, then DIR/ready once the node takes pods, and runs until
// SIGTERM or SIGINT, when it stops every pod's processes and the control plane.
//
// Faults, for trying what survives them: SIGUSR1 restarts the kube-apiserver (same
// flags, certificates and etcd) and adds a line to DIR/apiserver-restarts once it is
// ready again; SIGUSR2 crashes the node (every pod's processes SIGKILLed, no more
// lease or status) and creates DIR/node-down, and the next SIGUSR2 starts it again
// as after a reboot (a Job's running pod fails with ContainerStatusUnknown, exit code
// 137; a Deployment's restarts) and removes DIR/node-down.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kadet-dev/kadet/hack/localcluster/cluster"
	"github.com/kadet-dev/kadet/hack/localcluster/node"
)

type images map[string]string

func (m images) String() string { return fmt.Sprint(map[string]string(m)) }
func (m images) Set(v string) error {
	k, dir, ok := strings.Cut(v, "=")
	if !ok || k == "" || dir == "" {
		return fmt.Errorf("want IMAGE=HOSTDIR, got %q", v)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	m[k] = abs
	return nil
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == node.InitCommand {
		err := node.RunInit(os.Args[2])
		fmt.Fprintln(os.Stderr, err)
		os.Exit(127)
	}
	if len(os.Args) < 2 || os.Args[1] != "up" {
		fmt.Fprintln(os.Stderr, "usage: localcluster up --dir DIR --assets ASSETS --image IMAGE=HOSTDIR [--pod-cidr CIDR]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	dir := fs.String("dir", "", "folder for the kubeconfig, logs and pods (required)")
	assets := fs.String("assets", os.Getenv("KUBEBUILDER_ASSETS"), "folder holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler")
	cidr := fs.String("pod-cidr", "127.0.10.0/24", "loopback range for pod IPs")
	imgs := images{}
	fs.Var(imgs, "image", "IMAGE=HOSTDIR: run IMAGE's commands from HOSTDIR (repeatable; IMAGE may omit the tag, or be *)")
	_ = fs.Parse(os.Args[2:])
	if *dir == "" || *assets == "" {
		fmt.Fprintln(os.Stderr, "localcluster up: --dir and --assets (or KUBEBUILDER_ASSETS) are required")
		os.Exit(2)
	}
	prefix, err := netip.ParsePrefix(*cidr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "localcluster up: --pod-cidr: %v\n", err)
		os.Exit(2)
	}
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	_ = os.Remove(filepath.Join(absDir, "ready"))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s localcluster: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
	start := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{
		Assets: *assets, Dir: absDir, PodCIDR: prefix, Images: imgs, Logf: logf,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "localcluster up: %v\n", err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(absDir, "ready"), []byte(fmt.Sprintln(os.Getpid())), 0o644); err != nil {
		logf("writing ready file: %v", err)
	}
	logf("cluster ready in %.1fs; export KUBECONFIG=%s", time.Since(start).Seconds(), c.Kubeconfig)
	faults := make(chan os.Signal, 4)
	signal.Notify(faults, syscall.SIGUSR1, syscall.SIGUSR2)
	nodeDown := filepath.Join(absDir, "node-down")
	_ = os.Remove(nodeDown)
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case s := <-faults:
			if err := fault(ctx, c, s, absDir, nodeDown); err != nil {
				logf("%v", err)
			}
		}
	}
	logf("stopping")
	c.Stop()
	_ = os.Remove(filepath.Join(absDir, "ready"))
	_ = os.Remove(nodeDown)
}

// fault carries out the fault signal s asks for (see the package comment).
func fault(ctx context.Context, c *cluster.Cluster, s os.Signal, dir, nodeDown string) error {
	if s == syscall.SIGUSR1 {
		started := time.Now()
		if err := c.RestartAPIServer(ctx); err != nil {
			return fmt.Errorf("restarting kube-apiserver: %w", err)
		}
		f, err := os.OpenFile(filepath.Join(dir, "apiserver-restarts"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = fmt.Fprintf(f, "%s ready again after %.1fs\n", time.Now().UTC().Format(time.RFC3339Nano), time.Since(started).Seconds())
		return err
	}
	if _, err := os.Stat(nodeDown); err == nil {
		if err := c.StartNode(ctx); err != nil {
			return fmt.Errorf("starting the node again: %w", err)
		}
		return os.Remove(nodeDown)
	}
	c.CrashNode()
	return os.WriteFile(nodeDown, nil, 0o644)
}
