package controllers

import (
	"context"
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/detector/contract"
)

// detectorEvents lists the reasons of det's events, each as often as it was recorded.
func detectorEvents(g Gomega, det *kadetv1.Detector) []string {
	evs := &eventsv1.EventList{}
	g.Expect(k8sClient.List(context.Background(), evs, client.InNamespace(det.Namespace))).To(Succeed())
	var reasons []string
	for _, e := range evs.Items {
		if e.Regarding.Kind == "Detector" && e.Regarding.Name == det.Name {
			for range max(1, int(e.DeprecatedCount)) {
				reasons = append(reasons, e.Type+"/"+e.Reason)
			}
		}
	}
	slices.Sort(reasons)
	return reasons
}

// A Detector from apply to serving tells its story in three events, each once, and
// the Ready transitions they tell (Training, RollingOut, Succeeded) add none; a transition they do
// not tell (Progressing, while the DataSource is checked) may. A stall still adds its
// Warning.
func TestHappyPathEvents(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	det := detector(ns, "ev", "ev-data")
	create(t, csvConfigMap(ns, "ev-csv", sampleCSV), csvDataSource(ns, "ev-data", "ev-csv"), det)
	job := waitForOneJob(t, det)
	completeJob(t, job, contract.TrainingResult{Version: "v2", Digest: "sha256:abc", Threshold: 0.75})
	rollOutDeployment(t, client.ObjectKey{Namespace: ns, Name: "ev-scoring"})
	told := func(g Gomega) []string {
		return slices.DeleteFunc(detectorEvents(g, det), func(r string) bool { return r == "Normal/"+kadetv1.ReasonProgressing })
	}
	want := []string{"Normal/ModelServed", "Normal/TrainingStarted", "Normal/TrainingSucceeded"}
	g.Eventually(func(g Gomega) {
		g.Expect(told(g)).To(Equal(want))
	}, timeout, interval).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(told(g)).To(Equal(want))
	}, "2s", interval).Should(Succeed())

	bad := detector(ns, "bad", "ev-data")
	create(t, bad)
	failJob(t, waitForOneJob(t, bad), contract.ExitInvalidInput, "column x: not a number")
	g.Eventually(func(g Gomega) {
		g.Expect(detectorEvents(g, bad)).To(ContainElement(corev1.EventTypeWarning + "/" + kadetv1.ReasonTrainingFailed))
	}, timeout, interval).Should(Succeed())
}
