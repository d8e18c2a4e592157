// Package normalize turns a sequence model's scores into scores that mean the same on
// every series: an anomaly likelihood per entity (Ahmad et al. 2017, "Unsupervised
// real-time anomaly detection for streaming data").
//
// A network's reconstruction error has a scale of its own on every series (a quiet
// series scores far below its threshold for weeks, a noisy one crosses it daily, and
// one model over many entities sees each at another scale). The stage keeps, per
// entity, an exponentially weighted mean and variance of y, the log of the mean of its
// newest few scores (in threshold units, plus Offset), and asks how unlikely the
// newest y is under them: the Gaussian tail probability Q of its distance from the
// mean. The score is log(Q) / log(Target), so 1 is the threshold on every series: a
// score above 1 is rarer than Target, the share of normal rows the threshold was
// calibrated to flag. The log makes ratios of scores, not their differences, count,
// and Offset keeps scores far under the threshold from looking large to a series whose
// scores are all tiny.
//
// Every update is O(1) in time and memory: a State is a fixed-size struct.
package normalize

import (
	"errors"
	"fmt"
	"math"

	"github.com/kadet-dev/kadet/detector/contract"
)

// Methods.
const (
	// None scores with raw / threshold, the network's own score.
	None = contract.NormalizationNone
	// Likelihood scores by the anomaly likelihood.
	Likelihood = contract.NormalizationLikelihood
)

// Defaults and bounds of the windows.
const (
	DefaultLongWindow  = 2016
	DefaultShortWindow = 3
	MinLongWindow      = 10
	MaxLongWindow      = 1_000_000
	MaxShortWindow     = 16
)

// Offset is added to the short mean before its log, in threshold units: a series whose
// scores sit at a thousandth of the threshold does not flag a move to a hundredth, and
// a flat series that a model reconstructs exactly (scores of 0) has a finite log.
const Offset = 0.01

// MinStd bounds the standard deviation of y from below: a series whose scores never
// move (a flat metric) would otherwise flag the smallest wobble.
const MinStd = 0.1

// Clip bounds, in standard deviations, how far one y moves the mean and variance.
const Clip = 3.0

// PriorRows is the weight of the prior when an entity starts: its own scores replace
// the prior within about this many rows.
const PriorRows = 100

// maxScore keeps infinities out of the stage: a score this far past the threshold
// says all there is to say.
const maxScore = 1e12

// New is the Config of a request's normalization (nil: None) for a model whose
// threshold is meant to flag target of normal rows; the prior comes later, from the
// calibration scores.
func New(n *contract.Normalization, target float64) (*Config, error) {
	if n == nil || n.Method == "" || n.Method == None {
		return &Config{Method: None}, nil
	}
	c := &Config{Method: n.Method, LongWindow: DefaultLongWindow, ShortWindow: DefaultShortWindow,
		Target: min(max(target, MinTarget), MaxTarget)}
	if n.LongWindow != nil {
		c.LongWindow = int(*n.LongWindow)
	}
	if n.ShortWindow != nil {
		c.ShortWindow = int(*n.ShortWindow)
	}
	c.Prior = Prior{Mean: math.Log(Offset), Std: MinStd}
	return c, c.Check()
}

// Bounds of the target a threshold's expected anomaly rate gives: a percentile of 100
// would ask for no anomaly ever, a contamination of a half for a coin toss.
const (
	MinTarget = 1e-7
	MaxTarget = 0.1
)

// Config is the stage's settings, as a model file records them.
type Config struct {
	Method string `json:"method"`
	// LongWindow is the span, in rows, of the mean and variance (the weight of the
	// newest y is 1 / LongWindow once an entity has that many rows).
	LongWindow int `json:"longWindow,omitempty"`
	// ShortWindow is how many of the newest scores are averaged.
	ShortWindow int `json:"shortWindow,omitempty"`
	// Target is the tail probability a score of 1 stands for: the share of normal rows
	// the threshold is meant to flag.
	Target float64 `json:"target,omitempty"`
	// Prior is y's distribution over the calibration rows; every entity starts from it.
	Prior Prior `json:"prior"`
	// InSampleGap is how much higher the network scores rows it did not train on than
	// rows it did (at least 1): a state warmed up on its training rows takes their
	// scores times this, or it would start too low and flag ordinary new rows.
	InSampleGap float64 `json:"inSampleGap,omitempty"`
}

// Prior is the mean and standard deviation of y over the rows it was measured on.
type Prior struct {
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"`
	Rows int     `json:"rows"`
}

// Enabled says whether c changes scores.
func (c *Config) Enabled() bool { return c != nil && c.Method == Likelihood }

