package controllers

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

// Field indexes that map a changed object to the kadet objects that refer to it.
const (
	// dataSourceRefIndex indexes DataSources by "Kind/name" of each object they refer to.
	dataSourceRefIndex = "anomaly.kadet.dev/references"
	// detectorDataSourceIndex indexes Detectors by their DataSource's name.
	detectorDataSourceIndex = "anomaly.kadet.dev/dataSource"
)

// SetupIndexes registers the field indexes both controllers query. Call it once per
// manager, before the controllers start.
func SetupIndexes(ctx context.Context, idx client.FieldIndexer) error {
	err := idx.IndexField(ctx, &kadetv1.DataSource{}, dataSourceRefIndex, func(o client.Object) []string {
		var keys []string
		for _, ref := range references(&o.(*kadetv1.DataSource).Spec) {
			keys = append(keys, ref.indexKey())
		}
		return keys
	})
	if err != nil {
		return err
	}
	return idx.IndexField(ctx, &kadetv1.Detector{}, detectorDataSourceIndex, func(o client.Object) []string {
		return []string{o.(*kadetv1.Detector).Spec.DataSourceRef.Name}
	})
}
