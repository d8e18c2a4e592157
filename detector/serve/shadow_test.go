package serve

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/evaluate"
	"github.com/kadet-dev/kadet/detector/scoring"
)

// TestShadowScoresTheSameRows serves one version with another in shadow: answers come
// from the served one, and the shadow's counts match scoring the same rows with each
// model directly.
func TestShadowScoresTheSameRows(t *testing.T) {
	dir := t.TempDir()
	served := writeModel(t, dir, 1, time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC))
	shadowV := writeModel(t, dir, 2, time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC))
	s, ts, _ := newServer(t, dir, Options{Version: served, ShadowVersion: shadowV})
	var rows []string
	var x []float32
	for i := range 50 {
		r := []float32{float32(i % 30), float32(i % 24), float32(i % 7)}
		x = append(x, r...)
		rows = append(rows, fmt.Sprintf("[%g, %g, %g]", r[0], r[1], r[2]))
	}
	for _, chunk := range [][]string{rows[:20], rows[20:]} {
		code, body := call(t, ts, "POST", "/v1/detect", `{"instances": [`+strings.Join(chunk, ",")+`]}`)
		if code != 200 || body["model"].(map[string]any)["version"] != served {
			t.Fatalf("detect: %d %v; want answers from %s", code, body, served)
		}
	}
	var st ShadowStats
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _, _ = s.Shadow()
		if st.Rows == 50 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	load := func(v string) []scoring.Scored {
		path, _ := artifact.Path(dir, v)
		m, err := artifact.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		res, err := scoring.Score(m, x)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b := load(served), load(shadowV)
	var wantAnom, wantServed, wantAgreed int64
	for i := range a {
		if b[i].Anomaly {
			wantAnom++
		}
		if a[i].Anomaly {
			wantServed++
		}
		if a[i].Anomaly == b[i].Anomaly {
			wantAgreed++
		}
	}
	if st.Version != shadowV || st.Rows != 50 || st.Anomalies != wantAnom || st.ServedAnomalies != wantServed || st.Agreed != wantAgreed || st.Incompatible != "" {
		t.Errorf("shadow stats %+v; want version %s, 50 rows, %d shadow anomalies, %d served, %d agreed", st, shadowV, wantAnom, wantServed, wantAgreed)
	}
	if wantAgreed == 50 {
		t.Log("the two models agree on every row: the agreement count is not tested by this data")
	}
	if got := testutil.ToFloat64(s.shadows.rows.WithLabelValues(shadowV)); got != 50 {
		t.Errorf("kadet_shadow_rows_scored_total %v, want 50", got)
	}
	if got := testutil.ToFloat64(s.shadows.rate.WithLabelValues(shadowV)); got != float64(wantAnom)/50 {
		t.Errorf("kadet_shadow_anomaly_rate %v, want %v", got, float64(wantAnom)/50)
	}
}

func TestShadowWithOtherFeaturesIsNotScored(t *testing.T) {
	dir := t.TempDir()
	served := writeModel(t, dir, 1, time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC))
	other := features
	features = []string{"a", "b", "c"}
	shadowV := writeModel(t, dir, 2, time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC))
	features = other
	s, ts, _ := newServer(t, dir, Options{Version: served, ShadowVersion: shadowV})
	if code, _ := call(t, ts, "POST", "/v1/detect", `{"instances": [[1, 2, 3]]}`); code != 200 {
		t.Fatalf("detect: %d", code)
	}
	st, _, ok := s.Shadow()
	if !ok || st.Incompatible != "its features differ from the served model's" || st.Rows != 0 {
		t.Errorf("shadow %+v (loaded %v); want it loaded, not scoring, saying its features differ", st, ok)
	}
}

// TestShadowComparedOnFeedback stores labelled marks and checks the shadow's report
// compares both models on them as evaluating each directly does; too few marks of a
// label give no comparison.
func TestShadowComparedOnFeedback(t *testing.T) {
	dir := t.TempDir()
	served := writeModel(t, dir, 1, time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC))
	shadowV := writeModel(t, dir, 2, time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC))
	fb := filepath.Join(dir, "feedback")
	s, ts, _ := newServer(t, dir, Options{Version: served, ShadowVersion: shadowV, FeedbackDir: fb, FeedbackFile: "p"})
	var marks []string
	var x, labels []float32
	for i := range 12 {
		r := []float32{float32(5 + 7*i), float32(i % 24), float32(i % 5)}
		anomaly := i >= 6
		if anomaly {
			r[0] *= 40
		}
		x = append(x, r...)
		l := float32(0)
		if anomaly {
			l = 1
		}
		labels = append(labels, l)
		marks = append(marks, fmt.Sprintf(`{"instance": [%g, %g, %g], "anomaly": %t}`, r[0], r[1], r[2], anomaly))
	}
	if code, _ := call(t, ts, "POST", "/v1/feedback", `{"marks": [`+strings.Join(marks[:9], ",")+`]}`); code != 200 {
		t.Fatal(code)
	}
	if _, fc, _ := s.Shadow(); fc != nil {
		t.Errorf("3 anomalies of the 5 needed: comparison %+v", fc)
	}
	if code, _ := call(t, ts, "POST", "/v1/feedback", `{"marks": [`+strings.Join(marks[9:], ",")+`]}`); code != 200 {
		t.Fatal(code)
	}
	_, fc, _ := s.Shadow()
	if fc == nil || fc.Marks != 12 || fc.Anomalies != 6 {
		t.Fatalf("comparison %+v; want 12 marks, 6 anomalies", fc)
	}
	for _, c := range []struct {
		version  string
		f1, auro float64
	}{{served, fc.ServedF1, fc.ServedAUROC}, {shadowV, fc.ShadowF1, fc.ShadowAUROC}} {
		path, _ := artifact.Path(dir, c.version)
		m, _ := artifact.Load(path)
		res, _ := scoring.Score(m, x)
		scores := make([]float32, len(res))
		for i, r := range res {
			scores[i] = float32(r.Score)
		}
		e := evaluate.Evaluate(scores, labels, 1)
		if e.F1 != c.f1 || e.AUROC != c.auro {
			t.Errorf("version %s: F1 %v AUROC %v in the comparison, %v and %v evaluated directly", c.version, c.f1, c.auro, e.F1, e.AUROC)
		}
	}
}
