// Command realmetrics measures kadet's alerts on real metrics: a folder of series in
// the Numenta Anomaly Benchmark's layout (data/<category>/<file>.csv of
// timestamp,value, labels/combined_windows.json), scored by NAB's scorer.
//
// Every file goes through the code a Detector on a Prometheus DataSource runs: a model
// trains with a Detector's defaults on the file's probationary rows (the first 15%, at
// most 750, which NAB does not score), then every later row is scored causally as a
// watching pod scores it, its likelihood state warmed up on the rows before. With
// --retrain the model is also retrained at 30%, 50% and 75% of the file on the rows
// before, into the same model folder (a retraining leaves out what the served version
// flags, as a Detector's does), and each version scores the rows up to the next cut.
//
// It writes NAB result files for each line and prints, from the scorer, each line's
// score with one threshold swept over all files (NAB standard profile), and its pages:
// a page is the first row above the shipped threshold after at least PageQuiet rows
// below it, scored as detections at a fixed threshold.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/normalize"
	"github.com/kadet-dev/kadet/detector/pipeline"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/detector/seasonal"
	"github.com/kadet-dev/kadet/detector/watch"
	"github.com/kadet-dev/kadet/hack/bench/internal/cli"
)

// PageQuiet is how many rows below the threshold end an episode: the next row above it
// is a new page.
const PageQuiet = 12

// Lines of the report.
const (
	lineRaw       = "kadet-raw"       // the network's score over its threshold, no stage
	lineStage     = "kadet-stage"     // the likelihood stage a Detector gets by default
	linePublished = "published-stage" // Ahmad et al. 2017 on the raw line's scores
	// lineNetwork is the network's own error, before its threshold, hours and stuck
	// values: written, not scored, for trying stages on.
	lineNetwork = "kadet-network"
)

func main() {
	nabDir := flag.String("nab-dir", "../shared/data/nab-dev", "folder in NAB's layout: data/<category>/*.csv, labels/combined_windows.json")
	scorer := flag.String("scorer", "../shared/tools/nab_score.py", "NAB scorer (Python 3)")
	out := flag.String("out", "", "folder for the result files (default: a temporary folder, removed at the end)")
	modelType := flag.String("model", string(contract.ConvAutoencoder), "model type: ConvAutoencoder or LSTMAutoencoder")
	epochs := flag.Int("epochs", 0, "training epochs (0: a Detector's default)")
	retrain := flag.Bool("retrain", false, "also retrain at 30%, 50% and 75% of each file on the rows before (rows flagged left out)")
	only := flag.String("files", "", "comma-separated substrings: only files whose name holds one")
	flag.Parse()

	if err := run(*nabDir, *scorer, *out, contract.ModelType(*modelType), int32(*epochs), *retrain, cli.List(*only)); err != nil {
		log.Fatal(err)
	}
}

func run(nabDir, scorer, out string, mt contract.ModelType, epochs int32, retrain bool, only []string) error {
	if mt != contract.ConvAutoencoder && mt != contract.LSTMAutoencoder {
		return fmt.Errorf("--model %q: want ConvAutoencoder or LSTMAutoencoder (a model over windows of rows)", mt)
	}
	files, err := nabFiles(nabDir, only)
	if err != nil {
		return err
	}
	if _, err := os.Stat(scorer); err != nil {
		return fmt.Errorf("--scorer: %w", err)
	}
	work, err := os.MkdirTemp("", "kadet-realmetrics-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if out == "" {
		out = filepath.Join(work, "results")
	}
	runs := []string{"one-off"}
	if retrain {
		runs = append(runs, "retrained")
	}
	start := time.Now()
	quiet := map[string][]float64{} // run and line: pages a week of each anomaly-free series
	for _, f := range files {
		series, err := readSeries(f.path)
		if err != nil {
			return err
		}
		for _, r := range runs {
			cuts := []float64{0}
			if r == "retrained" {
				cuts = []float64{0, 0.30, 0.50, 0.75}
			}
			t0 := time.Now()
			lines, err := scoreFile(series, filepath.Join(work, r, f.category, f.name), mt, epochs, cuts)
			if err != nil {
				return fmt.Errorf("%s: %w", f.path, err)
			}
			for line, scores := range lines {
				if err := writeResults(out, r, line, f, series.stamps, scores); err != nil {
					return err
				}
				if strings.Contains(f.category, "NoAnomaly") && line != lineNetwork {
					quiet[r+" "+line] = append(quiet[r+" "+line], pagesAWeek(scores, series.times))
				}
			}
			fmt.Fprintf(os.Stderr, "%-8s %-45s %6d rows %5.1fs\n", r, f.category+"/"+f.name, len(series.values), time.Since(t0).Seconds())
		}
	}
	fmt.Printf("%d files of %s, %s, scored in %s; result files in %s\n", len(files), nabDir, mt, time.Since(start).Round(time.Second), out)
	for _, r := range runs {
		for _, line := range []string{lineRaw, lineStage, linePublished} {
			for _, pages := range []bool{false, true} {
				name := detectorName(r, line, pages)
				args := []string{scorer, "--nab-dir", nabDir, "--results-dir", filepath.Join(out, r), "--detector", name}
				if pages {
					args = append(args, "--no-threshold-sweep", "--threshold", "0.5")
				}
				if len(only) > 0 { // the files left out score as no detections
					args = append(args, "--allow-missing")
				}
				cmd := exec.Command("python3", args...)
				cmd.Stderr = os.Stderr
				b, err := cmd.Output()
				if err != nil {
					return fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
				}
				for l := range strings.Lines(string(b)) {
					if strings.HasPrefix(l, "nab standard:") {
						what := "swept"
						if pages {
							what = "pages"
						}
						fmt.Printf("%-9s %-15s %-5s nab standard %6.1f\n", r, line, what, parseLast(l))
					}
				}
			}
		}
	}
	for _, r := range runs {
		for _, line := range []string{lineRaw, lineStage, linePublished} {
			if weeks := quiet[r+" "+line]; len(weeks) > 0 {
				fmt.Printf("%-9s %-15s pages a week on the %d anomaly-free series: mean %.2f, most %.2f\n", r, line, len(weeks),
					mean(weeks), slices.Max(weeks))
			}
		}
	}
	return nil
}

