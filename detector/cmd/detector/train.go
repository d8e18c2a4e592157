package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/term"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/pipeline"
	"github.com/kadet-dev/kadet/detector/train"
)

// defaultTerminationLog is where Kubernetes reads a container's termination message.
const defaultTerminationLog = "/dev/termination-log"

func cmdTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		specFile = fs.String("spec", "", "TrainingRequest JSON, as the controller renders it")
		out      = fs.String("out", "", "model directory; the model is saved in a new version folder (required)")
		termLog  = fs.String("termination-log", defaultTerminationLog, "file for the result Kubernetes reports; skipped when it does not exist")
		local    = localFlags(fs)
	)
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *out == "" {
		return usageError{"--out is required"}
	}
	req, err := trainingRequest(*specFile, local)
	fmt.Fprintf(stderr, "detector train: BLAS %s, %s kernels", model.BLAS, model.BLASKernels())
	if kernelChoice != "" {
		fmt.Fprintf(stderr, " (%s)", kernelChoice)
	}
	fmt.Fprintln(stderr)
	result, err := func() (*contract.TrainingResult, error) {
		if err != nil {
			return nil, err
		}
		reporter := newProgressReporter(stderr, progressSink(stderr))
		outcome, err := pipeline.Train(ctx, req, *out, pipeline.Options{Progress: reporter.report, Log: trainLog(stderr)})
		reporter.done()
		if errors.Is(err, train.ErrCanceled) {
			return nil, canceledError{fmt.Errorf("%w; no model was written", err)}
		}
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "saved model %s to %s\n", outcome.Result.Version, outcome.Dir)
		return &outcome.Result, nil
	}()
	if err != nil {
		// The message lands in the Detector's status: no URL in it keeps its credentials.
		res := contract.TrainingResult{Error: contract.RedactURLs(err.Error())}
		var ide *pipeline.InsufficientDataError
		if errors.As(err, &ide) {
			res.InsufficientData = &ide.InsufficientData
		}
		writeTermination(*termLog, res, stderr)
		return err
	}
	line, _ := json.Marshal(result)
	fmt.Fprintln(stdout, string(line))
	writeTermination(*termLog, *result, stderr)
	return nil
}

// writeTermination writes res where Kubernetes takes the termination message from,
// within its size limit. Outside a pod the file does not exist and nothing is written.
func writeTermination(path string, res contract.TrainingResult, stderr io.Writer) {
	if path == "" {
		return
	}
	if _, err := os.Stat(path); err != nil {
		return
	}
	b, _ := json.Marshal(res)
	if bt := res.Backtest; bt != nil && len(b) > contract.TerminationMessageLimit {
		// The largest episodes go first, from the smallest; the model's file keeps them all.
		c := *bt
		for len(b) > contract.TerminationMessageLimit && len(c.Largest) > 0 {
			c.Largest = c.Largest[:len(c.Largest)-1]
			res.Backtest = &c
			b, _ = json.Marshal(res)
		}
	}
	if len(b) > contract.TerminationMessageLimit {
		res.Metrics = nil
		if len(res.Error) > 3000 {
			res.Error = res.Error[:3000] + "..."
		}
		b, _ = json.Marshal(res)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		fmt.Fprintf(stderr, "detector train: writing termination message: %v\n", err)
	}
}

// localTrainFlags train without a controller: on a CSV with flags for the model.
type localTrainFlags struct {
	prometheus                                                                                                                                              promFlags
	data, model, columns, label, timestamp, entity, delimiter, hidden, channels, activation, scaling, scaleBy, seasonality, method, rule, stuck, resampling string
	normalization, backtest, backtestGap                                                                                                                    string
	epochs, batch, latent, patience, window, stride, kernel, longWindow, shortWindow                                                                        int
	lr, valSplit, param, dropout                                                                                                                            float64
	seed                                                                                                                                                    int64
	keepFlagged                                                                                                                                             bool
}

