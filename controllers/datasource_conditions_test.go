package controllers

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

func TestDataSourceConditions(t *testing.T) {
	prom := &kadetv1.DataSourceSpec{Prometheus: &kadetv1.PrometheusSource{URL: "http://prom:9090",
		Queries: []kadetv1.PrometheusQuery{{Name: "load", Query: "up"}}}}
	type want struct {
		ready    metav1.ConditionStatus
		reason   string
		message  string
		progress string // Reconciling, Stalled or "" for neither
	}
	for _, tc := range []struct {
		name string
		o    dataSourceObservation
		want want
	}{
		{"resolved", dataSourceObservation{spec: prom}, want{metav1.ConditionTrue, kadetv1.ReasonReferencesResolved, "1 Prometheus queries from http://prom:9090", ""}},
		{"api server down", dataSourceObservation{spec: prom, err: errors.New("reading Secret ns/token: connection refused")},
			want{metav1.ConditionUnknown, kadetv1.ReasonReconcileError, "reading Secret ns/token: connection refused", kadetv1.ReconcilingCondition}},
		{"missing references", dataSourceObservation{spec: prom, missing: []string{`Secret "token" not found`, `ConfigMap "ca" has no key "ca.crt"`}},
			want{metav1.ConditionFalse, kadetv1.ReasonReferenceNotFound, `Secret "token" not found; ConfigMap "ca" has no key "ca.crt"`, kadetv1.StalledCondition}},
		{"secrets hidden", dataSourceObservation{namespace: "team-a", spec: prom, secretsHidden: true},
			want{metav1.ConditionTrue, kadetv1.ReasonReferencesResolved, "kadet may not read Secrets in namespace team-a", ""}},
		{"server unreachable", dataSourceObservation{spec: prom, serverReason: kadetv1.ReasonServerUnreachable, serverMessage: "did not answer"},
			want{metav1.ConditionFalse, kadetv1.ReasonServerUnreachable, "did not answer", kadetv1.ReconcilingCondition}},
		{"no series yet", dataSourceObservation{spec: prom, serverReason: kadetv1.ReasonNoSeries, serverMessage: "has no series now"},
			want{metav1.ConditionFalse, kadetv1.ReasonNoSeries, "has no series now", kadetv1.ReconcilingCondition}},
		{"query refused", dataSourceObservation{spec: prom, serverReason: kadetv1.ReasonQueryRefused, serverMessage: "parse error"},
			want{metav1.ConditionFalse, kadetv1.ReasonQueryRefused, "parse error", kadetv1.StalledCondition}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conds := dataSourceConditions(tc.o, 7)
			byType := map[string]metav1.Condition{}
			for _, c := range conds {
				if c.ObservedGeneration != 7 {
					t.Errorf("%s observedGeneration %d, want 7", c.Type, c.ObservedGeneration)
				}
				byType[c.Type] = c
			}
			ready, ok := byType[kadetv1.ReadyCondition]
			if !ok || ready.Status != tc.want.ready || ready.Reason != tc.want.reason || !strings.Contains(ready.Message, tc.want.message) {
				t.Errorf("Ready %+v, want %s %s containing %q", ready, tc.want.ready, tc.want.reason, tc.want.message)
			}
			for _, typ := range []string{kadetv1.ReconcilingCondition, kadetv1.StalledCondition} {
				c, ok := byType[typ]
				if wanted := typ == tc.want.progress; ok != wanted || (ok && (c.Status != metav1.ConditionTrue || c.Reason != tc.want.reason)) {
					t.Errorf("%s %+v (set: %v), want set: %v with reason %s", typ, c, ok, wanted, tc.want.reason)
				}
			}
		})
	}
}
