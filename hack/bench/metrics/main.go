// Command metrics measures kadet's time-series detectors on generated metrics: seeded
// univariate series with a daily cycle (5-minute steps, 288 rows a day), an optional
// weekly one, and noise. Detectors train with the defaults of a Detector on a
// Prometheus DataSource: a sequence model scores causally, the threshold is the 99.99th
// percentile of the calibration scores, extrapolated from their tail.
//
// First, false alarms: a detector trains on a short clean prefix of a daily cycle with
// noise (no weekly cycle: two days cannot show one) and scores the clean
// rows that follow; the share of them scored above 1 is its false alarm rate on new
// normal data, which the threshold promises to keep near one row in 10,000.
//
// Then the anomaly suite: a detector trains on clean days and scores the days after
// them with anomalies of every kind injected (spike, dip, level shift, trend change,
// variance burst, seasonality break, stuck value, missing points reported as 0),
// under each scoring rule; per kind it prints the share detected and the mean delay,
// and the false alarms per 10,000 normal rows.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kadet-dev/kadet/hack/bench/internal/cli"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/normalize"
	"github.com/kadet-dev/kadet/detector/pipeline"
	"github.com/kadet-dev/kadet/detector/preprocess"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/detector/watch"
)

const day = 288 // rows of 5 minutes

var suiteWeekly, noise, percentile float64

var seasonality string

// timeFeatures adds the time of day ("day") and the day of the week ("week"), each as
// a sine and a cosine, to every row as input columns, to measure what a preprocessing
// option deriving them from the timestamp would give.
var timeFeatures []string

// timeColumns are the time features of row i, with their names.
func timeColumns(i int) (names []string, values []float64) {
	for _, f := range timeFeatures {
		period := day
		if f == "week" {
			period = 7 * day
		}
		a := 2 * math.Pi * float64(i%period) / float64(period)
		names = append(names, f+"_sin", f+"_cos")
		values = append(values, math.Sin(a), math.Cos(a))
	}
	return names, values
}

func main() {
	trainRows := flag.Int("train-rows", 604, "clean rows to train on (604: two days and a bit)")
	testRows := flag.Int("test-rows", 5*day, "clean rows after the training range to score")
	seeds := flag.Int("seeds", 3, "series per model (seeds 1..N)")
	epochs := flag.Int("epochs", 0, "training epochs (0: the Detector default)")
	models := flag.String("models", "Autoencoder,LSTMAutoencoder,ConvAutoencoder", "comma-separated model types")
	flag.Float64Var(&suiteWeekly, "weekly", 5, "amplitude of the suite's weekly cycle (the daily one is 20; the false-alarm table has none)")
	flag.Float64Var(&noise, "noise", 1, "standard deviation of the noise")
	tf := flag.String("time-features", "", "comma-separated time features to add as input columns: day (time of day), week (day of week)")
	flag.Float64Var(&percentile, "percentile", 0, "threshold percentile (0: the default of a Detector on Prometheus, 99.99)")
	suiteModels := flag.String("suite-models", "Autoencoder,LSTMAutoencoder,ConvAutoencoder", "model types of the anomaly suite (empty: skip it)")
	rules := flag.String("rules", "Causal,AllWindows", "scoring rules of the sequence models in the suite")
	trainDays := flag.Int("train-days", 7, "clean days the suite trains on")
	testDays := flag.Int("test-days", 7, "days the suite scores")
	perKind := flag.Int("per-kind", 2, "anomalies of each kind per series")
	flag.BoolVar(&withChanges, "changes", true, "after the suite, score lasting changes (sequence models)")
	flag.BoolVar(&withRolling, "rolling", true, "after the suite, retrain over days with anomalies and score the days after (sequence models)")
	flag.BoolVar(&withRealism, "realism", true, "after the suite, score it under what real metrics do (weekends, noise by time of day, missed scrapes; sequence models)")
	flag.BoolVar(&withScales, "scales", true, "after the suite, train one model over entities on scales 1 to 1,000 and score each (sequence models)")
	flag.StringVar(&scaleBy, "scale-by", "", "how the scales run's model scales its entities: Entity or Model (empty: the default)")
	shortW := flag.Int("normalization-short-window", 0, "short window of the likelihood stage (0: the default)")
	longW := flag.Int("normalization-long-window", 0, "long window of the likelihood stage (0: the default)")
	flag.StringVar(&seasonality, "seasonality", "", "the sequence models' seasonality: None, Day, Week or Auto (empty: a new Detector's, Auto)")
	flag.Parse()
	if *longW > 0 {
		longWindow = new(int32(*longW))
	}
	if *shortW > 0 {
		shortWindow = new(int32(*shortW))
	}
	timeFeatures = cli.List(*tf)
	if err := run(cli.List(*models), *trainRows, *testRows, *seeds, int32(*epochs)); err != nil {
		fmt.Fprintln(os.Stderr, "metrics:", err)
		os.Exit(1)
	}
	if *suiteModels == "" {
		return
	}
	work, err := os.MkdirTemp("", "kadet-metrics-suite-")
	if err == nil {
		defer os.RemoveAll(work)
		err = suite(work, cli.List(*suiteModels), cli.List(*rules), *trainDays, *testDays, *perKind, *seeds, int32(*epochs))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "metrics:", err)
		os.Exit(1)
	}
}

