package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"time"

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

// roundedFeedback rounds a comparison's figures to three decimals: a gate reads them
// against a tolerance of hundredths.
func roundedFeedback(c *contract.FeedbackComparison) *contract.FeedbackComparison {
	if c == nil {
		return nil
	}
	r3 := func(v float64) float64 { return math.Round(v*1000) / 1000 }
	out := *c
	out.ServedF1, out.ShadowF1, out.ServedAUROC, out.ShadowAUROC = r3(c.ServedF1), r3(c.ShadowF1), r3(c.ServedAUROC), r3(c.ShadowAUROC)
	return &out
}

func shadowReport(served string, s serve.ShadowStats) contract.ShadowReport {
	return contract.ShadowReport{Version: s.Version, Served: served, Since: s.Since, Rows: s.Rows, Anomalies: s.Anomalies,
		ServedAnomalies: s.ServedAnomalies, Agreed: s.Agreed, Dropped: s.Dropped,
		ExpectedAnomalyRate: s.ExpectedAnomalyRate, Incompatible: s.Incompatible}
}

// statusReporter (reportScoring) writes this pod's drift and shadow reports into the scoring pods'
// status ConfigMap, each under the pod's own key, when they changed (checked every
// DriftReportInterval) and at least every DriftHeartbeat.
type statusReporter struct {
	srv       *serve.Server
	client    kubernetes.Interface
	ns, pod   string
	configMap string
	log       *slog.Logger

	last   map[string]string // key -> report without its time
	lastAt map[string]time.Time
	warned bool
}

func reportScoring(ctx context.Context, srv *serve.Server, configMap string, log *slog.Logger) {
	ns, pod := os.Getenv(contract.EnvPodNamespace), os.Getenv(contract.EnvPodName)
	if configMap == "" || ns == "" || pod == "" {
		return
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		log.Error("status reports are off: the pod has no API access", "error", err.Error())
		return
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Error("status reports are off", "error", err.Error())
		return
	}
	r := &statusReporter{srv: srv, client: client, ns: ns, pod: pod, configMap: configMap, log: log,
		last: map[string]string{}, lastAt: map[string]time.Time{}}
	t := time.NewTicker(contract.DriftReportInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.report(ctx, time.Now())
		}
	}
}

// report writes the reports that changed or are due for a heartbeat, in one patch.
func (r *statusReporter) report(ctx context.Context, now time.Time) {
	version, d, ok := r.srv.Drift()
	if !ok {
		return
	}
	due := map[string]string{}
	stamp := func(key string, untimed any, timed func(time.Time) any) {
		b, _ := json.Marshal(untimed)
		if r.last[key] == string(b) && now.Sub(r.lastAt[key]) < contract.DriftHeartbeat {
			return
		}
		full, _ := json.Marshal(timed(now.UTC().Truncate(time.Second)))
		due[key] = string(full)
		r.last[key] = string(b)
	}
	dr := driftReport(version, d)
	stamp(contract.DriftReportPrefix+r.pod, dr, func(t time.Time) any { dr.Time = t; return dr })
	if s, fb, ok := r.srv.Shadow(); ok {
		sr := shadowReport(version, s)
		sr.Feedback = roundedFeedback(fb)
		stamp(contract.ShadowReportPrefix+r.pod, sr, func(t time.Time) any { sr.Time = t; return sr })
	}
	if len(due) == 0 {
		return
	}
	if err := patchData(ctx, r.client, r.ns, r.configMap, due); err != nil {
		for k := range due {
			delete(r.last, k) // written next time
		}
		if !r.warned && ctx.Err() == nil {
			r.log.Error("reporting status", "configmap", r.ns+"/"+r.configMap, "error", err.Error())
			r.warned = true
		}
		return
	}
	for k := range due {
		r.lastAt[k] = now
	}
	r.warned = false
}
