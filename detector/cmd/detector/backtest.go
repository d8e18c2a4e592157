package main

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/backtest"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/pipeline"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/detector/seasonal"
	"github.com/kadet-dev/kadet/detector/watch"
)

// cmdBacktest scores a stretch of history as `detector score` does (the same windows,
// likelihood stage and threshold) and says what an alert on it would have seen: the
// anomalous rows and their episodes per entity.
func cmdBacktest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelPath, input, delim, entity := inputFlags(fs)
	var prom promFlags
	prom.bind(fs, "score", "--input")
	output := fs.String("output", "", "also write every row with its score to this CSV (- for stdout), as detector score does")
	stamp := fs.String("timestamp-column", "", "column of each row's time (seconds since 1970, or RFC 3339): episodes get times, and merge across --merge-gap")
	gap := fs.Duration("merge-gap", 5*time.Minute, "rows with times (--timestamp-column, or from Prometheus): an anomalous row this close after an episode's last joins it (an alert's for); without times only neighbouring rows join")
	top := fs.Int("top", 10, "how many of the largest episodes to list")
	specFile := fs.String("spec", "", "TrainingRequest JSON of a Detector (as its training Job reads it): backtest --model on its Prometheus source over --range, as a backtest Job does")
	termLog := fs.String("termination-log", defaultTerminationLog, "with --spec: file for the result Kubernetes reports; skipped when it does not exist")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *specFile != "" {
		if *input != "" || prom.url != "" || *modelPath == "" {
			return usageError{"--spec takes --model and --range (and --merge-gap), not --input or --prometheus-url"}
		}
		return backtestJob(ctx, *specFile, *modelPath, prom.rng, prom.end, *gap, *termLog, stdout, stderr)
	}
	switch {
	case *modelPath == "" || (*input == "") == (prom.url == ""):
		return usageError{"give --model, and --input CSV or --prometheus-url URL with --query NAME=PROMQL"}
	case prom.url != "" && (*entity != "" || *stamp != ""):
		return usageError{"--entity-column and --timestamp-column are for --input; Prometheus rows are the steps of --query, its entities --entity-labels"}
	case *gap < 0:
		return usageError{fmt.Sprintf("--merge-gap %s: give a duration of 0 or more", *gap)}
	case *top < 0:
		return usageError{fmt.Sprintf("--top %d: give 0 or more episodes", *top)}
	}
	if prom.url != "" {
		return backtestPrometheus(ctx, prom, *modelPath, *output, *gap, *top, stdout, stderr)
	}
	m, in, d, err := openModelAndInput(*modelPath, *input, *delim)
	if err != nil {
		return err
	}
	defer in.Close()
	var (
		rows    []backtest.Row
		badTime error
		index   = map[string]int64{}
	)
	opts := scoring.CSVOptions{Delimiter: d, EntityColumn: *entity, TimestampColumn: *stamp, OnRow: func(r scoring.RowScore) {
		row := backtest.Row{Entity: r.Entity, Score: r.Score, Anomaly: r.Anomaly}
		if *stamp == "" {
			row.At = index[r.Entity]
			index[r.Entity]++
		} else if at, ok := seasonal.ParseTime(r.Time); ok {
			row.At = at
		} else if badTime == nil {
			badTime = &data.Error{Source: *input, Line: r.Line, Column: *stamp, Msg: fmt.Sprintf("%q is not a time (seconds since 1970, or RFC 3339 / ISO 8601 text)", r.Time)}
		}
		rows = append(rows, row)
	}}
	// The rows go to --output; with none they are scored all the same, for nothing.
	out, rowsTo := *output, stdout
	if out == "" {
		out, rowsTo = "-", io.Discard
	}
	if _, err := writeScores(m, in, *input, out, rowsTo, opts); err != nil {
		return err
	}
	if badTime != nil {
		return badTime
	}
	merge := int64(1)
	if *stamp != "" {
		merge = int64(gap.Seconds())
	}
	s := backtest.Summarize(rows, merge)
	// The summary goes to stdout unless the rows do.
	w := stdout
	if *output == "-" {
		w = stderr
	}
	printSummary(w, s, m.Digest[:15], *input, *stamp != "", *gap, *top)
	return nil
}

