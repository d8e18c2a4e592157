// Command detector trains, scores and evaluates kadet anomaly detectors. Training Jobs
// and scoring Deployments both run it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/pipeline"
)

const usage = `usage: detector <command> [flags]

commands:
  train     train a model: --spec FILE (a TrainingRequest) or --data CSV --model TYPE, and --out DIR
  score     score a CSV: --model PATH --input CSV [--output CSV]
  evaluate  print detection metrics as JSON: --model PATH --input CSV --label-column NAME
  backtest  what a model would have flagged on a stretch of history, and its episodes: --model PATH
            --input CSV, or --prometheus-url URL --query NAME=PROMQL [--range 7d --step 1m --entity-labels L]
  serve     serve a model over HTTP: --model-dir DIR [--model-version V] [--addr HOST:PORT]
  prune     remove model versions: --model-dir DIR --versions V1,V2

Run 'detector <command> -h' for the flags of a command.
`

// kernelChoice says which BLAS kernels kadet chose for this process, and why ("" when
// there was nothing to choose).
var kernelChoice string

func main() {
	// First: choosing kernels may start the process again.
	kernelChoice = model.ChooseKernels()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return contract.ExitOK
	}
	var err error
	switch args[0] {
	case "train":
		err = cmdTrain(ctx, args[1:], stdout, stderr)
	case "score":
		err = cmdScore(args[1:], stdout, stderr)
	case "evaluate":
		err = cmdEvaluate(args[1:], stdout)
	case "backtest":
		err = cmdBacktest(ctx, args[1:], stdout, stderr)
	case "serve":
		err = cmdServe(ctx, args[1:], stderr)
	case "prune":
		err = cmdPrune(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "detector: unknown command %q\n\n%s", args[0], usage)
		return contract.ExitInvalidInput
	}
	return exitCode(stderr, args[0], err)
}

// usageError is a bad command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// canceledError is a command stopped by a signal.
type canceledError struct{ err error }

func (e canceledError) Error() string { return e.err.Error() }
func (e canceledError) Unwrap() error { return e.err }

func exitCode(stderr io.Writer, cmd string, err error) int {
	if err == nil {
		return contract.ExitOK
	}
	fmt.Fprintf(stderr, "detector %s: %v\n", cmd, err)
	var ue usageError
	var ce canceledError
	var ide *pipeline.InsufficientDataError
	switch {
	case errors.As(err, &ce):
		return contract.ExitCanceled
	case errors.As(err, &ide):
		return contract.ExitInsufficientData
	case errors.As(err, &ue), pipeline.IsInputError(err):
		return contract.ExitInvalidInput
	}
	return contract.ExitFailure
}
