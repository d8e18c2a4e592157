package watch

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/normalize"
	"github.com/kadet-dev/kadet/detector/preprocess"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/detector/seasonal"
	"github.com/kadet-dev/kadet/hack/promtest"
)

const window = 4

var t0 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

// value is entity e's load at minute i: a cycle with a little deterministic noise,
// and a spike on b at minute 100.
func value(e string, i int) float64 {
	v := 10 + 3*math.Sin(2*math.Pi*float64(i)/30) + 0.1*float64((i*7)%5)
	if e == "b" {
		v += 2
		if i == 100 {
			v += 40
		}
	}
	return v
}

func series(e string, n int) promtest.Series {
	v := make([]float64, n)
	for i := range v {
		v[i] = value(e, i)
	}
	return promtest.Series{Metric: "wt_load", Labels: map[string]string{"entity": e, "namespace": "shop"}, Start: t0, Step: time.Minute, Values: v}
}

// testModel is an untrained LSTM whose threshold is twice the highest causal score of
// entity a's normal rows: what matters here is the loop, not the model's skill.
func testModel(t *testing.T) *artifact.Model {
	t.Helper()
	net, err := model.New(model.Spec{Type: model.LSTMAutoencoder, Inputs: window, Window: window, Hidden: []int{4}, Latent: 2, Activation: model.Tanh}, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := &artifact.Model{Network: net, Digest: "sha256:test", Meta: artifact.Metadata{
		Features: []string{"load"}, ScoringRule: contract.ScoringCausal,
		Scaler:    &preprocess.Scaler{Kind: "Standardize", Offset: []float32{11}, Scale: []float32{2.5}},
		Threshold: artifact.Threshold{Value: 1},
		Prometheus: &artifact.PrometheusSource{Queries: []contract.PrometheusQuery{{Name: "load", Query: "wt_load"}},
			EntityLabels: []string{"entity", "namespace"}},
	}}
	x := make([]float32, 90)
	for i := range x {
		x[i] = float32(value("a", i))
	}
	s, err := scoring.Score(m, x)
	if err != nil {
		t.Fatal(err)
	}
	top := 0.0
	for _, r := range s {
		top = math.Max(top, r.Raw)
	}
	m.Meta.Threshold.Value = 2 * top
	return m
}

func TestWatchScoresTheNewestRowOfEachEntity(t *testing.T) {
	srv := promtest.Start(t, promtest.Options{History: []promtest.Series{series("a", 120), series("b", 120), series("c", 86)}})
	m := testModel(t)
	var now time.Time
	w, reg := minuteWatcher(t, srv.URL, m, &now, nil)
	tick := func(minute int, seconds time.Duration) {
		t.Helper()
		now = t0.Add(time.Duration(minute)*time.Minute + seconds)
		if err := w.Tick(context.Background()); err != nil {
			t.Fatalf("tick at minute %d: %v", minute, err)
		}
	}
	score := func(e string) float64 {
		t.Helper()
		return testutil.ToFloat64(gauge(t, reg, "kadet_anomaly_score", map[string]string{"entity": e}))
	}

	// At 80:30 the newest row is minute 80; each entity's score is the causal score of
	// its rows 77-80 (no later row), c included.
	tick(80, 30*time.Second)
	for _, e := range []string{"a", "b", "c"} {
		x := make([]float32, window)
		for i := range x {
			x[i] = float32(value(e, 77+i))
		}
		want, err := scoring.ScoreNewest(m, x, 1, seasonal.NoTime, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := score(e); math.Abs(got-want[0].Score) > 1e-6 {
			t.Errorf("entity %s at minute 80: score %v; want %v", e, got, want[0].Score)
		}
	}
	if got := testutil.ToFloat64(w.lag); got != 30 {
		t.Errorf("lag %v s; want 30 (the row of minute 80 scored at 80:30)", got)
	}
	// The series carry the Detector's namespace; the entity's own is entity_namespace.
	if c := gauge(t, reg, "kadet_anomaly", map[string]string{"namespace": "ns", "detector": "det", "entity": "b", "entity_namespace": "shop"}); testutil.ToFloat64(c) != 0 {
		t.Error("b is anomalous at minute 80")
	}

	// Minute 100: b spikes, a does not; the episode opens with b's top feature.
	tick(100, 0)
	if score("b") <= 1 || score("a") >= 1 {
		t.Errorf("minute 100: scores a %v, b %v; want b above 1 and a below", score("a"), score("b"))
	}
	st := w.Status()
	if st.AnomalousNow != 1 || len(st.Episodes) != 1 || st.Episodes[0].Entity != `entity="b",namespace="shop"` ||
		st.Episodes[0].End != nil || st.Episodes[0].TopFeatures[0] != "load" || !st.Episodes[0].Start.Equal(t0.Add(100*time.Minute)) {
		t.Errorf("status at minute 100: %+v", st)
	}
	if got := testutil.ToFloat64(gauge(t, reg, "kadet_anomaly_contribution", map[string]string{"entity": "b", "feature": "load"})); got != 1 {
		t.Errorf("contribution of the only feature %v; want 1", got)
	}
	exp := testutil.ToFloat64(gauge(t, reg, "kadet_expected_value", map[string]string{"entity": "a", "feature": "load"}))
	if math.Abs(exp-value("a", 100)) > 10 {
		t.Errorf("expected value of a at minute 100: %v, observed %v", exp, value("a", 100))
	}
	// c has had no data since minute 85 (Prometheus bridged to 90): five intervals
	// later its series are gone.
	if strings.Contains(gather(t, reg), `entity="c"`) {
		t.Error("c still exported 15 minutes after its last sample")
	}

	// Once the spike has left the window, b is normal and its episode ended.
	tick(105, 0)
	st = w.Status()
	if st.AnomalousNow != 0 || st.Episodes[0].End == nil || st.Episodes[0].PeakScore < score("b") {
		t.Errorf("status at minute 105: %+v", st)
	}
	if got := testutil.ToFloat64(w.rows); got != 3+2+2 {
		t.Errorf("%v rows scored; want 7", got)
	}

	// Losing the lead drops every series.
	w.Reset()
	if s := gather(t, reg); strings.Contains(s, "kadet_anomaly_score") {
		t.Errorf("after Reset: %s", s)
	}
}

func TestWatchCountsQueryErrors(t *testing.T) {
	m := testModel(t)
	reg := prometheus.NewRegistry()
	w, err := New(Options{Interval: time.Second, Registerer: reg, Prometheus: contract.ResolvedPrometheus{URL: "http://127.0.0.1:1", Step: "1s"},
		Model: func() *artifact.Model { return m }})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Tick(context.Background()); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("tick against a closed port: %v", err)
	}
	if got := testutil.ToFloat64(w.errors); got != 1 {
		t.Errorf("%v query errors; want 1", got)
	}
	// A model whose features are not the queries is refused, not scored.
	m.Meta.Features = []string{"other"}
	if err := w.Tick(context.Background()); err == nil || !strings.Contains(err.Error(), "are not the queries") {
		t.Errorf("mismatched model: %v", err)
	}
	if _, err := New(Options{Interval: 500 * time.Millisecond, Prometheus: contract.ResolvedPrometheus{Step: "1s"}}); err == nil {
		t.Error("an interval under 1s was accepted")
	}
}

// gauge finds the one series of name whose labels include want.
func gauge(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name})
			g.Set(m.GetGauge().GetValue())
			return g
		}
	}
	t.Fatalf("no series %s%v in:\n%s", name, want, gather(t, reg))
	return nil
}

