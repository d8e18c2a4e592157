package controllers

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

// detectorReconciles is how many Detector passes have run, from controller-runtime's
// own metric.
func detectorReconciles(t *testing.T) float64 {
	t.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelValue(m, "controller") == "detector" {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// A pass over a Ready Detector whose children are all as they should be writes
// nothing: no apply, no create answered 409, no status patch, no event.
func TestNoOpPassWritesNothing(t *testing.T) {
	ns := newNamespace(t)
	create(t, csvConfigMap(ns, "tx", sampleCSV), csvDataSource(ns, "tx", "tx"))
	det := detector(ns, "quiet", "tx")
	create(t, det)
	trainedVersion(t, det, waitForOneJob(t, det), "20261129-100000-aaaaaaaa")
	rollOutDeployment(t, client.ObjectKey{Namespace: ns, Name: "quiet-scoring"})
	NewWithT(t).Eventually(func(g Gomega) {
		c := condition(getDetector(g, det), kadetv1.ReadyCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
	}, timeout, interval).Should(Succeed())
	// Let the passes the last changes brought settle.
	settle := func() {
		for {
			managerWrites.Lock()
			n := managerWrites.n
			managerWrites.Unlock()
			time.Sleep(1500 * time.Millisecond)
			managerWrites.Lock()
			quiet := n == managerWrites.n
			managerWrites.Unlock()
			if quiet {
				return
			}
		}
	}
	settle()
	managerWrites.Lock()
	before := managerWrites.n
	managerWrites.last = nil
	managerWrites.Unlock()
	passes := detectorReconciles(t)

	// Two passes with nothing to do: an annotation of no meaning to kadet.
	for i := range 2 {
		poke(t, det)
		NewWithT(t).Eventually(func() float64 { return detectorReconciles(t) }, timeout, interval).Should(BeNumerically(">=", passes+float64(i+1)))
	}
	time.Sleep(time.Second)
	managerWrites.Lock()
	writes, last := managerWrites.n-before, strings.Join(managerWrites.last, "\n")
	managerWrites.Unlock()
	if writes != 0 {
		t.Errorf("%d writes in passes with nothing to do:\n%s", writes, last)
	}
}
