package builders

import (
	"fmt"
	"math"
	"path"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/detector/contract"
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
			Seasonality: m.Seasonality, SeasonalPeriod: m.SeasonalPeriod,
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
		d.Location = contract.RedactURL(ds.Spec.CSV.URL)
	case ds.Spec.Images != nil && ds.Spec.Images.File.PersistentVolumeClaim != nil:
		f := ds.Spec.Images.File.PersistentVolumeClaim
		d.Location = "pvc://" + path.Join(f.ClaimName, f.Path)
	case ds.Spec.Images != nil:
		d.Location = contract.RedactURL(ds.Spec.Images.File.URL)
	case ds.Spec.Prometheus != nil:
		d.Location = contract.RedactURL(ds.Spec.Prometheus.URL)
		for _, q := range ds.Spec.Prometheus.Queries {
			d.Queries = append(d.Queries, fmt.Sprintf("%s=%s", q.Name, q.Query))
		}
	}
	if md := m.Data; md != nil {
		d.Start, d.End, d.Rows, d.Entities, d.Digest = new(md.Start), new(md.End), md.Rows, md.Entities, md.Digest
	}
	return d
}

// BacktestSummary is a training result's backtest in the API's terms, nil for none;
// episodes a day rounded to hundredths, as kubectl shows them.
func BacktestSummary(b *contract.BacktestResult) *kadetv1.BacktestSummary {
	if b == nil {
		return nil
	}
	out := &kadetv1.BacktestSummary{
		Skipped: Truncate(b.Skipped, 512), Rows: int64(b.Rows), Entities: int32(b.Entities), AnomalousRows: int64(b.AnomalousRows),
		Episodes: int32(b.Episodes), EpisodesPerDay: math.Round(b.EpisodesPerDay*100) / 100, MergeGap: b.MergeGap,
	}
	if b.Start != nil && b.End != nil {
		out.Start, out.End = new(metav1.NewTime(*b.Start)), new(metav1.NewTime(*b.End))
	}
	for _, e := range b.Largest[:min(len(b.Largest), contract.BacktestTop)] {
		out.Largest = append(out.Largest, kadetv1.BacktestEpisode{Entity: Truncate(e.Entity, 1024), Start: metav1.NewTime(e.Start),
			End: metav1.NewTime(e.End), Rows: int64(e.Rows), Peak: e.Peak})
	}
	return out
}

// Truncate cuts s to at most n bytes on a rune boundary, ending in "..." when cut, so
// text a pod wrote fits the field's MaxLength.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
