package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/evaluate"
	"github.com/kadet-dev/kadet/detector/scoring"
)

// feedbackRequest is POST /v1/feedback: labelled marks, each a record (by feature name)
// or an instance (in feature order), or an entity and a time, with "anomaly" true or
// false.
type feedbackRequest struct {
	Marks []feedbackMark `json:"marks"`
}

type feedbackMark struct {
	Record   map[string]json.RawMessage `json:"record"`
	Instance []float64                  `json:"instance"`
	Entity   string                     `json:"entity"`
	Time     string                     `json:"time"`
	Anomaly  *bool                      `json:"anomaly"`
}

// maxEntityLen bounds an entity's name in a mark.
const maxEntityLen = 1024

// decodeFeedback checks every mark of a body and returns them as stored, located
// errors naming the mark and field otherwise.
func decodeFeedback(body []byte, features []string, maxMarks int, version string, now time.Time) ([]contract.FeedbackMark, error) {
	var req feedbackRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, locateJSONError(body, err)
	}
	if dec.More() {
		return nil, badRequest("", "body holds more than one JSON value")
	}
	switch {
	case req.Marks == nil:
		return nil, badRequest("", `body needs "marks": [{"record": {...} or "instance": [...] or "entity" and "time", "anomaly": true or false}]`)
	case len(req.Marks) == 0:
		return nil, badRequest("marks", "is empty")
	case len(req.Marks) > maxMarks:
		e := badRequest("marks", "has %d marks; at most %d per request", len(req.Marks), maxMarks)
		e.Status = http.StatusRequestEntityTooLarge
		return nil, e
	}
	out := make([]contract.FeedbackMark, len(req.Marks))
	for i, m := range req.Marks {
		at := fmt.Sprintf("marks[%d]", i)
		if m.Anomaly == nil {
			return nil, badRequest(at+".anomaly", "is required: true for an anomaly, false for a normal record")
		}
		mark := contract.FeedbackMark{Anomaly: *m.Anomaly, Received: now, Version: version, Entity: m.Entity}
		if len(m.Entity) > maxEntityLen {
			return nil, badRequest(at+".entity", "is %d bytes long; at most %d", len(m.Entity), maxEntityLen)
		}
		if m.Time != "" {
			t, err := time.Parse(time.RFC3339Nano, m.Time)
			if err != nil {
				return nil, badRequest(at+".time", "%q is not an RFC 3339 time such as 2026-11-30T12:00:00Z", m.Time)
			}
			mark.Time = &t
		}
		var x []float32
		var err error
		switch {
		case m.Record != nil && m.Instance != nil:
			return nil, badRequest(at, `give "record" or "instance", not both`)
		case m.Record != nil:
			x, _, err = recordsToRows([]map[string]json.RawMessage{m.Record}, features, 1)
		case m.Instance != nil:
			x, _, err = instancesToRows([][]float64{m.Instance}, len(features), 1, "instances")
		case m.Entity == "" || mark.Time == nil:
			return nil, badRequest(at, `needs "record" or "instance" (the features), or "entity" and "time" (a watched row)`)
		}
		if err != nil {
			re := err.(*RequestError)
			re.Field = strings.Replace(strings.Replace(re.Field, "records[0]", at+".record", 1), "instances[0]", at+".instance", 1)
			return nil, re
		}
		if x != nil {
			mark.Features = make(map[string]float64, len(features))
			for j, f := range features {
				mark.Features[f] = float64(x[j])
			}
		}
		out[i] = mark
	}
	return out, nil
}

// feedbackStore appends this pod's marks to its own file in the feedback folder, so
// pods never write one file together, and keeps everyone's marks for the shadow's
// comparison.
type feedbackStore struct {
	dir, file         string
	maxFile, maxTotal int64
	mu                sync.Mutex
	marks             prometheus.Counter
}

// errFeedbackFull is marks that would take a feedback file or the folder past its
// limit; nothing of them is stored.
type errFeedbackFull struct{ msg string }

func (e *errFeedbackFull) Error() string { return e.msg }

