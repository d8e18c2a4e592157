package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kadet-dev/kadet/detector/artifact"
)

// cmdPrune removes the named model versions from a model directory. Each is first
// renamed to a hidden name, so a scoring process that lists versions never sees half
// a folder, then removed. A version already gone is not an error: a retried Job must
// succeed.
func cmdPrune(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("prune", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("model-dir", "", "model directory (required)")
	list := fs.String("versions", "", "comma-separated versions to remove (required)")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *dir == "" || *list == "" {
		return usageError{"--model-dir and --versions are required"}
	}
	versions := strings.Split(*list, ",")
	for _, v := range versions {
		if _, err := artifact.Path(*dir, v); err != nil || v == "" {
			return usageError{fmt.Sprintf("--versions: %q is not a model version", v)}
		}
	}
	present, err := artifact.Versions(*dir)
	if err != nil {
		return err
	}
	for _, v := range versions {
		if !slices.Contains(present, v) {
			fmt.Fprintf(stdout, "%s: already gone\n", v)
			continue
		}
		hidden := filepath.Join(*dir, ".removing-"+v)
		if err := os.Rename(filepath.Join(*dir, v), hidden); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing %s: %w", v, err)
		}
		if err := os.RemoveAll(hidden); err != nil {
			return fmt.Errorf("removing %s: %w", v, err)
		}
		fmt.Fprintf(stdout, "%s: removed\n", v)
	}
	return nil
}