func localFlags(fs *flag.FlagSet) *localTrainFlags {
	l := &localTrainFlags{}
	fs.StringVar(&l.data, "data", "", "CSV file or http(s) URL to train on (instead of --spec)")
	l.prometheus.bind(fs, "train on", "--data")
	fs.StringVar(&l.model, "model", "Autoencoder", "model type: Autoencoder, MLPClassifier, or over windows of rows LSTMAutoencoder or ConvAutoencoder")
	fs.StringVar(&l.columns, "columns", "", "comma-separated feature columns (default: all but label and timestamp)")
	fs.StringVar(&l.label, "label-column", "", "column with 0 (normal) / 1 (anomaly) labels")
	fs.StringVar(&l.timestamp, "timestamp-column", "", "column with row timestamps")
	fs.StringVar(&l.entity, "entity-column", "", "column naming each row's entity (a pod, a host): each entity's rows are a series of their own")
	fs.StringVar(&l.delimiter, "delimiter", ",", "field delimiter")
	fs.StringVar(&l.hidden, "hidden", "", "comma-separated hidden layer widths (default per model type)")
	fs.IntVar(&l.latent, "latent", 0, "autoencoder latent size (default per model type)")
	fs.IntVar(&l.window, "window", 0, "LSTMAutoencoder, ConvAutoencoder: rows per window, in timestamp order (default 32)")
	fs.IntVar(&l.stride, "stride", 0, "LSTMAutoencoder, ConvAutoencoder: rows between window starts (default 1)")
	fs.StringVar(&l.rule, "scoring-rule", "", "LSTMAutoencoder, ConvAutoencoder: Causal (default: a row's score from the window ending at it) or AllWindows (its mean error over every window holding it)")
	fs.StringVar(&l.stuck, "stuck-values", "", "LSTMAutoencoder, ConvAutoencoder: Flag (default: a value repeated for twice its longest run in the training data, at least 8 rows, is an anomaly) or Ignore")
	fs.StringVar(&l.normalization, "normalization", "", "LSTMAutoencoder, ConvAutoencoder: Likelihood (scores become anomaly likelihoods per entity, so 1 means the same on every series; the default on --prometheus-url) or None (raw / threshold; the default on --data)")
	fs.IntVar(&l.longWindow, "normalization-long-window", 0, "with --normalization Likelihood: rows the mean and variance of past scores span (default 8640)")
	fs.IntVar(&l.shortWindow, "normalization-short-window", 0, "with --normalization Likelihood: newest scores averaged, 1 to 16 (default 3)")
	fs.StringVar(&l.backtest, "backtest", "", "with --prometheus-url: PERCENT% of the range's newest rows held out from training and backtested on after it (default 20%), a DURATION read past --range to backtest on, or off")
	fs.StringVar(&l.backtestGap, "backtest-merge-gap", "5m", "with --prometheus-url: an entity's anomalous rows this close together make one backtest episode (an alert's for)")
	fs.StringVar(&l.channels, "channels", "", "ConvAutoencoder: comma-separated channels per conv block (default 16,32)")
	fs.IntVar(&l.kernel, "kernel-size", 0, "ConvAutoencoder: odd kernel size in rows (default 3)")
	fs.StringVar(&l.resampling, "resampling", "", "ConvAutoencoder: Pooling (default) or Strided (stride-2 convolutions, no dense layer)")
	fs.Float64Var(&l.dropout, "dropout", 0, "ConvAutoencoder: share of activations dropped at each training step (0: none)")
	fs.StringVar(&l.activation, "activation", "ReLU", "ReLU, LeakyReLU, Tanh or Sigmoid")
	fs.StringVar(&l.scaling, "scaling", "Standardize", "Standardize, MinMax or None")
	fs.StringVar(&l.seasonality, "seasonality", "", "LSTMAutoencoder, ConvAutoencoder: Day or Week (divide each row's score by its UTC hour of the day or week's typical score on the training rows; needs a timestamp column), None, or Auto (the default: Day when the training rows fill every hour of the day)")
	fs.StringVar(&l.scaleBy, "scale-by", "", "Entity (each entity by its own statistics; the default when rows name entities) or Model (one scaler for all)")
	fs.IntVar(&l.epochs, "epochs", 20, "training epochs")
	fs.IntVar(&l.batch, "batch-size", 64, "mini-batch size")
	fs.Float64Var(&l.lr, "learning-rate", 0.001, "Adam learning rate")
	fs.Float64Var(&l.valSplit, "validation-split", 0.1, "fraction of rows held out")
	fs.Int64Var(&l.seed, "seed", 1, "random seed")
	fs.IntVar(&l.patience, "patience", 0, "early stopping patience in epochs (0: off)")
	fs.BoolVar(&l.keepFlagged, "keep-flagged", false, "train on every row: without it, retraining into a --out that holds a model leaves out the rows that model flags and those feedback marks anomalous")
	fs.StringVar(&l.method, "threshold", "Percentile", "Percentile, MeanStd, Fixed, Contamination or BestF1")
	fs.Float64Var(&l.param, "threshold-param", 0, "the threshold method's parameter (default per method)")
	return l
}