// pagesAWeek is how many pages a week a series' scores give over the rows NAB scores.
func pagesAWeek(scores []float64, times []int64) float64 {
	from := probation(len(scores))
	n := 0
	for _, p := range pages(scores)[from:] {
		n += int(p)
	}
	weeks := float64(times[len(times)-1]-times[from]) / (7 * 86400)
	return float64(n) / weeks
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

type nabFile struct{ path, category, name string }

// nabFiles lists the series of a NAB folder, or says why there are none.
func nabFiles(dir string, only []string) ([]nabFile, error) {
	if _, err := os.Stat(filepath.Join(dir, "labels", "combined_windows.json")); err != nil {
		return nil, fmt.Errorf("--nab-dir %s: not a NAB folder (want data/<category>/*.csv and labels/combined_windows.json): %w", dir, err)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "data", "*", "*.csv"))
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	var files []nabFile
	for _, p := range paths {
		name := filepath.Base(p)
		if len(only) > 0 && !slices.ContainsFunc(only, func(s string) bool { return strings.Contains(name, s) }) {
			continue
		}
		files = append(files, nabFile{path: p, category: filepath.Base(filepath.Dir(p)), name: name})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("--nab-dir %s: no series under data/<category>/*.csv (--files %v)", dir, only)
	}
	return files, nil
}

type series struct {
	stamps []string
	times  []int64
	values []float64
}

func readSeries(path string) (series, error) {
	tbl, err := data.LoadCSV(context.Background(), contract.FileLocation{Path: path},
		data.CSVOptions{Columns: []string{"value"}, TimestampColumn: "timestamp", Delimiter: ','}, data.DefaultLimits)
	if err != nil {
		return series{}, err
	}
	times, bad, ok := seasonal.Times(tbl.Timestamps)
	if !ok {
		return series{}, fmt.Errorf("%s: timestamp %q is not a time", path, bad)
	}
	s := series{stamps: tbl.Timestamps, times: times, values: make([]float64, len(tbl.X))}
	for i, v := range tbl.X {
		s.values[i] = float64(v)
	}
	return s, nil
}

// probation is NAB's: the first 15% of a file, at most 750 rows.
func probation(rows int) int { return min(int(math.Floor(0.15*float64(rows))), 750) }

