package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/kadet-dev/kadet/detector/contract"
)

// A lasting change starts one day into the scored days and holds to their end: a
// detector should flag its onset, then learn it as the new normal.
var changes = []kind{
	{"level shift", 0, func(v []float64, at, _ int, _ *rand.Rand) {
		for i := at; i < len(v); i++ {
			v[i] += 6
		}
	}},
	{"slow trend", 0, func(v []float64, at, _ int, _ *rand.Rand) {
		for i := at; i < len(v); i++ { // +6 over a day, then flat
			v[i] += 6 * min(1, float64(i-at)/day)
		}
	}},
	{"noise x3", 0, func(v []float64, at, _ int, rng *rand.Rand) {
		for i := at; i < len(v); i++ {
			v[i] += 2 * noise * rng.NormFloat64()
		}
	}},
	{"cycle x1.5", 0, func(v []float64, at, _ int, _ *rand.Rand) {
		for i := at; i < len(v); i++ { // the daily swing grows by half
			v[i] += 10 * sinDay(i)
		}
	}},
}

// onsetPatience is how many rows after a change starts its first flag may come and
// still count as finding it.
const onsetPatience = day / 4

// persistent trains on clean days, then scores days in which one lasting change
// starts, per kind: whether its onset is flagged, and how many rows are flagged from
// a day after it on, by when a detector should have learnt it.
func persistent(work, name, rule string, trainDays, testDays, seeds int, epochs int32) error {
	type line struct{ found, late, lateRows, delay int }
	start := time.Now()
	res := map[string][]line{}
	for _, l := range lines {
		res[l] = make([]line, len(changes))
	}
	for k, ch := range changes {
		for seed := 1; seed <= seeds; seed++ {
			trainRows, testRows := trainDays*day, testDays*day
			values := series(trainRows+testRows, uint64(seed), suiteWeekly)
			ch.inject(values, trainRows+day, 0, rand.New(rand.NewPCG(uint64(seed), 7)))
			m := contract.Model{Type: contract.ModelType(name), ScoringRule: rule}
			_, flags, err := trainAndScore(filepath.Join(work, fmt.Sprintf("change-%d-%d", k, seed)), values, trainRows, m, epochs)
			if err != nil {
				return fmt.Errorf("%s seed %d: %w", ch.name, seed, err)
			}
			for l, anomaly := range flags {
				r := &res[l][k]
				for i := day; i < day+onsetPatience; i++ {
					if anomaly[i] {
						r.found++
						r.delay += i - day
						break
					}
				}
				for _, a := range anomaly[2*day:] {
					r.lateRows++
					if a {
						r.late++
					}
				}
			}
		}
	}
	fmt.Printf("\nlasting changes, %s %s (%s): onset found within %d rows (mean delay); flagged rows per 10,000 from a day after the onset\n%-12s",
		name, rule, time.Since(start).Round(time.Second), onsetPatience, "change")
	for _, l := range lines {
		fmt.Printf(" | %-25s", l)
	}
	fmt.Println()
	for k, ch := range changes {
		fmt.Printf("%-12s", ch.name)
		for _, l := range lines {
			r := res[l][k]
			delay := "-"
			if r.found > 0 {
				delay = fmt.Sprintf("%.1f", float64(r.delay)/float64(r.found))
			}
			late := "-" // no rows a day after the onset: too few days scored
			if r.lateRows > 0 {
				late = fmt.Sprintf("%.1f", 1e4*float64(r.late)/float64(r.lateRows))
			}
			fmt.Printf(" | %d/%d %5s %7s/10k", r.found, seeds, delay, late)
		}
		fmt.Println()
	}
	return nil
}

// sinDay is the daily cycle's phase at row i, from -1 to 1.
func sinDay(i int) float64 { return math.Sin(2 * math.Pi * float64(i) / day) }