// minuteWatcher watches the Prometheus at url every minute with model m, at the time
// *now, into a registry of its own; observe, when set, is given each tick.
func minuteWatcher(t *testing.T, url string, m *artifact.Model, now *time.Time, observe func(Observation)) (*Watcher, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	w, err := New(Options{
		Namespace: "ns", Detector: "det", Interval: time.Minute, Registerer: reg,
		Prometheus: contract.ResolvedPrometheus{URL: url, Step: "1m"},
		Model:      func() *artifact.Model { return m }, Now: func() time.Time { return *now }, Observe: observe,
	})
	if err != nil {
		t.Fatal(err)
	}
	return w, reg
}

func gather(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		b.WriteString(mf.String() + "\n")
	}
	return b.String()
}

// With the likelihood stage, each entity's state is warmed up on the WarmupRows rows
// before its first score (those the model trained on raised by its in-sample gap),
// so the watch scores every row as batch scoring of the same rows does, from the first tick on; a watcher started later (a restart, a failover)
// scores alike; and kadet_anomaly_raw_score is the network's score beside it.
func TestWatchLikelihoodMatchesBatch(t *testing.T) {
	const rows = WarmupRows + 80
	srv := promtest.Start(t, promtest.Options{History: []promtest.Series{series("a", rows), series("b", rows)}})
	m := testModel(t)
	m.Meta.Normalization = &normalize.Config{Method: normalize.Likelihood, LongWindow: 200, ShortWindow: 3, Target: 1e-4,
		Prior: normalize.Prior{Mean: -3, Std: 0.5, Rows: 100}, InSampleGap: 1.7}
	// Its scores follow the hour of the day: warm-up and ticks divide each row's by
	// its own hour's factor, as batch scoring does.
	m.Meta.Seasons = &seasonal.Profile{Period: seasonal.Day, Factors: make([]float32, 24)}
	for h := range m.Meta.Seasons.Factors {
		m.Meta.Seasons.Factors[h] = float32(0.5 + 0.25*float64(h%7))
	}
	// The model trained on the rows up to minute 300: the warm-up raises their scores
	// by the in-sample gap, as batch scoring after training does.
	const trainedTo = 300
	m.Meta.Prometheus.End = t0.Add(trainedTo * time.Minute)
	watcher := func(now *time.Time) (*Watcher, *prometheus.Registry) { return minuteWatcher(t, srv.URL, m, now, nil) }
	// batch is the score and network score of entity e's row at minute `at` when its
	// rows from minute `from` on are scored as one run.
	batch := func(e string, from, at int) (float64, float64) {
		x := make([]float32, 0, at-from+1)
		var times []int64
		for i := from; i <= at; i++ {
			x = append(x, float32(value(e, i)))
			times = append(times, t0.Add(time.Duration(i)*time.Minute).Unix())
		}
		res, err := scoring.ScoreRun(m, nil, x, max(0, trainedTo-from+1), times)
		if err != nil {
			t.Fatal(err)
		}
		r := res[len(res)-1]
		return r.Score, r.Raw / m.Meta.Threshold.Value
	}
	var now time.Time
	w, reg := watcher(&now)
	first := WarmupRows + window - 1 + 5
	for minute := first; minute < rows; minute++ {
		now = t0.Add(time.Duration(minute) * time.Minute)
		if err := w.Tick(context.Background()); err != nil {
			t.Fatalf("tick at minute %d: %v", minute, err)
		}
		// The first tick warmed up on the rows from WarmupRows + window - 1 minutes
		// before it: batch scoring starts there.
		from := first - (WarmupRows + window - 1)
		for _, e := range []string{"a", "b"} {
			want, wantRaw := batch(e, from, minute)
			got := testutil.ToFloat64(gauge(t, reg, "kadet_anomaly_score", map[string]string{"entity": e}))
			raw := testutil.ToFloat64(gauge(t, reg, "kadet_anomaly_raw_score", map[string]string{"entity": e}))
			if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) || math.Abs(raw-wantRaw) > 1e-9*math.Max(1, wantRaw) {
				t.Fatalf("entity %s at minute %d: watch score %v (network %v), batch %v (network %v)", e, minute, got, raw, want, wantRaw)
			}
		}
		if minute == first+40 {
			// A watcher that starts now warms up on its own history and scores as
			// batch scoring from WarmupRows + window - 1 rows before it.
			later, reg2 := watcher(&now)
			if err := later.Tick(context.Background()); err != nil {
				t.Fatal(err)
			}
			want, _ := batch("a", minute-(WarmupRows+window-1), minute)
			if got := testutil.ToFloat64(gauge(t, reg2, "kadet_anomaly_score", map[string]string{"entity": "a"})); math.Abs(got-want) > 1e-9*math.Max(1, want) {
				t.Errorf("a watcher started at minute %d scored a at %v, batch %v", minute, got, want)
			}
		}
	}
	// Without the stage the score is the network's.
	m.Meta.Normalization = nil
	m.Digest = "sha256:other"
	now = t0.Add((rows - 1) * time.Minute)
	if err := w.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, raw := testutil.ToFloat64(gauge(t, reg, "kadet_anomaly_score", map[string]string{"entity": "b"})),
		testutil.ToFloat64(gauge(t, reg, "kadet_anomaly_raw_score", map[string]string{"entity": "b"})); got != raw {
		t.Errorf("without the stage: score %v, network score %v", got, raw)
	}
}

