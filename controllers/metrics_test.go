package controllers

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

// A Detector's series are its status at each scrape: a former phase or stall reason,
// or a threshold or loss its status no longer has, disappears; the versions are
// counted and the age is the served model's (an older version when it is the one
// served); another Detector's series stay; a deleted Detector has none; a standby
// replica publishes nothing.
func TestMetricsFollowTheStatus(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	det := func(name string, phase kadetv1.Phase, stalled string, model *kadetv1.ModelStatus, training *kadetv1.TrainingStatus) kadetv1.Detector {
		d := kadetv1.Detector{ObjectMeta: metav1.ObjectMeta{Namespace: "metrics-test", Name: name}}
		d.Status.Phase, d.Status.Model, d.Status.Training = phase, model, training
		if stalled != "" {
			d.Status.Conditions = []metav1.Condition{{Type: kadetv1.StalledCondition, Status: metav1.ConditionTrue, Reason: stalled}}
		}
		return d
	}
	version := func(detector, v string, trainedAgo time.Duration) kadetv1.ModelVersion {
		return kadetv1.ModelVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "metrics-test", Name: detector + "-" + v},
			Spec: kadetv1.ModelVersionSpec{Detector: detector, Version: v, TrainedAt: ptr.To(metav1.NewTime(now.Add(-trainedAgo)))}}
	}
	other := det("other", kadetv1.PhaseServing, "", &kadetv1.ModelStatus{Version: "v1", Threshold: 2, TrainedAt: ptr.To(metav1.NewTime(now.Add(-time.Hour)))}, nil)
	otherVersions := []kadetv1.ModelVersion{version("other", "v1", time.Hour)}
	otherWant := map[string]float64{"kadet_detector_phase{phase=Serving}": 1, "kadet_detector_threshold": 2, "kadet_model_versions": 1,
		"kadet_model_age_seconds": 3600}

	pinnedOlder := det("fraud", kadetv1.PhaseServing, "", &kadetv1.ModelStatus{Version: "v2", Threshold: 0.25, TrainedAt: ptr.To(metav1.NewTime(now))},
		&kadetv1.TrainingStatus{Epoch: 9, Loss: ptr.To(0.1)})
	pinnedOlder.Status.ServedVersion = "v1"
	steps := []struct {
		fraud    *kadetv1.Detector
		versions []kadetv1.ModelVersion
		want     map[string]float64
	}{{
		fraud: ptr.To(det("fraud", kadetv1.PhaseTraining, "", nil, &kadetv1.TrainingStatus{Epoch: 2})),
		want:  map[string]float64{"kadet_detector_phase{phase=Training}": 1, "kadet_detector_training_epoch": 2, "kadet_model_versions": 0},
	}, {
		fraud: ptr.To(det("fraud", kadetv1.PhaseFailed, kadetv1.ReasonTrainingFailed, nil, &kadetv1.TrainingStatus{Epoch: 3, Loss: ptr.To(0.5)})),
		want: map[string]float64{"kadet_detector_phase{phase=Failed}": 1, "kadet_detector_stalled{reason=TrainingFailed}": 1,
			"kadet_detector_training_epoch": 3, "kadet_detector_training_loss": 0.5, "kadet_model_versions": 0},
	}, {
		fraud: ptr.To(det("fraud", kadetv1.PhaseFailed, kadetv1.ReasonDataSourceNotFound, nil, nil)),
		want:  map[string]float64{"kadet_detector_phase{phase=Failed}": 1, "kadet_detector_stalled{reason=DataSourceNotFound}": 1, "kadet_model_versions": 0},
	}, {
		fraud:    &pinnedOlder,
		versions: []kadetv1.ModelVersion{version("fraud", "v1", 2*time.Hour), version("fraud", "v2", 0)},
		want: map[string]float64{"kadet_detector_phase{phase=Serving}": 1, "kadet_detector_threshold": 0.25, "kadet_model_versions": 2,
			"kadet_detector_training_epoch": 9, "kadet_detector_training_loss": 0.1, "kadet_model_age_seconds": 7200},
	}, {
		fraud: nil, // deleted
		want:  map[string]float64{},
	}}
	elected := make(chan struct{})
	close(elected)
	for i, s := range steps {
		dets, versions := []kadetv1.Detector{other}, slices.Concat(otherVersions, s.versions)
		if s.fraud != nil {
			dets = append(dets, *s.fraud)
		}
		c := &statusCollector{elected: elected, now: func() time.Time { return now },
			list: func(context.Context) ([]kadetv1.Detector, []kadetv1.ModelVersion, error) { return dets, versions, nil }}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		if got := seriesOf(t, reg, "metrics-test", "fraud"); !reflect.DeepEqual(got, s.want) {
			t.Errorf("step %d: series %v, want %v", i, got, s.want)
		}
		if got := seriesOf(t, reg, "metrics-test", "other"); !reflect.DeepEqual(got, otherWant) {
			t.Errorf("step %d: another Detector's series %v, want %v", i, got, otherWant)
		}
	}

	standby := &statusCollector{elected: make(chan struct{}), now: time.Now,
		list: func(context.Context) ([]kadetv1.Detector, []kadetv1.ModelVersion, error) {
			return []kadetv1.Detector{other}, nil, nil
		}}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(standby)
	if got := seriesOf(t, reg, "metrics-test", "other"); len(got) != 0 {
		t.Errorf("a replica that does not lead publishes %v", got)
	}

	broken := &statusCollector{elected: elected, now: time.Now,
		list: func(context.Context) ([]kadetv1.Detector, []kadetv1.ModelVersion, error) {
			return nil, nil, errors.New("the cache has not started")
		}}
	reg = prometheus.NewPedanticRegistry()
	reg.MustRegister(broken)
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "the cache has not started") {
		t.Errorf("a failed read of the cache is not reported to the scraper: %v", err)
	}
}

