package serve

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/normalize"
	"github.com/kadet-dev/kadet/detector/preprocess"
	"github.com/kadet-dev/kadet/detector/scoring"
)

// shadowQueue bounds the batches waiting for the shadow model. Shadow scoring never
// delays an answer: when the shadow falls behind, batches are dropped and counted.
const shadowQueue = 64

// shadowJob is rows the serving model scored, to score again with the shadow model:
// rows one by one (or one run of a sequence model's rows), or runs of the watch loop
// whose newest rows count.
type shadowJob struct {
	x []float32
	// runs > 0: x holds runs of RunRows rows each, and served the scores of their
	// newest rows (the watch loop's rule).
	runs int
	// at is the unix time of the runs' newest rows.
	at int64
	// times and entity are a request's rows' times and entity (runs == 0), when it
	// gave them.
	times  []int64
	entity *string
	// keys are the runs' entities; prepare gives the shadow model its likelihood
	// states and scalers for them (nil: none, and each entity scaled by its run).
	keys    []string
	prepare func(context.Context, *artifact.Model) ([]*normalize.State, []*preprocess.Scaler, error)
	scored  []scoring.Scored
}

// shadow is a model version scored beside the served one on the same rows, whose
// results are counted but never answered with.
type shadow struct {
	l       *loaded
	since   time.Time
	queue   chan shadowJob
	mu      sync.Mutex
	stats   ShadowStats
	metrics *shadowMetrics
}

// ShadowStats count what a shadow model did on live rows since it was loaded.
type ShadowStats struct {
	Version string    `json:"version"`
	Since   time.Time `json:"since"`
	// Rows both models scored; Anomalies the shadow flagged among them, and
	// ServedAnomalies the serving model flagged; Agreed the rows on which both gave
	// the same verdict. Dropped rows the shadow could not keep up with.
	Rows            int64 `json:"rows"`
	Anomalies       int64 `json:"anomalies"`
	ServedAnomalies int64 `json:"servedAnomalies"`
	Agreed          int64 `json:"agreed"`
	Dropped         int64 `json:"dropped"`
	// Incompatible says why the shadow cannot score the served model's rows (other
	// features, another window); empty when it can.
	Incompatible string `json:"incompatible,omitempty"`
	// ExpectedAnomalyRate is the share of normal rows the shadow's threshold is meant
	// to flag (0 when its file does not say).
	ExpectedAnomalyRate float64 `json:"expectedAnomalyRate"`
}

// compatible says why shadow cannot score what served scores, or "".
func compatible(served, shadow *artifact.Model) string {
	if !slices.Equal(served.Meta.Features, shadow.Meta.Features) {
		return "its features differ from the served model's"
	}
	if scoring.RunRows(served) != scoring.RunRows(shadow) {
		return "its window differs from the served model's"
	}
	return ""
}

func (sh *shadow) run() {
	for j := range sh.queue {
		sh.score(j)
	}
}

// offer queues a job, or counts its rows as dropped when the shadow is behind.
func (sh *shadow) offer(j shadowJob) {
	select {
	case sh.queue <- j:
	default:
		sh.drop(len(j.scored))
	}
}

// drop counts n rows the shadow did not score.
func (sh *shadow) drop(n int) {
	sh.mu.Lock()
	sh.stats.Dropped += int64(n)
	sh.mu.Unlock()
	sh.metrics.dropped.Add(float64(n))
}

