// Package watch scores a Prometheus-backed model as its metrics arrive: every interval
// it reads the newest window of each entity, scores the newest row from the window
// that ends at it, and exports the results as Prometheus metrics. It also keeps the
// episodes people read in the Detector's status. It runs inside `detector serve`.
package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/normalize"
	"github.com/kadet-dev/kadet/detector/preprocess"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/detector/seasonal"
)

// StaleIntervals is how many intervals an entity may go without data before its series
// are dropped.
const StaleIntervals = 5

// TopFeatures is how many features' contributions are exported per entity.
const TopFeatures = 3

// WarmupRows is how many rows before its first score an entity's likelihood state is
// warmed up on, read from Prometheus and scored as the watch would have scored them:
// a restarted or failed-over watcher does not start blind.
const WarmupRows = 500

// WarmupWindows bounds the windows one tick scores to warm new entities up: scoring is
// the watch's cost, and thousands of entities' 500 rows each would hold the first tick
// for many minutes (docs/metrics.md). Past the bound every new entity of the tick
// warms up on fewer rows, and learns the rest as its rows come.
const WarmupWindows = 32768

// warmupRows is how many rows each of fresh new entities warms up on.
func warmupRows(fresh int) int {
	if fresh == 0 {
		return 0
	}
	return min(WarmupRows, WarmupWindows/fresh)
}

// Options configure a Watcher.
type Options struct {
	// Namespace and Detector label every exported series.
	Namespace, Detector string
	// Prometheus is the server, its access and the step; the queries and entity labels
	// come from the model's provenance when it has one, else from here.
	Prometheus contract.ResolvedPrometheus
	// Interval between ticks; Delay shifts each query's end back.
	Interval, Delay time.Duration
	// Model returns the model in service (nil before the first one).
	Model func() *artifact.Model
	// Registerer receives the metrics.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Read tunes the Prometheus reads. A tick tries once: the next tick is the retry.
	Read data.PromOptions
	// Now is the clock (time.Now when nil); tests tick at chosen times.
	Now func() time.Time
	// Observe, when set, is given each tick's observation: for the drift measures and
	// a shadow model.
	Observe func(Observation)
}

// Observation is what one tick scored: the model, the entities, their runs (RunRows
// rows each, in their own units) and the results of their newest rows.
type Observation struct {
	Model   *artifact.Model
	Keys    []string
	Runs    []float32
	Results []scoring.Newest
	// At is the unix time of the runs' newest rows.
	At int64
	// Prepare gives another model (a shadow scored beside the served one) its
	// likelihood states and scalers for Keys, as the tick gave the served model its
	// own: each new entity's state warmed up on its history, and kept, with the
	// entity's scaler, from one tick to the next. Both are nil when the model needs
	// none.
	Prepare func(ctx context.Context, m *artifact.Model) ([]*normalize.State, []*preprocess.Scaler, error)
}

// Watcher is the watch loop's state: the newest result of each entity and the
// episodes of the latest anomalies.
type Watcher struct {
	opts Options
	log  *slog.Logger
	step time.Duration

	mu       sync.Mutex
	entities map[string]*entity
	// stores hold, per model digest, the entities' likelihood states and scalers: the
	// served model's, and a shadow's scored beside it (Observation.Prepare). They are
	// kept apart from entities because an entity gets them before its first result.
	stores   map[string]*store
	episodes []*contract.AnomalyEpisode // newest first
	digest   string                     // of the model the entities were scored with
	last     *time.Time
	lastErr  string

	lag      prometheus.Gauge
	errors   prometheus.Counter
	rows     prometheus.Counter
	duration prometheus.Histogram
	entityN  prometheus.Gauge
}

// entity is one entity's newest result.
type entity struct {
	labels   map[string]string
	at       time.Time // the scored row's time
	seen     time.Time // when it last had data
	result   scoring.Newest
	rawScore float64 // the network's score, raw / threshold, before the likelihood stage
	features []string
	open     *contract.AnomalyEpisode // the ongoing episode, nil while normal
}