// trainingRequest reads --spec, or builds a request from the local flags.
func trainingRequest(specFile string, l *localTrainFlags) (*contract.TrainingRequest, error) {
	switch {
	case specFile != "" && (l.data != "" || l.prometheus.url != ""):
		return nil, usageError{"give --spec, --data or --prometheus-url, not two of them"}
	case l.data != "" && l.prometheus.url != "":
		return nil, usageError{"give --data or --prometheus-url, not both"}
	case specFile != "":
		return readSpec(specFile)
	case l.data == "" && l.prometheus.url == "":
		return nil, usageError{"give --spec FILE, --data CSV or --prometheus-url URL with --query NAME=PROMQL"}
	}
	req := &contract.TrainingRequest{
		APIVersion: contract.APIVersion, Kind: contract.Kind,
		Detector:      contract.ObjectKey{Name: "local"},
		Model:         contract.Model{Type: contract.ModelType(l.model), Activation: l.activation},
		Preprocessing: contract.Preprocessing{Scaling: l.scaling},
		Training: contract.TrainingParameters{
			Epochs: int32(l.epochs), BatchSize: int32(l.batch), LearningRate: l.lr, ValidationSplit: l.valSplit, Seed: l.seed,
		},
		Threshold: contract.Threshold{Method: contract.ThresholdMethod(l.method)},
		Data: contract.ResolvedData{CSV: &contract.ResolvedCSV{
			LabelColumn: l.label, TimestampColumn: l.timestamp, EntityColumn: l.entity, Delimiter: l.delimiter,
		}},
	}
	switch {
	case l.prometheus.url != "":
		pr, err := l.prometheus.resolve()
		if err != nil {
			return nil, err
		}
		if l.label != "" || l.timestamp != "" || l.columns != "" || l.entity != "" {
			return nil, usageError{"--columns, --label-column, --timestamp-column and --entity-column are for --data; Prometheus rows are the steps of --query, its entities --entity-labels"}
		}
		req.Data = contract.ResolvedData{Prometheus: pr}
	case strings.HasPrefix(l.data, "http://") || strings.HasPrefix(l.data, "https://"):
		req.Data.CSV.File.URL = l.data
	default:
		req.Data.CSV.File.Path = l.data
	}
	if l.columns != "" && req.Data.CSV != nil {
		req.Data.CSV.Columns = strings.Split(l.columns, ",")
	}
	var err error
	if req.Model.HiddenLayers, err = widths("--hidden", l.hidden); err != nil {
		return nil, err
	}
	if l.channels != "" || l.kernel != 0 || l.resampling != "" || l.dropout != 0 {
		if req.Model.Type != contract.ConvAutoencoder {
			return nil, usageError{fmt.Sprintf("--channels, --kernel-size, --resampling and --dropout are for model ConvAutoencoder, not %s", l.model)}
		}
		if !(l.dropout >= 0 && l.dropout <= 0.9) {
			return nil, usageError{fmt.Sprintf("--dropout %v: give a share from 0 to 0.9", l.dropout)}
		}
		req.Model.Resampling = l.resampling
		if l.dropout > 0 {
			req.Model.Dropout = new(l.dropout)
		}
		if req.Model.Channels, err = widths("--channels", l.channels); err != nil {
			return nil, err
		}
		if l.kernel != 0 && !model.OddKernel(l.kernel) {
			return nil, usageError{fmt.Sprintf("--kernel-size %d: give an odd number of rows", l.kernel)}
		}
		if l.kernel > 0 {
			req.Model.KernelSize = new(int32(l.kernel))
		}
	}
	if l.latent > 0 {
		v := int32(l.latent)
		req.Model.LatentSize = &v
	}
	if l.window != 0 || l.stride != 0 {
		if req.Model.Type != contract.LSTMAutoencoder && req.Model.Type != contract.ConvAutoencoder {
			return nil, usageError{fmt.Sprintf("--window and --stride are for models LSTMAutoencoder and ConvAutoencoder, not %s", l.model)}
		}
		if l.window < 0 || l.stride < 0 {
			return nil, usageError{fmt.Sprintf("--window %d --stride %d: give positive numbers of rows", l.window, l.stride)}
		}
		if l.window > 0 {
			req.Model.Window = new(int32(l.window))
		}
		if l.stride > 0 {
			req.Model.Stride = new(int32(l.stride))
		}
	}
	// The pipeline refuses a rule for a row model or an unknown one, with its reason.
	req.Model.ScoringRule = l.rule
	req.Model.StuckValues = l.stuck
	if err := l.resolveNormalization(req); err != nil {
		return nil, err
	}
	// The flag as given (the pipeline refuses an unknown one, or Day or Week for a row
	// model), else a new Detector's default.
	req.Model.Seasonality = cmp.Or(l.seasonality, contract.ResolvedSeasonality("", req.Model.Type, req.Data.Source()))
	switch l.scaleBy {
	case "", contract.ScaleByEntity, contract.ScaleByModel:
		req.Preprocessing.ScaleBy = contract.ResolvedScaleBy(l.scaleBy, req.Data.NamesEntities())
	default:
		return nil, usageError{fmt.Sprintf("--scale-by %q: want %s or %s", l.scaleBy, contract.ScaleByEntity, contract.ScaleByModel)}
	}
	if l.scaleBy == contract.ScaleByEntity && !req.Data.NamesEntities() {
		return nil, usageError{"--scale-by Entity needs rows that name their entity: --entity-column with --data, --entity-labels with --prometheus-url"}
	}
	if req.Backtest, err = l.resolveBacktest(req.Data.Source()); err != nil {
		return nil, err
	}
	req.Training.KeepFlagged = l.keepFlagged
	if l.patience > 0 {
		req.Training.EarlyStopping = &contract.EarlyStopping{Patience: int32(l.patience)}
	}
	if l.param != 0 {
		p := l.param
		switch req.Threshold.Method {
		case contract.ThresholdPercentile:
			req.Threshold.Percentile = &p
		case contract.ThresholdMeanStd:
			req.Threshold.StdDevs = &p
		case contract.ThresholdFixed:
			req.Threshold.Value = &p
		case contract.ThresholdContamination:
			req.Threshold.Contamination = &p
		}
	}
	return req, checkRequest(req)
}

