package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/drift"
	"github.com/kadet-dev/kadet/detector/serve"
)

// driftReport is what the pod says of r: rounded, so steady traffic gives the same
// report and no write.
func driftReport(version string, r drift.Report) contract.DriftReport {
	out := contract.DriftReport{Version: version, Rows: r.Rows, Window: r.Window, ScoreKS: round2(r.ScoreKS)}
	for _, f := range r.Top(contract.DriftReportedPSI, contract.DriftReportedFeatures) {
		out.Features = append(out.Features, contract.FeatureDrift{Name: f.Name, PSI: round2(f.PSI)})
	}
	return out
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// reportDrift writes this pod's drift report into the scoring pods' status ConfigMap,
// under its own key, whenever it changed (checked every DriftReportInterval) and at
// least every DriftHeartbeat.
func reportDrift(ctx context.Context, srv *serve.Server, configMap string, log *slog.Logger) {
	ns, pod := os.Getenv(contract.EnvPodNamespace), os.Getenv(contract.EnvPodName)
	if configMap == "" || ns == "" || pod == "" {
		return
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		log.Error("drift reports are off: the pod has no API access", "error", err.Error())
		return
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Error("drift reports are off", "error", err.Error())
		return
	}
	key := contract.DriftReportPrefix + pod
	var last contract.DriftReport
	var lastAt time.Time
	warned := false
	t := time.NewTicker(contract.DriftReportInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		version, r, ok := srv.Drift()
		if !ok {
			continue
		}
		rep := driftReport(version, r)
		same := sameReport(rep, last)
		if same && time.Since(lastAt) < contract.DriftHeartbeat {
			continue
		}
		rep.Time = time.Now().UTC().Truncate(time.Second)
		b, _ := json.Marshal(rep)
		patch, _ := json.Marshal(map[string]any{"data": map[string]string{key: string(b)}})
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := client.CoreV1().ConfigMaps(ns).Patch(wctx, configMap, types.MergePatchType, patch, metav1.PatchOptions{})
		cancel()
		if err != nil {
			if !warned && ctx.Err() == nil {
				log.Error("reporting drift", "configmap", ns+"/"+configMap, "error", err.Error())
				warned = true
			}
			continue
		}
		last, lastAt, warned = rep, time.Now(), false
	}
}

// sameReport compares reports but for their time.
func sameReport(a, b contract.DriftReport) bool {
	a.Time, b.Time = time.Time{}, time.Time{}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
