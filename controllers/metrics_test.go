package controllers

import (
	"fmt"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

// A Detector's series follow its status as it changes: a former phase or stall
// reason, or a threshold or loss its status no longer has, disappears; another
// Detector's series stay; deleting the Detector takes all of its own.
func TestMetricsFollowTheStatus(t *testing.T) {
	det := func(name string, phase kadetv1.Phase, stalled string, model *kadetv1.ModelStatus, training *kadetv1.TrainingStatus) *kadetv1.Detector {
		d := &kadetv1.Detector{ObjectMeta: metav1.ObjectMeta{Namespace: "metrics-test", Name: name}}
		d.Status.Phase, d.Status.Model, d.Status.Training = phase, model, training
		if stalled != "" {
			d.Status.Conditions = []metav1.Condition{{Type: kadetv1.StalledCondition, Status: metav1.ConditionTrue, Reason: stalled}}
		}
		return d
	}
	other := det("other", kadetv1.PhaseServing, "", &kadetv1.ModelStatus{Threshold: 2}, nil)
	recordMetrics(other, 1, nil)
	otherSeries := seriesOf(t, "other")

	steps := []struct {
		det      *kadetv1.Detector
		versions int
		want     map[string]float64
	}{{
		det: det("fraud", kadetv1.PhaseTraining, "", nil, &kadetv1.TrainingStatus{Epoch: 2}), versions: -1,
		want: map[string]float64{"kadet_detector_phase{phase=Training}": 1, "kadet_detector_training_epoch": 2},
	}, {
		det: det("fraud", kadetv1.PhaseFailed, kadetv1.ReasonTrainingFailed, nil, &kadetv1.TrainingStatus{Epoch: 3, Loss: ptr.To(0.5)}), versions: -1,
		want: map[string]float64{"kadet_detector_phase{phase=Failed}": 1, "kadet_detector_stalled{reason=TrainingFailed}": 1,
			"kadet_detector_training_epoch": 3, "kadet_detector_training_loss": 0.5},
	}, {
		det: det("fraud", kadetv1.PhaseFailed, kadetv1.ReasonDataSourceNotFound, nil, nil), versions: -1,
		want: map[string]float64{"kadet_detector_phase{phase=Failed}": 1, "kadet_detector_stalled{reason=DataSourceNotFound}": 1},
	}, {
		det: det("fraud", kadetv1.PhaseServing, "", &kadetv1.ModelStatus{Threshold: 0.25}, &kadetv1.TrainingStatus{Epoch: 9, Loss: ptr.To(0.1)}), versions: 2,
		want: map[string]float64{"kadet_detector_phase{phase=Serving}": 1, "kadet_detector_threshold": 0.25, "kadet_model_versions": 2,
			"kadet_detector_training_epoch": 9, "kadet_detector_training_loss": 0.1},
	}}
	for i, s := range steps {
		recordMetrics(s.det, s.versions, nil)
		if got := seriesOf(t, "fraud"); !reflect.DeepEqual(got, s.want) {
			t.Errorf("step %d: series %v, want %v", i, got, s.want)
		}
	}
	forgetDetector("metrics-test", "fraud")
	if got := seriesOf(t, "fraud"); len(got) != 0 {
		t.Errorf("a deleted Detector keeps series %v", got)
	}
	if got := seriesOf(t, "other"); !reflect.DeepEqual(got, otherSeries) || len(got) == 0 {
		t.Errorf("another Detector's series changed: %v, were %v", got, otherSeries)
	}
	forgetDetector("metrics-test", "other")
}

// seriesOf is each kadet series of the Detector metrics-test/name on the manager's
// registry, by name and any label beyond namespace and detector.
func seriesOf(t *testing.T, name string) map[string]float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
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
			if labels["namespace"] != "metrics-test" || labels["detector"] != name || f.GetName() == "kadet_model_age_seconds" {
				continue
			}
			out[f.GetName()+extra] = m.GetGauge().GetValue()
		}
	}
	return out
}