func (sh *shadow) score(j shadowJob) {
	var got []bool
	if j.runs > 0 {
		// The served model's scores went through its likelihood stage and its entities'
		// scalers: the shadow's go through its own, or the two would not compare.
		var states []*normalize.State
		var scalers []*preprocess.Scaler
		var err error
		if j.prepare != nil {
			states, scalers, err = j.prepare(context.Background(), sh.l.model)
		} else {
			scalers, err = entityScalers(sh.l.model, j)
		}
		if err != nil {
			// Its states could not be warmed up (a Prometheus read failed): the rows
			// count as dropped, and the next tick tries again.
			sh.drop(len(j.scored))
			return
		}
		res, err := scoring.ScoreNewest(sh.l.model, j.x, j.runs, j.at, states, scalers)
		if err != nil {
			return
		}
		for _, r := range res {
			got = append(got, r.Anomaly)
		}
	} else {
		// A request's rows, scaled and timed as the shadow's own model asks: by the
		// entity's scaler it learnt (or one of the rows), at the rows' hours.
		var sc *preprocess.Scaler
		if j.entity != nil {
			var err error
			if sc, _, err = sh.l.model.Meta.EntityScaler(*j.entity, j.x); err != nil {
				return
			}
		}
		res, err := scoring.ScoreRun(sh.l.model, sc, j.x, 0, j.times)
		if err != nil {
			return
		}
		for _, r := range res {
			got = append(got, r.Anomaly)
		}
	}
	var anomalies, served, agreed int64
	for i, a := range got {
		if a {
			anomalies++
		}
		if j.scored[i].Anomaly {
			served++
		}
		if a == j.scored[i].Anomaly {
			agreed++
		}
	}
	sh.mu.Lock()
	s := &sh.stats
	s.Rows += int64(len(got))
	s.Anomalies += anomalies
	s.ServedAnomalies += served
	s.Agreed += agreed
	rate, agreement := float64(s.Anomalies)/float64(s.Rows), float64(s.Agreed)/float64(s.Rows)
	sh.mu.Unlock()
	sh.metrics.rows.Add(float64(len(got)))
	sh.metrics.anomalies.Add(float64(anomalies))
	sh.metrics.rate.Set(rate)
	sh.metrics.agreement.Set(agreement)
}

// Stats returns the counts so far.
func (sh *shadow) Stats() ShadowStats {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.stats
}

// shadowMetrics are the shadow's series, labelled with its version.
type shadowMetrics struct {
	rows, anomalies, dropped prometheus.Counter
	rate, agreement          prometheus.Gauge
}

type shadowVecs struct {
	rows, anomalies, dropped *prometheus.CounterVec
	rate, agreement          *prometheus.GaugeVec
}

func newShadowVecs(reg prometheus.Registerer) *shadowVecs {
	v := &shadowVecs{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kadet_shadow_rows_scored_total", Help: "Rows the shadow model scored beside the served one.",
		}, []string{"version"}),
		anomalies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kadet_shadow_anomalies_total", Help: "Rows the shadow model flagged.",
		}, []string{"version"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kadet_shadow_dropped_rows_total", Help: "Rows the shadow model skipped because it fell behind.",
		}, []string{"version"}),
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kadet_shadow_anomaly_rate", Help: "Share of the rows scored in shadow that the shadow model flagged.",
		}, []string{"version"}),
		agreement: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kadet_shadow_agreement", Help: "Share of the rows scored in shadow on which the shadow and served models gave the same verdict.",
		}, []string{"version"}),
	}
	reg.MustRegister(v.rows, v.anomalies, v.dropped, v.rate, v.agreement)
	return v
}

func (v *shadowVecs) forVersion(version string) *shadowMetrics {
	return &shadowMetrics{rows: v.rows.WithLabelValues(version), anomalies: v.anomalies.WithLabelValues(version),
		dropped: v.dropped.WithLabelValues(version), rate: v.rate.WithLabelValues(version), agreement: v.agreement.WithLabelValues(version)}
}

// entityScalers are the scalers of j's runs under m: nil when m scales every entity
// alike; an entity m did not see is scaled by the rows of its run.
func entityScalers(m *artifact.Model, j shadowJob) ([]*preprocess.Scaler, error) {
	if !m.Meta.ScalesByEntity() {
		return nil, nil
	}
	if len(j.keys) != j.runs {
		return nil, fmt.Errorf("%d entities for %d runs", len(j.keys), j.runs)
	}
	n := len(j.x) / j.runs
	out := make([]*preprocess.Scaler, j.runs)
	for k, key := range j.keys {
		sc, _, err := m.Meta.EntityScaler(key, j.x[k*n:(k+1)*n])
		if err != nil {
			return nil, err
		}
		out[k] = sc
	}
	return out, nil
}
