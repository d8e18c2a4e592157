package controllers

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

// Fixtures in the style of cert-manager's test/unit/gen: a base object plus options.

const sampleCSV = "amount,hour,label\n12.5,3,0\n80.1,14,0\n9000,2,1\n"

func csvConfigMap(ns, name, data string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       map[string]string{"data.csv": data},
	}
}

func csvDataSource(ns, name, configMap string, opts ...func(*kadetv1.CSVSource)) *kadetv1.DataSource {
	csv := &kadetv1.CSVSource{
		ConfigMapKeyRef: &kadetv1.ConfigMapKeyReference{Name: configMap, Key: "data.csv"},
		Columns:         []string{"amount", "hour"},
	}
	for _, o := range opts {
		o(csv)
	}
	return &kadetv1.DataSource{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       kadetv1.DataSourceSpec{CSV: csv},
	}
}

func withLabelColumn(c string) func(*kadetv1.CSVSource) {
	return func(s *kadetv1.CSVSource) { s.LabelColumn = c }
}

func detector(ns, name, dataSource string, opts ...func(*kadetv1.Detector)) *kadetv1.Detector {
	d := &kadetv1.Detector{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: kadetv1.DetectorSpec{
			DataSourceRef: kadetv1.LocalObjectReference{Name: dataSource},
			Model:         kadetv1.ModelSpec{Type: kadetv1.Autoencoder},
		},
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

func withModel(t kadetv1.ModelType) func(*kadetv1.Detector) {
	return func(d *kadetv1.Detector) { d.Spec.Model.Type = t }
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := k8sClient.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}
