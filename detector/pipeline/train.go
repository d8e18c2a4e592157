// Package pipeline is the training pipeline: it turns a TrainingRequest into a
// versioned model file (load, scale, fit, calibrate, evaluate, save). Scoring lives in
// package scoring, which serving uses without the training stack.
package pipeline

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/backtest"
	"github.com/kadet-dev/kadet/detector/calibrate"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/drift"
	"github.com/kadet-dev/kadet/detector/evaluate"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/normalize"
	"github.com/kadet-dev/kadet/detector/preprocess"
	"github.com/kadet-dev/kadet/detector/report"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/detector/seasonal"
	"github.com/kadet-dev/kadet/detector/train"
)

// Version is kadet's version, recorded in every model file.
var Version = "v0.1.0-dev"

// ReportFileName is the training report inside a model version's folder.
const ReportFileName = artifact.ReportFileName

// SpecError is a TrainingRequest the engine cannot carry out as written.
type SpecError struct{ Msg string }

func (e *SpecError) Error() string { return e.Msg }

// InsufficientDataError is a Prometheus range that does not hold enough rows to train
// yet: the data will come, unlike a bad spec.
type InsufficientDataError struct{ contract.InsufficientData }

func (e *InsufficientDataError) Error() string {
	return "not enough data to train yet: " + e.Message()
}

// MinStreamRows is the fewest rows a model trains on from Prometheus; a sequence
// model wants MinStreamWindows windows' worth when that is more. Below it, a Detector
// says InsufficientData and waits for the rows to arrive.
const (
	MinStreamRows    = 100
	MinStreamWindows = 10
)

// IsInputError reports whether err is about the spec or the data (retrying cannot help)
// rather than the machine.
func IsInputError(err error) bool {
	var se *SpecError
	return errors.As(err, &se) || data.IsInputError(err)
}

// Outcome is a trained and saved model.
type Outcome struct {
	Result contract.TrainingResult
	Dir    string
}

// Options are what a caller of Train gives beside the request.
type Options struct {
	// Progress receives each epoch's losses; nil for none.
	Progress func(train.Progress)
	// Log receives what training read and decided on the way (rows read, rows left
	// out, the seasons learnt); nil discards it.
	Log *slog.Logger
}