// backtestPrometheus scores the range of prom's queries as a watching pod scores it
// (pipeline.ScoreTable) and prints its figures; with output, every scored row too.
func backtestPrometheus(ctx context.Context, prom promFlags, modelPath, output string, gap time.Duration, top int, stdout, stderr io.Writer) error {
	src, err := prom.resolve()
	if err != nil {
		return err
	}
	m, err := loadModel(modelPath)
	if err != nil {
		return err
	}
	start, err := withWarmup(src, m, src.Range, src.End)
	if err != nil {
		return err
	}
	tbl, err := data.LoadPrometheus(ctx, src, data.DefaultPromOptions)
	if err != nil {
		return err
	}
	if !slices.Equal(tbl.Columns, m.Meta.Features) {
		return usageError{fmt.Sprintf("the model scores features %s; the queries are %s: name one --query after each, in that order",
			strings.Join(m.Meta.Features, ", "), strings.Join(tbl.Columns, ", "))}
	}
	res, scored, why := pipeline.ScoreTable(m, tbl)
	var rows []backtest.Row
	var csvRows [][]string
	inRange := 0
	for i, r := range res {
		at, _ := strconv.ParseInt(tbl.Timestamps[i], 10, 64)
		if at < start.Unix() {
			continue // warm-up
		}
		inRange++
		if !scored[i] {
			continue
		}
		row := backtest.Row{At: at, Score: r.Score, Anomaly: r.Anomaly}
		if tbl.Entities != nil {
			row.Entity = tbl.Entities[i]
		}
		rows = append(rows, row)
		if output != "" {
			rec := []string{time.Unix(at, 0).UTC().Format(time.RFC3339), row.Entity}
			for _, v := range tbl.Row(i) {
				rec = append(rec, strconv.FormatFloat(float64(v), 'g', -1, 32))
			}
			csvRows = append(csvRows, append(rec, strconv.FormatFloat(r.Score, 'g', 6, 64), strconv.FormatFloat(r.Raw, 'g', 6, 64), strconv.FormatBool(r.Anomaly)))
		}
	}
	if n := inRange - len(rows); n > 0 {
		fmt.Fprintf(stderr, "%d of %d rows not scored (runs shorter than a window", n, inRange)
		if why != "" {
			fmt.Fprintf(stderr, "; %s", why)
		}
		fmt.Fprintln(stderr, ")")
	}
	w := stdout
	if output != "" {
		header := append([]string{"timestamp", "entity"}, tbl.Columns...)
		if err := writeRows(output, stdout, append([][]string{append(header, "score", "raw", "is_anomaly")}, csvRows...)); err != nil {
			return err
		}
		if output == "-" {
			w = stderr
		}
	}
	printSummary(w, backtest.Summarize(rows, int64(gap.Seconds())), m.Digest[:15], src.URL, true, gap, top)
	return nil
}

// backtestJob backtests the model at modelPath on the Prometheus source of the
// request in specFile over the range rng ending at endAt (RFC 3339; "" for now), read with the model's own queries
// and entity labels and warmed up as a watching pod starting there would be, and
// writes the result (its figures, or the error) where Kubernetes takes the
// termination message from, and the report beside the model when it can.
func backtestJob(ctx context.Context, specFile, modelPath, rng, endAt string, gap time.Duration, termLog string, stdout, stderr io.Writer) error {
	res, err := func() (*contract.TrainingResult, error) {
		req, err := readSpec(specFile)
		if err != nil {
			return nil, err
		}
		src := req.Data.Prometheus
		if src == nil {
			return nil, &pipeline.SpecError{Msg: "a backtest Job reads a Prometheus source; this request has none"}
		}
		dir := modelPath // the version's folder: its report goes there
		if _, err := os.Stat(filepath.Join(dir, artifact.FileName)); err != nil {
			file, err := artifact.Path(modelPath, "")
			if err != nil {
				return nil, &pipeline.SpecError{Msg: err.Error()}
			}
			dir = filepath.Dir(file)
		}
		m, err := loadModel(dir)
		if err != nil {
			return nil, err
		}
		read := *src
		start, err := withWarmup(&read, m, rng, endAt)
		if err != nil {
			return nil, err
		}
		if p := m.Meta.Prometheus; p != nil && len(p.Queries) > 0 {
			read.Queries, read.EntityLabels = p.Queries, p.EntityLabels
		}
		tbl, err := data.LoadPrometheus(ctx, &read, data.DefaultPromOptions)
		if err != nil {
			return nil, err
		}
		if !slices.Equal(tbl.Columns, m.Meta.Features) {
			return nil, &pipeline.SpecError{Msg: fmt.Sprintf("the model scores features %s; the queries are %s", strings.Join(m.Meta.Features, ", "), strings.Join(tbl.Columns, ", "))}
		}
		bt, report := pipeline.Backtest(m, tbl, start.Unix(), gap)
		printSummary(stderr, report.Summary, m.Digest[:15], contract.RedactURL(src.URL), true, gap, 10)
		// The model page shows the served version's newest backtest.
		if err := keepReport(dir, report); err != nil {
			fmt.Fprintf(stderr, "detector backtest: keeping the report beside the model: %v\n", err)
		}
		return &contract.TrainingResult{Version: filepath.Base(dir), Digest: m.Digest, Backtest: bt}, nil
	}()
	if err != nil {
		writeTermination(termLog, contract.TrainingResult{Error: contract.RedactURLs(err.Error())}, stderr)
		return err
	}
	line, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(line))
	writeTermination(termLog, *res, stderr)
	return nil
}

