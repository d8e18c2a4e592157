package serve

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/data"
)

func TestFeedbackStoresMarks(t *testing.T) {
	dir := t.TempDir()
	writeModel(t, dir, 1, time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC))
	fb := filepath.Join(dir, "feedback")
	_, ts, _ := newServer(t, dir, Options{FeedbackDir: fb, FeedbackFile: "pod-a"})
	code, body := call(t, ts, "POST", "/v1/feedback", `{"marks": [
		{"record": {"amount": 9000, "hour": 3, "distance": 800}, "anomaly": true},
		{"instance": [12, 14, 2], "anomaly": false},
		{"entity": "pod=api-1", "time": "2026-11-30T12:00:00Z", "anomaly": true}]}`)
	if code != 200 || body["stored"] != float64(3) {
		t.Fatalf("feedback: %d %v", code, body)
	}
	if code, _ := call(t, ts, "POST", "/v1/feedback", `{"marks": [{"record": {"amount": 1, "hour": 2, "distance": 3}, "anomaly": false}]}`); code != 200 {
		t.Fatalf("second feedback: %d", code)
	}
	// a pod killed mid-write leaves a cut line: the rest is read
	f, err := os.OpenFile(filepath.Join(fb, "pod-a.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"features": {"amount": 3`)
	f.Close()
	marks, bad, err := data.ReadFeedback(fb)
	if err != nil || bad != 1 || len(marks) != 4 {
		t.Fatalf("read back %d marks, %d bad, %v; want 4 and the cut line", len(marks), bad, err)
	}
	if m := marks[0]; !m.Anomaly || m.Features["amount"] != 9000 || m.Version == "" || m.Received.IsZero() {
		t.Errorf("first mark %+v", m)
	}
	if m := marks[1]; m.Anomaly || m.Features["hour"] != 14 {
		t.Errorf("second mark %+v: the instance is stored by feature name", m)
	}
	if m := marks[2]; m.Entity != "pod=api-1" || m.Time == nil || m.Features != nil {
		t.Errorf("third mark %+v", m)
	}
	x, labels := data.FeedbackRows(marks, features)
	if len(labels) != 3 || len(x) != 9 || labels[0] != 1 || x[3] != 12 {
		t.Errorf("rows %v labels %v; want the three marks with features", x, labels)
	}
}

func TestFeedbackRefusesBadMarks(t *testing.T) {
	dir := t.TempDir()
	writeModel(t, dir, 1, time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC))
	fb := filepath.Join(dir, "feedback")
	_, ts, _ := newServer(t, dir, Options{FeedbackDir: fb})
	for _, c := range []struct{ body, field, msg string }{
		{`{}`, "", `body needs "marks"`},
		{`{"marks": []}`, "marks", "is empty"},
		{`{"marks": [{"record": {"amount": 1, "hour": 2, "distance": 3}}]}`, "marks[0].anomaly", "is required"},
		{`{"marks": [{"anomaly": true}]}`, "marks[0]", `needs "record" or "instance"`},
		{`{"marks": [{"entity": "a", "anomaly": true}]}`, "marks[0]", `needs "record" or "instance"`},
		{`{"marks": [{"entity": "a", "time": "yesterday", "anomaly": true}]}`, "marks[0].time", "is not an RFC 3339 time"},
		{`{"marks": [{"anomaly": true, "record": {"amount": 1, "hour": 2}}]}`, "marks[0].record", `missing column "distance"`},
		{`{"marks": [{"anomaly": true, "record": {"amount": 1, "hour": 2, "distance": 3, "colour": 1}}]}`, "marks[0].record.colour", "unknown column"},
		{`{"marks": [{"anomaly": false, "instance": [1, 2, 3]}, {"anomaly": true, "instance": [1, 2]}]}`, "marks[1].instance", "has 2 values; the model takes 3"},
		{`{"marks": [{"anomaly": true, "instance": [1, 2, 3], "record": {"amount": 1}}]}`, "marks[0]", `not both`},
		{`{"marks": [{"anomaly": "yes", "instance": [1, 2, 3]}]}`, "marks[0].anomaly", "got string, want bool"},
		{`{"marks": [{"anomaly": true, "instance": [1, 2, 3], "label": 1}]}`, "", "label"},
	} {
		code, body := call(t, ts, "POST", "/v1/feedback", c.body)
		msg, _ := body["error"].(string)
		field, _ := body["field"].(string)
		if code != 400 || field != c.field || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d field %q %q; want 400 field %q containing %q", c.body, code, field, msg, c.field, c.msg)
		}
	}
	if _, err := os.Stat(fb); !os.IsNotExist(err) {
		t.Errorf("refused marks created the feedback folder: %v", err)
	}
	_, ts2, _ := newServer(t, dir, Options{})
	if code, body := call(t, ts2, "POST", "/v1/feedback", `{"marks": [{"anomaly": true, "instance": [1, 2, 3]}]}`); code != 503 || !strings.Contains(body["error"].(string), "--feedback-dir") {
		t.Errorf("without a feedback folder: %d %v; want 503 naming --feedback-dir", code, body)
	}
}