// promFlags read Prometheus without a DataSource, to try a model on one's metrics.
type promFlags struct {
	url, rng, step, end, entityLabels, bearerTokenFile string
	queries                                            queryFlags
}

// queryFlags collect repeated --query NAME=PROMQL.
type queryFlags []contract.PrometheusQuery

func (q *queryFlags) String() string { return fmt.Sprint(len(*q), " queries") }

func (q *queryFlags) Set(v string) error {
	name, expr, ok := strings.Cut(v, "=")
	if !ok || name == "" || strings.TrimSpace(expr) == "" {
		return fmt.Errorf("%q: want NAME=PROMQL", v)
	}
	if strings.IndexFunc(name, func(c rune) bool { return c != '_' && !unicode.IsLetter(c) && !unicode.IsDigit(c) }) >= 0 ||
		unicode.IsDigit([]rune(name)[0]) {
		return fmt.Errorf("query name %q: use letters, digits and _, not starting with a digit", name)
	}
	for _, e := range *q {
		if e.Name == name {
			return fmt.Errorf("query name %q given twice", name)
		}
	}
	*q = append(*q, contract.PrometheusQuery{Name: name, Query: expr})
	return nil
}

// bind registers the flags of a Prometheus source, to use (train on, score) in place
// of instead.
func (p *promFlags) bind(fs *flag.FlagSet, use, instead string) {
	fs.StringVar(&p.url, "prometheus-url", "", "Prometheus (or compatible) server to "+use+" its queries (instead of "+instead+")")
	fs.Var(&p.queries, "query", "NAME=PROMQL, one feature column per query (repeat; with --prometheus-url)")
	fs.StringVar(&p.rng, "range", "24h", "how far back from --end the Prometheus data reaches")
	fs.StringVar(&p.step, "step", "1m", "resolution of the Prometheus range queries")
	fs.StringVar(&p.end, "end", "", "end of the Prometheus range, RFC 3339 (default: now)")
	fs.StringVar(&p.entityLabels, "entity-labels", "", "comma-separated labels that split each query's series into entities")
	fs.StringVar(&p.bearerTokenFile, "bearer-token-file", "", "file holding a bearer token for the Prometheus server")
}

