package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/evaluate"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/preprocess"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/detector/train"
)

// The published Conv-AE (SKAB repository, core/Conv_AE.py and notebooks/Conv_AE.ipynb),
// rebuilt from kadet's engine packages with its quirks: windows of 60 rows, stride-2
// convolutions of 32 and 16 channels (kernel 7, ReLU) with dropout 0.2 after the first,
// the mirrored stride-2 transposed convolutions with dropout after the first, and a
// last convolution to a single channel that the loss compares with every feature; MSE,
// Adam 1e-3, batches of 32, up to 100 epochs, early stopping with patience 5 on the
// last 10% of the training windows (Keras's validation_split takes the tail, unshuffled).
// Its decision rule: a window's residual is the sum over features of its mean absolute
// error; the limit is 4/3 of the 0.999 quantile of the training windows' residuals; row
// i is an anomaly when windows i-59 to i-1 (those holding it but the one starting at
// it) are all above the limit, for i from 59 to the number of windows minus 60.
const publishedWindow = 60

var publishedSpec = model.Spec{Type: model.ConvAutoencoder, Window: publishedWindow, Channels: []int{32, 16}, Kernel: 7,
	Resampling: model.Strided, Dropout: 0.2, OutputChannels: 1, Activation: model.ReLU}

func runPublished(dir string, seed int64) (float64, error) {
	start := time.Now()
	fmt.Println("published Conv-AE rebuilt (window 60, strided, dropout 0.2, one output channel), the notebook's rule")
	fmt.Printf("%-8s %6s %8s %6s %6s %6s\n", "folder", "files", "rows", "F1", "FAR", "MAR")
	var all evaluate.Counts
	for _, folder := range []string{"valve1", "valve2", "other"} {
		files, _ := filepath.Glob(filepath.Join(dir, folder, "*.csv"))
		slices.Sort(files)
		var m evaluate.Counts
		rows := 0
		for i, f := range files {
			c, n, err := publishedFile(f, seed+int64(i))
			if err != nil {
				return 0, fmt.Errorf("%s: %w", f, err)
			}
			m.TP, m.FP, m.TN, m.FN = m.TP+c.TP, m.FP+c.FP, m.TN+c.TN, m.FN+c.FN
			rows += n
		}
		all.TP, all.FP, all.TN, all.FN = all.TP+m.TP, all.FP+m.FP, all.TN+m.TN, all.FN+m.FN
		f1, far, mar := rates(m)
		fmt.Printf("%-8s %6d %8d %6.3f %6.3f %6.3f\n", folder, len(files), rows, f1, far, mar)
	}
	f1, far, mar := rates(all)
	fmt.Printf("%-8s %6s %8s %6.3f %6.3f %6.3f\n", "all", "", "", f1, far, mar)
	fmt.Printf("run time %s\n\n", time.Since(start).Round(time.Second))
	return f1, nil
}

// publishedFile trains the published model on a file's first rows and labels the rest
// with the notebook's rule; it returns the counts over the rows after the training
// prefix, as the notebook evaluates.
func publishedFile(path string, seed int64) (evaluate.Counts, int, error) {
	tbl, err := data.LoadCSV(context.Background(), contract.FileLocation{Path: path}, data.CSVOptions{
		Columns: sensors, TimestampColumn: "datetime", LabelColumn: "anomaly", Delimiter: ';'}, data.DefaultLimits)
	if err != nil {
		return evaluate.Counts{}, 0, err
	}
	f, w := len(sensors), publishedWindow
	if tbl.Rows() < trainRows+2*w {
		return evaluate.Counts{}, 0, fmt.Errorf("%d rows; the protocol needs more than %d", tbl.Rows(), trainRows+2*w)
	}
	trainX, testX := tbl.X[:trainRows*f], tbl.X[trainRows*f:]
	sc, err := preprocess.Fit(preprocess.Standardize, trainX, f)
	if err != nil {
		return evaluate.Counts{}, 0, err
	}
	trainX, testX = sc.Transform(nil, trainX), sc.Transform(nil, testX)
	spec := publishedSpec
	spec.Inputs = w * f
	net, err := model.New(spec, seed)
	if err != nil {
		return evaluate.Counts{}, 0, err
	}
	windows := scoring.Windows(trainX, f, w, scoring.WindowStarts(trainRows, w, 1))
	n := trainRows - w + 1
	val := n / 10
	var split train.Split
	for i := range n {
		if i < n-val {
			split.Train = append(split.Train, i)
		} else {
			split.Validation = append(split.Validation, i)
		}
	}
	cfg := train.Config{Epochs: 100, BatchSize: 32, LearningRate: 1e-3, Seed: seed, Patience: 5}
	if _, err := train.Fit(context.Background(), net, windows, nil, split, cfg, nil); err != nil {
		return evaluate.Counts{}, 0, err
	}
	residuals := func(x []float32, rows int) []float64 {
		starts := scoring.WindowStarts(rows, w, 1)
		win := scoring.Windows(x, f, w, starts)
		out := net.Forward(win, len(starts))
		res := make([]float64, len(starts))
		for k := range starts {
			for j := range f {
				var sum float64
				for t := range w {
					i := (k*w+t)*f + j
					sum += abs(float64(win[i] - out[i]))
				}
				res[k] += sum / float64(w)
			}
		}
		return res
	}
	limit := residuals(trainX, trainRows)
	slices.Sort(limit)
	ucl := preprocess.Quantile(limit, 0.999) * 4 / 3
	test := residuals(testX, tbl.Rows()-trainRows)
	pred := make([]float32, tbl.Rows()-trainRows)
	for i := w - 1; i < len(test)-w+1; i++ {
		all := true
		for _, r := range test[i-w+1 : i] {
			all = all && r > ucl
		}
		if all {
			pred[i] = 1
		}
	}
	return evaluate.AtThreshold(pred, tbl.Labels[trainRows:], 0.5).Counts, len(pred), nil
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
