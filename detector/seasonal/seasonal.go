// Package seasonal learns how a sequence model's reconstruction error varies over the
// day or the week on its training rows, so that a score means the same at the daily
// peak as at night. Real metrics are noisier at their peak, and on weekends they
// follow another shape: with one threshold for every hour, the hours whose errors run
// highest set it, and an anomaly at a quiet hour stays under it. A Profile divides
// each row's raw score by its hour's factor (the hour's typical error over the whole
// period's), before the threshold is calibrated and whenever a row is scored.
//
// Hours are UTC hours of the day (Day) or of the week, Monday first (Week). A row
// whose time is not known (a REST request without timestamps) takes factor 1, the
// typical hour.
package seasonal

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kadet-dev/kadet/detector/contract"
)

// Periods, as in the Detector API's spec.model.seasonality.
const (
	// None scores every hour alike.
	None = contract.SeasonalityNone
	// Day keeps a factor per hour of the day.
	Day = contract.SeasonalityDay
	// Week keeps a factor per hour of the week.
	Week = contract.SeasonalityWeek
	// Auto is Day when the training rows fill every hour of the day, else None. It
	// never chooses Week: each hour of the week holds a few days' rows at most, and
	// a factor from so few is noise (docs/metrics.md has the figures).
	Auto = contract.SeasonalityAuto
)

// MinRowsPerHour is how many training rows each hour of the period needs: a median of
// fewer says little about the hour.
const MinRowsPerHour = 6

// MaxFactor bounds a factor (and MinFactor = 1/MaxFactor): an hour whose errors run
// far beyond the others' would otherwise hide anything that happens in it.
const MaxFactor = 20.0

// shrinkRows is the weight, in rows, of factor 1 against an hour and its neighbours'
// rows: with 36 rows a factor goes half way from 1 to its hours' ratio, with 252 (a
// week of 5-minute rows) seven eighths.
const shrinkRows = 36

// NoTime is the time of a row whose time is not known.
const NoTime = math.MinInt64

// Profile is a factor per hour of its period.
type Profile struct {
	// Period is Day or Week.
	Period string `json:"period"`
	// Factors holds, per UTC hour of the period (of the week Monday 00:00 first),
	// the hour's median raw score over the median of all, smoothed over neighbours.
	Factors []float32 `json:"factors"`
}

// hours is the number of hours in a period.
func hours(period string) int {
	if period == Week {
		return 7 * 24
	}
	return 24
}

// hourOf is the hour of the period that unix time t falls in.
func hourOf(period string, t int64) int {
	const hour, day = 3600, 86400
	if period == Week {
		// The Unix epoch was a Thursday: the first Monday 00:00 came 4 days later.
		return int(((t-4*day)%(7*day)+7*day)%(7*day)) / hour
	}
	return int((t%day+day)%day) / hour
}

// Factor is the factor of a row at unix time t (1 for NoTime or a nil Profile).
func (p *Profile) Factor(t int64) float64 {
	if p == nil || t == NoTime {
		return 1
	}
	return float64(p.Factors[hourOf(p.Period, t)])
}

// Validate checks a profile read from a model file.
func (p *Profile) Validate() error {
	if p.Period != Day && p.Period != Week {
		return fmt.Errorf("seasonal period %q is not %s or %s", p.Period, Day, Week)
	}
	if len(p.Factors) != hours(p.Period) {
		return fmt.Errorf("seasonal period %s has %d factors, want one per hour (%d)", p.Period, len(p.Factors), hours(p.Period))
	}
	for h, f := range p.Factors {
		if !(f >= 1/MaxFactor-1e-6 && f <= MaxFactor+1e-6) {
			return fmt.Errorf("seasonal factor of hour %d is %v, want %v to %v", h, f, 1/MaxFactor, MaxFactor)
		}
	}
	return nil
}

// Fit learns the profile of period (Day, Week or Auto) from raw scores and their
// unix times (rows of unknown time left out). It returns nil and why for Auto when
// some hour of the day lacks rows; for Day or Week that is an error, which says which
// hour lacks rows.
func Fit(period string, scores []float32, times []int64) (*Profile, string, error) {
	switch period {
	case Day, Week:
		p, why := fit(period, scores, times)
		if p == nil {
			return nil, "", fmt.Errorf("seasonality %s: %s", period, why)
		}
		return p, "", nil
	case Auto:
		p, why := fit(Day, scores, times)
		return p, why, nil
	}
	return nil, "", fmt.Errorf("seasonality %q: want %s, %s, %s or %s", period, None, Day, Week, Auto)
}

func fit(period string, scores []float32, times []int64) (*Profile, string) {
	n := hours(period)
	byHour := make([][]float64, n)
	var all []float64
	for i, s := range scores {
		if times[i] == NoTime {
			continue
		}
		h := hourOf(period, times[i])
		byHour[h] = append(byHour[h], float64(s))
		all = append(all, float64(s))
	}
	for h, b := range byHour {
		if len(b) < MinRowsPerHour {
			return nil, fmt.Sprintf("%s has %d training rows, and every hour needs %d: train on rows that cover every hour of the %s",
				hourName(period, h), len(b), MinRowsPerHour, strings.ToLower(period))
		}
	}
	typical := median(all)
	if !(typical > 0) {
		return nil, "the training rows' scores are all 0: the model reconstructs them exactly"
	}
	logs := make([]float64, n)
	for h, b := range byHour {
		logs[h] = math.Log(max(median(b), typical/MaxFactor) / typical)
	}
	p := &Profile{Period: period, Factors: make([]float32, n)}
	for h := range n {
		// A third of the weight on each neighbour: a median of a few dozen errors
		// moves by a good share from hour to hour, the hours' true levels do not.
		// And the fewer rows the three hours hold, the nearer 1 the factor: a few days
		// of a series as noisy at every hour give medians that differ by chance.
		s := (logs[(h+n-1)%n] + logs[h] + logs[(h+1)%n]) / 3
		k := float64(len(byHour[(h+n-1)%n]) + len(byHour[h]) + len(byHour[(h+1)%n]))
		s *= k / (k + shrinkRows)
		p.Factors[h] = float32(min(max(math.Exp(s), 1/MaxFactor), MaxFactor))
	}
	return p, ""
}

// hourName names an hour of a period for messages.
func hourName(period string, h int) string {
	if period == Week {
		return fmt.Sprintf("%s %02d:00-%02d:59 UTC", time.Weekday((h/24+1)%7), h%24, h%24)
	}
	return fmt.Sprintf("hour %02d:00-%02d:59 UTC", h, h)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ParseTime reads a row's timestamp as a unix time in seconds: a number (seconds, or
// milliseconds, microseconds or nanoseconds when it is too large to be seconds), or
// RFC 3339 or ISO 8601 text with or without the T, seconds and zone (UTC when none).
func ParseTime(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		for _, div := range []float64{1, 1e3, 1e6, 1e9} {
			if math.Abs(v/div) < 1e11 {
				return int64(math.Floor(v / div)), true
			}
		}
		return 0, false
	}
	for _, layout := range layouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Unix(), true
		}
	}
	return 0, false
}

var layouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04",
	"2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"}

// Times reads timestamps with ParseTime; ok is false, with the first that does not
// parse, when one does not.
func Times(ts []string) (out []int64, bad string, ok bool) {
	out = make([]int64, len(ts))
	for i, s := range ts {
		t, ok := ParseTime(s)
		if !ok {
			return nil, s, false
		}
		out[i] = t
	}
	return out, "", true
}
