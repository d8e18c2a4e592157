package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/evaluate"
	"github.com/kadet-dev/kadet/detector/pipeline"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/detector/seasonal"
)

// loadModel loads a model file, a version folder, or the newest version of a model
// directory.
func loadModel(path string) (*artifact.Model, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		if _, err := os.Stat(path + "/" + artifact.FileName); err != nil {
			newest, err := artifact.Path(path, "")
			if err != nil {
				return nil, err
			}
			path = newest
		}
	}
	m, err := artifact.Load(path)
	if err != nil {
		return nil, &pipeline.SpecError{Msg: err.Error()}
	}
	return m, nil
}

// openModelAndInput loads the model, opens the input CSV and parses the delimiter,
// the common start of score and evaluate. The caller closes the file.
func openModelAndInput(modelPath, input, delim string) (*artifact.Model, *os.File, rune, error) {
	r := []rune(delim)
	if len(r) != 1 {
		return nil, nil, 0, usageError{fmt.Sprintf("--delimiter %q: want one character", delim)}
	}
	m, err := loadModel(modelPath)
	if err != nil {
		return nil, nil, 0, err
	}
	f, err := os.Open(input)
	if err != nil {
		return nil, nil, 0, &data.Error{Source: input, Msg: "cannot open: " + err.Error()}
	}
	return m, f, r[0], nil
}

func cmdScore(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("score", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelPath, input, delim, entity := inputFlags(fs)
	output := fs.String("output", "-", "CSV to write, - for stdout")
	stamp := fs.String("timestamp-column", "", "column of each row's time, for a model whose scores follow the hour of the day or week and to order a sequence model's rows (default: the column it trained with)")
	alertFor := fs.String("alert-for", contract.DefaultAlertFor, "how long rows must stay anomalous for an alert to fire (a Detector's alerting.for): the page column marks the row where it would, once per run of anomalous rows")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	pageAfter, err := contract.ParseDuration(*alertFor)
	if err != nil || pageAfter < 0 {
		return usageError{fmt.Sprintf("--alert-for %q: give a duration such as 5m, or 0", *alertFor)}
	}
	if *modelPath == "" || *input == "" {
		return usageError{"--model and --input are required"}
	}
	m, in, d, err := openModelAndInput(*modelPath, *input, *delim)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := writeScores(m, in, *input, *output, stdout, scoring.CSVOptions{Delimiter: d, EntityColumn: *entity, TimestampColumn: *stamp, AlertFor: pageAfter})
	if err != nil {
		return err
	}
	if st.Unseen > 0 {
		fmt.Fprintf(stderr, "%d entities the model did not see in training were each scaled by its first %d rows\n", st.Unseen, scoring.EntityHistoryRows)
	}
	if st.Reordered {
		fmt.Fprintf(stderr, "the rows were not in time order: each entity's rows were scored, and written, in time order, as training orders them\n")
	}
	fmt.Fprintf(stderr, "scored %d rows with model %s: %d anomalies\n", st.Rows, m.Digest[:15], st.Anomalies)
	if days := st.Days(); days > 0 {
		fmt.Fprintf(stderr, "pages (anomalous for %s): %d over %.2f days, %.2f a day\n", pageAfter, st.Pages, days, float64(st.Pages)/days)
	} else {
		fmt.Fprintf(stderr, "pages (each run of anomalous rows; no times to measure %s on): %d\n", pageAfter, st.Pages)
	}
	return nil
}

// inputFlags are the flags of the commands that score a CSV: the model, the input,
// its delimiter and its entity column.
func inputFlags(fs *flag.FlagSet) (model, input, delim, entity *string) {
	model = fs.String("model", "", "model file, version folder or model directory (newest version) (required)")
	input = fs.String("input", "", "CSV to score (required)")
	delim = fs.String("delimiter", ",", "field delimiter of input and output")
	entity = fs.String("entity-column", "", "column naming each row's entity (a pod, a host): a sequence model scores each entity's rows as a series of their own, and a backtest finds each entity's episodes")
	return model, input, delim, entity
}

// writeScores scores the CSV in (named input) with m and writes its rows with their
// scores to output, "-" for stdout.
func writeScores(m *artifact.Model, in io.Reader, input, output string, stdout io.Writer, opts scoring.CSVOptions) (scoring.CSVStats, error) {
	out, err := createOutput(output, stdout)
	if err != nil {
		return scoring.CSVStats{}, err
	}
	defer out.discard()
	bw := bufio.NewWriterSize(out, 1<<16)
	st, err := scoring.CSV(m, bufio.NewReaderSize(in, 1<<16), bw, input, opts)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return st, err
	}
	return st, out.commit()
}

