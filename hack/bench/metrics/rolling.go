package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/pipeline"
	"github.com/kadet-dev/kadet/detector/scoring"
)

// Retraining variants of the rolling run.
const (
	rollNone     = "not retrained"
	rollEvery    = "retrained on every row"
	rollLeaveOut = "retrained, flagged left out"
)

var rollLines = []string{rollNone, rollEvery, rollLeaveOut}

// withRolling runs the rolling retraining after the suite.
var withRolling bool

// rolling trains a model on trainDays clean days, then, after retrainDays with the
// suite's anomalies in them, retrains it on every row so far, as a schedule would: once
// on every row, once (kadet's default) leaving out what the first version flags. Each
// version, and the first one not retrained, scores testDays more days with anomalies
// of their own: does retraining over incidents hurt, and does leaving them out help?
func rolling(work, name, rule string, trainDays, testDays, perKind, seeds int, epochs int32) error {
	start := time.Now()
	tallies := map[string]*tally{}
	for _, l := range rollLines {
		tallies[l] = newTally()
	}
	retrainDays := testDays
	left := 0
	thresholds := map[string][]string{}
	for seed := 1; seed <= seeds; seed++ {
		trainRows, retrainRows, testRows := trainDays*day, retrainDays*day, testDays*day
		values := series(trainRows+retrainRows+testRows, uint64(200+seed), suiteWeekly)
		injectAll(values[trainRows:trainRows+retrainRows], perKind, rand.New(rand.NewPCG(uint64(200+seed), 98)))
		events := injectAll(values[trainRows+retrainRows:], perKind, rand.New(rand.NewPCG(uint64(200+seed), 99)))
		m := contract.Model{Type: contract.ModelType(name), ScoringRule: rule}
		base := filepath.Join(work, fmt.Sprintf("rolling-%d", seed))
		models := map[string]*artifact.Model{}
		dir := base + ".models"
		for i, l := range []string{rollNone, rollLeaveOut, rollEvery} {
			// The first version, then the retrained ones beside it: leaving out first,
			// while the first version is still the newest.
			rows := trainRows + retrainRows
			if i == 0 {
				rows = trainRows
			}
			csv := fmt.Sprintf("%s-%d.csv", base, i)
			if err := writeCSV(csv, values[:rows], 0); err != nil {
				return err
			}
			req := defaultRequest(csv, m, epochs)
			req.Training.KeepFlagged = l == rollEvery
			out, err := pipeline.Train(context.Background(), req, dir, pipeline.Options{})
			if err != nil {
				return err
			}
			left += int(out.Result.Metrics["leftOutRows"])
			if models[l], err = artifact.Load(out.Dir); err != nil {
				return err
			}
			thresholds[l] = append(thresholds[l], fmt.Sprintf("%.3g", out.Result.Threshold))
		}
		for _, l := range rollLines {
			trained := trainRows + retrainRows
			if l == rollNone {
				trained = trainRows
			}
			flags, err := flagsFrom(models[l], values, trained, trainRows+retrainRows)
			if err != nil {
				return err
			}
			tallies[l].judge(flags, events, 12, judgeWindow(lineKadet, true))
		}
		_ = os.RemoveAll(dir)
	}
	fmt.Printf("\nrolling retraining, %s %s (%s): %d days of training, retrained after %d days with anomalies of every kind in them (%d rows left out over %d seeds), then %d days scored\n%-18s",
		name, rule, time.Since(start).Round(time.Second), trainDays, retrainDays, left, seeds, testDays, "kind")
	for _, l := range rollLines {
		fmt.Printf(" | %-27s", l)
	}
	fmt.Println()
	kindRows(tallies, rollLines, 17)
	for _, l := range rollLines {
		t := tallies[l]
		found, total := t.found()
		fmt.Printf("%s: %d of %d found; false alarms per 10,000 normal rows: %.1f (%d in %d rows); thresholds %s\n", l, found, total,
			t.falseAlarmRate(), t.falseAlarms, t.normalRows, strings.Join(thresholds[l], "/"))
	}
	return nil
}

// flagsFrom is which rows from row from on model, trained on the rows before trained,
// flags with its stage, scored as a watching pod started at row from scores them: its
// history before from warms the stage up, the rows it trained on raised by the gap.
func flagsFrom(model *artifact.Model, values []float64, trained, from int) ([]bool, error) {
	first := historyFrom(model, from)
	x := make([]float32, 0, len(values)-first)
	for _, v := range values[first:] {
		x = append(x, float32(v))
	}
	res, err := scoring.ScoreRun(model, nil, x, max(0, trained-first), rowTimes(first, len(x)))
	if err != nil {
		return nil, err
	}
	flags := make([]bool, len(values)-from)
	for i, r := range res[from-first:] {
		flags[i] = r.Anomaly
	}
	return flags, nil
}