func (p promFlags) resolve() (*contract.ResolvedPrometheus, error) {
	if len(p.queries) == 0 {
		return nil, usageError{"--prometheus-url needs at least one --query NAME=PROMQL"}
	}
	if !strings.HasPrefix(p.url, "http://") && !strings.HasPrefix(p.url, "https://") {
		return nil, usageError{fmt.Sprintf("--prometheus-url %q: want an http:// or https:// URL", p.url)}
	}
	pr := &contract.ResolvedPrometheus{URL: p.url, Queries: p.queries, Range: p.rng, Step: p.step, End: p.end,
		BearerTokenFile: p.bearerTokenFile}
	if p.entityLabels != "" {
		pr.EntityLabels = strings.Split(p.entityLabels, ",")
	}
	return pr, nil
}

// widths parses a comma-separated list of positive sizes.
func widths(flagName, list string) ([]int32, error) {
	var out []int32
	for _, h := range strings.Split(list, ",") {
		if h == "" {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(h))
		if err != nil || v <= 0 {
			return nil, usageError{fmt.Sprintf("%s: %q is not a positive width", flagName, h)}
		}
		out = append(out, int32(v))
	}
	return out, nil
}

func readSpec(path string) (*contract.TrainingRequest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &pipeline.SpecError{Msg: fmt.Sprintf("reading spec: %v", err)}
	}
	req := &contract.TrainingRequest{}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		return nil, &pipeline.SpecError{Msg: fmt.Sprintf("%s is not a TrainingRequest: %v", path, err)}
	}
	if err := req.CheckVersion(); err != nil {
		return nil, &pipeline.SpecError{Msg: fmt.Sprintf("%s has %v", path, err)}
	}
	return req, checkRequest(req)
}

// checkRequest refuses settings the API would have refused, for requests that did not
// come through the API server.
func checkRequest(req *contract.TrainingRequest) error {
	t := req.Training
	switch {
	case t.Epochs < 1:
		return &pipeline.SpecError{Msg: fmt.Sprintf("epochs %d: want at least 1", t.Epochs)}
	case t.BatchSize < 1:
		return &pipeline.SpecError{Msg: fmt.Sprintf("batch size %d: want at least 1", t.BatchSize)}
	case !(t.LearningRate > 0 && t.LearningRate <= 1):
		return &pipeline.SpecError{Msg: fmt.Sprintf("learning rate %v: want (0, 1]", t.LearningRate)}
	case !(t.ValidationSplit >= 0 && t.ValidationSplit <= 0.5):
		return &pipeline.SpecError{Msg: fmt.Sprintf("validation split %v: want [0, 0.5]", t.ValidationSplit)}
	}
	return nil
}

// progressReporter prints one line per epoch, or a live bar on a terminal, and passes
// each epoch to sink (the progress ConfigMap in a pod).
type progressReporter struct {
	w        io.Writer
	terminal bool
	sink     func(train.Progress)
	drew     bool
}

func newProgressReporter(w io.Writer, sink func(train.Progress)) *progressReporter {
	f, ok := w.(*os.File)
	return &progressReporter{w: w, terminal: ok && term.IsTerminal(int(f.Fd())), sink: sink}
}