// Train loads the data req names, trains, calibrates, and saves a new model version
// under outDir. Nothing is written unless every step succeeded.
func Train(ctx context.Context, req *contract.TrainingRequest, outDir string, opts Options) (*Outcome, error) {
	log, progress := opts.Log, opts.Progress
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	src, err := withBacktestRange(req.Data, req.Backtest)
	if err != nil {
		return nil, err
	}
	tbl, err := data.Load(ctx, src)
	if err != nil {
		return nil, err
	}
	// A request from the controller has its presets; one built by hand (flags, the
	// benchmarks) gets them here, the stream's scoring rule included.
	resolved := *req
	resolved.Model = contract.ResolvedModel(req.Model, req.Data.Source())
	resolved.Preprocessing.Scaling = cmp.Or(req.Preprocessing.Scaling, contract.DefaultScaling)
	req = &resolved
	if st := tbl.Prometheus; st != nil {
		log.Info("read rows from Prometheus", "rows", st.Rows, "entities", st.Entities, "source", tbl.Source,
			"start", st.Start.UTC().Format(time.RFC3339), "end", st.End.UTC().Format(time.RFC3339), "step", st.Step.String(),
			"requests", st.Requests, "carriedOverGaps", st.Carried, "rowsLeftOut", st.Dropped)
	} else if tbl.Entities != nil {
		log.Info("read rows", "rows", tbl.Rows(), "entities", len(segments(tbl)), "source", tbl.Source)
	}
	spec, err := modelSpec(req.Model, tbl)
	if err != nil {
		return nil, err
	}
	needed := 0
	if st := tbl.Prometheus; st != nil {
		needed = MinStreamRows
		if spec.Sequence() {
			needed = max(needed, MinStreamWindows*spec.Window)
		}
		if tbl.Rows() < needed {
			return nil, &InsufficientDataError{contract.InsufficientData{Rows: tbl.Rows(), Needed: needed,
				Entities: st.Entities, Step: st.Step.String()}}
		}
	}
	held, skipped, err := holdOut(req.Backtest, tbl, needed)
	if err != nil {
		return nil, err
	}
	if held != nil {
		log.Info("held out rows from training to backtest on", "from", time.Unix(held.cut, 0).UTC().Format(time.RFC3339),
			"rows", held.full.Rows()-tbl.Rows(), "trainingRows", tbl.Rows())
	} else if skipped != "" {
		log.Info("no backtest: " + skipped)
	}
	lo := leaveOutFlagged(req, spec, tbl, outDir)
	if line := lo.String(); line != "" {
		log.Info(line)
	}
	if spec.Type == model.MLPClassifier && tbl.Labels == nil {
		return nil, &SpecError{Msg: "model type MLPClassifier needs a label column"}
	}
	th := thresholdSpec(req.Threshold, req.Data.Source())
	if th.Method == calibrate.BestF1 && tbl.Labels == nil {
		return nil, &SpecError{Msg: "threshold method BestF1 needs a label column"}
	}

	cfg := train.Config{
		Epochs: int(req.Training.Epochs), BatchSize: int(req.Training.BatchSize),
		LearningRate: req.Training.LearningRate, ValidationSplit: req.Training.ValidationSplit, Seed: req.Training.Seed,
	}
	if es := req.Training.EarlyStopping; es != nil {
		cfg.Patience, cfg.MinDelta = int(es.Patience), es.MinDelta
	}
	fitter := fitRows
	if spec.Sequence() {
		fitter = fitSequence
	}
	// Every epoch's losses go into the model file, for its page's loss curve.
	var history []artifact.EpochLoss
	record := func(p train.Progress) {
		e := artifact.EpochLoss{Epoch: p.Epoch, Loss: p.Loss}
		if !math.IsNaN(p.ValLoss) {
			e.ValLoss = new(p.ValLoss)
		}
		history = append(history, e)
		if progress != nil {
			progress(p)
		}
	}
	f, err := fitter(ctx, req, spec, tbl, th, cfg, record, log)
	if err != nil {
		return nil, err
	}
	fb := labelledFeedback(filepath.Join(outDir, contract.FeedbackDirName), spec, tbl.Columns, f, log)
	if fb != nil && th.Method == calibrate.BestF1 && f.calLabels != nil {
		// People's labels on live records join the held-out ones the threshold is
		// chosen on.
		f.calScores, f.calLabels = append(f.calScores, fb.scores...), append(f.calLabels, fb.labels...)
	}
	threshold, err := calibrate.Threshold(th, f.calScores, f.calLabels)
	if err != nil {
		return nil, &SpecError{Msg: err.Error()}
	}
	res := f.res
	metrics := map[string]float64{
		"loss": res.Loss, "epochs": float64(res.Epochs), "bestEpoch": float64(res.BestEpoch),
		"samplesPerSecond": math.Round(res.SamplesPerSecond), "trainRows": float64(f.trainRows),
		"validationRows": float64(f.validationRows), "trainSeconds": math.Round(res.Duration.Seconds()*100) / 100,
	}
	if !math.IsNaN(res.ValLoss) {
		metrics["valLoss"] = res.ValLoss
	}
	if f.evalLabels != nil {
		m := evaluate.Evaluate(f.evalScores, f.evalLabels, threshold)
		for k, v := range map[string]float64{"auroc": m.AUROC, "auprc": m.AUPRC, "f1": m.F1, "precision": m.Precision, "recall": m.Recall} {
			if !math.IsNaN(v) {
				metrics[k] = v
			}
		}
	}

	if lo.version != "" || lo.byFeedback > 0 {
		metrics["leftOutRows"], metrics["leftOutEpisodes"] = float64(lo.rows), float64(lo.episodes)
	}
	if fb != nil {
		metrics["feedbackMarks"] = float64(len(fb.labels))
		if m := evaluate.Evaluate(fb.scores, fb.labels, threshold); !math.IsNaN(m.AUROC) {
			metrics["feedbackAUROC"], metrics["feedbackF1"] = m.AUROC, m.F1
		}
	}

	now := time.Now().UTC()
	meta := artifact.Metadata{
		Name: req.Detector.Name, Model: spec, Features: tbl.Columns, Scaler: f.scaler, EntityScalers: f.entityScalers,
		Threshold: artifact.Threshold{Method: th.Method, Parameter: thresholdParameter(th), Value: threshold},
		Training: artifact.TrainingInfo{
			Seed: cfg.Seed, Epochs: res.Epochs, BatchSize: cfg.BatchSize, LearningRate: cfg.LearningRate,
			ValidationSplit: cfg.ValidationSplit, Rows: tbl.Rows(), Metrics: metrics, History: history,
		},
		Data: preprocess.SummarizeRows(f.fitX, tbl.Columns, f.fitRows), Kadet: Version, CreatedAt: now,
		Calibration: calibrationSummary(th, f.calScores, f.calLabels, threshold),
	}
	norm, err := normalizationOf(req, spec, meta.Calibration, threshold, f.runs, f.gap)
	if err != nil {
		return nil, err
	}
	meta.Normalization = norm
	meta.Seasons = f.seasons
	if c := req.Data.CSV; c != nil && f.seasons != nil {
		meta.TimestampColumn = c.TimestampColumn
	}
	if spec.Sequence() {
		meta.Stride = stride(req.Model)
		meta.ScoringRule = cmp.Or(req.Model.ScoringRule, contract.ScoringAllWindows)
		if req.Model.StuckValues != contract.StuckIgnore {
			meta.FlatLimits = calibrate.FlatLimits(tbl.X, len(tbl.Columns), segments(tbl), spec.Window)
		}
	}
	if tbl.ImageRows > 0 {
		meta.Image = &artifact.ImageShape{Rows: tbl.ImageRows, Cols: tbl.ImageCols}
	}
	if st, pr := tbl.Prometheus, req.Data.Prometheus; st != nil && pr != nil {
		meta.Prometheus = &artifact.PrometheusSource{
			URL: contract.RedactURL(pr.URL), Queries: pr.Queries, EntityLabels: pr.EntityLabels, Start: st.Start.UTC(), End: st.End.UTC(),
			Step: st.Step.String(), Rows: st.Rows, Entities: st.Entities, Dropped: st.Dropped, Carried: st.Carried, Digest: rowsDigest(tbl),
		}
	}
	file, digest, err := artifact.Encode(meta, f.net)
	if err != nil {
		return nil, err
	}
	png, err := report.Histogram(fmt.Sprintf("%s %s: held-out scores", req.Detector.Name, spec.Type), f.calScores, threshold)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{artifact.FileName: file, ReportFileName: png}
	var bt *contract.BacktestResult
	switch {
	case held != nil:
		m, err := artifact.Decode(file)
		if err != nil {
			return nil, err
		}
		var all backtest.Report
		began := time.Now()
		bt, all = held.run(m)
		metrics["backtestSeconds"] = math.Round(time.Since(began).Seconds()*100) / 100
		if files[backtest.FileName], err = json.Marshal(all); err != nil {
			return nil, err
		}
		log.Info("backtest", "rows", bt.Rows, "entities", bt.Entities, "anomalousRows", bt.AnomalousRows,
			"episodes", bt.Episodes, "episodesPerDay", bt.EpisodesPerDay, "mergeGap", bt.MergeGap)
	case skipped != "":
		bt = &contract.BacktestResult{Skipped: skipped}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w before saving: %w", train.ErrCanceled, err)
	}
	version := artifact.NewVersion(now, digest)
	dir, err := artifact.Save(outDir, version, files)
	if err != nil {
		return nil, fmt.Errorf("saving model: %w", err)
	}
	trainedAt := now.Truncate(time.Second)
	out := &Outcome{Dir: dir, Result: contract.TrainingResult{
		Version: version, Digest: digest, Threshold: threshold, Metrics: metrics,
		TrainedAt: &trainedAt, ScoringRule: meta.ScoringRule, Kadet: Version, Backtest: bt,
	}}
	if norm.Enabled() {
		out.Result.Normalization = norm.Method
	}
	if meta.ScalesByEntity() {
		out.Result.ScaleBy = contract.ScaleByEntity
	}
	if spec.Sequence() && req.Model.Seasonality != seasonal.None {
		out.Result.Seasonality = req.Model.Seasonality
	}
	if p := meta.Seasons; p != nil {
		out.Result.SeasonalPeriod = p.Period
	}
	if p := meta.Prometheus; p != nil {
		out.Result.Data = &contract.DataProvenance{Start: p.Start, End: p.End, Step: p.Step, Rows: p.Rows, Entities: p.Entities, Digest: p.Digest}
	}
	return out, nil
}

