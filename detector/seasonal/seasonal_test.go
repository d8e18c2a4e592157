package seasonal

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// monday is Monday 7 December 2026, 00:00 UTC.
var monday = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC).Unix()

func TestHourOf(t *testing.T) {
	for _, c := range []struct {
		at           time.Time
		period       string
		want         int
		wantWeekName string
	}{
		{time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), Week, 0, "Monday 00:00"},
		{time.Date(2026, 12, 7, 13, 59, 59, 0, time.UTC), Week, 13, "Monday 13:00"},
		{time.Date(2026, 12, 13, 23, 30, 0, 0, time.UTC), Week, 167, "Sunday 23:00"},
		{time.Date(2026, 12, 10, 5, 0, 0, 0, time.UTC), Week, 3*24 + 5, "Thursday 05:00"},
		{time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), Week, 2*24 + 23, "Wednesday 23:00"},
		{time.Date(2026, 12, 10, 5, 0, 0, 0, time.UTC), Day, 5, ""},
		{time.Date(1969, 12, 31, 23, 10, 0, 0, time.UTC), Day, 23, ""},
	} {
		got := hourOf(c.period, c.at.Unix())
		if got != c.want {
			t.Errorf("hourOf(%s, %s) = %d, want %d", c.period, c.at, got, c.want)
		}
		if c.wantWeekName != "" && !strings.HasPrefix(hourName(Week, got), c.wantWeekName) {
			t.Errorf("hourName(Week, %d) = %q, want it to start %q", got, hourName(Week, got), c.wantWeekName)
		}
	}
}

// noisyAtNoon is days of 5-minute scores (squared errors of Gaussian noise) whose
// noise is three times as large from 12:00 to 15:59 UTC, with their times.
func noisyAtNoon(days int, seed uint64) ([]float32, []int64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var scores []float32
	var times []int64
	for i := range days * 288 {
		at := monday + int64(300*i)
		sd := 1.0
		if h := (at % 86400) / 3600; h >= 12 && h < 16 {
			sd = 3
		}
		e := sd * rng.NormFloat64()
		scores, times = append(scores, float32(e*e)), append(times, at)
	}
	return scores, times
}

func TestFitDayFollowsTheNoisyHours(t *testing.T) {
	// The noisy hours' errors are 9 times the others' (the median of all is a quiet
	// hour's). Three noisy hours in a row hold 36 rows a day: over 3 days a factor is
	// drawn to 9^(108/144) = 5.2, over 12 days to 9^(432/468) = 7.6.
	for _, c := range []struct {
		days     int
		lo, high float64
	}{{3, 4, 7}, {12, 6.5, 9}} {
		scores, times := noisyAtNoon(c.days, 1)
		p, why, err := Fit(Day, scores, times)
		if err != nil || p == nil {
			t.Fatalf("Fit: %v %q", err, why)
		}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		for h, f := range p.Factors {
			switch {
			case h == 13 || h == 14: // the hours whose neighbours are noisy too
				if float64(f) < c.lo || float64(f) > c.high {
					t.Errorf("%d days, hour %d: factor %.2f, want %v to %v", c.days, h, f, c.lo, c.high)
				}
			case h <= 10 || h >= 17:
				// A sixth of all rows are noisy: their median sits a little above a
				// quiet hour's, whose factor is a little below 1.
				if f > 1.2 || f < 0.5 {
					t.Errorf("%d days, hour %d: factor %.2f, want 0.5 to 1.2 (a quiet hour)", c.days, h, f)
				}
			}
		}
		noon, night := monday+13*3600, monday+2*3600
		if got := p.Factor(noon) / p.Factor(night); got < c.lo*0.8 {
			t.Errorf("%d days: Factor at 13:00 is %.2f times that at 02:00, want at least %.2f", c.days, got, c.lo*0.8)
		}
	}
	scores, times := noisyAtNoon(3, 1)
	p, _, _ := Fit(Day, scores, times)
	noon := monday + 13*3600
	if got := p.Factor(NoTime); got != 1 {
		t.Errorf("Factor(NoTime) = %v, want 1", got)
	}
	var none *Profile
	if got := none.Factor(noon); got != 1 {
		t.Errorf("a nil profile's factor = %v, want 1", got)
	}
}