// New makes a Watcher and registers its metrics.
func New(opts Options) (*Watcher, error) {
	step, err := time.ParseDuration(opts.Prometheus.Step)
	if err != nil || step < time.Second {
		return nil, fmt.Errorf("watch: step %q is not a duration of at least 1s", opts.Prometheus.Step)
	}
	if opts.Interval < time.Second {
		return nil, fmt.Errorf("watch: interval %s is shorter than 1s", opts.Interval)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Read.Now == nil {
		opts.Read = data.DefaultPromOptions
		opts.Read.Attempts = 1
		opts.Read.Timeout = min(opts.Interval, 30*time.Second)
	}
	w := &Watcher{opts: opts, log: opts.Logger, step: step, entities: map[string]*entity{}, stores: map[string]*store{},
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kadet_watch_lag_seconds", Help: "Age of the newest row when it was scored (the query's end to the end of scoring).",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kadet_watch_query_errors_total", Help: "Watch ticks whose Prometheus read failed.",
		}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kadet_watch_rows_scored_total", Help: "Newest rows scored by the watch loop (one per entity per tick).",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kadet_watch_duration_seconds", Help: "Time of one watch tick: the queries and the scoring.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		entityN: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kadet_watch_entities", Help: "Entities the watch loop scores.",
		}),
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(w); err != nil {
			return nil, err
		}
		for _, c := range []prometheus.Collector{w.lag, w.errors, w.rows, w.duration, w.entityN} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return w, nil
}