// fitted is a trained network with what calibration and evaluation need.
type fitted struct {
	net                       *model.Network
	scaler                    *preprocess.Scaler
	entityScalers             map[string]*preprocess.Scaler // per entity, when the request scales by entity
	res                       *train.Result
	fitX                      []float32   // unscaled rows, the scaler and the data summary are fitted on
	fitRows                   []int       // which rows of fitX train (all when nil)
	calScores, calLabels      []float32   // held-out scores the threshold is calibrated on
	runs                      [][]float32 // a sequence model's calibration scores per entity, in time order
	gap                       float64     // how much higher held-out rows score than training rows (heldOutGap)
	evalScores, evalLabels    []float32   // held-out scores with labels, when there are labels
	trainRows, validationRows int
	seasons                   *seasonal.Profile // a sequence model's factor per hour, when it learns one
	times                     []int64           // the table's rows' unix times, with seasons
}

// learnSeasons fits the seasonal profile req asks for (empty: None) on the scores of
// the rows each part trained on (part i's first row is from(i)) and divides those
// scores by it; scores of other rows go through deseason.
func (f *fitted) learnSeasons(period string, tbl *data.Table, fitScores [][]float32, from func(int) int, log *slog.Logger) error {
	if period == "" || period == seasonal.None {
		return nil
	}
	alike := func(why string) { log.Info("every hour is scored alike", "seasonality", period, "why", why) }
	if tbl.Timestamps == nil {
		if period == seasonal.Auto {
			alike("the rows have no timestamps")
			return nil
		}
		return &data.Error{Source: tbl.Source, Msg: fmt.Sprintf("seasonality %s needs the rows' times: name a timestamp column", period)}
	}
	times, bad, ok := seasonal.Times(tbl.Timestamps)
	if !ok {
		msg := fmt.Sprintf("timestamp %q is not a time (seconds since 1970, or RFC 3339 / ISO 8601 text)", bad)
		if period == seasonal.Auto {
			alike(msg)
			return nil
		}
		return &data.Error{Source: tbl.Source, Msg: fmt.Sprintf("seasonality %s: %s", period, msg)}
	}
	var scores []float32
	var at []int64
	for i, fs := range fitScores {
		scores = append(scores, fs...)
		at = append(at, times[from(i):from(i)+len(fs)]...)
	}
	p, why, err := seasonal.Fit(period, scores, at)
	if err != nil {
		return &data.Error{Source: tbl.Source, Msg: err.Error()}
	}
	if p == nil {
		alike(why)
		return nil
	}
	log.Info("scores are divided by their UTC hour's factor", "seasonality", period, "period", p.Period,
		"minFactor", fmt.Sprintf("%.2f", slices.Min(p.Factors)), "maxFactor", fmt.Sprintf("%.2f", slices.Max(p.Factors)))
	f.seasons, f.times = p, times
	for i, fs := range fitScores {
		f.deseason(fs, from(i))
	}
	return nil
}

