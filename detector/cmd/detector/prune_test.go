package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
)

func TestPruneRemovesOnlyTheNamedVersions(t *testing.T) {
	dir := t.TempDir()
	names := []string{"20261129-100000-aaaaaaaa", "20261129-110000-bbbbbbbb", "20261129-120000-cccccccc"}
	for _, v := range names {
		if _, err := artifact.Save(dir, v, map[string][]byte{artifact.FileName: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	code, out, stderr := detector(t, context.Background(), "prune", "--model-dir", dir, "--versions", names[0]+","+names[1])
	if code != contract.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if left, _ := artifact.Versions(dir); !slices.Equal(left, names[2:]) {
		t.Errorf("left %v; want %v (%s)", left, names[2:], out)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the directory holds %d entries after pruning; want 1", len(entries))
	}
	// Again: already gone is success, so a retried Job passes.
	if code, out, _ := detector(t, context.Background(), "prune", "--model-dir", dir, "--versions", names[0]); code != contract.ExitOK ||
		!strings.Contains(out, "already gone") {
		t.Errorf("second prune: exit %d: %s", code, out)
	}
	// A path is not a version.
	if code, _, stderr := detector(t, context.Background(), "prune", "--model-dir", dir, "--versions", "../etc"); code != contract.ExitInvalidInput ||
		!strings.Contains(stderr, `"../etc" is not a model version`) {
		t.Errorf("bad version: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, names[2], artifact.FileName)); err != nil {
		t.Errorf("the kept version lost its file: %v", err)
	}
}
