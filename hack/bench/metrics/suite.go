package main

import (
	"github.com/kadet-dev/kadet/hack/bench/internal/cli"

	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/normalize"
	"k8s.io/utils/ptr"
)

// An anomaly kind changes rows [at, at+n) of a series in place.
type kind struct {
	name   string
	rows   int
	inject func(v []float64, at, n int, rng *rand.Rand)
}

var kinds = []kind{
	{"spike", 1, func(v []float64, at, _ int, _ *rand.Rand) { v[at] += 8 }},
	{"dip", 1, func(v []float64, at, _ int, _ *rand.Rand) { v[at] -= 8 }},
	{"level shift", 36, func(v []float64, at, n int, _ *rand.Rand) {
		for i := at; i < at+n; i++ {
			v[i] += 6
		}
	}},
	{"trend change", 72, func(v []float64, at, n int, _ *rand.Rand) {
		for i := at; i < at+n; i++ {
			v[i] += 0.15 * float64(i-at)
		}
	}},
	{"variance burst", 24, func(v []float64, at, n int, rng *rand.Rand) {
		for i := at; i < at+n; i++ {
			v[i] += 5 * rng.NormFloat64()
		}
	}},
	{"seasonality break", 72, func(v []float64, at, n int, _ *rand.Rand) {
		for i := at; i < at+n; i++ { // the daily cycle runs backwards
			v[i] -= 2 * 20 * math.Sin(2*math.Pi*float64(i)/day)
		}
	}},
	{"stuck value", 24, func(v []float64, at, n int, _ *rand.Rand) {
		for i := at + 1; i < at+n; i++ {
			v[i] = v[at]
		}
	}},
	{"missing points", 6, func(v []float64, at, n int, _ *rand.Rand) {
		for i := at; i < at+n; i++ { // an exporter that reports 0 for a missed scrape
			v[i] = 0
		}
	}},
}

// event is one injected anomaly.
type event struct {
	kind    int
	at, end int // rows [at, end) of the scored part
}

// injectAll places perKind events of every kind in v, apart from each other, and
// returns them in row order.
func injectAll(v []float64, perKind int, rng *rand.Rand) []event {
	const gap = 2 * day / 3 // rows between events, so each is judged on its own
	n := len(kinds) * perKind
	slot := len(v) / n
	order := rng.Perm(n)
	events := make([]event, n)
	for s, k := range order {
		kd := kinds[k%len(kinds)]
		at := s*slot + rng.IntN(max(1, slot-kd.rows-gap))
		kd.inject(v, at, kd.rows, rng)
		events[s] = event{kind: k % len(kinds), at: at, end: at + kd.rows}
	}
	return events
}

type tally struct {
	detected, total []int
	delay           []int
	falseAlarms     int
	normalRows      int
}

func newTally() *tally {
	return &tally{detected: make([]int, len(kinds)), total: make([]int, len(kinds)), delay: make([]int, len(kinds))}
}

// found is how many events of every kind were detected, of how many.
func (t *tally) found() (found, total int) {
	for k := range kinds {
		found, total = found+t.detected[k], total+t.total[k]
	}
	return found, total
}

// falseAlarmRate is the false alarms per 10,000 normal rows.
func (t *tally) falseAlarmRate() float64 {
	return 1e4 * float64(t.falseAlarms) / float64(max(t.normalRows, 1))
}

// kindRows prints a row per anomaly kind: on each line of tallies, the events of the
// kind detected of all, and their mean delay, in a column width wide.
func kindRows(tallies map[string]*tally, lines []string, width int) {
	for k, kd := range kinds {
		fmt.Printf("%-18s", kd.name)
		for _, l := range lines {
			t := tallies[l]
			delay := "-"
			if t.detected[k] > 0 {
				delay = fmt.Sprintf("%.1f rows", float64(t.delay[k])/float64(t.detected[k]))
			}
			fmt.Printf(" | %4d/%-4d %*s", t.detected[k], t.total[k], width, delay)
		}
		fmt.Println()
	}
}

// judgeWindow is how many rows after an event a line's flags may still come from it
// (see judge): a sequence model's window, and the stage's short mean on kadet's line.
func judgeWindow(line string, sequence bool) int {
	if !sequence || line == lineGaussian {
		return 1 // a row model, or the Gaussian
	}
	if line == lineKadet { // the stage's short mean reaches further back
		return contract.DefaultWindow + shortWindowOr() - 1
	}
	return contract.DefaultWindow
}

// judge counts an event as detected when a row from its start to patience rows after
// its end scores above 1 (delay: rows from its start to the first such row), and
// every other run of rows above 1 as one false alarm. Rows up to window rows after an
// event are neither: their windows still hold anomalous rows.
func (t *tally) judge(anomaly []bool, events []event, patience, window int) {
	covered := make([]bool, len(anomaly))
	for _, e := range events {
		t.total[e.kind]++
		for i := e.at; i < min(len(anomaly), e.end+max(patience, window-1)); i++ {
			covered[i] = true
		}
		last := min(len(anomaly), e.end+patience)
		for i := e.at; i < last; i++ {
			if anomaly[i] {
				t.detected[e.kind]++
				t.delay[e.kind] += i - e.at
				break
			}
		}
	}
	for i, a := range anomaly {
		if covered[i] {
			continue
		}
		t.normalRows++
		if a && (i == 0 || !anomaly[i-1] || covered[i-1]) {
			t.falseAlarms++
		}
	}
}

