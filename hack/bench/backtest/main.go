// Command backtest measures what the backtest adds to a training Job: a real
// Prometheus holds --entities series of --days at --step, and the Job's pipeline
// (pipeline.Train on the request a new Detector on it gets) trains on them with the
// backtest off and on, in alternating runs in this process. It prints each run's
// seconds, the backtest's own, and its share of the rest of the Job, measured at
// --epochs and carried to the default 20 epochs from the measured seconds an epoch.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"slices"
	"time"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/pipeline"
	"github.com/kadet-dev/kadet/hack/bench/internal/cli"
	"github.com/kadet-dev/kadet/hack/promtest"
)

func main() {
	entities := flag.Int("entities", 100, "series (entities) of the metric")
	days := flag.Float64("days", 7, "days of history, the DataSource's range")
	step := flag.Duration("step", time.Minute, "step of the history and the range queries")
	epochs := flag.Int("epochs", 1, "training epochs a run (the backtest's cost does not depend on them)")
	kind := flag.String("model", "ConvAutoencoder", "ConvAutoencoder or LSTMAutoencoder")
	runs := flag.Int("runs", 1, "runs with and without the backtest, alternating")
	flag.Parse()

	t := cli.NewScratch("kadet-bench-backtest-")
	defer t.Close()
	end := time.Now().Truncate(*step)
	n := int(float64(24*time.Hour)**days/float64(*step)) + 1
	var history []promtest.Series
	for e := range *entities {
		v := make([]float64, n)
		scale := 1 + float64(e%10)*10
		for i := range v {
			day := 2 * math.Pi * float64(i) * step.Seconds() / 86400
			v[i] = scale * (5 + 2*math.Sin(day+float64(e)) + 0.3*math.Sin(float64(i*7+e)))
		}
		history = append(history, promtest.Series{Metric: "bench_load", Labels: map[string]string{"entity": fmt.Sprintf("e%03d", e)},
			Start: end.Add(-time.Duration(n-1) * *step), Step: *step, Values: v})
	}
	began := time.Now()
	srv := promtest.Start(t, promtest.Options{History: history})
	fmt.Printf("prometheus with %d series of %d samples ready in %s\n", len(history), n, time.Since(began).Round(time.Second))

	src := contract.ResolvedData{Prometheus: &contract.ResolvedPrometheus{URL: srv.URL,
		Queries: []contract.PrometheusQuery{{Name: "load", Query: "bench_load"}}, EntityLabels: []string{"entity"},
		Range: (time.Duration(n-1) * *step).String(), Step: step.String(), End: end.Format(time.RFC3339)}}
	mt := contract.ModelType(*kind)
	req := contract.TrainingRequest{APIVersion: contract.APIVersion, Kind: contract.Kind, Detector: contract.ObjectKey{Name: "bench"},
		Model:         contract.Model{Type: mt, Seasonality: contract.ResolvedSeasonality("", mt, contract.SourceStream)},
		Preprocessing: contract.Preprocessing{ScaleBy: contract.ResolvedScaleBy("", true)},
		Training: contract.TrainingParameters{Epochs: int32(*epochs), BatchSize: contract.DefaultBatchSize, LearningRate: contract.DefaultLearningRate,
			ValidationSplit: contract.DefaultValidationSplit, Seed: contract.DefaultSeed},
		Normalization: contract.ResolvedNormalization(nil, mt, contract.SourceStream), Data: src}
	fmt.Printf("%s, %d entities x %.0f days at %s (%d rows), %d epochs a run\n", *kind, *entities, *days, *step, n**entities, *epochs)

	var plain, with, backtest, perEpoch []float64
	for r := range *runs {
		for _, on := range []bool{false, true} {
			rq := req
			if on {
				rq.Backtest = contract.ResolvedBacktest(nil, contract.SourceStream)
			}
			dir := t.TempDir()
			t0 := time.Now()
			out, err := pipeline.Train(context.Background(), &rq, dir, pipeline.Options{})
			if err != nil {
				log.Fatal(err)
			}
			secs := time.Since(t0).Seconds()
			m := out.Result.Metrics
			if !on {
				plain = append(plain, secs)
				perEpoch = append(perEpoch, m["trainSeconds"]/m["epochs"])
				fmt.Printf("run %d without backtest: %.1f s (training %.1f s, %.0f rows)\n", r+1, secs, m["trainSeconds"], m["trainRows"]+m["validationRows"])
				continue
			}
			with, backtest = append(with, secs), append(backtest, m["backtestSeconds"])
			bt := out.Result.Backtest
			fmt.Printf("run %d with backtest:    %.1f s (training %.1f s, %.0f rows; backtest %.1f s on %d rows of %d entities, %d episodes)\n",
				r+1, secs, m["trainSeconds"], m["trainRows"]+m["validationRows"], m["backtestSeconds"], bt.Rows, bt.Entities, bt.Episodes)
		}
		_ = os.Stdout.Sync()
	}
	med := func(v []float64) float64 { s := slices.Clone(v); slices.Sort(s); return s[len(s)/2] }
	b, w, p := med(backtest), med(with), med(plain)
	fmt.Printf("backtest share of the rest of the Job at %d epochs: %.3f\n", *epochs, b/(w-b))
	fmt.Printf("job ratio (with backtest / without) at %d epochs: %.3f\n", *epochs, w/p)
	// At 20 epochs the rest of the Job grows by the measured seconds of 19 more epochs
	// (on the 80% of rows left to train on, with the backtest).
	rest := w - b + float64(contract.DefaultEpochs-*epochs)*med(perEpoch)*(1-contract.DefaultBacktestHoldOut)
	fmt.Printf("backtest share of the rest of the Job at %d epochs (from seconds an epoch): %.3f\n", contract.DefaultEpochs, b/rest)
}
