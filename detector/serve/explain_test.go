package serve

import (
	"fmt"
	"slices"
	"testing"

	"github.com/kadet-dev/kadet/detector/artifact"
)

func TestExplainTabular(t *testing.T) {
	e := newExplainer(artifact.Metadata{Features: []string{"a", "b", "c", "d", "e"}})
	for _, tc := range []struct {
		shares []float32
		want   []Contribution
	}{
		{[]float32{0.1, 0.4, 0.05, 0.3, 0.15}, []Contribution{{"b", 0.4}, {"d", 0.3}, {"e", 0.15}}},
		{[]float32{0.5, 0.1, 0.1, 0.1, 0.2}, []Contribution{{"a", 0.5}, {"e", 0.2}, {"b", 0.1}}}, // ties: first feature
		{[]float32{0, 0, 0, 0, 1}, []Contribution{{"e", 1}, {"a", 0}, {"b", 0}}},
	} {
		got := e.explain(tc.shares)
		for i := range got {
			got[i].Share = float64(float32(got[i].Share))
			tc.want[i].Share = float64(float32(tc.want[i].Share))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("explain(%v) = %v, want %v", tc.shares, got, tc.want)
		}
	}
	// Fewer features than topFeatures: all of them.
	if got := newExplainer(artifact.Metadata{Features: []string{"x", "y"}}).explain([]float32{0.25, 0.75}); len(got) != 2 || got[0].Feature != "y" {
		t.Errorf("two features: %v", got)
	}
}

// Image errors are summed over a 4 x 4 grid of regions named by their pixel ranges.
func TestExplainImageRegions(t *testing.T) {
	e := newExplainer(artifact.Metadata{Image: &artifact.ImageShape{Rows: 28, Cols: 28}})
	if len(e.labels) != 16 || e.labels[0] != "rows 0-6, cols 0-6" || e.labels[15] != "rows 21-27, cols 21-27" {
		t.Fatalf("labels %q", e.labels)
	}
	shares := make([]float32, 28*28)
	set := func(r, c int, v float32) { shares[r*28+c] += v }
	set(25, 2, 0.3) // bottom left
	set(27, 6, 0.2) // bottom left
	set(0, 14, 0.4) // top, third column of regions
	set(10, 10, 0.1)
	got := e.explain(shares)
	want := []string{"rows 21-27, cols 0-6", "rows 0-6, cols 14-20", "rows 7-13, cols 7-13"}
	for i, c := range got {
		if c.Feature != want[i] {
			t.Fatalf("got %v, want regions %q", got, want)
		}
	}
	if s := float32(got[0].Share); s != 0.5 {
		t.Fatalf("bottom-left share %v, want 0.5", s)
	}
	// An image smaller than the grid has fewer regions, none of them empty.
	small := newExplainer(artifact.Metadata{Image: &artifact.ImageShape{Rows: 2, Cols: 3}})
	if fmt.Sprint(small.labels) != "[rows 0-0, cols 0-0 rows 0-0, cols 1-1 rows 0-0, cols 2-2 rows 1-1, cols 0-0 rows 1-1, cols 1-1 rows 1-1, cols 2-2]" {
		t.Fatalf("2x3 labels %q", small.labels)
	}
	if got := small.explain([]float32{0, 0, 0, 0, 0, 1}); got[0].Feature != "rows 1-1, cols 2-2" {
		t.Fatalf("2x3: %v", got)
	}
}