// room refuses n more bytes in this server's file when they would pass either limit.
func (fs *feedbackStore) room(n int64) error {
	entries, err := os.ReadDir(fs.dir)
	if err != nil {
		return err
	}
	var own, total int64
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), contract.FeedbackFileSuffix) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		total += info.Size()
		if e.Name() == fs.file {
			own = info.Size()
		}
	}
	switch {
	case own+n > fs.maxFile:
		return &errFeedbackFull{fmt.Sprintf("this scoring pod's feedback file holds %d KiB and these marks would take it past its limit of %d KiB (--max-feedback-file-bytes): no mark stored",
			own>>10, fs.maxFile>>10)}
	case total+n > fs.maxTotal:
		return &errFeedbackFull{fmt.Sprintf("the feedback folder holds %d KiB and these marks would take it past its limit of %d KiB (--max-feedback-bytes): no mark stored",
			total>>10, fs.maxTotal>>10)}
	}
	return nil
}

// append writes marks as lines and syncs them before the request is answered: a
// mark acknowledged is a mark kept.
func (fs *feedbackStore) append(marks []contract.FeedbackMark) error {
	var b bytes.Buffer
	for _, m := range marks {
		line, err := json.Marshal(m)
		if err != nil {
			return err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := os.MkdirAll(fs.dir, 0o775); err != nil {
		return err
	}
	if err := fs.room(int64(b.Len())); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(fs.dir, fs.file), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o664)
	if err != nil {
		return err
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	fs.marks.Add(float64(len(marks)))
	return f.Close()
}

func (s *Server) feedback(w http.ResponseWriter, r *http.Request) {
	if s.feedbackStore == nil {
		writeError(w, http.StatusServiceUnavailable, "feedback is not stored: this server runs without --feedback-dir")
		return
	}
	l := s.model(w)
	if l == nil {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	marks, err := decodeFeedback(body, l.model.Meta.Features, s.opts.MaxInstances, l.version, time.Now().UTC())
	if err != nil {
		writeRequestError(w, err)
		return
	}
	var full *errFeedbackFull
	if err := s.feedbackStore.append(marks); errors.As(err, &full) {
		writeError(w, http.StatusTooManyRequests, full.Error())
		return
	} else if err != nil {
		s.log.Error("storing feedback", "dir", s.feedbackStore.dir, "error", err.Error())
		writeError(w, http.StatusInternalServerError, "storing feedback: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"stored": len(marks)})
}

// minFeedbackPerClass is how many marks of each label a comparison needs.
const minFeedbackPerClass = 5

// compareOnFeedback scores the stored marks that carry the models' features with the
// served and the shadow model; nil when there are too few of either label. Sequence
// models score runs, not single records: they are not compared.
func (s *Server) compareOnFeedback(served, shadow *loaded) *contract.FeedbackComparison {
	if s.feedbackStore == nil || served.model.Network.Spec.Sequence() || shadow.model.Network.Spec.Sequence() {
		return nil
	}
	marks, _, err := data.ReadFeedback(s.feedbackStore.dir)
	if err != nil {
		return nil
	}
	x, labels := data.FeedbackRows(marks, served.model.Meta.Features)
	anomalies := 0
	for _, l := range labels {
		if l == 1 {
			anomalies++
		}
	}
	if anomalies < minFeedbackPerClass || len(labels)-anomalies < minFeedbackPerClass {
		return nil
	}
	c := &contract.FeedbackComparison{Marks: len(labels), Anomalies: anomalies}
	for _, m := range []struct {
		l        *loaded
		f1, auro *float64
	}{{served, &c.ServedF1, &c.ServedAUROC}, {shadow, &c.ShadowF1, &c.ShadowAUROC}} {
		res, err := scoring.Score(m.l.model, x)
		if err != nil {
			return nil
		}
		scores := make([]float32, len(res))
		for i, r := range res {
			scores[i] = float32(r.Score)
		}
		e := evaluate.Evaluate(scores, labels, 1)
		*m.f1, *m.auro = e.F1, e.AUROC
	}
	return c
}
