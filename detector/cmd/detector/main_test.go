package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/backtest"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/hack/promtest"
)

func detector(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// writeCSV writes rows of three correlated columns plus a label; every 25th row is an
// anomaly that breaks the correlation.
func writeCSV(t *testing.T, path string, rows int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0))
	var b strings.Builder
	b.WriteString("id,x,y,z,label\n")
	for i := 0; i < rows; i++ {
		x := rng.NormFloat64()
		y, z, label := 2*x+rng.NormFloat64()*0.05, -x+rng.NormFloat64()*0.05, 0
		if i%25 == 0 {
			y, z, label = rng.NormFloat64()*3, rng.NormFloat64()*3, 1
		}
		fmt.Fprintf(&b, "%d,%.4f,%.4f,%.4f,%d\n", i, x, y, z, label)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTrainScoreEvaluate(t *testing.T) {
	dir := t.TempDir()
	trainCSV, testCSV := filepath.Join(dir, "train.csv"), filepath.Join(dir, "test.csv")
	writeCSV(t, trainCSV, 2000, 1)
	writeCSV(t, testCSV, 500, 2)
	termLog := filepath.Join(dir, "termination-log")
	if err := os.WriteFile(termLog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	models := filepath.Join(dir, "models")
	code, stdout, stderr := detector(t, context.Background(), "train", "--data", trainCSV, "--columns", "x,y,z",
		"--label-column", "label", "--hidden", "8", "--latent", "1", "--epochs", "15", "--batch-size", "32",
		"--learning-rate", "0.01", "--out", models, "--termination-log", termLog)
	if code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "epoch 15/15 loss") {
		t.Fatalf("no progress lines:\n%s", stderr)
	}
	var res contract.TrainingResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Version == "" || res.Threshold <= 0 {
		t.Fatalf("result line %q: %v", stdout, err)
	}
	msg, _ := os.ReadFile(termLog)
	if parsed, err := contract.ParseTrainingResult(string(msg)); err != nil || parsed.Digest != res.Digest {
		t.Fatalf("termination message %q: %v", msg, err)
	}
	if _, err := os.Stat(filepath.Join(models, res.Version, "report.png")); err != nil {
		t.Fatal(err)
	}

	scored := filepath.Join(dir, "scored.csv")
	code, _, stderr = detector(t, context.Background(), "score", "--model", models, "--input", testCSV, "--output", scored)
	if code != 0 {
		t.Fatalf("score exited %d: %s", code, stderr)
	}
	f, _ := os.Open(scored)
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != 501 || strings.Join(recs[0], ",") != "id,x,y,z,label,score,raw,is_anomaly,page" {
		t.Fatalf("scored csv: %d records, header %v, %v", len(recs), recs[0], err)
	}
	flaggedAnomalies := 0
	for _, r := range recs[1:] {
		if r[4] == "1" && r[7] == "true" {
			flaggedAnomalies++
		}
	}
	if flaggedAnomalies < 18 { // of 20
		t.Fatalf("only %d of 20 anomalies flagged", flaggedAnomalies)
	}

	code, stdout, stderr = detector(t, context.Background(), "evaluate", "--model", filepath.Join(models, res.Version, "model.kadet"),
		"--input", testCSV, "--label-column", "label")
	if code != 0 {
		t.Fatalf("evaluate exited %d: %s", code, stderr)
	}
	var metrics map[string]any
	if err := json.Unmarshal([]byte(stdout), &metrics); err != nil {
		t.Fatal(err)
	}
	if metrics["auroc"].(float64) < 0.95 || metrics["rows"].(float64) != 500 || metrics["anomalies"].(float64) != 20 {
		t.Fatalf("metrics %v", metrics)
	}
}

func TestBadInputExitsWithItsPlace(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("a,b\n1,2\n3,x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	termLog := filepath.Join(dir, "termination-log")
	_ = os.WriteFile(termLog, nil, 0o644)
	spec := filepath.Join(dir, "spec.json")
	_ = os.WriteFile(spec, []byte(`{"apiVersion":"v1","kind":"Pod"}`), 0o644)
	good := filepath.Join(dir, "good.csv")
	writeCSV(t, good, 200, 3)
	models := filepath.Join(dir, "models")
	if code, _, stderr := detector(t, context.Background(), "train", "--data", good, "--epochs", "1", "--out", models); code != 0 {
		t.Fatal(stderr)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"non-numeric cell", []string{"train", "--data", bad, "--out", filepath.Join(dir, "m"), "--termination-log", termLog},
			contract.ExitInvalidInput, `bad.csv line 3, column "b": "x" is not a number`},
		{"not a training request", []string{"train", "--spec", spec, "--out", dir}, contract.ExitInvalidInput, `has apiVersion "v1" kind "Pod"`},
		{"no output", []string{"train", "--data", good}, contract.ExitInvalidInput, "--out is required"},
		{"unknown flag", []string{"score", "--modell", "x"}, contract.ExitInvalidInput, "flag provided but not defined: -modell"},
		{"model lacks input column", []string{"score", "--model", models, "--input", bad}, contract.ExitInvalidInput,
			`column "id", which the model was trained on, is not in the header`},
		{"corrupt model", []string{"score", "--model", bad, "--input", good}, contract.ExitInvalidInput, "not a kadet model file"},
		{"unknown command", []string{"fit"}, contract.ExitInvalidInput, `unknown command "fit"`},
		{"window for a row model", []string{"train", "--data", good, "--window", "8", "--out", dir}, contract.ExitInvalidInput,
			"--window and --stride are for models LSTMAutoencoder and ConvAutoencoder, not Autoencoder"},
		{"channels for an LSTM", []string{"train", "--data", good, "--model", "LSTMAutoencoder", "--channels", "8", "--out", dir}, contract.ExitInvalidInput,
			"--channels, --kernel-size, --resampling and --dropout are for model ConvAutoencoder, not LSTMAutoencoder"},
		{"even conv kernel", []string{"train", "--data", good, "--model", "ConvAutoencoder", "--kernel-size", "4", "--out", dir}, contract.ExitInvalidInput,
			"--kernel-size 4: give an odd number of rows"},
		{"negative stride", []string{"train", "--data", good, "--model", "LSTMAutoencoder", "--stride", "-1", "--out", dir}, contract.ExitInvalidInput,
			"give positive numbers of rows"},
		{"query without a name", []string{"train", "--prometheus-url", "http://127.0.0.1:9", "--query", "up", "--out", dir}, contract.ExitInvalidInput,
			`"up": want NAME=PROMQL`},
		{"prometheus without a query", []string{"train", "--prometheus-url", "http://127.0.0.1:9", "--out", dir}, contract.ExitInvalidInput,
			"--prometheus-url needs at least one --query NAME=PROMQL"},
		{"csv and prometheus", []string{"train", "--data", good, "--prometheus-url", "http://127.0.0.1:9", "--query", "a=up", "--out", dir},
			contract.ExitInvalidInput, "give --data or --prometheus-url, not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := detector(t, context.Background(), tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}
	msg, _ := os.ReadFile(termLog)
	if res, err := contract.ParseTrainingResult(string(msg)); err != nil || !strings.Contains(res.Error, "line 3") {
		t.Fatalf("termination message %q: %v", msg, err)
	}
	// The termination message becomes the Detector's status: a URL's credentials are
	// not in it, where the server is.
	code, _, _ := detector(t, context.Background(), "train", "--prometheus-url", "http://alice:hunter2@127.0.0.1:9/prom?token=t0k3n",
		"--query", "a=up", "--out", filepath.Join(dir, "p"), "--termination-log", termLog)
	msg, _ = os.ReadFile(termLog)
	res, err := contract.ParseTrainingResult(string(msg))
	if code == 0 || err != nil || !strings.Contains(res.Error, "http://redacted@127.0.0.1:9/prom?token=redacted") ||
		strings.Contains(res.Error, "hunter2") || strings.Contains(res.Error, "t0k3n") {
		t.Fatalf("exit %d, termination message %q: %v", code, msg, err)
	}
}

// Sequence models train from plain flags too, with their window, stride and (conv)
// blocks given.
func TestTrainSequenceModelsFromFlags(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	writeCSV(t, good, 300, 4)
	for _, tt := range []struct {
		model    string
		extra    []string
		channels []int
		kernel   int
	}{
		{"LSTMAutoencoder", nil, nil, 0},
		{"ConvAutoencoder", []string{"--channels", "4,8", "--kernel-size", "5"}, []int{4, 8}, 5},
	} {
		t.Run(tt.model, func(t *testing.T) {
			models := filepath.Join(dir, tt.model)
			args := append([]string{"train", "--data", good, "--model", tt.model, "--timestamp-column", "id", "--columns", "x,y,z",
				"--window", "8", "--stride", "2", "--epochs", "1", "--out", models}, tt.extra...)
			code, stdout, stderr := detector(t, context.Background(), args...)
			if code != 0 {
				t.Fatalf("train exited %d: %s", code, stderr)
			}
			var res contract.TrainingResult
			if err := json.Unmarshal([]byte(stdout), &res); err != nil {
				t.Fatal(err)
			}
			m, err := artifact.Load(filepath.Join(models, res.Version, artifact.FileName))
			if err != nil {
				t.Fatal(err)
			}
			s := m.Meta.Model
			if s.Type != tt.model || s.Window != 8 || m.Meta.Stride != 2 || !slices.Equal(s.Channels, tt.channels) || s.Kernel != tt.kernel {
				t.Fatalf("model %+v stride %d; want a %s with window 8, stride 2, channels %v, kernel %d", s, m.Meta.Stride, tt.model, tt.channels, tt.kernel)
			}
		})
	}
}

// TestMain lets a test run this binary's main as a process of its own (the test binary
// re-executed with runAsDetector set), so signals reach the real wiring in main.
// detector train reads Prometheus itself, so a model can be tried on one's metrics
// before any YAML: here a real server's history of two pods, split by entity.
func TestTrainFromPrometheus(t *testing.T) {
	end := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	var history []promtest.Series
	for p, pod := range []string{"a", "b"} {
		v := make([]float64, 300)
		for i := range v {
			v[i] = 10 + float64((i+p)%17)
		}
		if pod == "b" { // an incident in the newest fifth, which training holds out
			v[280], v[281], v[282] = 200, 210, 200
		}
		history = append(history, promtest.Series{Metric: "queue_depth", Labels: map[string]string{"pod": pod},
			Start: end.Add(-299 * time.Minute), Step: time.Minute, Values: v})
	}
	srv := promtest.Start(t, promtest.Options{History: history})
	dir := t.TempDir()
	code, stdout, stderr := detector(t, context.Background(), "train", "--prometheus-url", srv.URL, "--query", "depth=queue_depth",
		"--range", "5h", "--step", "1m", "--end", end.Format(time.RFC3339), "--entity-labels", "pod",
		"--model", "LSTMAutoencoder", "--window", "8", "--epochs", "2", "--out", dir)
	if code != contract.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res contract.TrainingResult
	if err := json.Unmarshal([]byte(lastLine(stdout)), &res); err != nil {
		t.Fatalf("result %q: %v", stdout, err)
	}
	// The newest fifth of the 5h range (from 23:00: 61 rows a pod) is held out of
	// training and backtested on; the incident is its one episode.
	cut := end.Add(-time.Hour)
	if res.Data == nil || res.Data.Rows != 478 || !res.Data.End.Equal(cut.Add(-time.Minute)) {
		t.Errorf("trained on %+v; want 478 rows (two pods of 239) ending at %s", res.Data, cut.Add(-time.Minute))
	}
	bt := res.Backtest
	if bt == nil || bt.Rows != 122 || bt.Entities != 2 || bt.Skipped != "" || !bt.Start.Equal(cut) || !bt.End.Equal(end) {
		t.Fatalf("backtest %+v; want 122 rows of 2 entities from %s to %s", bt, cut, end)
	}
	if bt.Episodes != 1 || len(bt.Largest) != 1 || bt.Largest[0].Entity != `pod="b"` ||
		bt.Largest[0].Start.Before(end.Add(-20*time.Minute)) || bt.Largest[0].Start.After(end.Add(-17*time.Minute)) {
		t.Errorf("backtest episodes %+v; want one, of pod b, starting at %s", bt.Largest, end.Add(-19*time.Minute))
	}
	// The version keeps the report its page plots: pod b (the episode) first, each
	// held-out row with the values the model expected and the band around them.
	b, err := os.ReadFile(filepath.Join(dir, res.Version, backtest.FileName))
	if err != nil {
		t.Fatalf("the version's backtest file: %v", err)
	}
	var report backtest.Report
	if err := json.Unmarshal(b, &report); err != nil {
		t.Fatal(err)
	}
	if len(report.Series) != 2 || report.Series[0].Entity != `pod="b"` || report.Series[1].Entity != `pod="a"` {
		t.Fatalf("report series %+v; want pod b then pod a", report.Series)
	}
	for _, sr := range report.Series {
		if len(sr.At) != 61 || len(sr.Values) != 61 || len(sr.Expected) != 61 || len(sr.Score) != 61 || len(sr.Band) != 1 || !(sr.Band[0] > 0) {
			t.Errorf("series %s: %d times, %d values, %d expected, %d scores, band %v; want 61 of each and a band", sr.Entity,
				len(sr.At), len(sr.Values), len(sr.Expected), len(sr.Score), sr.Band)
		}
	}
	// The model expects pod b's ordinary values, not the incident's (200 at 23:41).
	if b := report.Series[0]; len(b.At) == 61 && (b.Values[41] != 200 || !(b.Expected[41] < 100)) {
		t.Errorf("pod b at %s: value %v, expected %v; want 200 and an ordinary value", time.Unix(b.At[41], 0).UTC(), b.Values[41], b.Expected[41])
	}
	// --backtest off trains on every row.
	code, stdout, stderr = detector(t, context.Background(), "train", "--prometheus-url", srv.URL, "--query", "depth=queue_depth",
		"--range", "5h", "--step", "1m", "--end", end.Format(time.RFC3339), "--entity-labels", "pod", "--backtest", "off",
		"--model", "LSTMAutoencoder", "--window", "8", "--epochs", "1", "--out", t.TempDir())
	res = contract.TrainingResult{}
	if err := json.Unmarshal([]byte(lastLine(stdout)), &res); code != contract.ExitOK || err != nil {
		t.Fatalf("exit %d: %v %s", code, err, stderr)
	}
	if res.Data.Rows != 600 || res.Backtest != nil {
		t.Errorf("--backtest off: trained on %d rows, backtest %+v; want 600 rows and none", res.Data.Rows, res.Backtest)
	}
	// Ten windows of 64 rows need 640 rows; two pods of 300 have 600: not yet.
	termLog := filepath.Join(dir, "termination-log")
	if err := os.WriteFile(termLog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = detector(t, context.Background(), "train", "--prometheus-url", srv.URL, "--query", "depth=queue_depth",
		"--range", "5h", "--step", "1m", "--end", end.Format(time.RFC3339), "--entity-labels", "pod",
		"--model", "LSTMAutoencoder", "--window", "64", "--out", dir, "--termination-log", termLog)
	term, _ := os.ReadFile(termLog)
	var failed contract.TrainingResult
	_ = json.Unmarshal(term, &failed)
	if code != contract.ExitInsufficientData || failed.InsufficientData == nil ||
		!strings.Contains(stderr, "not enough data to train yet: 600 of 640 rows; enough in about 20m at step 1m") {
		t.Errorf("exit %d, result %s: %s", code, term, stderr)
	}
	// Without entity labels two series are refused, naming them.
	code, _, stderr = detector(t, context.Background(), "train", "--prometheus-url", srv.URL, "--query", "depth=queue_depth",
		"--range", "5h", "--end", end.Format(time.RFC3339), "--out", dir)
	if code != contract.ExitInvalidInput || !strings.Contains(stderr, `returned 2 series (queue_depth{pod="a"}, queue_depth{pod="b"})`) {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestMain(m *testing.M) {
	if os.Getenv(runAsDetector) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

const runAsDetector = "KADET_TEST_RUN_DETECTOR"

func TestCanceledTrainingExitsWithoutAModel(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	writeCSV(t, good, 500, 4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the signal arrived before the first batch
	models := filepath.Join(dir, "models")
	code, _, stderr := detector(t, ctx, "train", "--data", good, "--epochs", "100", "--out", models)
	if code != contract.ExitCanceled || !strings.Contains(stderr, "training canceled at epoch 1") || !strings.Contains(stderr, "no model was written") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if vs, _ := artifact.Versions(models); len(vs) != 0 {
		t.Fatalf("versions written: %v", vs)
	}
}

// A SIGTERM sent to a training process (what the kubelet sends a pod being deleted)
// stops it between batches: exit code 143, nothing written.
func TestSIGTERMStopsTrainingCleanly(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	writeCSV(t, good, 2000, 4)
	models := filepath.Join(dir, "models")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "train", "--data", good, "--epochs", "100000", "--out", models)
	cmd.Env = append(os.Environ(), runAsDetector+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until it trains (progress goes to stderr): the signal must arrive
	// mid-training, not before.
	var log strings.Builder
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		if strings.HasPrefix(lines.Text(), "epoch 2/") {
			break
		}
	}
	if !strings.Contains(log.String(), "epoch 2/") {
		t.Fatalf("training never reached epoch 2: %s", log.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		log.WriteString(lines.Text() + "\n")
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != contract.ExitCanceled {
		t.Fatalf("exit: %v; want code %d; stderr: %s", err, contract.ExitCanceled, log.String())
	}
	if !strings.Contains(log.String(), "no model was written") {
		t.Errorf("stderr: %s", log.String())
	}
	if vs, _ := artifact.Versions(models); len(vs) != 0 {
		t.Fatalf("versions written: %v", vs)
	}
}

// A CSV of several entities' series (a pod column, rows interleaved as an export
// gives them) trains one model over all with --entity-column, and scores with it:
// each entity's rows are a series of its own. An entity column with Prometheus is a
// usage error.
func TestTrainAndScoreEntitiesOfACSV(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "pods.csv")
	var b strings.Builder
	b.WriteString("ts,pod,latency\n")
	for i := range 300 {
		for p, scale := range []float64{0.01, 1} { // 10 ms and a second
			fmt.Fprintf(&b, "%d,pod-%d,%g\n", 1_700_000_000+60*i, p, scale*(1+0.3*math.Sin(float64(i)/5)))
		}
	}
	if err := os.WriteFile(data, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	models := filepath.Join(dir, "models")
	code, stdout, stderr := detector(t, context.Background(), "train", "--data", data, "--model", "ConvAutoencoder",
		"--timestamp-column", "ts", "--entity-column", "pod", "--normalization", "Likelihood", "--window", "8", "--epochs", "2", "--out", models)
	if code != contract.ExitOK {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, `"normalization":"Likelihood"`) {
		t.Errorf("train: no likelihood stage in %s", stdout)
	}
	scored := filepath.Join(dir, "scored.csv")
	code, _, stderr = detector(t, context.Background(), "score", "--model", models, "--input", data, "--entity-column", "pod", "--output", scored)
	if code != contract.ExitOK || !strings.Contains(stderr, "scored 600 rows") {
		t.Fatalf("score: exit %d: %s", code, stderr)
	}
	code, _, stderr = detector(t, context.Background(), "train", "--prometheus-url", "http://127.0.0.1:1", "--query", "x=up", "--entity-column", "pod", "--out", dir)
	if code != contract.ExitInvalidInput || !strings.Contains(stderr, "--entity-column are for --data") {
		t.Errorf("--entity-column with Prometheus: exit %d: %s", code, stderr)
	}
}

// A backtest over two entities' history, one anomaly injected into one entity at a
// known time: the episode it reports names that entity and time, the other entity has
// none, and the rows it writes are the rows detector score writes.
func TestBacktestNamesTheInjectedEpisode(t *testing.T) {
	dir := t.TempDir()
	trainCSV := filepath.Join(dir, "train.csv")
	writeCSV(t, trainCSV, 2000, 1)
	models := filepath.Join(dir, "models")
	if code, _, stderr := detector(t, context.Background(), "train", "--data", trainCSV, "--columns", "x,y,z", "--epochs", "30", "--out", models); code != 0 {
		t.Fatal(stderr)
	}
	history := filepath.Join(dir, "history.csv")
	rng := rand.New(rand.NewPCG(7, 0))
	var b strings.Builder
	b.WriteString("ts,pod,x,y,z\n")
	const start, injected = 1_764_547_200, 1_764_547_200 + 60*150 // 2025-12-01T00:00:00Z, then 150 minutes
	for i := range 300 {
		for _, pod := range []string{"api-1", "api-2"} {
			x := rng.NormFloat64()
			y, z := 2*x+rng.NormFloat64()*0.05, -x+rng.NormFloat64()*0.05
			ts := start + 60*i
			if pod == "api-2" && (ts == injected || ts == injected+60) {
				y, z = 8, 8 // the correlation breaks for two minutes
			}
			fmt.Fprintf(&b, "%d,%s,%.4f,%.4f,%.4f\n", ts, pod, x, y, z)
		}
	}
	if err := os.WriteFile(history, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := detector(t, context.Background(), "backtest", "--model", models, "--input", history,
		"--entity-column", "pod", "--timestamp-column", "ts")
	if code != 0 {
		t.Fatalf("backtest: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "600 rows, 2 entities, 2025-12-01T00:00:00Z to 2025-12-01T04:59:00Z (0.2 days)") {
		t.Errorf("backtest output lacks the rows and range:\n%s", stdout)
	}
	// The largest episode, listed first, is the injected one: its entity, start, end
	// and rows.
	_, table, _ := strings.Cut(stdout, "PEAK AT\n")
	if first, _, _ := strings.Cut(table, "\n"); !strings.HasPrefix(strings.Join(strings.Fields(first), " "), "api-2 2025-12-01T02:30:00Z 2025-12-01T02:31:00Z 2 ") {
		t.Errorf("the largest episode is %q; want api-2's at 02:30-02:31, 2 rows:\n%s", first, stdout)
	}
	scored := filepath.Join(dir, "scored.csv")
	if code, withRows, stderr := detector(t, context.Background(), "backtest", "--model", models, "--input", history,
		"--entity-column", "pod", "--timestamp-column", "ts", "--output", scored); code != 0 || withRows != stdout {
		t.Fatalf("backtest --output: exit %d, %s; the summary differs:\n%s", code, stderr, withRows)
	}
	again := filepath.Join(dir, "again.csv")
	if code, _, stderr := detector(t, context.Background(), "score", "--model", models, "--input", history, "--entity-column", "pod", "--output", again); code != 0 {
		t.Fatal(stderr)
	}
	a, _ := os.ReadFile(scored)
	b2, _ := os.ReadFile(again)
	if len(a) == 0 || string(a) != string(b2) {
		t.Error("the backtest's rows differ from detector score's")
	}
	// A time that is not a time is refused with its line.
	if err := os.WriteFile(history, []byte("ts,pod,x,y,z\n1764547200,a,1,2,-1\nyesterday,a,1,2,-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = detector(t, context.Background(), "backtest", "--model", models, "--input", history, "--timestamp-column", "ts")
	if code != contract.ExitInvalidInput || !strings.Contains(stderr, `history.csv line 3, column "ts": "yesterday" is not a time`) {
		t.Errorf("a bad time: exit %d: %s", code, stderr)
	}
}

// A backtest straight from a real Prometheus, as a watching pod scores it: two pods'
// history, a burst on one of them at a known time; the largest episode names it, and
// the rows written carry their time and entity.
func TestBacktestFromPrometheus(t *testing.T) {
	end := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	start := end.Add(-299 * time.Minute)
	var history []promtest.Series
	for p, pod := range []string{"a", "b"} {
		v := make([]float64, 300)
		for i := range v {
			v[i] = 10 + 3*math.Sin(float64(i+p)/5)
			if pod == "b" && i >= 200 && i < 203 {
				v[i] += 40
			}
		}
		history = append(history, promtest.Series{Metric: "queue_depth", Labels: map[string]string{"pod": pod},
			Start: start, Step: time.Minute, Values: v})
	}
	srv := promtest.Start(t, promtest.Options{History: history})
	dir := t.TempDir()
	prom := []string{"--prometheus-url", srv.URL, "--query", "depth=queue_depth", "--step", "1m", "--entity-labels", "pod"}
	models := filepath.Join(dir, "models")
	// The model trains on the first three hours, before the burst.
	if code, _, stderr := detector(t, context.Background(), append([]string{"train", "--range", "3h", "--end", start.Add(180 * time.Minute).Format(time.RFC3339),
		"--model", "ConvAutoencoder", "--window", "8", "--epochs", "20", "--out", models}, prom...)...); code != 0 {
		t.Fatalf("train: %s", stderr)
	}
	rowsCSV := filepath.Join(dir, "rows.csv")
	code, stdout, stderr := detector(t, context.Background(), append([]string{"backtest", "--model", models, "--range", "5h",
		"--end", end.Format(time.RFC3339), "--output", rowsCSV}, prom...)...)
	if code != 0 {
		t.Fatalf("backtest: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "600 rows, 2 entities, 2026-11-19T19:01:00Z to 2026-11-20T00:00:00Z") {
		t.Errorf("rows and range:\n%s", stdout)
	}
	_, table, _ := strings.Cut(stdout, "PEAK AT\n")
	first, _, _ := strings.Cut(table, "\n")
	if f := strings.Fields(first); len(f) < 3 || f[0] != `pod="b"` || f[1] < "2026-11-19T22:21:00Z" || f[1] > "2026-11-19T22:24:00Z" {
		t.Errorf("the largest episode is %q; want pod b's from 22:21 (the burst's first row):\n%s", first, stdout)
	}
	raw, err := os.ReadFile(rowsCSV)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if lines[0] != "timestamp,entity,depth,score,raw,is_anomaly" || len(lines) != 601 || !strings.HasPrefix(lines[1], "2026-11-19T19:01:00Z,") {
		t.Errorf("rows file: %d lines, %q, %q", len(lines), lines[0], lines[1])
	}
	if code, _, stderr := detector(t, context.Background(), "backtest", "--model", models, "--input", rowsCSV, "--prometheus-url", srv.URL, "--query", "depth=x"); code != contract.ExitInvalidInput ||
		!strings.Contains(stderr, "--input CSV or --prometheus-url") {
		t.Errorf("both sources: exit %d: %s", code, stderr)
	}

	// As a backtest Job runs it: a Detector's request (its query named otherwise: the
	// model's own queries are read), the served version, the newest 2 hours, warmed up
	// on the rows before them; the figures go to the termination log, the report
	// beside the model.
	version, err := artifact.Versions(models)
	if err != nil || len(version) != 1 {
		t.Fatalf("versions %v, %v", version, err)
	}
	spec := filepath.Join(dir, "request.json")
	req := contract.TrainingRequest{APIVersion: contract.APIVersion, Kind: contract.Kind, Detector: contract.ObjectKey{Namespace: "ns", Name: "q"},
		Training: contract.TrainingParameters{Epochs: 1, BatchSize: 8, LearningRate: 0.001},
		Data: contract.ResolvedData{Prometheus: &contract.ResolvedPrometheus{URL: srv.URL, Step: "1m", Range: "24h",
			Queries: []contract.PrometheusQuery{{Name: "renamed", Query: "up"}}}}}
	b, _ := json.Marshal(req)
	termLog := filepath.Join(dir, "termination-log")
	for _, f := range []string{spec, termLog} {
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr = detector(t, context.Background(), "backtest", "--spec", spec, "--model", filepath.Join(models, version[0]),
		"--range", "2h", "--end", end.Format(time.RFC3339), "--termination-log", termLog)
	if code != 0 {
		t.Fatalf("backtest --spec: exit %d: %s", code, stderr)
	}
	term, _ := os.ReadFile(termLog)
	res, err := contract.ParseTrainingResult(string(term))
	if err != nil || res.Version != version[0] || res.Backtest == nil {
		t.Fatalf("termination message %s: %v", term, err)
	}
	bt := res.Backtest
	if bt.Rows != 2*121 || bt.Entities != 2 || !bt.Start.Equal(end.Add(-2*time.Hour)) || len(bt.Largest) == 0 || bt.Largest[0].Entity != `pod="b"` ||
		bt.Largest[0].Start.Before(start.Add(200*time.Minute)) || bt.Largest[0].Start.After(start.Add(203*time.Minute)) {
		t.Errorf("backtest %+v; want 242 rows of 2 entities from %s, pod b's burst at %s first", bt, end.Add(-2*time.Hour), start.Add(200*time.Minute))
	}
	// The command line's backtest of the same range warms up the same way: the same rows,
	// anomalous rows and episodes.
	code, stdout, stderr = detector(t, context.Background(), append([]string{"backtest", "--model", models, "--range", "2h",
		"--end", end.Format(time.RFC3339)}, prom...)...)
	want := fmt.Sprintf("242 rows, 2 entities, 2026-11-19T22:00:00Z to 2026-11-20T00:00:00Z (0.1 days)\nanomalous rows: %d (", bt.AnomalousRows)
	if code != 0 || !strings.Contains(stdout, want) || !strings.Contains(stdout, fmt.Sprintf("episodes: %d (", bt.Episodes)) {
		t.Errorf("backtest --range 2h: exit %d, want %q and %d episodes:\n%s%s", code, want, bt.Episodes, stdout, stderr)
	}
	// A range that starts two minutes after the burst: the windows of its first rows
	// still hold the burst, read as warm-up with the rows before it, so every row
	// scores as in the 5-hour backtest, as a pod watching since before would score it.
	lateCSV := filepath.Join(dir, "late.csv")
	code, stdout, stderr = detector(t, context.Background(), append([]string{"backtest", "--model", models, "--range", "95m",
		"--end", end.Format(time.RFC3339), "--output", lateCSV}, prom...)...)
	if code != 0 {
		t.Fatalf("backtest --range 95m: exit %d: %s%s", code, stdout, stderr)
	}
	late, err := os.ReadFile(lateCSV)
	if err != nil {
		t.Fatal(err)
	}
	key := func(l string) string { return strings.Join(strings.SplitN(l, ",", 3)[:2], ",") } // time and entity
	whole := map[string]string{}
	for _, l := range lines[1:] {
		whole[key(l)] = l
	}
	lateLines := strings.Split(strings.TrimSpace(string(late)), "\n")
	if len(lateLines) != 1+2*96 || !strings.HasPrefix(lateLines[1], "2026-11-19T22:25:00Z,") {
		t.Fatalf("backtest --range 95m wrote %d lines from %q; want 192 rows from 22:25", len(lateLines), lateLines[min(1, len(lateLines)-1)])
	}
	for _, l := range lateLines[1:] {
		if whole[key(l)] != l {
			t.Errorf("backtest --range 95m scored %q; the 5-hour backtest %q", l, whole[key(l)])
		}
	}
	kept, err := os.ReadFile(filepath.Join(models, version[0], backtest.FileName))
	var report backtest.Report
	if err != nil || json.Unmarshal(kept, &report) != nil || report.Start != end.Add(-2*time.Hour).Unix() || len(report.Series) != 2 {
		t.Errorf("the report beside the model: %v, start %d, %d series", err, report.Start, len(report.Series))
	}
	// A request without Prometheus fails with its reason in the termination log.
	req.Data = contract.ResolvedData{CSV: &contract.ResolvedCSV{File: contract.FileLocation{Path: "x.csv"}, Delimiter: ","}}
	b, _ = json.Marshal(req)
	if err := os.WriteFile(spec, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, _ = detector(t, context.Background(), "backtest", "--spec", spec, "--model", models, "--range", "2h", "--termination-log", termLog)
	term, _ = os.ReadFile(termLog)
	if code != contract.ExitInvalidInput || !strings.Contains(string(term), "a backtest Job reads a Prometheus source; this request has none") {
		t.Errorf("a csv request: exit %d, %s", code, term)
	}
}

// A termination message over the kubelet's limit loses backtest episodes, smallest
// first, before it loses the metrics.
func TestTerminationMessageFits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "termination-log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bt := &contract.BacktestResult{Rows: 1000, Episodes: 10}
	for i := range 10 {
		bt.Largest = append(bt.Largest, contract.BacktestEpisode{Entity: fmt.Sprintf("pod=%q", strings.Repeat("x", 400)+strconv.Itoa(i)), Peak: float64(10 - i)})
	}
	res := contract.TrainingResult{Version: "v1", Digest: "sha256:0", Metrics: map[string]float64{"loss": 0.5}, Backtest: bt}
	writeTermination(path, res, io.Discard)
	b, _ := os.ReadFile(path)
	var got contract.TrainingResult
	if err := json.Unmarshal(b, &got); err != nil || len(b) > contract.TerminationMessageLimit {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	n := len(got.Backtest.Largest)
	if n == 0 || n == 10 || got.Backtest.Largest[0].Peak != 10 || got.Metrics["loss"] != 0.5 || got.Backtest.Episodes != 10 {
		t.Errorf("kept %d episodes (first peak %v), metrics %v; want the largest few and the metrics", n, got.Backtest.Largest[0].Peak, got.Metrics)
	}
	if len(bt.Largest) != 10 {
		t.Errorf("the caller's result lost episodes: %d", len(bt.Largest))
	}
}
