package cli

import (
	"log"
	"os"
	"path/filepath"
	"strconv"
)

// Scratch is promtest.T outside `go test`: temporary directories under one, removed
// with everything registered by Cleanup when the command ends or fails.
type Scratch struct {
	dir      string
	cleanups []func()
	n        int
}

// NewScratch makes a Scratch under a new temporary directory named after prefix.
func NewScratch(prefix string) *Scratch {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		log.Fatal(err)
	}
	return &Scratch{dir: dir}
}

// Helper does nothing: there is no test to mark.
func (s *Scratch) Helper() {}

// Fatal cleans up and ends the command with args.
func (s *Scratch) Fatal(args ...any) { s.Close(); log.Fatal(args...) }

// Fatalf cleans up and ends the command with a formatted message.
func (s *Scratch) Fatalf(format string, args ...any) { s.Close(); log.Fatalf(format, args...) }

// Cleanup registers f to run at Close.
func (s *Scratch) Cleanup(f func()) { s.cleanups = append(s.cleanups, f) }

// TempDir is a new directory under the scratch directory.
func (s *Scratch) TempDir() string {
	s.n++
	d := filepath.Join(s.dir, strconv.Itoa(s.n))
	_ = os.MkdirAll(d, 0o755)
	return d
}

// Close runs the cleanups, newest first, and removes the scratch directory.
func (s *Scratch) Close() {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	s.cleanups = nil
	_ = os.RemoveAll(s.dir)
}