// outFile is where a command writes: stdout for "-", else a file beside path that
// commit renames onto it, so a failure leaves no half-written file.
type outFile struct {
	io.Writer
	tmp  *os.File
	path string
}

func createOutput(path string, stdout io.Writer) (*outFile, error) {
	if path == "-" {
		return &outFile{Writer: stdout}, nil
	}
	tmp, err := os.CreateTemp(dirOf(path), ".kadet-*.csv")
	if err != nil {
		return nil, err
	}
	return &outFile{Writer: tmp, tmp: tmp, path: path}, nil
}

// commit puts the file in place.
func (o *outFile) commit() error {
	if o.tmp == nil {
		return nil
	}
	if err := o.tmp.Close(); err != nil {
		return err
	}
	err := os.Rename(o.tmp.Name(), o.path)
	if err == nil {
		o.tmp = nil
	}
	return err
}

// discard removes a file not committed.
func (o *outFile) discard() {
	if o.tmp != nil {
		o.tmp.Close()
		os.Remove(o.tmp.Name())
	}
}

func dirOf(path string) string {
	if i := strings.LastIndex(path, "/"); i >= 0 {
		return path[:i+1]
	}
	return "."
}

func cmdEvaluate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("evaluate", flag.ContinueOnError)
	modelPath := fs.String("model", "", "model file, version folder or model directory (required)")
	input := fs.String("input", "", "labelled CSV (required)")
	label := fs.String("label-column", "", "column with 0 (normal) / 1 (anomaly) labels (required)")
	delim := fs.String("delimiter", ",", "field delimiter")
	stamp := fs.String("timestamp-column", "", "column of each row's time, for a model whose scores follow the hour of the day or week (default: the column it trained with)")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *modelPath == "" || *input == "" || *label == "" {
		return usageError{"--model, --input and --label-column are required"}
	}
	m, f, d, err := openModelAndInput(*modelPath, *input, *delim)
	if err != nil {
		return err
	}
	defer f.Close()
	if m.Meta.ScalesByEntity() {
		return usageError{fmt.Sprintf("model %s scales each entity by its own statistics, and evaluate reads no entity column: score the file with `detector score --entity-column` and compare its is_anomaly column with the labels", *modelPath)}
	}
	if p := m.Meta.Seasons; p != nil && *stamp == "" {
		*stamp = m.Meta.TimestampColumn
	}
	if p := m.Meta.Seasons; p != nil && *stamp == "" {
		return usageError{fmt.Sprintf("model %s scores each row against its hour of the %s (seasonality %s): give --timestamp-column", *modelPath, strings.ToLower(p.Period), p.Period)}
	}
	tbl, err := data.ReadCSV(bufio.NewReaderSize(f, 1<<16), *input, data.CSVOptions{
		Columns: m.Meta.Features, LabelColumn: *label, TimestampColumn: *stamp, Delimiter: d,
	})
	if err != nil {
		return err
	}
	var times []int64
	if m.Meta.Seasons != nil {
		t, bad, ok := seasonal.Times(tbl.Timestamps)
		if !ok {
			return &data.Error{Source: *input, Column: *stamp, Msg: fmt.Sprintf("%q is not a time (seconds since 1970, or RFC 3339 / ISO 8601 text)", bad)}
		}
		times = t
	}
	res, err := scoring.ScoreRun(m, nil, tbl.X, 0, times)
	if err != nil {
		return err
	}
	// Evaluate compares raw scores with the threshold: a seasonal model's are divided
	// by their hours' factors first, as the threshold was calibrated on them.
	raw := make([]float32, len(res))
	for i, r := range res {
		raw[i] = float32(r.Raw)
		if times != nil {
			raw[i] /= float32(m.Meta.Seasons.Factor(times[i]))
		}
	}
	metrics := evaluate.Evaluate(raw, tbl.Labels, m.Meta.Threshold.Value)
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(jsonSafe(metrics))
}

// jsonSafe replaces NaN (an undefined AUROC when one class is missing) with null.
func jsonSafe(m evaluate.Metrics) map[string]any {
	b, _ := json.Marshal(struct {
		evaluate.Metrics
		AUROC any `json:"auroc"`
		AUPRC any `json:"auprc"`
	}{Metrics: m, AUROC: nanToNil(m.AUROC), AUPRC: nanToNil(m.AUPRC)})
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func nanToNil(v float64) any {
	if v != v {
		return nil
	}
	return v
}
