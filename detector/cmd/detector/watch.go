package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/serve"
	"github.com/kadet-dev/kadet/detector/watch"
)

// startWatch runs the watch loop of the request in file until ctx ends. In a pod with a
// Lease named, the scoring pods elect one to watch, so each entity is scored by one
// pod at a time; the leader also reports the watch's status to its ConfigMap.
func startWatch(ctx context.Context, file string, srv *serve.Server, reg *prometheus.Registry, log *slog.Logger) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return usageError{fmt.Sprintf("--watch: %v", err)}
	}
	req, err := contract.ParseWatchRequest(b)
	if err != nil {
		return usageError{fmt.Sprintf("--watch %s: %v", file, err)}
	}
	times, _ := req.Intervals()
	w, err := watch.New(watch.Options{
		Namespace: req.Detector.Namespace, Detector: req.Detector.Name, Prometheus: req.Prometheus,
		Interval: times.Interval, Delay: times.Delay, Model: srv.Model, Observe: srv.Observe, Registerer: reg, Logger: log,
	})
	if err != nil {
		return usageError{fmt.Sprintf("--watch %s: %v", file, err)}
	}
	log.Info("watching", "prometheus", req.Prometheus.URL, "interval", times.Interval.String(), "delay", times.Delay.String())
	ns, pod := os.Getenv(contract.EnvPodNamespace), os.Getenv(contract.EnvPodName)
	if req.Lease == "" || ns == "" || pod == "" {
		go w.Run(ctx)
		return nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return fmt.Errorf("--watch: the request names Lease %s but the pod has no API access: %w", req.Lease, err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	lease, renew, retry := electionTimes(times.Interval)
	// The identity is the pod's name plus a per-process suffix: a restarted container
	// keeps its pod's name, and with that name alone it would take for its own the
	// lease its dead predecessor held, skipping the standby, which is ready now.
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	identity := pod + "_" + hex.EncodeToString(suffix[:])
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: req.Lease},
			Client:     client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
		},
		LeaseDuration: lease, RenewDeadline: renew, RetryPeriod: retry,
		// A pod told to stop hands the lead over at once instead of after the lease.
		ReleaseOnCancel: true,
		Name:            req.Lease,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("leading the watch", "lease", req.Lease)
				go reportStatus(ctx, client, ns, req.StatusConfigMap, pod, w, log)
				w.Run(ctx)
			},
			OnStoppedLeading: func() {
				// Scores exported after the lead moved would duplicate the new leader's.
				w.Reset()
				log.Info("stopped leading the watch", "lease", req.Lease)
			},
		},
	})
	if err != nil {
		return err
	}
	go func() {
		// Run returns when the lead is lost; stand again until the pod stops.
		for ctx.Err() == nil {
			elector.Run(ctx)
		}
	}()
	return nil
}

// patchData merges data into the data of the ConfigMap ns/name, within 5 s: each pod
// writes only its own keys, so a merge patch needs no read first.
func patchData(ctx context.Context, client kubernetes.Interface, ns, name string, data map[string]string) error {
	patch, _ := json.Marshal(map[string]any{"data": data})
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := client.CoreV1().ConfigMaps(ns).Patch(wctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// electionTimes scale the Lease to the interval, so a standby takes over within two
// intervals of the leader's death (one for the lease to expire, then a retry of a
// sixth of it, jittered by up to 1.2), between 2 s and 15 s so short intervals do not
// hammer the API server and long ones do not leave a gap of minutes.
func electionTimes(interval time.Duration) (lease, renew, retry time.Duration) {
	lease = min(max(interval, 2*time.Second), 15*time.Second)
	return lease, lease * 2 / 3, lease / 6
}

// reportStatus writes the watch's status into the ConfigMap at most every
// contract.WatchStatusInterval while this pod leads.
func reportStatus(ctx context.Context, client kubernetes.Interface, ns, name, pod string, w *watch.Watcher, log *slog.Logger) {
	if name == "" {
		return
	}
	var last string
	warned := false
	write := func() {
		s := w.Status()
		s.Leader = pod
		b, _ := json.Marshal(s)
		if string(b) == last {
			return
		}
		if err := patchData(ctx, client, ns, name, map[string]string{contract.WatchStatusKey: string(b)}); err != nil {
			if !warned && ctx.Err() == nil {
				log.Error("reporting watch status", "configmap", ns+"/"+name, "error", err.Error())
				warned = true
			}
			return
		}
		last, warned = string(b), false
	}
	// The first report follows the first ticks, so status shows the watch started.
	select {
	case <-ctx.Done():
		return
	case <-time.After(5 * time.Second):
	}
	write()
	t := time.NewTicker(contract.WatchStatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			write()
		}
	}
}
