package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/model"
)

// writePod writes pod a's series (time,pod,value) at 5-minute steps: a cycle with
// noise, plus extra[i] at row i.
func writePod(t *testing.T, path string, rows int, extra map[int]float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 9))
	var b strings.Builder
	b.WriteString("time,pod,value\n")
	for i := range rows {
		v := 10 + 3*math.Sin(2*math.Pi*float64(i)/48) + rng.NormFloat64()*0.2 + extra[i]
		fmt.Fprintf(&b, "%d,a,%.4f\n", 1_700_000_000+300*i, v)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Retraining leaves out what the model in service flags (an incident in the new
// training rows) and what feedback marks anomalous, each with a window either side,
// and keeps every row of an entity whose regime changed; KeepFlagged keeps all.
func TestRetrainingLeavesOutFlaggedRows(t *testing.T) {
	dir := t.TempDir()
	models := filepath.Join(dir, "models")
	csv := filepath.Join(dir, "pod.csv")
	const window = 16
	req := func() *contract.TrainingRequest {
		r := metricRequest(csv, contract.Model{Type: contract.ConvAutoencoder, Window: new(int32(window)), Channels: []int32{4, 8}}, 0.1)
		r.Data.CSV.LabelColumn, r.Data.CSV.EntityColumn = "", "pod"
		r.Threshold.Percentile = new(99.9)
		return r
	}
	writePod(t, csv, 600, nil)
	first, err := Train(context.Background(), req(), models, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := first.Result.Metrics["leftOutRows"]; ok {
		t.Errorf("a first training reports rows left out: %v", first.Result.Metrics)
	}

	// 900 rows with an incident at rows 700 to 711 (+8): the served model flags it.
	incident := map[int]float64{}
	for i := 700; i < 712; i++ {
		incident[i] = 8
	}
	writePod(t, csv, 900, incident)
	// And people marked row 300 anomalous (the entity as its rows name it: a CSV
	// column's value; for Prometheus, its labels).
	at := time.Unix(1_700_000_000+300*300, 0).UTC()
	mark, _ := json.Marshal(contract.FeedbackMark{Entity: "a", Time: &at, Anomaly: true, Received: at})
	if err := os.MkdirAll(filepath.Join(models, contract.FeedbackDirName), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(models, contract.FeedbackDirName, "pod-0"+contract.FeedbackFileSuffix), append(mark, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	tbl, err := data.Load(context.Background(), req().Data)
	if err != nil {
		t.Fatal(err)
	}
	lo := leaveOutFlagged(req(), mustSpec(t, req(), tbl), tbl, models)
	// The incident's 12 rows, a window before and a quarter window after (32), row 300
	// with the same (21); a few rows more where the model flags noise.
	if lo.byFeedback != 1 || lo.rows < 32+21 || lo.rows > 32+21+3*21 || lo.episodes < 2 {
		t.Errorf("left out %d rows in %d episodes, %d marked by feedback; want 53 or a few more, in 2 or more, 1", lo.rows, lo.episodes, lo.byFeedback)
	}
	if tbl.Rows() != 900-lo.rows {
		t.Errorf("%d rows kept of 900 with %d left out", tbl.Rows(), lo.rows)
	}
	for r := range tbl.Rows() {
		ts := tbl.Timestamps[r]
		for _, gone := range []int{300, 700, 711} {
			if ts == fmt.Sprint(1_700_000_000+300*gone) {
				t.Errorf("row %d is still there", gone)
			}
		}
	}
	// No run continues across what was left out.
	for _, sg := range segments(tbl) {
		for r := sg[0] + 1; r < sg[1]; r++ {
			a, errA := strconv.Atoi(tbl.Timestamps[r-1])
			b, errB := strconv.Atoi(tbl.Timestamps[r])
			if errA != nil || errB != nil || b-a != 300 {
				t.Fatalf("a run spans %s to %s", tbl.Timestamps[r-1], tbl.Timestamps[r])
			}
		}
	}
	if len(segments(tbl)) < 3 {
		t.Errorf("%d runs; want at least 3 around two left-out episodes", len(segments(tbl)))
	}
	out, err := Train(context.Background(), req(), models, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Result.Metrics["leftOutRows"]; got != float64(lo.rows) {
		t.Errorf("training reports %v rows left out; leaveOutFlagged %d", got, lo.rows)
	}

	// KeepFlagged trains on every row.
	keep := req()
	keep.Training.KeepFlagged = true
	tbl, _ = data.Load(context.Background(), keep.Data)
	if lo := leaveOutFlagged(keep, mustSpec(t, keep, tbl), tbl, models); lo.rows != 0 || tbl.Rows() != 900 {
		t.Errorf("KeepFlagged left out %d rows", lo.rows)
	}

	// A regime that changed (+8 from row 400 on): more than a quarter flagged, so the
	// new version learns it.
	shifted := map[int]float64{}
	for i := 400; i < 900; i++ {
		shifted[i] = 8
	}
	writePod(t, csv, 900, shifted)
	tbl, _ = data.Load(context.Background(), req().Data)
	lo = leaveOutFlagged(req(), mustSpec(t, req(), tbl), tbl, models)
	if lo.keptEntities != 1 || lo.rows != 0 || tbl.Rows() != 900 || !strings.Contains(lo.String(), "a changed regime") {
		t.Errorf("a changed regime: %+v, %d rows kept; want every row kept and said", lo, tbl.Rows())
	}
}

func mustSpec(t *testing.T, req *contract.TrainingRequest, tbl *data.Table) model.Spec {
	t.Helper()
	spec, err := modelSpec(contract.ResolvedModel(req.Model, req.Data.Source()), tbl)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}
