package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/detector/seasonal"
)

// MaxLeftOutShare is the largest share of an entity's rows flagged for retraining to
// leave them out. Past it the model in service disagrees with most of what the entity
// does now (its regime changed, the reason a drift retrains): those rows are what the
// new version must learn, so all of them are kept.
const MaxLeftOutShare = 0.25

// leftOut says what leaveOutFlagged took out of the training rows.
type leftOut struct {
	version            string // the version whose flags were left out ("" when none)
	rows, episodes     int
	byFeedback         int // rows marked anomalous by feedback among rows
	keptEntities       int // entities that kept every row: more than MaxLeftOutShare flagged
	entities           int
	unscored, feedback string // why the model's flags or the feedback could not be used
}

// leaveOutFlagged takes out of tbl (sorted in time, each entity's rows together) the
// rows the model in service, the newest version in dir, flags, scored as a watching
// pod scores them (causally, each entity by its scaler and likelihood state), and the
// rows people marked anomalous by feedback; each episode with a margin of a window
// before it and a quarter window after. A retrained model would learn them as normal,
// and alert on the next incident like them no more. A run of an entity's rows that
// continues after a left-out episode starts at a break (tbl.Breaks): no window spans
// the gap.
func leaveOutFlagged(req *contract.TrainingRequest, spec model.Spec, tbl *data.Table, dir string) leftOut {
	var lo leftOut
	if req.Training.KeepFlagged || tbl.Labels != nil || tbl.ImageRows > 0 || tbl.Timestamps == nil {
		// Labels already keep anomalies out of training; rows without time are not a
		// series an incident happens in.
		return lo
	}
	segs := segments(tbl)
	flagged := make([]bool, tbl.Rows())
	// An incident starts before the first row flagged (a causal model flags a row
	// once the window ending there looks wrong: within a window of its start) and
	// settles a little after the last; a run that resumes after it starts anew, so no
	// training window holds its rows.
	before, after := max(spec.Window, 1), max(spec.Window/4, 1)
	if m, version, why := servedModel(dir, tbl.Columns); m == nil {
		lo.unscored = why
	} else {
		lo.version = version
		lo.unscored = flagRows(m, tbl, segs, flagged)
	}
	lo.byFeedback, lo.feedback = flagFeedback(filepath.Join(dir, contract.FeedbackDirName), tbl, segs, flagged)
	drop := make([]bool, tbl.Rows())
	for _, sg := range segs {
		var episodes, rows, marked int
		in := false
		for r := sg[0]; r < sg[1]; r++ {
			if !flagged[r] {
				in = false
				continue
			}
			marked++
			if !in {
				episodes++
			}
			in = true
			for k := max(sg[0], r-before); k < min(sg[1], r+after+1); k++ {
				if !drop[k] {
					drop[k] = true
					rows++
				}
			}
		}
		if float64(marked) > MaxLeftOutShare*float64(sg[1]-sg[0]) {
			for k := sg[0]; k < sg[1]; k++ {
				drop[k] = false
			}
			lo.keptEntities++
			continue
		}
		lo.rows, lo.episodes = lo.rows+rows, lo.episodes+episodes
	}
	lo.entities = len(segs)
	if lo.rows > 0 {
		removeRows(tbl, drop)
	}
	return lo
}

// servedModel is the newest model version in dir that scores rows of columns, or nil
// and why not.
func servedModel(dir string, columns []string) (*artifact.Model, string, string) {
	versions, err := artifact.Versions(dir)
	if err != nil || len(versions) == 0 {
		return nil, "", "" // a first training: nothing serves yet
	}
	version := versions[len(versions)-1]
	m, err := artifact.Load(filepath.Join(dir, version))
	if err != nil {
		return nil, version, fmt.Sprintf("version %s does not load: %v", version, err)
	}
	if !slices.Equal(m.Meta.Features, columns) {
		return nil, version, fmt.Sprintf("version %s scores features %v, not %v", version, m.Meta.Features, columns)
	}
	return m, version, ""
}

// flagRows marks in flagged the rows of each run segs of tbl that m flags, and says
// why it could not score a run ("" when it scored them all).
func flagRows(m *artifact.Model, tbl *data.Table, segs [][2]int, flagged []bool) string {
	res, scored, why := scoreRuns(m, tbl, segs)
	for i, r := range res {
		flagged[i] = flagged[i] || (scored[i] && r.Anomaly)
	}
	return why
}

// ScoreTable scores the rows of tbl as a watching pod scores them: each entity's runs
// (its rows between gaps, tbl.Breaks) apart, scaled by the entity's scaler, rows in
// the range m trained on raised as the watch raises them, by their hour when m's
// scores follow it. scored says which rows were (a run shorter than a window is not),
// why what could not be ("" when all could).
func ScoreTable(m *artifact.Model, tbl *data.Table) (res []scoring.Scored, scored []bool, why string) {
	return scoreRuns(m, tbl, segments(tbl))
}

