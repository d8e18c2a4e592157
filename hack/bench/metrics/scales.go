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
)

// entityScales are the scales of the entities one model watches in the scales run:
// a service at 1 ms beside one at a second, as one query over many pods gives them.
var entityScales = []float64{1, 3, 10, 30, 100, 1000}

// scales trains one model over entities on scales a thousand times apart (each
// entity the suite's series, times its scale) and scores each entity's days after
// training, with the suite's anomalies injected, as a watching pod scores each entity
// of a query: per scale, the anomalies found and the false alarms.
func scales(work, name, rule string, trainDays, testDays, perKind, seeds int, epochs int32) error {
	start := time.Now()
	tallies := map[string][]*tally{}
	for _, l := range lines {
		for range entityScales {
			tallies[l] = append(tallies[l], newTally())
		}
	}
	trainRows, testRows := trainDays*day, testDays*day
	for seed := 1; seed <= seeds; seed++ {
		all := make([][]float64, len(entityScales))
		events := make([][]event, len(entityScales))
		for e, s := range entityScales {
			v := series(trainRows+testRows, uint64(100*seed+e), suiteWeekly)
			events[e] = injectAll(v[trainRows:], perKind, rand.New(rand.NewPCG(uint64(100*seed+e), 99)))
			for i := range v {
				v[i] *= s
			}
			all[e] = v
		}
		m := contract.Model{Type: contract.ModelType(name), ScoringRule: rule}
		flags, err := trainAndScoreEntities(filepath.Join(work, fmt.Sprintf("scales-%d", seed)), all, trainRows, m, epochs)
		if err != nil {
			return fmt.Errorf("scales seed %d: %w", seed, err)
		}
		for l, perEntity := range flags {
			for e, anomaly := range perEntity {
				tallies[l][e].judge(anomaly, events[e], 12, judgeWindow(l, true))
			}
		}
	}
	fmt.Printf("\none model over entities on scales 1 to 1,000, %s %s (%s): anomalies found of all kinds; false alarms per 10,000 normal rows\n%-8s",
		name, rule, time.Since(start).Round(time.Second), "scale")
	for _, l := range lines {
		fmt.Printf(" | %-25s", l)
	}
	fmt.Println()
	for e, s := range entityScales {
		fmt.Printf("%-8g", s)
		for _, l := range lines {
			t := tallies[l][e]
			found, total := t.found()
			fmt.Printf(" | %3d/%-3d %8.1f/10k      ", found, total, t.falseAlarmRate())
		}
		fmt.Println()
	}
	return nil
}

// scaleBy is how the scales run's model scales its entities (empty: the default).
var scaleBy string

// trainAndScoreEntities is trainAndScore for several entities in one CSV (an entity
// column) and one model: each entity's rows after trainRows scored as a watching pod
// scores that entity, its likelihood state warmed up on its rows before them.
func trainAndScoreEntities(base string, values [][]float64, trainRows int, m contract.Model, epochs int32) (map[string][][]bool, error) {
	csv := base + ".csv"
	var b strings.Builder
	b.WriteString("timestamp,entity,value\n")
	for i := range trainRows {
		for e, v := range values {
			fmt.Fprintf(&b, "%d,e%d,%.4f\n", rowTime(i), e, v[i])
		}
	}
	if err := os.WriteFile(csv, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	req := defaultRequest(csv, m, epochs)
	req.Data.CSV.EntityColumn = "entity"
	req.Preprocessing.ScaleBy = contract.ResolvedScaleBy(scaleBy, true)
	out, err := pipeline.Train(context.Background(), req, base+".models", pipeline.Options{})
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out.Dir)
	model, err := artifact.Load(out.Dir)
	if err != nil {
		return nil, err
	}
	from := historyFrom(model, trainRows)
	flags := map[string][][]bool{}
	for e, v := range values {
		x := make([]float32, 0, len(v)-from)
		for _, f := range v[from:] {
			x = append(x, float32(f))
		}
		sc, _, err := model.Meta.EntityScaler(fmt.Sprintf("e%d", e), nil)
		if err != nil {
			return nil, err
		}
		f, err := flagsOf(model, sc, x, from, trainRows)
		if err != nil {
			return nil, err
		}
		for line, anomaly := range f {
			flags[line] = append(flags[line], anomaly)
		}
	}
	for _, v := range values {
		flags[lineGaussian] = append(flags[lineGaussian], slidingGaussian(v, trainRows, gaussianWindow, 1-contract.DefaultStreamPercentile/100))
	}
	return flags, nil
}
