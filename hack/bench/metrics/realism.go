package main

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"time"

	"github.com/kadet-dev/kadet/detector/contract"
)

// A condition is what real metrics do that is not an anomaly, applied to a whole
// series, training days included.
type condition struct {
	name  string
	apply func(v []float64, rng *rand.Rand)
}

var conditions = []condition{
	{"none", func([]float64, *rand.Rand) {}}, // the suite as it is, on these seeds
	{"weekends", func(v []float64, _ *rand.Rand) {
		for i := range v { // Saturday and Sunday: a lower level and half the swing
			if d := (i / day) % 7; d == 5 || d == 6 {
				v[i] = 70 + 0.5*(v[i]-100)
			}
		}
	}},
	{"noise by day", func(v []float64, rng *rand.Rand) {
		for i := range v { // three times the noise at the daily peak, none added at night
			v[i] += 2 * noise * max(0, sinDay(i)) * rng.NormFloat64()
		}
	}},
	{"missed scrapes", func(v []float64, rng *rand.Rand) {
		for i := 1; i < len(v); i++ { // 2% of rows carry the last value, 1 to 3 rows at a time
			if rng.Float64() < 0.01 {
				for k := range 1 + rng.IntN(3) {
					if i+k < len(v) {
						v[i+k] = v[i-1]
					}
				}
			}
		}
	}},
}

// withRealism runs the conditions after the suite.
var withRealism bool

// realism is the suite under each condition: the condition on every day, training
// days included, and the suite's anomalies injected in the scored days. Per condition
// and line: the anomalies found of all kinds and the false alarms per 10,000 rows.
func realism(work, name, rule string, trainDays, testDays, perKind, seeds int, epochs int32) error {
	start := time.Now()
	tallies := map[string][]*tally{}
	for _, l := range lines {
		for range conditions {
			tallies[l] = append(tallies[l], newTally())
		}
	}
	trainRows, testRows := trainDays*day, testDays*day
	thresholds := make([][]string, len(conditions))
	for c, cond := range conditions {
		for seed := 1; seed <= seeds; seed++ {
			values := series(trainRows+testRows, uint64(300+seed), suiteWeekly)
			cond.apply(values, rand.New(rand.NewPCG(uint64(300+seed), 5)))
			events := injectAll(values[trainRows:], perKind, rand.New(rand.NewPCG(uint64(300+seed), 99)))
			m := contract.Model{Type: contract.ModelType(name), ScoringRule: rule}
			threshold, flags, err := trainAndScore(filepath.Join(work, fmt.Sprintf("realism-%d-%d", c, seed)), values, trainRows, m, epochs)
			if err != nil {
				return fmt.Errorf("%s seed %d: %w", cond.name, seed, err)
			}
			thresholds[c] = append(thresholds[c], fmt.Sprintf("%.3g", threshold))
			for l, anomaly := range flags {
				tallies[l][c].judge(anomaly, events, 12, judgeWindow(l, true))
			}
		}
	}
	fmt.Printf("\nwhat real metrics do, %s %s (%s): anomalies found of all kinds; false alarms per 10,000 normal rows\n%-16s",
		name, rule, time.Since(start).Round(time.Second), "condition")
	for _, l := range lines {
		fmt.Printf(" | %-25s", l)
	}
	fmt.Println(" | thresholds")
	for c, cond := range conditions {
		fmt.Printf("%-16s", cond.name)
		for _, l := range lines {
			t := tallies[l][c]
			found, total := t.found()
			fmt.Printf(" | %3d/%-3d %8.1f/10k      ", found, total, t.falseAlarmRate())
		}
		fmt.Printf(" | %s\n", strings.Join(thresholds[c], "/"))
	}
	return nil
}