// Check says what is wrong with a Config read from a model file or flags.
func (c *Config) Check() error {
	switch c.Method {
	case None:
		return nil
	case Likelihood:
	default:
		return fmt.Errorf("normalization %q is not %s or %s", c.Method, None, Likelihood)
	}
	switch {
	case c.LongWindow < MinLongWindow || c.LongWindow > MaxLongWindow:
		return fmt.Errorf("normalization long window %d: want %d to %d rows", c.LongWindow, MinLongWindow, MaxLongWindow)
	case c.ShortWindow < 1 || c.ShortWindow > MaxShortWindow || c.ShortWindow > c.LongWindow:
		return fmt.Errorf("normalization short window %d: want 1 to %d rows, at most the long window", c.ShortWindow, MaxShortWindow)
	case !(c.Target > 0 && c.Target < 0.5):
		return fmt.Errorf("normalization target %v: want a tail probability above 0 and below 0.5", c.Target)
	case math.IsNaN(c.InSampleGap) || math.IsInf(c.InSampleGap, 0) || c.InSampleGap < 0:
		return fmt.Errorf("normalization in-sample gap %v is not a finite positive number", c.InSampleGap)
	case math.IsNaN(c.Prior.Mean) || math.IsInf(c.Prior.Mean, 0) || !(c.Prior.Std >= 0) || math.IsInf(c.Prior.Std, 0):
		return errors.New("normalization prior is not a finite mean and standard deviation")
	}
	return nil
}

// State is one entity's: y's weighted mean and variance, their weight so far, and
// the newest scores in a ring. The zero State starts from the prior.
type State struct {
	mean, variance float64
	n              int32
	pos, filled    uint8
	ring           [MaxShortWindow]float32
}

// Next scores u (raw / threshold, the network's score) for the entity whose state is
// s, then folds it into s: the score compares u with the entity's past, not with
// itself.
func (c *Config) Next(s *State, u float64) float64 {
	y := c.push(s, u)
	score := c.score(s, y)
	c.update(s, y)
	return score
}

// push adds u to s's ring and returns y, the log of the ring's mean plus Offset.
func (c *Config) push(s *State, u float64) float64 {
	if s.n == 0 {
		s.mean, s.variance = c.Prior.Mean, c.Prior.Std*c.Prior.Std
		s.n = int32(min(PriorRows, c.LongWindow))
	}
	if !(u >= 0) { // NaN or negative: no score is below 0
		u = 0
	}
	s.ring[s.pos] = float32(min(u, maxScore))
	s.pos = uint8((int(s.pos) + 1) % c.ShortWindow)
	s.filled = uint8(min(int(s.filled)+1, c.ShortWindow))
	var sum float64
	for _, v := range s.ring[:s.filled] {
		sum += float64(v)
	}
	return math.Log(sum/float64(s.filled) + Offset)
}

// score is log(Q) / log(Target) for y under s's distribution.
func (c *Config) score(s *State, y float64) float64 {
	z := (y - s.mean) / max(math.Sqrt(s.variance), MinStd)
	return LogUpperTail(z) / math.Log(c.Target)
}

func (c *Config) update(s *State, y float64) {
	s.n = min(s.n+1, int32(c.LongWindow))
	a := 1 / float64(s.n)
	// A rise counts for at most Clip standard deviations: one outage must not widen
	// the variance so far that the anomalies after it go unseen. A lasting change
	// still moves the mean and widens the variance, only more slowly. Falls are never
	// anomalies and count in full, as in the prior.
	d := min(y-s.mean, Clip*max(math.Sqrt(s.variance), MinStd))
	s.mean += a * d
	s.variance = (1 - a) * (s.variance + a*d*d)
}

// Gap is the factor in-sample scores are raised by (1 when unset).
func (c *Config) Gap() float64 {
	if c.InSampleGap > 1 {
		return c.InSampleGap
	}
	return 1
}

// Series scores one run of scores in time order from a fresh state: what a batch of
// rows (a CSV, a request) gets.
func (c *Config) Series(us []float64) []float64 {
	var s State
	out := make([]float64, len(us))
	for i, u := range us {
		out[i] = c.Next(&s, u)
	}
	return out
}

// LogUpperTail is the log of the standard normal's upper tail probability at z,
// accurate where the probability itself underflows.
func LogUpperTail(z float64) float64 {
	if z < 30 {
		return math.Log(0.5 * math.Erfc(z/math.Sqrt2))
	}
	// Asymptotic series of Mills' ratio: Q(z) ~ phi(z)/z (1 - 1/z^2 + 3/z^4).
	z2 := z * z
	return -z2/2 - math.Log(z*math.Sqrt(2*math.Pi)) + math.Log1p(-1/z2+3/(z2*z2))
}

// PriorOf measures y over runs of scores (threshold units, each run in time order):
// the prior of a Config with these windows.
func (c *Config) PriorOf(runs [][]float64) Prior {
	var n int
	var mean, m2 float64
	for _, run := range runs {
		s := State{n: 1}
		for _, u := range run {
			y := c.push(&s, u)
			n++
			d := y - mean
			mean += d / float64(n)
			m2 += d * (y - mean)
		}
	}
	if n == 0 {
		return Prior{Mean: math.Log(Offset), Std: MinStd}
	}
	return Prior{Mean: mean, Std: math.Sqrt(m2 / float64(n)), Rows: n}
}
