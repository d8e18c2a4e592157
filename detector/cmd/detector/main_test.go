package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
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
	if err != nil || len(recs) != 501 || strings.Join(recs[0], ",") != "id,x,y,z,label,score,raw,is_anomaly" {
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
	if rows := res.Metrics["trainRows"] + res.Metrics["validationRows"]; rows != 600 {
		t.Errorf("trained on %v rows; want 600 (two pods of 300)", rows)
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
