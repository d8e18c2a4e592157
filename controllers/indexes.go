package controllers

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

// Field indexes that map a changed object to the kadet objects that refer to it.
const (
	// dataSourceRefIndex indexes DataSources by "Kind/name" of each object they refer to.
	dataSourceRefIndex = "anomaly.kadet.dev/references"
	// detectorDataSourceIndex indexes Detectors by their DataSource's name.
	detectorDataSourceIndex = "anomaly.kadet.dev/dataSource"
	// childIndex indexes Jobs, ConfigMaps and ModelVersions by the Detector that
	// controls them, so listing one Detector's children reads those alone rather
	// than every object of the kind in the namespace (3,000 ConfigMaps beside 1,000
	// Detectors), and never an object that only carries a Detector's label: kadet
	// deletes what it lists.
	childIndex = "anomaly.kadet.dev/detector"
)

// childrenOf selects the Jobs, ConfigMaps or ModelVersions of the Detector named name
// (with client.InNamespace).
func childrenOf(name string) client.MatchingFields {
	return client.MatchingFields{childIndex: name}
}

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
	err = idx.IndexField(ctx, &kadetv1.Detector{}, detectorDataSourceIndex, func(o client.Object) []string {
		return []string{o.(*kadetv1.Detector).Spec.DataSourceRef.Name}
	})
	if err != nil {
		return err
	}
	for _, kind := range []client.Object{&batchv1.Job{}, &corev1.ConfigMap{}, &kadetv1.ModelVersion{}} {
		err := idx.IndexField(ctx, kind, childIndex, func(o client.Object) []string {
			if name, ok := detectorOf(metav1.GetControllerOfNoCopy(o)); ok {
				return []string{name}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