// suite trains each model on a clean prefix of seasonal series, scores the rest with
// anomalies of every kind injected, under each scoring rule, and prints a table per
// line: kadet, kadet without its likelihood stage, the sliding Gaussian.
func suite(work string, models, rules []string, trainDays, testDays, perKind, seeds int, epochs int32) error {
	fmt.Printf("\nanomaly suite: %d days of training, %d days scored with %d anomalies of each kind, %d seeds, weekly cycle %.0f, noise %.1f\n",
		trainDays, testDays, perKind, seeds, suiteWeekly, noise)
	for _, name := range models {
		for _, rule := range rules {
			if name == string(contract.Autoencoder) && rule != rules[0] {
				continue // a row model has no scoring rule
			}
			start := time.Now()
			tallies := map[string]*tally{}
			for _, line := range lines {
				tallies[line] = newTally()
			}
			for seed := 1; seed <= seeds; seed++ {
				if err := suiteRun(work, name, rule, trainDays, testDays, perKind, uint64(seed), epochs, tallies); err != nil {
					return fmt.Errorf("%s %s seed %d: %w", name, rule, seed, err)
				}
			}
			label := name
			if name != string(contract.Autoencoder) {
				label += " " + rule
			}
			fmt.Printf("\n%s (%s)\n%-18s", label, time.Since(start).Round(time.Second), "kind")
			for _, line := range lines {
				fmt.Printf(" | %-25s", line)
			}
			fmt.Printf("\n%-18s", "")
			for range lines {
				fmt.Printf(" | %9s %15s", "detected", "mean delay")
			}
			fmt.Println()
			kindRows(tallies, lines, 15)
			for _, line := range lines {
				t := tallies[line]
				fmt.Printf("%s: false alarms per 10,000 normal rows: %.1f (%d in %d rows)\n", line, t.falseAlarmRate(), t.falseAlarms, t.normalRows)
			}
			if name != string(contract.Autoencoder) && withChanges {
				if err := persistent(work, name, rule, trainDays, testDays, seeds, epochs); err != nil {
					return err
				}
			}
			if name != string(contract.Autoencoder) && withRolling {
				if err := rolling(work, name, rule, trainDays, testDays, perKind, seeds, epochs); err != nil {
					return err
				}
			}
			if name != string(contract.Autoencoder) && withRealism {
				if err := realism(work, name, rule, trainDays, testDays, perKind, seeds, epochs); err != nil {
					return err
				}
			}
			if name != string(contract.Autoencoder) && withScales {
				if err := scales(work, name, rule, trainDays, testDays, perKind, seeds, epochs); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func suiteRun(work, name, rule string, trainDays, testDays, perKind int, seed uint64, epochs int32, tallies map[string]*tally) error {
	trainRows, testRows := trainDays*day, testDays*day
	values := series(trainRows+testRows, seed, suiteWeekly)
	rng := rand.New(rand.NewPCG(seed, 99))
	events := injectAll(values[trainRows:], perKind, rng)
	m := contract.Model{Type: contract.ModelType(name)}
	if name != string(contract.Autoencoder) {
		m.ScoringRule = rule
	}
	_, flags, err := trainAndScore(filepath.Join(work, fmt.Sprintf("suite-%s-%s-%d", name, rule, seed)), values, trainRows, m, epochs)
	if err != nil {
		return err
	}
	for line, anomaly := range flags {
		tallies[line].judge(anomaly, events, 12, judgeWindow(line, name != string(contract.Autoencoder)))
	}
	return nil
}

// withChanges runs the lasting changes after the suite, withScales one model over
// entities on scales 1 to 1,000.
var withChanges, withScales bool

// shortWindow and longWindow are the likelihood stage's windows (nil: the defaults).
var shortWindow, longWindow *int32

// shortWindowOr is the stage's short window, given or the default.
func shortWindowOr() int { return int(ptr.Deref(shortWindow, normalize.DefaultShortWindow)) }

// defaultRequest is what a Detector with only its model type (and scoring rule) set
// trains with, on a CSV of timestamp,value, with the stage's windows, percentile and
// seasonality the flags give.
func defaultRequest(csv string, m contract.Model, epochs int32) *contract.TrainingRequest {
	m.Seasonality = seasonality // a new Detector's (Auto for a sequence model), unless the flag says
	req := cli.DetectorRequest(csv, m, epochs)
	if req.Normalization != nil {
		req.Normalization.ShortWindow, req.Normalization.LongWindow = shortWindow, longWindow
	}
	if percentile > 0 {
		req.Threshold.Percentile = &percentile
	}
	return req
}
