package serve

import (
	"cmp"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kadet-dev/kadet/detector/backtest"
)

// The model page's backtest: what the served version flagged on the history held out
// of its training, a plot per entity (the metric, the band the model expects it in,
// the score under it, flagged episodes shaded), the ten entities with the most
// episodes first and a form to pick any other. Inline SVG drawn here, no script.

// Colours of the backtest plots: the page's test finds them in a screenshot.
const (
	valueColour   = "#333333"
	bandColour    = "#bfe3bf"
	scoreColour   = "#7a3ca0"
	episodeColour = "#ffd6d6"
	limitColour   = "#dc0000"
)

// maxBacktestFile bounds the backtest file a page reads (a report holds at most
// MaxSeries series of MaxPoints points).
const maxBacktestFile = 64 << 20

// pagePlots is how many entities the page plots when none is picked.
const pagePlots = 10

// backtestView is the page's backtest section.
type backtestView struct {
	Summary string
	Plots   []template.HTML
	// Entities are every plotted entity, for the picker; Picked is the one shown.
	Entities []string
	Picked   string
	Note     string
}

// readBacktest reads a version's backtest report; nil when it has none.
func readBacktest(dir string) (*backtest.Report, error) {
	path := filepath.Join(dir, backtest.FileName)
	fi, err := os.Stat(path)
	switch {
	case os.IsNotExist(err):
		return nil, nil
	case err != nil:
		return nil, err
	case fi.Size() > maxBacktestFile:
		return nil, fmt.Errorf("%s is %d bytes, more than a backtest report holds", path, fi.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := &backtest.Report{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// backtestSection renders r for the page, with picked (an entity, or "") chosen.
func backtestSection(r *backtest.Report, picked string) *backtestView {
	v := &backtestView{Picked: picked}
	day := func(t int64) string { return time.Unix(t, 0).UTC().Format("2006-01-02 15:04") }
	v.Summary = fmt.Sprintf("%d rows of %d entities from %s to %s: %d anomalous (%.2f%%), %s (%.2f a day)",
		r.Rows, r.Entities, day(r.Start), day(r.End), r.Anomalies, 100*float64(r.Anomalies)/float64(max(r.Rows, 1)), episodeCount(len(r.Episodes)), r.PerDay())
	byEntity := map[string][]backtest.Episode{}
	for _, e := range r.Episodes {
		byEntity[e.Entity] = append(byEntity[e.Entity], e)
	}
	for _, sr := range r.Series {
		v.Entities = append(v.Entities, sr.Entity)
	}
	shown := 0
	for _, sr := range r.Series {
		switch {
		case picked != "" && sr.Entity != picked:
			continue
		case picked == "" && shown == pagePlots:
			continue
		}
		v.Plots = append(v.Plots, seriesSVG(sr, r.Features, byEntity[sr.Entity]))
		shown++
	}
	switch {
	case picked != "" && shown == 0:
		v.Note = fmt.Sprintf("no series of entity %q in this backtest", picked)
	case picked == "" && len(r.Series) > shown:
		v.Note = fmt.Sprintf("%d more entities: pick one above", len(r.Series)-shown)
	}
	if r.SeriesLeftOut > 0 {
		v.Note = strings.TrimSpace(v.Note + fmt.Sprintf(" (%d entities with no episode are not kept)", r.SeriesLeftOut))
	}
	return v
}

// seriesSVG plots one entity: a panel per feature (at most four) with its values and
// the band around the expected values, a panel of scores (log scale, the threshold
// 1 marked), and the entity's episodes shaded across all of them.
func seriesSVG(sr backtest.Series, features []string, episodes []backtest.Episode) template.HTML {
	const w, left, right, panel, scorePanel, gap, top = 1000.0, 70.0, 10.0, 110.0, 80.0, 14.0, 20.0
	d := len(features)
	shown := min(d, 4)
	n := len(sr.At)
	var b strings.Builder
	ht := top + float64(shown)*(panel+gap) + scorePanel + 24
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" role="img" aria-label="backtest of %s">`,
		w, ht, template.HTMLEscapeString(cmp.Or(sr.Entity, "the series")))
	fmt.Fprintf(&b, `<text x="0" y="13" font-size="13" font-weight="600">%s</text><text x="%.0f" y="13" font-size="12" text-anchor="end">%s, peak score %.3g</text>`,
		template.HTMLEscapeString(cmp.Or(sr.Entity, "(one series)")), w-right, episodeCount(sr.Episodes), sr.Peak)
	if n == 0 {
		b.WriteString(`<text x="0" y="40" font-size="12">no held-out row of this entity was scored</text></svg>`)
		return template.HTML(b.String()) //nolint:gosec // numbers and escaped text only
	}
	t0, t1 := sr.At[0], sr.At[n-1]
	if t1 == t0 {
		t1 = t0 + 1
	}
	x := func(t int64) float64 { return left + float64(t-t0)/float64(t1-t0)*(w-left-right) }
	bottom := ht - 24
	for _, e := range episodes {
		x0, x1 := x(max(e.Start, t0)), x(min(e.End, t1))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="%s"/>`, x0, top, math.Max(x1-x0, 2), bottom-top, episodeColour)
	}
	for j := range shown {
		y0 := top + float64(j)*(panel+gap)
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := range n {
			v := float64(sr.Values[i*d+j])
			lo, hi = math.Min(lo, v), math.Max(hi, v)
			if sr.Expected != nil {
				e := float64(sr.Expected[i*d+j])
				lo, hi = math.Min(lo, e), math.Max(hi, e)
			}
		}
		if hi == lo {
			hi, lo = hi+1, lo-1
		}
		pad := (hi - lo) * 0.08
		lo, hi = lo-pad, hi+pad
		y := func(v float64) float64 { return y0 + (hi-math.Max(lo, math.Min(hi, v)))/(hi-lo)*panel }
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#bbb"/>`, left, y0, w-left-right, panel)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11" text-anchor="end">%.4g</text><text x="%.0f" y="%.0f" font-size="11" text-anchor="end">%.4g</text>`,
			left-4, y0+10, hi, left-4, y0+panel, lo)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11">%s</text>`, left+4, y0+12, template.HTMLEscapeString(features[j]))
		if sr.Expected != nil && len(sr.Band) == d {
			var upper, lower strings.Builder
			for i := range n {
				e, bw := float64(sr.Expected[i*d+j]), float64(sr.Band[j])
				fmt.Fprintf(&upper, "%.1f,%.1f ", x(sr.At[i]), y(e+bw))
				fmt.Fprintf(&lower, "%.1f,%.1f ", x(sr.At[n-1-i]), y(float64(sr.Expected[(n-1-i)*d+j])-bw))
			}
			fmt.Fprintf(&b, `<polygon points="%s%s" fill="%s" stroke="none"/>`, upper.String(), strings.TrimSpace(lower.String()), bandColour)
		}
		var line strings.Builder
		for i := range n {
			fmt.Fprintf(&line, "%.1f,%.1f ", x(sr.At[i]), y(float64(sr.Values[i*d+j])))
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>`, strings.TrimSpace(line.String()), valueColour)
	}
	// Scores on log10(1 + score): a likelihood score runs orders of magnitude past the
	// threshold 1, which must stay visible.
	y0 := top + float64(shown)*(panel+gap)
	hiScore := math.Log10(2) * 2
	for _, s := range sr.Score {
		hiScore = math.Max(hiScore, math.Log10(1+math.Max(s, 0)))
	}
	ys := func(s float64) float64 { return y0 + (hiScore-math.Log10(1+math.Max(s, 0)))/hiScore*scorePanel }
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#bbb"/>`, left, y0, w-left-right, scorePanel)
	fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="4 3"/>`, left, w-right, ys(1), ys(1), limitColour)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11" text-anchor="end">score</text><text x="%.0f" y="%.1f" font-size="11" text-anchor="end">1</text>`,
		left-4, y0+10, left-4, ys(1)+4)
	var line strings.Builder
	for i := range n {
		fmt.Fprintf(&line, "%.1f,%.1f ", x(sr.At[i]), ys(sr.Score[i]))
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>`, strings.TrimSpace(line.String()), scoreColour)
	at := func(t int64) string { return time.Unix(t, 0).UTC().Format("2006-01-02 15:04") }
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11">%s</text><text x="%.0f" y="%.0f" font-size="11" text-anchor="end">%s UTC</text>`,
		left, ht-6, at(t0), w-right, ht-6, at(t1))
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // numbers and escaped text only
}

// episodeCount counts n episodes in words.
func episodeCount(n int) string {
	if n == 1 {
		return "1 episode"
	}
	return fmt.Sprintf("%d episodes", n)
}