// series is a clean seasonal metric: a daily cycle, a weekly one and noise.
func series(rows int, seed uint64, weekly float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 17))
	out := make([]float64, rows)
	for i := range out {
		t := float64(i)
		out[i] = 100 + 20*math.Sin(2*math.Pi*t/day) + weekly*math.Sin(2*math.Pi*t/(7*day)) + noise*rng.NormFloat64()
	}
	return out
}

// rowTime is the unix time of row i of a generated series: 5-minute steps.
func rowTime(i int) int64 { return 1_700_000_000 + 300*int64(i) }

// rowTimes are the unix times of n rows from row from on.
func rowTimes(from, n int) []int64 {
	times := make([]int64, n)
	for i := range times {
		times[i] = rowTime(from + i)
	}
	return times
}

func writeCSV(path string, values []float64, from int) error {
	var b strings.Builder
	names, _ := timeColumns(0)
	b.WriteString(strings.Join(append([]string{"timestamp", "value"}, names...), ",") + "\n")
	for i, v := range values {
		fmt.Fprintf(&b, "%d,%.4f", rowTime(from+i), v)
		_, cols := timeColumns(from + i)
		for _, c := range cols {
			fmt.Fprintf(&b, ",%.6f", c)
		}
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func run(models []string, trainRows, testRows, seeds int, epochs int32) error {
	work, err := os.MkdirTemp("", "kadet-metrics-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	fmt.Printf("false alarms on clean data after the training range (%d training rows, %d scored, %d seeds)\n", trainRows, testRows, seeds)
	fmt.Printf("%-16s %-22s %10s %12s %10s\n", "model", "line", "above 1", "threshold", "time")
	for _, name := range models {
		above, total := map[string]int{}, 0
		var thresholds []string
		start := time.Now()
		for seed := 1; seed <= seeds; seed++ {
			values := series(trainRows+testRows, uint64(seed), 0)
			threshold, flags, err := trainAndScore(filepath.Join(work, fmt.Sprintf("%s-%d", name, seed)), values, trainRows,
				contract.Model{Type: contract.ModelType(name)}, epochs)
			if err != nil {
				return fmt.Errorf("%s seed %d: %w", name, seed, err)
			}
			for line, anomaly := range flags {
				for _, a := range anomaly {
					if a {
						above[line]++
					}
				}
			}
			total += testRows
			thresholds = append(thresholds, fmt.Sprintf("%.3g", threshold))
		}
		for _, line := range lines {
			fmt.Printf("%-16s %-22s %9.2f%% %12s %10s\n", name, line, 100*float64(above[line])/float64(total), strings.Join(thresholds, "/"),
				time.Since(start).Round(time.Second))
		}
	}
	return nil
}

// Lines of every table: kadet as a Detector on Prometheus gets it (a sequence model
// with its likelihood stage), the same model without the stage (raw / threshold), and
// a per-series Gaussian on a sliding window of the raw values.
const (
	lineKadet    = "kadet (default)"
	lineRaw      = "kadet, no likelihood"
	lineGaussian = "sliding Gaussian"
)

var lines = []string{lineKadet, lineRaw, lineGaussian}

// trainAndScore trains a model with a Detector's defaults on the first trainRows of
// values (written to base.csv) and says which of the rows after them each line flags.
// The rows before the first scored row go with them as its history, as a watching
// pod scores them to warm its likelihood state: the model's window and
// watch.WarmupRows.
func trainAndScore(base string, values []float64, trainRows int, m contract.Model, epochs int32) (float64, map[string][]bool, error) {
	csv := base + ".csv"
	if err := writeCSV(csv, values[:trainRows], 0); err != nil {
		return 0, nil, err
	}
	out, err := pipeline.Train(context.Background(), defaultRequest(csv, m, epochs), base+".models", pipeline.Options{})
	if err != nil {
		return 0, nil, err
	}
	defer os.RemoveAll(out.Dir)
	model, err := artifact.Load(out.Dir)
	if err != nil {
		return 0, nil, err
	}
	from := historyFrom(model, trainRows)
	x := make([]float32, 0, len(values)-from)
	for i, v := range values[from:] {
		x = append(x, float32(v))
		_, cols := timeColumns(from + i)
		for _, c := range cols {
			x = append(x, float32(c))
		}
	}
	flags, err := flagsOf(model, nil, x, from, trainRows)
	if err != nil {
		return 0, nil, err
	}
	flags[lineGaussian] = slidingGaussian(values, trainRows, gaussianWindow, 1-contract.DefaultStreamPercentile/100)
	return model.Meta.Threshold.Value, flags, nil
}

// historyFrom is the first row of a watching pod's history when it starts scoring at
// row trainRows: the model's window and the likelihood stage's warm-up before it.
func historyFrom(model *artifact.Model, trainRows int) int {
	return max(0, trainRows-max(model.Network.Spec.Window, 1)+1-watch.WarmupRows)
}

// flagsOf says which rows from trainRows on kadet's two lines flag, with the stage and
// without it: x holds one entity's rows from row from on, those before trainRows
// in-sample, scaled by sc (nil: the model's scaler).
func flagsOf(model *artifact.Model, sc *preprocess.Scaler, x []float32, from, trainRows int) (map[string][]bool, error) {
	norm := model.Meta.Normalization
	defer func() { model.Meta.Normalization = norm }()
	flags := map[string][]bool{}
	for _, line := range []string{lineKadet, lineRaw} {
		model.Meta.Normalization = norm
		if line == lineRaw {
			model.Meta.Normalization = nil
		}
		res, err := scoring.ScoreRun(model, sc, x, trainRows-from, rowTimes(from, len(x)/len(model.Meta.Features)))
		if err != nil {
			return nil, err
		}
		anomaly := make([]bool, len(res)-(trainRows-from))
		for i, r := range res[trainRows-from:] {
			anomaly[i] = r.Anomaly
		}
		flags[line] = anomaly
	}
	return flags, nil
}

// gaussianWindow is the sliding Gaussian's window: a day of rows.
const gaussianWindow = day

// slidingGaussian flags each row from start on whose value's two-sided tail
// probability under a Gaussian fitted to the window rows before it is below target.
func slidingGaussian(values []float64, start, window int, target float64) []bool {
	out := make([]bool, len(values)-start)
	limit := -math.Log(target / 2)
	for i := start; i < len(values); i++ {
		lo := max(0, i-window)
		var sum, sq float64
		for _, v := range values[lo:i] {
			sum += v
			sq += v * v
		}
		n := float64(i - lo)
		mean := sum / n
		std := math.Sqrt(max(sq/n-mean*mean, 0))
		z := math.Abs(values[i]-mean) / max(std, 1e-9)
		out[i-start] = -normalize.LogUpperTail(z) > limit
	}
	return out
}