// scoreFile trains on the rows before each cut (the first at the probation's end;
// cuts are shares of the file) into one model folder, and scores the rows from each
// cut to the next with that version; rows before the first cut score 0. It returns
// each line's scores and pages.
func scoreFile(s series, base string, mt contract.ModelType, epochs int32, cuts []float64) (map[string][]float64, error) {
	n := len(s.values)
	lines := map[string][]float64{lineRaw: make([]float64, n), lineStage: make([]float64, n), lineNetwork: make([]float64, n)}
	warm := 0 // the first row scored
	models := base + ".models"
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return nil, err
	}
	for k, c := range cuts {
		from := max(int(c*float64(n)), probation(n))
		to := n
		if k+1 < len(cuts) {
			to = int(cuts[k+1] * float64(n))
		}
		csv := fmt.Sprintf("%s.%d.csv", base, k)
		if err := writeCSV(csv, s, from); err != nil {
			return nil, err
		}
		res, err := pipeline.Train(context.Background(), cli.DetectorRequest(csv, contract.Model{Type: mt}, epochs), models, pipeline.Options{})
		if err != nil {
			return nil, err
		}
		m, err := artifact.Load(res.Dir)
		if err != nil {
			return nil, err
		}
		// A watching pod that starts at row from warms up on the rows before it.
		first := max(0, from-max(m.Network.Spec.Window, 1)+1-watch.WarmupRows)
		x := make([]float32, to-first)
		for i, v := range s.values[first:to] {
			x[i] = float32(v)
		}
		norm := m.Meta.Normalization
		for _, line := range []string{lineStage, lineRaw} {
			m.Meta.Normalization = norm
			if line == lineRaw {
				m.Meta.Normalization = nil
			}
			scored, err := scoring.ScoreRun(m, nil, x, from-first, s.times[first:to])
			if err != nil {
				return nil, err
			}
			// The first version's warm-up rows keep their scores, for the published
			// stage to warm up on as the likelihood state does (NAB scores none of
			// them); a later version's would overwrite the version before's.
			keep := from - first
			if k == 0 {
				keep, warm = 0, first
			}
			for i, r := range scored[keep:] {
				lines[line][first+keep+i] = r.Score
				if line == lineRaw {
					lines[lineNetwork][first+keep+i] = r.Raw
				}
			}
		}
	}
	lines[linePublished] = publishedStage(lines[lineRaw][warm:], probation(n)-warm)
	lines[linePublished] = append(make([]float64, warm), lines[linePublished]...)
	return lines, nil
}

func writeCSV(path string, s series, rows int) error {
	var b strings.Builder
	b.WriteString("timestamp,value\n")
	for i := range rows {
		b.WriteString(s.stamps[i])
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(s.values[i], 'g', -1, 64))
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// Published stage: Ahmad et al. 2017 as NAB describes it, in O(1) form.
const (
	publishedLongWindow  = 8640
	publishedShortWindow = 3
	// publishedTail is the tail probability its pages are counted at.
	publishedTail = 1e-4
	// publishedMinStd keeps a series whose scores never move from flagging every
	// wobble, in threshold units.
	publishedMinStd = 1e-6
)

// publishedStage scores each row from start on by the Gaussian tail of the mean of its
// newest publishedShortWindow raw scores under the exponentially weighted mean and
// variance of the raw scores before it (every row from the first on), as
// log(Q) / log(publishedTail): 1 at the tail its pages are counted at.
func publishedStage(raw []float64, start int) []float64 {
	out := make([]float64, len(raw))
	var mean, variance float64
	n := 0
	for i, u := range raw {
		lo := max(0, i-publishedShortWindow+1)
		var sum float64
		for _, v := range raw[lo : i+1] {
			sum += v
		}
		short := sum / float64(i+1-lo)
		if i >= start && n > 1 {
			z := (short - mean) / max(math.Sqrt(variance), publishedMinStd)
			out[i] = normalize.LogUpperTail(z) / math.Log(publishedTail)
		}
		n = min(n+1, publishedLongWindow)
		a := 1 / float64(n)
		d := u - mean
		mean += a * d
		variance = (1 - a) * (variance + a*d*d)
	}
	return out
}

// pages is 1 on each row where an alert at score > 1 starts: the first row above 1
// after at least PageQuiet rows at or below it (or since the file's start).
func pages(scores []float64) []float64 {
	out := make([]float64, len(scores))
	quiet := PageQuiet
	for i, s := range scores {
		if s > 1 {
			if quiet >= PageQuiet {
				out[i] = 1
			}
			quiet = 0
			continue
		}
		quiet++
	}
	return out
}

func detectorName(run, line string, paged bool) string {
	name := run + "-" + line
	if paged {
		name += "-pages"
	}
	return name
}

// writeResults writes a line's scores, and its pages, as NAB result files.
func writeResults(out, run, line string, f nabFile, stamps []string, scores []float64) error {
	dir := filepath.Join(out, run, f.category)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, paged := range []bool{false, true} {
		values := scores
		if paged {
			values = pages(scores)
		}
		var b strings.Builder
		b.WriteString("timestamp,anomaly_score\n")
		for i, v := range values {
			b.WriteString(stamps[i])
			b.WriteByte(',')
			b.WriteString(strconv.FormatFloat(v, 'g', 8, 64))
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, detectorName(run, line, paged)+"_"+f.name), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func parseLast(l string) float64 {
	f := strings.Fields(l)
	v, _ := strconv.ParseFloat(f[len(f)-1], 64)
	return v
}