func TestFitAutoChoosesThePeriodTheRowsFill(t *testing.T) {
	for _, c := range []struct {
		days       int
		want       string
		whyContain string
	}{
		{1, "", "hour 12:00-12:59 UTC has 0 training rows"},
		{3, Day, ""},
		{8, Day, ""},
	} {
		scores, times := noisyAtNoon(c.days, 2)
		if c.days == 1 {
			// Half a day: the afternoon hours have no rows.
			scores, times = scores[:144], times[:144]
		}
		p, why, err := Fit(Auto, scores, times)
		if err != nil {
			t.Fatalf("%d days: %v", c.days, err)
		}
		got := ""
		if p != nil {
			got = p.Period
		}
		if got != c.want || !strings.Contains(why, c.whyContain) {
			t.Errorf("%d days: period %q (why %q), want %q (why containing %q)", c.days, got, why, c.want, c.whyContain)
		}
	}
}

func TestFitNamesTheHourThatLacksRows(t *testing.T) {
	scores, times := noisyAtNoon(3, 3)
	_, _, err := Fit(Week, scores, times)
	if err == nil || !strings.Contains(err.Error(), "Thursday 00:00-00:59 UTC has 0 training rows") {
		t.Fatalf("Fit(Week) over three days from a Monday: %v, want the first hour without rows (Thursday 00:00) named", err)
	}
	_, _, err = Fit("Month", scores, times)
	if err == nil || !strings.Contains(err.Error(), "want None, Day, Week or Auto") {
		t.Fatalf("Fit(Month): %v", err)
	}
	zeros := make([]float32, len(scores))
	p, why, err := Fit(Auto, zeros, times)
	if p != nil || err != nil || !strings.Contains(why, "all 0") {
		t.Fatalf("Fit of zero scores: %v, %q, %v; want no profile and why", p, why, err)
	}
}

func TestFactorsAreBounded(t *testing.T) {
	scores, times := noisyAtNoon(3, 4)
	for i, at := range times {
		if (at%86400)/3600 == 3 {
			scores[i] = 0 // an hour the model reconstructs exactly
		}
		if (at%86400)/3600 == 20 {
			scores[i] *= 1e6
		}
	}
	p, _, err := Fit(Day, scores, times)
	if err != nil {
		t.Fatal(err)
	}
	for h, f := range p.Factors {
		if math.IsNaN(float64(f)) || f < 1/MaxFactor-1e-6 || f > MaxFactor+1e-6 {
			t.Errorf("hour %d: factor %v outside [1/%v, %v]", h, f, MaxFactor, MaxFactor)
		}
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	ones := func(n int) []float32 {
		f := make([]float32, n)
		for i := range f {
			f[i] = 1
		}
		return f
	}
	for _, c := range []struct {
		p    Profile
		want string
	}{
		{Profile{Period: Day, Factors: ones(24)}, ""},
		{Profile{Period: Week, Factors: ones(168)}, ""},
		{Profile{Period: "Hour", Factors: ones(24)}, `period "Hour"`},
		{Profile{Period: Week, Factors: ones(24)}, "24 factors, want one per hour (168)"},
		{Profile{Period: Day, Factors: append(ones(23), float32(math.NaN()))}, "hour 23 is NaN"},
		{Profile{Period: Day, Factors: append(ones(23), 0)}, "hour 23 is 0"},
	} {
		err := c.p.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("Validate(%s, %d factors) = %v, want %q", c.p.Period, len(c.p.Factors), err, c.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 12, 7, 13, 5, 0, 0, time.UTC).Unix()
	for _, s := range []string{
		"1796648700", "1796648700.5", "1796648700000", "1796648700000000", "1796648700000000000",
		"2026-12-07T13:05:00Z", "2026-12-07T14:05:00+01:00", "2026-12-07T13:05:00", "2026-12-07 13:05:00",
		"2026-12-07 13:05", " 2026-12-07T13:05:00.000Z ",
	} {
		got, ok := ParseTime(s)
		if !ok || got != want {
			t.Errorf("ParseTime(%q) = %d, %v; want %d", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "yesterday", "12/07/2026", "NaN", "1e300"} {
		if got, ok := ParseTime(s); ok {
			t.Errorf("ParseTime(%q) = %d, want not a time", s, got)
		}
	}
	if _, bad, ok := Times([]string{"1796648700", "soon"}); ok || bad != "soon" {
		t.Errorf("Times: bad %q ok %v, want soon named", bad, ok)
	}
}