// deseason divides scores of the rows from row from on by their hours' factors.
func (f *fitted) deseason(scores []float32, from int) {
	if f.seasons == nil {
		return
	}
	for j := range scores {
		scores[j] /= float32(f.seasons.Factor(f.times[from+j]))
	}
}

// start fits the scaler on the training rows of f.fitX, scales every row of tbl with
// it, and makes the untrained network. Without scaling the rows are used as they are:
// a copy would double the memory of a large table.
func (f *fitted) start(req *contract.TrainingRequest, spec model.Spec, tbl *data.Table) ([]float32, error) {
	var err error
	if f.scaler, err = preprocess.FitRows(req.Preprocessing.Scaling, f.fitX, len(tbl.Columns), f.fitRows); err != nil {
		return nil, &SpecError{Msg: err.Error()}
	}
	if f.net, err = model.New(spec, req.Training.Seed); err != nil {
		return nil, &SpecError{Msg: err.Error()}
	}
	if req.Preprocessing.ScaleBy == contract.ScaleByEntity && tbl.Entities != nil {
		return f.scaleEntities(tbl)
	}
	if f.scaler.Identity() {
		return tbl.X, nil
	}
	return f.scaler.Transform(nil, tbl.X), nil
}

// scaleEntities fits a scaler per entity of tbl on its training rows (all its rows
// when none of them trains: an entity too short for a window is still scored later)
// and scales each entity's rows with its own.
func (f *fitted) scaleEntities(tbl *data.Table) ([]float32, error) {
	d := len(tbl.Columns)
	var trains []bool
	if f.fitRows != nil {
		trains = make([]bool, tbl.Rows())
		for _, r := range f.fitRows {
			trains[r] = true
		}
	}
	out := make([]float32, len(tbl.X))
	f.entityScalers = map[string]*preprocess.Scaler{}
	for _, sg := range entityRows(tbl) {
		var rows []int
		for r := sg[0]; r < sg[1] && trains != nil; r++ {
			if trains[r] {
				rows = append(rows, r-sg[0])
			}
		}
		x := tbl.X[sg[0]*d : sg[1]*d]
		sc, err := f.scaler.FitEntity(x, rows)
		if err != nil {
			return nil, &data.Error{Source: tbl.Source, Msg: fmt.Sprintf("entity %q: %v", tbl.Entities[sg[0]], err)}
		}
		f.entityScalers[tbl.Entities[sg[0]]] = sc
		sc.Transform(out[sg[0]*d:sg[1]*d], x)
	}
	return out, nil
}

// fitRows trains a model that scores rows one by one, on a random split of the rows.
func fitRows(ctx context.Context, req *contract.TrainingRequest, spec model.Spec, tbl *data.Table, th calibrate.Spec, cfg train.Config, progress func(train.Progress), _ *slog.Logger) (*fitted, error) {
	d := len(tbl.Columns)
	rows := tbl.Rows()
	split := train.SplitRows(rows, req.Training.ValidationSplit, req.Training.Seed)
	// An autoencoder learns what normal looks like: rows labelled anomalous are kept out
	// of its training and of threshold calibration, and only used for evaluation.
	fitIdx, calIdx := split.Train, split.Validation
	if spec.Type != model.MLPClassifier && tbl.Labels != nil {
		fitIdx, calIdx = normalRows(split.Train, tbl.Labels), normalRows(split.Validation, tbl.Labels)
		if th.Method == calibrate.BestF1 {
			calIdx = split.Validation
		}
	}
	if len(fitIdx) == 0 {
		return nil, &data.Error{Source: tbl.Source, Msg: fmt.Sprintf("no rows left to train on out of %d", rows)}
	}
	if len(calIdx) == 0 {
		calIdx = fitIdx // without a validation split, calibrate on the training rows
	}
	f := &fitted{trainRows: len(fitIdx), validationRows: len(split.Validation), fitX: tbl.X, fitRows: fitIdx}
	x, err := f.start(req, spec, tbl)
	if err != nil {
		return nil, err
	}
	var labels []float32
	if spec.Type == model.MLPClassifier {
		labels = tbl.Labels
	}
	// Early stopping watches the loss of the held-out rows the model is meant to fit.
	valIdx := split.Validation
	if spec.Type != model.MLPClassifier && tbl.Labels != nil {
		valIdx = normalRows(split.Validation, tbl.Labels)
	}
	if f.res, err = train.Fit(ctx, f.net, x, labels, train.Split{Train: fitIdx, Validation: valIdx}, cfg, progress); err != nil {
		return nil, err
	}
	f.calScores, f.calLabels = scoreRows(f.net, x, d, calIdx), gatherLabels(tbl.Labels, calIdx)
	if tbl.Labels != nil && len(split.Validation) > 0 {
		f.evalScores, f.evalLabels = scoreRows(f.net, x, d, split.Validation), gatherLabels(tbl.Labels, split.Validation)
	}
	return f, nil
}