// seriesOf is each series g gathers for the Detector ns/name, by name and any label
// beyond namespace and detector.
func seriesOf(t *testing.T, g prometheus.Gatherer, ns, name string) map[string]float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels, extra := map[string]string{}, ""
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
				if l.GetName() != "namespace" && l.GetName() != "detector" {
					extra = fmt.Sprintf("{%s=%s}", l.GetName(), l.GetValue())
				}
			}
			if labels["namespace"] != ns || labels["detector"] != name {
				continue
			}
			out[f.GetName()+extra] = m.GetGauge().GetValue()
		}
	}
	return out
}

// BenchmarkStatusCollectorScrape is one scrape of 10,000 Serving Detectors' series
// (six each), what the registry allocates included.
func BenchmarkStatusCollectorScrape(b *testing.B) {
	trained := metav1.Now()
	dets := make([]kadetv1.Detector, 10000)
	versions := make([]kadetv1.ModelVersion, len(dets))
	for i := range dets {
		d := &dets[i]
		d.Namespace, d.Name = fmt.Sprintf("scale-%02d", i%10), fmt.Sprintf("detector-%05d", i)
		d.Status.Phase = kadetv1.PhaseServing
		d.Status.Model = &kadetv1.ModelStatus{Version: "v1", Threshold: 1, TrainedAt: &trained}
		d.Status.Training = &kadetv1.TrainingStatus{Epoch: 10, Loss: ptr.To(0.1)}
		versions[i] = kadetv1.ModelVersion{ObjectMeta: metav1.ObjectMeta{Namespace: d.Namespace, Name: d.Name + "-v1"},
			Spec: kadetv1.ModelVersionSpec{Detector: d.Name, Version: "v1", TrainedAt: &trained}}
	}
	elected := make(chan struct{})
	close(elected)
	reg := prometheus.NewRegistry()
	reg.MustRegister(&statusCollector{elected: elected, now: time.Now,
		list: func(context.Context) ([]kadetv1.Detector, []kadetv1.ModelVersion, error) { return dets, versions, nil }})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