// withWarmup points src at the range rng (a duration) ending at endAt (RFC 3339; ""
// for now, on a step) and reaches it back over the rows each entity is warmed up on
// before it, as a pod watching since before the range has them: a backtest of the
// range scores it as that pod does. It returns the range's start.
func withWarmup(src *contract.ResolvedPrometheus, m *artifact.Model, rng, endAt string) (time.Time, error) {
	d, err := contract.ParseDuration(rng)
	if err != nil || d <= 0 {
		return time.Time{}, usageError{fmt.Sprintf("--range %q: give a positive duration such as 7d", rng)}
	}
	step, err := contract.ParseDuration(src.Step)
	if err != nil || step < time.Second {
		return time.Time{}, usageError{fmt.Sprintf("--step %q: give a duration of at least 1s", src.Step)}
	}
	end := time.Now().Truncate(step)
	if endAt != "" {
		if end, err = time.Parse(time.RFC3339, endAt); err != nil {
			return time.Time{}, usageError{fmt.Sprintf("--end %q: want an RFC 3339 time", endAt)}
		}
	}
	src.End, src.Range = end.UTC().Format(time.RFC3339), (d + time.Duration(watch.WarmupRows+scoring.RunRows(m))*step).String()
	return end.Add(-d), nil
}

// keepReport writes report as the backtest file of the version in dir, whole or not
// at all.
func keepReport(dir string, report backtest.Report) error {
	b, err := json.Marshal(report)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+backtest.FileName+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, backtest.FileName))
}

// writeRows writes records as CSV to path, "-" for stdout.
func writeRows(path string, stdout io.Writer, records [][]string) error {
	out, err := createOutput(path, stdout)
	if err != nil {
		return err
	}
	defer out.discard()
	if err := csv.NewWriter(out).WriteAll(records); err != nil {
		return err
	}
	return out.commit()
}

// printSummary writes a backtest's figures and its largest episodes as a table.
func printSummary(w io.Writer, s backtest.Summary, model, input string, timed bool, gap time.Duration, top int) {
	at := func(v int64) string {
		if !timed {
			return "row " + strconv.FormatInt(v+1, 10)
		}
		return time.Unix(v, 0).UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "backtest of model %s on %s: %d rows, %d entities", model, input, s.Rows, s.Entities)
	if timed {
		fmt.Fprintf(w, ", %s to %s (%.1f days)", at(s.Start), at(s.End), float64(s.End-s.Start)/86400)
	}
	fmt.Fprintf(w, "\nanomalous rows: %d (%.2f%%)\n", s.Anomalies, 100*float64(s.Anomalies)/float64(max(s.Rows, 1)))
	merged := "neighbouring anomalous rows merged"
	if timed {
		merged = fmt.Sprintf("anomalous rows merged across gaps up to %s", gap)
	}
	fmt.Fprintf(w, "episodes: %d", len(s.Episodes))
	if timed && s.End > s.Start {
		fmt.Fprintf(w, " (%.2f a day)", s.PerDay())
	}
	fmt.Fprintf(w, "; %s\n", merged)
	largest := s.Largest(top)
	if len(largest) == 0 {
		return
	}
	fmt.Fprintf(w, "largest episodes (highest peak first):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ENTITY\tSTART\tEND\tROWS\tPEAK\tPEAK AT")
	for _, e := range largest {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%.3g\t%s\n", cmp.Or(e.Entity, "-"), at(e.Start), at(e.End), e.Rows, e.Peak, at(e.PeakAt))
	}
	tw.Flush()
}