// scoreChunk is how many rows scoreRows gathers at a time.
const scoreChunk = 4096

// scoreRows scores the rows of x listed in idx, gathering a chunk at a time: without
// a validation split those are all the training rows, which a single copy would double.
func scoreRows(net *model.Network, x []float32, d int, idx []int) []float32 {
	out := make([]float32, 0, len(idx))
	buf := make([]float32, min(len(idx), scoreChunk)*d)
	for start := 0; start < len(idx); start += scoreChunk {
		part := idx[start:min(start+scoreChunk, len(idx))]
		for k, r := range part {
			copy(buf[k*d:(k+1)*d], x[r*d:(r+1)*d])
		}
		out = append(out, net.Scores(buf[:len(part)*d], len(part))...)
	}
	return out
}

// gatherLabels returns the labels of rows idx, or nil without labels.
func gatherLabels(labels []float32, idx []int) []float32 {
	if labels == nil {
		return nil
	}
	out := make([]float32, len(idx))
	for k, r := range idx {
		out[k] = labels[r]
	}
	return out
}

// fitSequence trains a sequence model on windows of the rows in time order: the first
// rows train it, the last validationSplit of them are held out for early stopping,
// calibration and evaluation, because shuffled rows would leak the future into training.
// Rows of several entities (a Prometheus query split by entity labels) train one model:
// each entity is split the same way, and no window spans two entities.
func fitSequence(ctx context.Context, req *contract.TrainingRequest, spec model.Spec, tbl *data.Table, th calibrate.Spec, cfg train.Config, progress func(train.Progress), log *slog.Logger) (*fitted, error) {
	d, w := len(tbl.Columns), spec.Window
	stride := stride(req.Model)
	type part struct{ from, nFit, nVal int }
	var parts []part
	short := 0
	segs := segments(tbl)
	for _, sg := range segs {
		rows := sg[1] - sg[0]
		nVal := int(math.Round(float64(rows) * req.Training.ValidationSplit))
		if nVal > 0 && nVal < w {
			nVal = w
		}
		if rows-nVal < w {
			if tbl.Breaks == nil || rows < w {
				short++
				continue
			}
			// A run between rows left out (see leaveOutFlagged) too short to split
			// still trains; the entity's other runs hold its validation rows.
			nVal = 0
		}
		parts = append(parts, part{from: sg[0], nFit: rows - nVal, nVal: nVal})
	}
	validated := slices.ContainsFunc(parts, func(p part) bool { return p.nVal > 0 })
	if len(parts) == 0 {
		msg := fmt.Sprintf("%d rows are too few: training and the validation split need a window of %d rows each", tbl.Rows(), w)
		if len(segs) > 1 {
			msg = fmt.Sprintf("none of %d entities has enough rows: training and the validation split need a window of %d rows each", len(segs), w)
		}
		if st := tbl.Prometheus; st != nil {
			// Each entity's rows grow with every step: the data will come.
			longest := 0
			for _, sg := range segs {
				longest = max(longest, sg[1]-sg[0])
			}
			needed := w + max(w, int(math.Ceil(float64(longest)*req.Training.ValidationSplit)))
			return nil, &InsufficientDataError{contract.InsufficientData{Rows: longest, Needed: needed, Entities: 1, Step: st.Step.String()}}
		}
		return nil, &data.Error{Source: tbl.Source, Msg: msg}
	}
	f := &fitted{fitX: tbl.X}
	for _, p := range parts {
		f.trainRows, f.validationRows = f.trainRows+p.nFit, f.validationRows+p.nVal
		f.fitRows = append(f.fitRows, seq(p.from, p.from+p.nFit)...)
	}
	x, err := f.start(req, spec, tbl)
	if err != nil {
		return nil, err
	}
	// Windows become the training "rows": training windows first, then held-out ones.
	var all, val []float32
	for _, p := range parts {
		all = append(all, scoring.Windows(x[p.from*d:(p.from+p.nFit)*d], d, w, scoring.WindowStarts(p.nFit, w, stride))...)
		if p.nVal > 0 {
			val = append(val, scoring.Windows(x[(p.from+p.nFit)*d:(p.from+p.nFit+p.nVal)*d], d, w, scoring.WindowStarts(p.nVal, w, stride))...)
		}
	}
	nFitWin, nValWin := len(all)/(d*w), len(val)/(d*w)
	split := train.Split{Train: seq(0, nFitWin), Validation: seq(nFitWin, nFitWin+nValWin)}
	all = append(all, val...)
	if f.res, err = train.Fit(ctx, f.net, all, nil, split, cfg, progress); err != nil {
		return nil, err
	}
	labelsOf := func(from, n int) []float32 {
		if tbl.Labels == nil {
			return nil
		}
		return tbl.Labels[from : from+n]
	}
	// Each part's scores of the rows it trained on, divided by their hours' factors
	// when the model learns the seasons from them.
	fitScoresOf := make([][]float32, len(parts))
	for i, p := range parts {
		if fitScoresOf[i], _, err = scoring.SequenceScores(f.net, x[p.from*d:(p.from+p.nFit)*d], p.nFit, stride, req.Model.ScoringRule, false); err != nil {
			return nil, err
		}
	}
	if err := f.learnSeasons(req.Model.Seasonality, tbl, fitScoresOf, func(i int) int { return parts[i].from }, log); err != nil {
		return nil, err
	}
	var heldOutLabels, fitScores []float32
	var fitParts, heldOutParts [][]float32 // each entity's, in time order
	for i, p := range parts {
		if p.nVal == 0 && validated {
			// Scores of rows the model trained on are no held-out sample: they join
			// the calibration as training rows do, raised by the held-out gap.
			if th.Method != calibrate.BestF1 {
				fs := fitScoresOf[i]
				fitParts, heldOutParts = append(fitParts, fs), append(heldOutParts, nil)
				fitScores = append(fitScores, fs...)
			}
			continue
		}
		calFrom, calRows := p.from, p.nFit
		if p.nVal > 0 {
			calFrom, calRows = p.from+p.nFit, p.nVal
		}
		sc := fitScoresOf[i]
		if p.nVal > 0 {
			if sc, _, err = scoring.SequenceScores(f.net, x[calFrom*d:(calFrom+calRows)*d], calRows, stride, req.Model.ScoringRule, false); err != nil {
				return nil, err
			}
			f.deseason(sc, calFrom)
		}
		f.calScores = append(f.calScores, sc...)
		heldOutParts = append(heldOutParts, sc)
		heldOutLabels = append(heldOutLabels, labelsOf(calFrom, calRows)...)
		if p.nVal > 0 && th.Method != calibrate.BestF1 {
			// The held-out rows are the end of the series: a few hours of a daily
			// cycle say little about the rest of it. The training rows cover the
			// whole range but score lower than new data would; scaled by how much
			// higher the held-out rows score, they join the calibration sample.
			fs := fitScoresOf[i]
			fitParts = append(fitParts, fs)
			if tbl.Labels != nil {
				fs = normalScores(fs, labelsOf(p.from, p.nFit))
			}
			fitScores = append(fitScores, fs...)
		} else {
			fitParts = append(fitParts, nil)
		}
	}
	if tbl.Labels != nil {
		f.calLabels = heldOutLabels
		f.evalScores, f.evalLabels = f.calScores, heldOutLabels
		if th.Method != calibrate.BestF1 {
			// Calibrate on what is meant to be normal.
			f.calScores, f.calLabels = normalScores(f.calScores, heldOutLabels), nil
		}
	}
	gap := heldOutGap(fitScores, f.calScores)
	f.gap = gap
	f.calScores = append(f.calScores, scaled(fitScores, gap)...)
	// Each entity's scores in time order, the training rows scaled as for calibration:
	// what the likelihood stage's prior is measured on.
	for i, held := range heldOutParts {
		f.runs = append(f.runs, append(scaled(fitParts[i], gap), held...))
	}
	if short > 0 {
		what := "entities"
		if tbl.Breaks != nil {
			what = "runs of rows (entities, or their rows between rows left out)"
		}
		log.Info(fmt.Sprintf("%d of %d %s have too few rows for a window of %d and the validation split; trained on the other %d",
			short, len(segs), what, w, len(parts)))
	}
	return f, nil
}