// Marks as an attacker inside the cluster sends them, as many and as often as allowed:
// a request over the per-request limit is refused whole (413), and once this pod's file
// or the folder would pass its limit every further mark is refused (429) with nothing
// stored, so the model volume and the pods that read every mark stay within bounds.
func TestFeedbackIsBounded(t *testing.T) {
	dir := t.TempDir()
	writeModel(t, dir, 1, time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC))
	fb := filepath.Join(dir, "feedback")
	mark := `{"instance": [12, 14, 2], "anomaly": true}`
	marks := func(n int) string { return `{"marks": [` + strings.TrimSuffix(strings.Repeat(mark+",", n), ",") + `]}` }
	size := func() int64 {
		var total int64
		entries, _ := os.ReadDir(fb)
		for _, e := range entries {
			info, _ := e.Info()
			total += info.Size()
		}
		return total
	}
	_, ts, _ := newServer(t, dir, Options{FeedbackDir: fb, FeedbackFile: "pod-a", MaxInstances: 50, MaxFeedbackFileBytes: 20 << 10, MaxFeedbackBytes: 30 << 10})
	if code, body := call(t, ts, "POST", "/v1/feedback", marks(51)); code != 413 || !strings.Contains(body["error"].(string), "at most 50 per request") {
		t.Fatalf("51 marks: %d %v", code, body)
	}
	stored := 0
	for range 100 {
		code, body := call(t, ts, "POST", "/v1/feedback", marks(50))
		if code == 429 {
			if msg := body["error"].(string); !strings.Contains(msg, "past its limit of 20 KiB (--max-feedback-file-bytes): no mark stored") {
				t.Fatalf("refusal %q", msg)
			}
			break
		}
		if code != 200 {
			t.Fatalf("%d %v", code, body)
		}
		stored += 50
	}
	if s := size(); stored == 0 || s > 20<<10 {
		t.Fatalf("stored %d marks in %d bytes; want some, within 20 KiB", stored, s)
	}
	for range 1000 { // single marks fill what the batches left
		if code, _ := call(t, ts, "POST", "/v1/feedback", marks(1)); code != 200 {
			break
		}
	}
	before := size()
	if code, _ := call(t, ts, "POST", "/v1/feedback", marks(1)); code != 429 || size() != before || before > 20<<10 || before < 19<<10 {
		t.Fatalf("a mark past the limit: %d, %d -> %d bytes", code, before, size())
	}
	// A second pod has a file of its own, but the folder as a whole is full sooner.
	_, ts2, _ := newServer(t, dir, Options{FeedbackDir: fb, FeedbackFile: "pod-b", MaxInstances: 50, MaxFeedbackFileBytes: 20 << 10, MaxFeedbackBytes: 30 << 10})
	var code int
	var body map[string]any
	for range 100 {
		if code, body = call(t, ts2, "POST", "/v1/feedback", marks(50)); code != 200 {
			break
		}
	}
	if code != 429 || !strings.Contains(body["error"].(string), "the feedback folder holds") || size() > 30<<10 {
		t.Fatalf("pod b: %d %v, folder %d bytes", code, body, size())
	}
}
