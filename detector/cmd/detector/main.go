// Command detector trains, scores, serves and evaluates kadet anomaly detectors. Training
// Jobs and scoring Deployments both run it.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage: detector <command> [flags]

commands:
  train     --spec FILE --out DIR        train a model from a TrainingRequest
  score     --model FILE --input CSV     score records with a model
  serve     --model-dir DIR --addr ADDR  serve a model over HTTP
  evaluate  --model FILE --input CSV     print detection metrics as JSON
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	switch args[0] {
	case "train", "score", "serve", "evaluate":
		fmt.Fprintf(stderr, "detector %s: this build has no detection engine yet\n", args[0])
		return 1
	}
	fmt.Fprintf(stderr, "detector: unknown command %q\n\n%s", args[0], usage)
	return 2
}