// New entities warm up on WarmupRows rows each until their windows would pass
// WarmupWindows; then each on fewer, and none once a single row each would.
func TestWarmupRows(t *testing.T) {
	for _, tc := range []struct{ fresh, want int }{
		{0, 0}, {1, WarmupRows}, {WarmupWindows / WarmupRows, WarmupRows}, {WarmupWindows/WarmupRows + 1, WarmupWindows / (WarmupWindows/WarmupRows + 1)},
		{1000, WarmupWindows / 1000}, {WarmupWindows, 1}, {WarmupWindows + 1, 0},
	} {
		if got := warmupRows(tc.fresh); got != tc.want {
			t.Errorf("warmupRows(%d) = %d, want %d", tc.fresh, got, tc.want)
		}
	}
}

// A model that scales by entity scales an entity it saw in training by that entity's
// scaler and one it did not see by the rows before its first score (WarmupRows of
// them), once: each scores as batch scoring with that scaler, tick after tick, and
// the status counts the entity scaled from its history.
func TestWatchScalesEachEntityByItsOwn(t *testing.T) {
	const rows = WarmupRows + 40
	srv := promtest.Start(t, promtest.Options{History: []promtest.Series{series("a", rows), series("b", rows)}})
	m := testModel(t)
	src := contract.ResolvedPrometheus{URL: srv.URL, Step: "1m", Queries: m.Meta.Prometheus.Queries, EntityLabels: m.Meta.Prometheus.EntityLabels,
		Range: "10m", End: t0.Add(9 * time.Minute).Format(time.RFC3339)}
	tbl, err := data.LoadPrometheus(context.Background(), &src, data.DefaultPromOptions)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{} // entity -> key
	for _, k := range tbl.Entities {
		keys[map[bool]string{true: "a", false: "b"}[strings.Contains(k, `"a"`)]] = k
	}
	// a's own scaler is far from the model's, so scaling by the wrong one shows.
	scA := &preprocess.Scaler{Kind: "Standardize", Offset: []float32{9}, Scale: []float32{4}}
	m.Meta.EntityScalers = map[string]*preprocess.Scaler{keys["a"]: scA}
	rowsOf := func(e string, from, to int) []float32 { // minutes [from, to]
		var x []float32
		for i := from; i <= to; i++ {
			x = append(x, float32(value(e, i)))
		}
		return x
	}
	first := WarmupRows + window - 1 + 5
	// b's scaler: fitted on its rows before the first tick's.
	scB, err := m.Meta.Scaler.FitEntity(rowsOf("b", first-(WarmupRows+window-1), first-1), nil)
	if err != nil {
		t.Fatal(err)
	}
	// With the likelihood stage, each state warms up on rows scaled by its entity's
	// scaler: batch scoring from the warm-up's first row on.
	for _, norm := range []*normalize.Config{nil, {Method: normalize.Likelihood, LongWindow: 200, ShortWindow: 3, Target: 1e-4,
		Prior: normalize.Prior{Mean: -3, Std: 0.5, Rows: 100}}} {
		m.Meta.Normalization = norm
		var now time.Time
		w, reg := minuteWatcher(t, srv.URL, m, &now, nil)
		for minute := first; minute < rows; minute++ {
			now = t0.Add(time.Duration(minute) * time.Minute)
			if err := w.Tick(context.Background()); err != nil {
				t.Fatalf("tick at minute %d: %v", minute, err)
			}
			from := minute - window + 1
			if norm != nil {
				from = first - (WarmupRows + window - 1)
			}
			for e, sc := range map[string]*preprocess.Scaler{"a": scA, "b": scB} {
				res, err := scoring.ScoreRun(m, sc, rowsOf(e, from, minute), 0, nil)
				if err != nil {
					t.Fatal(err)
				}
				want := res[len(res)-1].Score
				if got := testutil.ToFloat64(gauge(t, reg, "kadet_anomaly_score", map[string]string{"entity": e})); math.Abs(got-want) > 1e-6*math.Max(1, want) {
					t.Fatalf("stage %v: entity %s at minute %d: watch score %v, batch with its scaler %v", norm != nil, e, minute, got, want)
				}
			}
		}
		if st := w.Status(); st.Entities != 2 || st.ScaledFromHistory != 1 {
			t.Errorf("status: %d entities, %d scaled from their history; want 2 and 1", st.Entities, st.ScaledFromHistory)
		}
		if norm == nil {
			continue
		}
		// At rest the stage scores 0 whatever it learnt: its states say what it learnt,
		// each as the network's scores of the entity's rows, scaled by its scaler, make it.
		m.Meta.Normalization = nil
		for e, sc := range map[string]*preprocess.Scaler{"a": scA, "b": scB} {
			res, err := scoring.ScoreRun(m, sc, rowsOf(e, first-(WarmupRows+window-1), rows-1), 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			var want normalize.State
			for _, r := range res {
				norm.Next(&want, r.Score)
			}
			if got := *w.stores[m.Digest].norms[keys[e]]; got != want {
				t.Errorf("entity %s's likelihood state %+v; batch scoring with its scaler gives %+v", e, got, want)
			}
		}
	}
}

// A shadow scored beside the served model gets, through the tick's observation, its
// own likelihood states, warmed up on each entity's history and kept from tick to
// tick as the served model's are: a shadow that is the served model scores as it does.
func TestObservationPreparesAShadowAsTheServedModel(t *testing.T) {
	const rows = WarmupRows + 40
	srv := promtest.Start(t, promtest.Options{History: []promtest.Series{series("a", rows), series("b", rows)}})
	m := testModel(t)
	m.Meta.Normalization = &normalize.Config{Method: normalize.Likelihood, LongWindow: 200, ShortWindow: 3, Target: 1e-4,
		Prior: normalize.Prior{Mean: -3, Std: 0.5, Rows: 100}}
	shadow := *m
	shadow.Digest = "sha256:shadow"
	var kept []*normalize.State
	var now time.Time
	var served, shadowed []float64
	w, _ := minuteWatcher(t, srv.URL, m, &now, func(o Observation) {
		states, scalers, err := o.Prepare(context.Background(), &shadow)
		if err != nil || len(states) != len(o.Keys) || scalers != nil {
			t.Fatalf("prepare: %d states, %v scalers, %v", len(states), scalers, err)
		}
		if kept != nil && (states[0] != kept[0] || states[1] != kept[1]) {
			t.Error("the shadow's states were not kept from one tick to the next")
		}
		kept = states
		res, err := scoring.ScoreNewest(&shadow, o.Runs, len(o.Keys), o.At, states, scalers)
		if err != nil {
			t.Fatal(err)
		}
		for i := range res {
			served, shadowed = append(served, o.Results[i].Score), append(shadowed, res[i].Score)
		}
	})
	first := WarmupRows + window - 1 + 5
	for minute := first; minute < rows; minute++ {
		now = t0.Add(time.Duration(minute) * time.Minute)
		if err := w.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(served) != 2*(rows-first) {
		t.Fatalf("%d scores observed", len(served))
	}
	for i := range served {
		if served[i] != shadowed[i] {
			t.Fatalf("score %d: served %v, shadow %v", i, served[i], shadowed[i])
		}
	}
	for key, st := range w.stores[m.Digest].norms {
		if *st != *w.stores[shadow.Digest].norms[key] {
			t.Errorf("entity %s: served state %+v, shadow state %+v", key, *st, *w.stores[shadow.Digest].norms[key])
		}
	}
}

// A watcher that ticks four times a step scores each row once: its scores equal those
// of a watcher that ticks once a step, where feeding the newest row into the
// likelihood state on every tick would weigh it four times.
func TestWatchScoresEachRowOnceWhenTicksOutpaceSteps(t *testing.T) {
	const rows = WarmupRows + 60
	srv := promtest.Start(t, promtest.Options{History: []promtest.Series{series("a", rows), series("b", rows)}})
	m := testModel(t)
	m.Meta.Normalization = &normalize.Config{Method: normalize.Likelihood, Transform: normalize.Plain, LongWindow: 200, ShortWindow: 3,
		Target: 1e-4, Prior: normalize.Prior{Mean: 0.5, Std: 0.2, Rows: 100}, AnomalyWeight: 0.1, UpdateCap: 3}
	var now, nowFast time.Time
	once, reg := minuteWatcher(t, srv.URL, m, &now, nil)
	regFast := prometheus.NewRegistry()
	fast, err := New(Options{
		Namespace: "ns", Detector: "det", Interval: 15 * time.Second, Registerer: regFast,
		Prometheus: contract.ResolvedPrometheus{URL: srv.URL, Step: "1m"},
		Model:      func() *artifact.Model { return m }, Now: func() time.Time { return nowFast },
	})
	if err != nil {
		t.Fatal(err)
	}
	for minute := WarmupRows + window + 4; minute < rows; minute++ {
		now = t0.Add(time.Duration(minute) * time.Minute)
		if err := once.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		for q := range 4 {
			nowFast = now.Add(time.Duration(q) * 15 * time.Second)
			if err := fast.Tick(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		for _, e := range []string{"a", "b"} {
			want := testutil.ToFloat64(gauge(t, reg, "kadet_anomaly_score", map[string]string{"entity": e}))
			got := testutil.ToFloat64(gauge(t, regFast, "kadet_anomaly_score", map[string]string{"entity": e}))
			if got != want {
				t.Fatalf("entity %s at minute %d: %v ticking four times a step, %v once", e, minute, got, want)
			}
		}
	}
}