// Run ticks every interval until ctx ends; the first tick is at once.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.opts.Interval)
	defer t.Stop()
	for {
		if err := w.Tick(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, ErrNoModel) {
			w.logOnce(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// logOnce logs an error when it differs from the last one: a server down for an hour
// is one log line, not one a tick.
func (w *Watcher) logOnce(err error) {
	w.mu.Lock()
	same := w.lastErr == err.Error()
	w.lastErr = err.Error()
	w.mu.Unlock()
	if !same {
		w.log.Error("watch", "error", err.Error())
	}
}

// ErrNoModel is a tick before any model is served.
var ErrNoModel = errors.New("no model to watch with yet")

// Tick reads the newest window of every entity and scores its newest row.
func (w *Watcher) Tick(ctx context.Context) error {
	m := w.opts.Model()
	if m == nil {
		return ErrNoModel
	}
	began := w.opts.Now()
	defer func(t time.Time) { w.duration.Observe(time.Since(t).Seconds()) }(time.Now())
	end := began.Add(-w.opts.Delay).Truncate(w.step)
	src, err := w.source(m, end)
	if err != nil {
		w.errors.Inc()
		return err
	}
	tbl, err := data.LoadPrometheus(ctx, src, w.opts.Read)
	if err != nil {
		w.errors.Inc()
		return err
	}
	keys, runs, err := w.newestRuns(m, tbl, end)
	if err != nil {
		w.errors.Inc()
		return err
	}
	if keys, runs = w.unscored(m, keys, runs, end, began); len(keys) == 0 {
		return nil
	}
	p, err := w.prepare(ctx, m, keys, runs, end)
	if err != nil {
		w.errors.Inc()
		return err
	}
	results, err := scoring.ScoreNewest(m, runs, len(keys), end.Unix(), p.states, p.scalers)
	if err != nil {
		return err
	}
	w.rows.Add(float64(len(keys)))
	if w.opts.Observe != nil {
		w.opts.Observe(Observation{Model: m, Keys: keys, Runs: runs, Results: results, At: end.Unix(),
			Prepare: func(ctx context.Context, other *artifact.Model) ([]*normalize.State, []*preprocess.Scaler, error) {
				p, err := w.prepare(ctx, other, keys, runs, end)
				return p.states, p.scalers, err
			}})
	}
	w.lag.Set(w.opts.Now().Sub(end).Seconds())
	w.record(m, keys, results, end, began)
	return nil
}

// unscored keeps, of keys and their runs, the entities whose row at end this model has
// not scored yet; the others (a tick again within one step, when the interval is
// shorter than the step) keep their result and count as seen at now. A row fed twice
// into an entity's likelihood state would weigh twice in its mean and variance.
func (w *Watcher) unscored(m *artifact.Model, keys []string, runs []float32, end, now time.Time) ([]string, []float32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.digest != m.Digest || len(keys) == 0 {
		return keys, runs
	}
	n := len(runs) / len(keys)
	var k int
	for i, key := range keys {
		if e := w.entities[key]; e != nil && e.at.Equal(end) {
			e.seen = now
			continue
		}
		keys[k] = key
		copy(runs[k*n:(k+1)*n], runs[i*n:(i+1)*n])
		k++
	}
	return keys[:k], runs[:k*n]
}

// store is one model's entities' likelihood states and scalers.
type store struct {
	norms   map[string]*normalize.State
	scalers map[string]entityScaler
}

// maxStores bounds the models whose entity stores a watcher keeps: the served one, a
// shadow, and the ones they replace while a tick or a shadow job still uses them.
const maxStores = 4

// storeOf is the store of the model of digest, new when there is none: another
// model's scores have another scale, and its entities other scalers. Past maxStores,
// the stores of models other than this one and the served one go. The caller holds
// w.mu.
func (w *Watcher) storeOf(digest string) *store {
	st := w.stores[digest]
	if st == nil {
		if len(w.stores) >= maxStores {
			for d := range w.stores {
				if d != w.digest {
					delete(w.stores, d)
				}
			}
		}
		st = &store{norms: map[string]*normalize.State{}, scalers: map[string]entityScaler{}}
		w.stores[digest] = st
	}
	return st
}

// prepared is what the tick's entities are scored with: their likelihood states (nil
// when the model has no likelihood stage) and their scalers (nil when the model scales
// every entity alike).
type prepared struct {
	states  []*normalize.State
	scalers []*preprocess.Scaler
}

// entityScaler is an entity's scaler, and whether it was fitted on the entity's
// history because the model did not see the entity in training.
type entityScaler struct {
	sc          *preprocess.Scaler
	fromHistory bool
}

// newEntity is an entity the tick meets without what prepare gives it: a state to
// warm up (nil when it has one or the model has no stage) and whether it needs a
// scaler fitted on its history.
type newEntity struct {
	state       *normalize.State
	needsScaler bool
	run         []float32 // the tick's run: history of last resort for its scaler
}

// prepare gives keys (whose tick runs are runs) their states and scalers. An entity
// without a state gets one from the model's prior, warmed up on its rows before end
// (WarmupRows, fewer when many entities are new at once). An entity the model scales
// by its own statistics but did not see in training is scaled by its rows before end
// (WarmupRows of them), as a batch score scales it by its first rows.
func (w *Watcher) prepare(ctx context.Context, m *artifact.Model, keys []string, runs []float32, end time.Time) (prepared, error) {
	norm, byEntity := m.Meta.Normalization.Enabled(), m.Meta.ScalesByEntity()
	var p prepared
	n := scoring.RunRows(m) * len(m.Meta.Features) // values in a run
	w.mu.Lock()
	st := w.storeOf(m.Digest)
	if !norm && !byEntity {
		w.mu.Unlock()
		return p, nil
	}
	if norm {
		p.states = make([]*normalize.State, len(keys))
	}
	if byEntity {
		p.scalers = make([]*preprocess.Scaler, len(keys))
	}
	fresh := map[string]*newEntity{}
	states := 0
	for i, key := range keys {
		var ne newEntity
		if norm {
			if p.states[i] = st.norms[key]; p.states[i] == nil {
				p.states[i] = new(normalize.State)
				ne.state = p.states[i]
				states++
			}
		}
		if byEntity {
			if es, ok := st.scalers[key]; ok {
				p.scalers[i] = es.sc
			} else if sc, known, _ := m.Meta.EntityScaler(key, nil); known {
				p.scalers[i] = sc
				st.scalers[key] = entityScaler{sc: sc}
			} else {
				ne.needsScaler, ne.run = true, runs[i*n:(i+1)*n]
			}
		}
		if ne.state != nil || ne.needsScaler {
			fresh[key] = &ne
		}
	}
	w.mu.Unlock()
	if len(fresh) > 0 {
		scalers, err := w.warmUp(ctx, m, fresh, end, warmupRows(states))
		if err != nil {
			return p, fmt.Errorf("preparing %d new entities: %w", len(fresh), err)
		}
		w.mu.Lock()
		for i, key := range keys {
			ne := fresh[key]
			if ne == nil {
				continue
			}
			if ne.state != nil {
				st.norms[key] = ne.state
			}
			if ne.needsScaler {
				p.scalers[i] = scalers[key]
				st.scalers[key] = entityScaler{sc: scalers[key], fromHistory: true}
			}
		}
		w.mu.Unlock()
	}
	return p, nil
}

// warmUp reads the rows before end (WarmupRows when an entity of fresh needs a
// scaler, else rows, and the window before them), fits the scalers fresh entities need
// on their rows there, and feeds each fresh state its scores on its last rows rows, as
// batch scoring of those rows would: each run of consecutive steps is scored causally,
// runs in time order. The read ends at end, whose rows the tick has just read, so it
// cannot come back empty; they are left to the tick.
func (w *Watcher) warmUp(ctx context.Context, m *artifact.Model, fresh map[string]*newEntity, end time.Time, rows int) (map[string]*preprocess.Scaler, error) {
	read := rows
	for _, ne := range fresh {
		if ne.needsScaler {
			read = WarmupRows
			break
		}
	}
	scalers := map[string]*preprocess.Scaler{}
	src, err := w.source(m, end)
	if err != nil {
		return nil, err
	}
	n := scoring.RunRows(m)
	src.Range = (time.Duration(read+n-1) * w.step).String()
	tbl, err := data.LoadPrometheus(ctx, src, w.opts.Read)
	if err != nil {
		return nil, err
	}
	newest := strconv.FormatInt(end.Unix(), 10)
	f, norm := len(tbl.Columns), m.Meta.Normalization
	// Runs go through the network in passes of about warmupWindows windows, many
	// entities to a pass; each entity's runs stay in time order within and across
	// passes, as its state needs them.
	var pending []warmRun
	var windows int
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		xs := make([][]float32, len(pending))
		for i, r := range pending {
			xs[i] = r.x
		}
		raws, err := scoring.CausalScores(m.Network, xs)
		if err != nil {
			return err
		}
		for i, r := range pending {
			for j, v := range raws[i] {
				at := unixTime(tbl.Timestamps[r.row+j])
				u := float64(v) / m.Meta.Threshold.Value / m.Meta.Seasons.Factor(at)
				if inSample(m, at) {
					u *= norm.Gap()
				}
				norm.Next(r.state, u)
			}
		}
		pending, windows = pending[:0], 0
		return nil
	}
	for _, b := range entityBlocks(tbl) {
		key, lo, hi := b.key, b.lo, b.hi
		top := hi
		if top > lo && tbl.Timestamps[top-1] == newest {
			top--
		}
		ne := fresh[key]
		if ne == nil {
			continue
		}
		sc := m.Meta.Scaler
		if ne.needsScaler {
			history := tbl.X[lo*f : top*f]
			if top == lo {
				history = ne.run
			}
			if sc, _, err = m.Meta.EntityScaler(key, history); err != nil {
				return nil, fmt.Errorf("entity %s: scaling by its history: %w", key, err)
			}
			scalers[key] = sc
		} else if es, known, _ := m.Meta.EntityScaler(key, nil); known {
			sc = es
		}
		if ne.state == nil || rows == 0 {
			continue
		}
		from := max(lo, top-(rows+n-1))
		for _, run := range consecutiveRuns(tbl.Timestamps[from:top], w.step) {
			k := run[1] - run[0]
			if k < n {
				continue
			}
			x := sc.Transform(nil, tbl.X[(from+run[0])*f:(from+run[1])*f])
			pending = append(pending, warmRun{state: ne.state, x: x, row: from + run[0]})
			if windows += k; windows >= warmupWindows {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
	}
	for key, ne := range fresh {
		if ne.needsScaler && scalers[key] == nil {
			// Not in the read (it came between the tick's read and this one): its
			// tick run is all the history it has.
			if scalers[key], _, err = m.Meta.EntityScaler(key, ne.run); err != nil {
				return nil, fmt.Errorf("entity %s: scaling by its history: %w", key, err)
			}
		}
	}
	return scalers, flush()
}

// warmupWindows bounds the windows of one warm-up pass: 10,000 entities' 500 rows
// at once would hold gigabytes of windows.
const warmupWindows = 8192

// warmRun is one run of consecutive rows of an entity to warm its state up on: its
// scaled rows and the table row it starts at.
type warmRun struct {
	state *normalize.State
	x     []float32
	row   int
}

// block is one entity's rows [lo, hi) of a table read from Prometheus.
type block struct {
	key    string
	lo, hi int
}

// entityBlocks splits tbl's rows by entity (the reader groups each entity's rows in
// time order); a table without entities is one block with an empty key.
func entityBlocks(tbl *data.Table) []block {
	var out []block
	for lo := 0; lo < tbl.Rows(); {
		if tbl.Entities == nil {
			return []block{{lo: 0, hi: tbl.Rows()}}
		}
		hi := lo + 1
		for hi < tbl.Rows() && tbl.Entities[hi] == tbl.Entities[lo] {
			hi++
		}
		out = append(out, block{key: tbl.Entities[lo], lo: lo, hi: hi})
		lo = hi
	}
	return out
}

// unixTime reads a Prometheus row's timestamp (unix seconds).
func unixTime(ts string) int64 {
	v, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return seasonal.NoTime
	}
	return v
}

// inSample says whether the row at unix time t is in the range m trained on.
func inSample(m *artifact.Model, t int64) bool {
	p := m.Meta.Prometheus
	if p == nil || p.End.IsZero() {
		return false
	}
	return t != seasonal.NoTime && t <= p.End.Unix()
}

// consecutiveRuns splits timestamps (Unix seconds) into [from, to) runs of
// consecutive steps.
func consecutiveRuns(ts []string, step time.Duration) [][2]int {
	var out [][2]int
	from := 0
	for i := 1; i <= len(ts); i++ {
		if i == len(ts) || !consecutive(ts[i-1:i+1], step) {
			out = append(out, [2]int{from, i})
			from = i
		}
	}
	return out
}

// source is the read of one tick: the model's queries over the steps its window needs
// before end, plus maxGap steps so a gap at the window's start can be bridged.
func (w *Watcher) source(m *artifact.Model, end time.Time) (*contract.ResolvedPrometheus, error) {
	src := w.opts.Prometheus
	if p := m.Meta.Prometheus; p != nil {
		src.Queries, src.EntityLabels = p.Queries, p.EntityLabels
	}
	names := make([]string, len(src.Queries))
	for i, q := range src.Queries {
		names[i] = q.Name
	}
	if !slices.Equal(names, m.Meta.Features) {
		return nil, fmt.Errorf("the model's features %v are not the queries %v", m.Meta.Features, names)
	}
	gap := contract.DefaultMaxGap
	if src.MaxGap != nil {
		gap = int(*src.MaxGap)
	}
	steps := scoring.RunRows(m) - 1 + gap
	src.Range = (time.Duration(max(steps, 1)) * w.step).String()
	src.End = end.UTC().Format(time.RFC3339)
	return &src, nil
}

// newestRuns takes, of each entity that has a row at end, its last RunRows rows when
// they are consecutive steps. An entity without them is not scored this tick.
func (w *Watcher) newestRuns(m *artifact.Model, tbl *data.Table, end time.Time) ([]string, []float32, error) {
	n, f := scoring.RunRows(m), len(tbl.Columns)
	want := strconv.FormatInt(end.Unix(), 10)
	var keys []string
	var runs []float32
	for _, b := range entityBlocks(tbl) {
		if hi := b.hi; hi-b.lo >= n && tbl.Timestamps[hi-1] == want && consecutive(tbl.Timestamps[hi-n:hi], w.step) {
			keys = append(keys, b.key)
			runs = append(runs, tbl.X[(hi-n)*f:hi*f]...)
		}
	}
	return keys, runs, nil
}

func consecutive(ts []string, step time.Duration) bool {
	prev := int64(0)
	for i, s := range ts {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || (i > 0 && v-prev != int64(step/time.Second)) {
			return false
		}
		prev = v
	}
	return true
}

// record stores each entity's result, opens and closes episodes, and drops entities
// without data for StaleIntervals intervals.
func (w *Watcher) record(m *artifact.Model, keys []string, results []scoring.Newest, at, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.digest != m.Digest {
		// Another model may have other features or entity labels: a series family
		// must keep one set of label names, so the old model's results go.
		w.closeAll()
		w.entities, w.digest = map[string]*entity{}, m.Digest
	}
	for i, key := range keys {
		e := w.entities[key]
		if e == nil {
			labels, err := data.EntityLabels(key)
			if err != nil {
				continue // keys come from the reader: cannot happen
			}
			e = &entity{labels: labels}
			w.entities[key] = e
		}
		e.at, e.seen, e.result, e.features = at, now, results[i], m.Meta.Features
		e.rawScore = results[i].Raw / m.Meta.Threshold.Value
		top := topFeatures(m.Meta.Features, results[i].Shares, TopFeatures)
		switch {
		case results[i].Anomaly && e.open == nil:
			e.open = &contract.AnomalyEpisode{Entity: key, Start: at, PeakScore: results[i].Score, PeakTime: at, TopFeatures: top}
			w.episodes = append([]*contract.AnomalyEpisode{e.open}, w.episodes...)
			if len(w.episodes) > contract.RecentAnomalies {
				w.episodes = w.episodes[:contract.RecentAnomalies]
			}
		case results[i].Anomaly && results[i].Score > e.open.PeakScore:
			e.open.PeakScore, e.open.PeakTime, e.open.TopFeatures = results[i].Score, at, top
		case !results[i].Anomaly && e.open != nil:
			end := at
			e.open.End = &end
			e.open = nil
		}
	}
	for key, e := range w.entities {
		if now.Sub(e.seen) > StaleIntervals*w.opts.Interval {
			if e.open != nil {
				end := e.at
				e.open.End = &end
			}
			delete(w.entities, key)
			for _, st := range w.stores { // back, it warms up again
				delete(st.norms, key)
				delete(st.scalers, key)
			}
		}
	}
	if len(keys) > 0 {
		w.last = &at
	}
	w.entityN.Set(float64(len(w.entities)))
}

// closeAll ends every ongoing episode at its entity's last score.
func (w *Watcher) closeAll() {
	for _, e := range w.entities {
		if e.open != nil {
			end := e.at
			e.open.End = &end
			e.open = nil
		}
	}
}

// Reset forgets every entity and episode: a pod that stops watching (it lost the
// election) must stop exporting scores, or two pods would report one entity.
func (w *Watcher) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.entities = map[string]*entity{}
	w.stores = map[string]*store{}
	w.episodes = nil
	w.last = nil
	w.digest = ""
	w.entityN.Set(0)
}

// Status is the state people read in the Detector's status.
func (w *Watcher) Status() contract.WatchStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := contract.WatchStatus{Entities: len(w.entities), LastScoreTime: w.last}
	for _, ep := range w.episodes {
		c := *ep
		c.TopFeatures = slices.Clone(ep.TopFeatures)
		s.Episodes = append(s.Episodes, c)
	}
	for key, e := range w.entities {
		if e.result.Anomaly {
			s.AnomalousNow++
		}
		if st := w.stores[w.digest]; st != nil && st.scalers[key].fromHistory {
			s.ScaledFromHistory++
		}
	}
	return s
}

func topFeatures(names []string, shares []float32, n int) []string {
	if len(shares) == 0 {
		return nil
	}
	idx := make([]int, len(shares))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return shares[idx[a]] > shares[idx[b]] })
	out := make([]string, 0, n)
	for _, i := range idx[:min(n, len(idx))] {
		out = append(out, names[i])
	}
	return out
}
