package data

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kadet-dev/kadet/detector/contract"
)

// maxFeedbackLine bounds one stored mark; a longer line is not one kadet wrote.
const maxFeedbackLine = 1 << 20

// ReadFeedback reads every feedback file in dir (each scoring pod's), oldest mark of
// each file first. A missing folder is no feedback. A line that is not a mark (a pod
// killed mid-write leaves at most its last line cut) is skipped and counted in bad.
func ReadFeedback(dir string) (marks []contract.FeedbackMark, bad int, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), contract.FeedbackFileSuffix) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for _, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, 0, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), maxFeedbackLine)
		for sc.Scan() {
			var m contract.FeedbackMark
			if json.Unmarshal(sc.Bytes(), &m) != nil || (m.Features == nil && m.Entity == "") {
				bad++
				continue
			}
			marks = append(marks, m)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("reading feedback %s: %w", name, err)
		}
	}
	return marks, bad, nil
}

// FeedbackRows turns the marks that carry every one of features into rows in that
// order, with their labels (1 anomaly, 0 normal).
func FeedbackRows(marks []contract.FeedbackMark, features []string) (x, labels []float32) {
	for _, m := range marks {
		if m.Features == nil {
			continue
		}
		row := make([]float32, 0, len(features))
		for _, f := range features {
			v, ok := m.Features[f]
			if !ok {
				break
			}
			row = append(row, float32(v))
		}
		if len(row) != len(features) {
			continue
		}
		x = append(x, row...)
		l := float32(0)
		if m.Anomaly {
			l = 1
		}
		labels = append(labels, l)
	}
	return x, labels
}
