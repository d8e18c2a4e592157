package builders

import (
	"fmt"
	"path"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

// ModelVersionName names the ModelVersion of one model: the Detector and the version,
// so a training result maps to one object however often it is recorded.
func ModelVersionName(det *kadetv1.Detector, version string) string {
	return det.Name + "-" + version
}

// ModelVersion records a training result of det, trained from plan on ds.
func ModelVersion(det *kadetv1.Detector, ds *kadetv1.DataSource, plan *TrainingPlan, m *kadetv1.ModelStatus, kadet string) *kadetv1.ModelVersion {
	meta := objectMeta(det, ModelVersionName(det, m.Version), ComponentTraining)
	mv := &kadetv1.ModelVersion{
		TypeMeta:   metav1.TypeMeta{APIVersion: kadetv1.GroupVersion.String(), Kind: "ModelVersion"},
		ObjectMeta: meta,
		Spec: kadetv1.ModelVersionSpec{
			Detector: det.Name, Version: m.Version, Digest: m.Digest, Threshold: m.Threshold, Metrics: m.Metrics,
			SpecHash: m.SpecHash, ScoringRule: m.ScoringRule, Normalization: m.Normalization, ScaleBy: m.ScaleBy, DetectorVersion: kadet,
			Data: modelVersionData(ds, plan, m),
		},
	}
	if plan != nil {
		mv.Spec.Seed = plan.Request.Training.Seed
	}
	mv.Spec.TrainedAt = m.TrainedAt
	return mv
}

func modelVersionData(ds *kadetv1.DataSource, plan *TrainingPlan, m *kadetv1.ModelStatus) kadetv1.ModelVersionData {
	d := kadetv1.ModelVersionData{Source: ds.Spec.Type(), DataSource: ds.Name}
	if plan != nil {
		d.Digest = plan.Request.Data.Digest
	}
	switch {
	case ds.Spec.CSV != nil && ds.Spec.CSV.PersistentVolumeClaim != nil:
		f := ds.Spec.CSV.PersistentVolumeClaim
		d.Location = "pvc://" + path.Join(f.ClaimName, f.Path)
	case ds.Spec.CSV != nil:
		d.Location = ds.Spec.CSV.URL
	case ds.Spec.Images != nil && ds.Spec.Images.File.PersistentVolumeClaim != nil:
		f := ds.Spec.Images.File.PersistentVolumeClaim
		d.Location = "pvc://" + path.Join(f.ClaimName, f.Path)
	case ds.Spec.Images != nil:
		d.Location = ds.Spec.Images.File.URL
	case ds.Spec.Prometheus != nil:
		d.Location = ds.Spec.Prometheus.URL
		for _, q := range ds.Spec.Prometheus.Queries {
			d.Queries = append(d.Queries, fmt.Sprintf("%s=%s", q.Name, q.Query))
		}
	}
	if md := m.Data; md != nil {
		d.Start, d.End, d.Rows, d.Entities, d.Digest = new(md.Start), new(md.End), md.Rows, md.Entities, md.Digest
	}
	return d
}