// rowsDigest is the sha256 of a table's rows: timestamp, entity and values of each.
func rowsDigest(tbl *data.Table) string {
	h := sha256.New()
	var buf [4]byte
	for i := range tbl.Rows() {
		if tbl.Timestamps != nil {
			h.Write([]byte(tbl.Timestamps[i]))
		}
		h.Write([]byte{0})
		if tbl.Entities != nil {
			h.Write([]byte(tbl.Entities[i]))
		}
		h.Write([]byte{0})
		for _, v := range tbl.Row(i) {
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
			h.Write(buf[:])
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// segments are the [from, to) row ranges of each entity of tbl, in time order: the
// whole table, sorted by time, when its rows have no entity.
func segments(tbl *data.Table) [][2]int {
	if tbl.Entities == nil && tbl.Breaks == nil {
		tbl.SortByTime()
		return [][2]int{{0, tbl.Rows()}}
	}
	return rowRuns(tbl, tbl.Breaks)
}

// entityRows are the [from, to) row ranges of each entity of tbl, across breaks.
func entityRows(tbl *data.Table) [][2]int { return rowRuns(tbl, nil) }

// rowRuns are the [from, to) row ranges of tbl that end where the entity changes or
// a row of breaks starts a new run.
func rowRuns(tbl *data.Table, breaks map[int]bool) [][2]int {
	var out [][2]int
	for from := 0; from < tbl.Rows(); {
		to := from + 1
		for to < tbl.Rows() && !breaks[to] && (tbl.Entities == nil || tbl.Entities[to] == tbl.Entities[from]) {
			to++
		}
		out = append(out, [2]int{from, to})
		from = to
	}
	return out
}

// normalScores keeps the scores of rows labelled normal.
func normalScores(scores, labels []float32) []float32 {
	var out []float32
	for i, l := range labels {
		if l < 0.5 {
			out = append(out, scores[i])
		}
	}
	return out
}

// heldOutGap is the ratio of the held-out scores' 90th percentile to the in-sample
// scores' (at least 1): multiplied by it, in-sample scores stand for what unseen rows
// of the same phases would score, tail included.
func heldOutGap(fit, heldOut []float32) float64 {
	q90 := func(v []float32) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		return float64(s[int(0.9*float64(len(s)-1))])
	}
	if len(fit) == 0 || len(heldOut) == 0 {
		return 1
	}
	gap := q90(heldOut) / q90(fit)
	if !(gap > 1) || math.IsInf(gap, 0) { // a model that fits its training rows exactly
		return 1
	}
	return gap
}

// scaled multiplies scores by gap.
func scaled(scores []float32, gap float64) []float32 {
	out := make([]float32, len(scores))
	for i, v := range scores {
		out[i] = float32(float64(v) * gap)
	}
	return out
}

// stride is the step between windows of a sequence model: 1 unless the spec says.
func stride(m contract.Model) int {
	if m.Stride != nil {
		return int(*m.Stride)
	}
	return 1
}

func seq(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func normalRows(rows []int, labels []float32) []int {
	out := make([]int, 0, len(rows))
	for _, r := range rows {
		if labels[r] < 0.5 {
			out = append(out, r)
		}
	}
	return out
}

func modelSpec(m contract.Model, tbl *data.Table) (model.Spec, error) {
	src := contract.SourceRows
	if tbl.ImageRows > 0 {
		src = contract.SourceImages
	}
	m = contract.ResolvedModel(m, src)
	s := model.Spec{Type: string(m.Type), Inputs: len(tbl.Columns), Activation: m.Activation}
	switch m.Type {
	case contract.Autoencoder, contract.MLPClassifier:
		for _, h := range m.HiddenLayers {
			s.Hidden = append(s.Hidden, int(h))
		}
	case contract.LSTMAutoencoder:
		if tbl.ImageRows > 0 {
			return s, &SpecError{Msg: "model type LSTMAutoencoder needs rows of a series, not images"}
		}
		s.Window = int(*m.Window)
		s.Inputs *= s.Window
		for _, h := range m.HiddenLayers[:1] {
			s.Hidden = append(s.Hidden, int(h))
		}
	case contract.ConvAutoencoder:
		// Over images the blocks run across rows and columns; over rows of a series,
		// along time through windows.
		switch {
		case tbl.ImageRows > 0 && (m.Window != nil || m.Stride != nil):
			return s, &SpecError{Msg: "window and stride are for a ConvAutoencoder over rows of a series; this data is images"}
		case tbl.ImageRows > 0:
			s.ImageRows, s.ImageCols = tbl.ImageRows, tbl.ImageCols
		default:
			s.Window = contract.DefaultWindow
			if m.Window != nil {
				s.Window = int(*m.Window)
			}
			s.Inputs *= s.Window
		}
		s.Kernel = int(*m.KernelSize)
		s.Resampling = m.Resampling
		if m.Dropout != nil {
			s.Dropout = *m.Dropout
		}
		for _, c := range m.Channels {
			s.Channels = append(s.Channels, int(c))
		}
	default:
		return s, &SpecError{Msg: fmt.Sprintf("model type %s is not supported by this detector build yet", m.Type)}
	}
	switch {
	case m.Type != contract.ConvAutoencoder && (m.Resampling != "" || m.Dropout != nil):
		return s, &SpecError{Msg: fmt.Sprintf("resampling and dropout are for a ConvAutoencoder, not a %s", m.Type)}
	case m.Dropout != nil && !(*m.Dropout >= 0 && *m.Dropout <= 0.9):
		return s, &SpecError{Msg: fmt.Sprintf("dropout %v: want a share from 0 to 0.9", *m.Dropout)}
	case m.ScoringRule != "" && m.ScoringRule != contract.ScoringAllWindows && m.ScoringRule != contract.ScoringCausal:
		return s, &SpecError{Msg: fmt.Sprintf("scoring rule %q: want %s or %s", m.ScoringRule, contract.ScoringAllWindows, contract.ScoringCausal)}
	case m.ScoringRule != "" && !s.Sequence():
		return s, &SpecError{Msg: "a scoring rule is for sequence models (LSTMAutoencoder, or ConvAutoencoder over rows of a series)"}
	case m.StuckValues != "" && m.StuckValues != contract.StuckFlag && m.StuckValues != contract.StuckIgnore:
		return s, &SpecError{Msg: fmt.Sprintf("stuck values %q: want %s or %s", m.StuckValues, contract.StuckFlag, contract.StuckIgnore)}
	case m.StuckValues != "" && !s.Sequence():
		return s, &SpecError{Msg: "stuckValues is for sequence models (LSTMAutoencoder, or ConvAutoencoder over rows of a series)"}
	case !slices.Contains([]string{"", seasonal.None, seasonal.Auto, seasonal.Day, seasonal.Week}, m.Seasonality):
		return s, &SpecError{Msg: fmt.Sprintf("seasonality %q: want %s, %s, %s or %s", m.Seasonality, seasonal.None, seasonal.Day, seasonal.Week, seasonal.Auto)}
	case (m.Seasonality == seasonal.Day || m.Seasonality == seasonal.Week) && !s.Sequence():
		return s, &SpecError{Msg: fmt.Sprintf("seasonality %s is for sequence models (LSTMAutoencoder, or ConvAutoencoder over rows of a series)", m.Seasonality)}
	}
	if m.LatentSize != nil && m.Type != contract.MLPClassifier {
		s.Latent = int(*m.LatentSize)
	}
	if _, err := model.New(s, 0); err != nil {
		return s, &SpecError{Msg: err.Error()}
	}
	return s, nil
}

func thresholdSpec(t contract.Threshold, src contract.Source) calibrate.Spec {
	t = contract.ResolvedThreshold(t, src)
	s := calibrate.Spec{Method: string(t.Method)}
	deref := func(p *float64) float64 {
		if p == nil {
			return 0
		}
		return *p
	}
	s.Percentile, s.StdDevs, s.Value, s.Contamination = deref(t.Percentile), deref(t.StdDevs), deref(t.Value), deref(t.Contamination)
	return s
}

// feedbackScores are the labelled feedback marks a model can score, scored.
type feedbackScores struct {
	scores, labels []float32
}

// labelledFeedback scores the marks in dir (POST /v1/feedback, on the model volume)
// that carry every column with the trained network. Sequence models score runs, not
// single records: they take none. A folder that cannot be read is reported and
// skipped: feedback improves a model, its absence does not stop one.
func labelledFeedback(dir string, spec model.Spec, columns []string, f *fitted, log *slog.Logger) *feedbackScores {
	if spec.Sequence() {
		return nil
	}
	marks, bad, err := data.ReadFeedback(dir)
	if err != nil {
		log.Warn("feedback left out", "dir", dir, "error", err.Error())
		return nil
	}
	x, labels := data.FeedbackRows(marks, columns)
	if len(labels) == 0 {
		return nil
	}
	anomalies := 0
	for _, l := range labels {
		if l == 1 {
			anomalies++
		}
	}
	log.Info("labelled feedback", "marks", len(labels), "anomalies", anomalies, "dir", dir, "unreadableLinesSkipped", bad)
	scaled := f.scaler.Transform(nil, x)
	return &feedbackScores{scores: f.net.Scores(scaled, len(labels)), labels: labels}
}

// normalizationOf is the likelihood stage the request asks for, its prior measured on
// the calibration scores of each entity in time order; nil for None.
func normalizationOf(req *contract.TrainingRequest, spec model.Spec, cal *artifact.Calibration, threshold float64, runs [][]float32, gap float64) (*normalize.Config, error) {
	n := req.Normalization
	if n == nil || n.Method == "" || n.Method == contract.NormalizationNone {
		return nil, nil
	}
	if !spec.Sequence() {
		return nil, &SpecError{Msg: fmt.Sprintf("normalization %s is for sequence models (LSTMAutoencoder, or ConvAutoencoder over rows of a series), not a %s", n.Method, spec.Type)}
	}
	target := normalize.MaxTarget
	if cal != nil {
		target = cal.ExpectedAnomalyRate
	}
	c, err := normalize.New(n, target)
	if err != nil {
		return nil, &SpecError{Msg: err.Error()}
	}
	units := make([][]float64, len(runs))
	for i, run := range runs {
		units[i] = make([]float64, len(run))
		for j, v := range run {
			units[i][j] = float64(v) / threshold
		}
	}
	c.SetPriors(units)
	c.InSampleGap = gap
	return c, nil
}

// calibrationSamples bounds the calibration scores a model file keeps for drift checks.
const calibrationSamples = 512

// calibrationSummary keeps a sample of the normal calibration scores and the share of
// normal rows the threshold is meant to flag.
func calibrationSummary(th calibrate.Spec, scores, labels []float32, threshold float64) *artifact.Calibration {
	if labels != nil {
		scores = normalScores(scores, labels)
	}
	if len(scores) == 0 || threshold <= 0 {
		return nil
	}
	c := &artifact.Calibration{Scores: drift.CalibrationSample(scores, threshold, calibrationSamples)}
	switch th.Method {
	case calibrate.Percentile:
		c.ExpectedAnomalyRate = 1 - th.Percentile/100
	case calibrate.Contamination:
		c.ExpectedAnomalyRate = th.Contamination
	default:
		above := 0
		for _, s := range scores {
			if float64(s) > threshold {
				above++
			}
		}
		c.ExpectedAnomalyRate = float64(above) / float64(len(scores))
	}
	return c
}

func thresholdParameter(s calibrate.Spec) float64 {
	switch s.Method {
	case calibrate.Percentile:
		return s.Percentile
	case calibrate.MeanStd:
		return s.StdDevs
	case calibrate.Contamination:
		return s.Contamination
	}
	return 0
}