func (p *progressReporter) report(pr train.Progress) {
	val := ""
	if !math.IsNaN(pr.ValLoss) {
		val = fmt.Sprintf(" val_loss %.6g", pr.ValLoss)
	}
	line := fmt.Sprintf("epoch %d/%d loss %.6g%s %.0f samples/s eta %s",
		pr.Epoch, pr.Epochs, pr.Loss, val, pr.SamplesPerSecond, pr.ETA.Round(time.Second))
	if p.terminal {
		const width = 30
		done := width * pr.Epoch / pr.Epochs
		fmt.Fprintf(p.w, "\r[%s%s] %s\033[K", strings.Repeat("=", done), strings.Repeat(" ", width-done), line)
		p.drew = true
	} else {
		fmt.Fprintln(p.w, line)
	}
	if p.sink != nil {
		p.sink(pr)
	}
}

func (p *progressReporter) done() {
	if p.drew {
		fmt.Fprintln(p.w)
	}
}

// resolveNormalization sets the request's likelihood stage from the flags; left out,
// what a Detector gets: Likelihood for a sequence model on Prometheus, None otherwise.
func (l *localTrainFlags) resolveNormalization(req *contract.TrainingRequest) error {
	sequence := req.Model.Type == contract.LSTMAutoencoder || req.Model.Type == contract.ConvAutoencoder
	method := l.normalization
	if method == "" { // a Detector's default for this model and source
		if d := contract.ResolvedNormalization(nil, req.Model.Type, req.Data.Source()); d != nil {
			method = d.Method
		}
	}
	switch method {
	case "", contract.NormalizationNone:
		method = contract.NormalizationNone
	case contract.NormalizationLikelihood:
		if !sequence {
			return usageError{fmt.Sprintf("--normalization %s is for models LSTMAutoencoder and ConvAutoencoder, not %s", method, req.Model.Type)}
		}
	default:
		return usageError{fmt.Sprintf("--normalization %q: want %s or %s", method, contract.NormalizationLikelihood, contract.NormalizationNone)}
	}
	if method == contract.NormalizationNone {
		if l.longWindow != 0 || l.shortWindow != 0 {
			return usageError{"--normalization-long-window and --normalization-short-window need --normalization Likelihood"}
		}
		return nil
	}
	n := &contract.Normalization{Method: method}
	if l.longWindow != 0 {
		n.LongWindow = new(int32(l.longWindow))
	}
	if l.shortWindow != 0 {
		n.ShortWindow = new(int32(l.shortWindow))
	}
	req.Normalization = n
	return nil
}

// resolveBacktest is the backtest the flags ask for: what a Detector gets when
// --backtest is left out.
func (l *localTrainFlags) resolveBacktest(src contract.Source) (*contract.Backtest, error) {
	gap, err := contract.ParseDuration(l.backtestGap)
	if err != nil || gap < 0 {
		return nil, usageError{fmt.Sprintf("--backtest-merge-gap %q: want a duration such as 5m", l.backtestGap)}
	}
	if src != contract.SourceStream {
		if l.backtest != "" {
			return nil, usageError{"--backtest is for --prometheus-url: with --data the training metrics are the held-out rows' figures"}
		}
		return nil, nil
	}
	b := &contract.Backtest{MergeGap: gap.String()}
	switch v := l.backtest; {
	case v == "":
		b.HoldOut = contract.DefaultBacktestHoldOut
	case v == "off":
		return nil, nil
	case strings.HasSuffix(v, "%"):
		p, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if err != nil || !(p > 0 && p <= 50) {
			return nil, usageError{fmt.Sprintf("--backtest %q: give a share above 0%% and at most 50%%", v)}
		}
		b.HoldOut = p / 100
	default:
		d, err := contract.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, usageError{fmt.Sprintf("--backtest %q: give PERCENT%%, a duration such as 24h, or off", v)}
		}
		b.Range = d.String()
	}
	return contract.ResolvedBacktest(b, src), nil
}

// trainLog is the log of what training read and decided, on stderr beside the
// progress lines: one line each, level and message first, no time (the pod's log has
// its own).
func trainLog(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})).With("component", "detector train")
}