// scoreRuns is ScoreTable over the runs segs of tbl.
func scoreRuns(m *artifact.Model, tbl *data.Table, segs [][2]int) (out []scoring.Scored, scored []bool, why string) {
	d := len(tbl.Columns)
	out, scored = make([]scoring.Scored, tbl.Rows()), make([]bool, tbl.Rows())
	var times []int64
	if m.Meta.Seasons != nil {
		var bad string
		var ok bool
		switch times, bad, ok = seasonal.Times(tbl.Timestamps); {
		case tbl.Timestamps == nil:
			return out, scored, "its scores follow the hour, and the rows have no timestamps"
		case !ok:
			return out, scored, fmt.Sprintf("its scores follow the hour, and timestamp %q is not a time", bad)
		}
	}
	for _, sg := range segs {
		x := tbl.X[sg[0]*d : sg[1]*d]
		if sg[1]-sg[0] < scoring.RunRows(m) {
			continue // too short for a window: the watch would not score it either
		}
		key := ""
		if tbl.Entities != nil {
			key = tbl.Entities[sg[0]]
		}
		sc, _, err := m.Meta.EntityScaler(key, x[:min(len(x), scoring.EntityHistoryRows*d)])
		if err != nil {
			why = fmt.Sprintf("entity %q: %v", key, err)
			continue
		}
		var at []int64
		if times != nil {
			at = times[sg[0]:sg[1]]
		}
		var ts []string
		if tbl.Timestamps != nil {
			ts = tbl.Timestamps[sg[0]:sg[1]]
		}
		res, err := scoring.ScoreRun(m, sc, x, inSampleRows(m, ts), at)
		if err != nil {
			why = fmt.Sprintf("entity %q: %v", key, err)
			continue
		}
		copy(out[sg[0]:], res)
		for i := range res {
			scored[sg[0]+i] = true
		}
	}
	return out, scored, why
}

// inSampleRows counts the first rows of ts (Unix seconds, from Prometheus) inside the
// range m trained on: a watching pod raises their scores by the in-sample gap.
func inSampleRows(m *artifact.Model, ts []string) int {
	p := m.Meta.Prometheus
	if p == nil || p.End.IsZero() {
		return 0
	}
	n := 0
	for _, t := range ts {
		v, err := strconv.ParseInt(t, 10, 64)
		if err != nil || v > p.End.Unix() {
			break
		}
		n++
	}
	return n
}

// flagFeedback marks in flagged the rows people marked anomalous (an entity and a
// time) in the feedback in dir: the row of that entity at that time, or the last
// before it within a step. It returns how many rows it marked, and why the feedback
// could not be read ("" when it could or there is none).
func flagFeedback(dir string, tbl *data.Table, segs [][2]int, flagged []bool) (int, string) {
	marks, _, err := data.ReadFeedback(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return 0, ""
		}
		return 0, err.Error()
	}
	step := time.Minute
	if st := tbl.Prometheus; st != nil && st.Step > 0 {
		step = st.Step
	}
	n := 0
	for _, mk := range marks {
		if !mk.Anomaly || mk.Entity == "" || mk.Time == nil {
			continue
		}
		entity := strings.TrimSuffix(strings.TrimPrefix(mk.Entity, "{"), "}")
		at := mk.Time.Unix()
		for _, sg := range segs {
			if tbl.Entities == nil || tbl.Entities[sg[0]] != entity {
				continue
			}
			for r := sg[0]; r < sg[1]; r++ {
				ts, err := strconv.ParseInt(tbl.Timestamps[r], 10, 64)
				if err == nil && ts <= at && at-ts < int64(step/time.Second) {
					if !flagged[r] {
						flagged[r] = true
						n++
					}
				}
			}
		}
	}
	return n, ""
}

// removeRows takes the rows drop marks out of tbl, and marks where a run continues
// after rows taken out as a break.
func removeRows(tbl *data.Table, drop []bool) {
	d := len(tbl.Columns)
	keep := 0
	breaks := map[int]bool{}
	gap := false
	for r := range drop {
		if drop[r] {
			gap = true
			continue
		}
		if gap && keep > 0 && (tbl.Entities == nil || tbl.Entities[keep-1] == tbl.Entities[r]) {
			breaks[keep] = true
		}
		gap = false
		copy(tbl.X[keep*d:(keep+1)*d], tbl.X[r*d:(r+1)*d])
		for _, col := range []*[]string{&tbl.Timestamps, &tbl.Entities} {
			if *col != nil {
				(*col)[keep] = (*col)[r]
			}
		}
		if tbl.Lines != nil {
			tbl.Lines[keep] = tbl.Lines[r]
		}
		if tbl.Breaks[r] {
			breaks[keep] = true
		}
		keep++
	}
	tbl.X = tbl.X[:keep*d]
	for _, col := range []*[]string{&tbl.Timestamps, &tbl.Entities} {
		if *col != nil {
			*col = (*col)[:keep]
		}
	}
	if tbl.Lines != nil {
		tbl.Lines = tbl.Lines[:keep]
	}
	tbl.Breaks = breaks
}

// String is the line training prints about what it left out.
func (lo leftOut) String() string {
	if lo.version == "" && lo.byFeedback == 0 && lo.feedback == "" && lo.unscored == "" {
		return ""
	}
	var parts []string
	switch {
	case lo.rows > 0:
		parts = append(parts, fmt.Sprintf("left out %d training rows in %d episodes that version %s flags or feedback marks anomalous (%d marked), a window before each and a quarter after",
			lo.rows, lo.episodes, lo.version, lo.byFeedback))
	case lo.keptEntities == 0 && lo.unscored == "":
		parts = append(parts, fmt.Sprintf("no training row is flagged by version %s or marked anomalous by feedback", lo.version))
	}
	if lo.keptEntities > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d entities kept every row: more than %.0f%% of theirs flagged, a changed regime to learn",
			lo.keptEntities, lo.entities, 100*MaxLeftOutShare))
	}
	if lo.unscored != "" {
		parts = append(parts, "the model in service did not score every training row: "+lo.unscored)
	}
	if lo.feedback != "" {
		parts = append(parts, "feedback not read: "+lo.feedback)
	}
	return strings.Join(parts, "; ")
}
