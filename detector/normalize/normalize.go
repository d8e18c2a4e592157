// Package normalize turns a sequence model's scores into scores that mean the same on
// every series: an anomaly likelihood per entity (Ahmad et al. 2017, "Unsupervised
// real-time anomaly detection for streaming data").
//
// A network's reconstruction error has a scale of its own on every series (a quiet
// series scores far below its threshold for weeks, a noisy one crosses it daily, and
// one model over many entities sees each at another scale). The stage keeps, per
// entity, an exponentially weighted mean and variance of its scores (in threshold
// units) and asks how unlikely the mean of its newest few is under them: the Gaussian
// tail probability Q of its distance from the mean. The score is log(Q) / log(Target),
// so 1 is the threshold on every series: a score above 1 is rarer than Target, the
// share of normal rows the threshold was calibrated to flag.
//
// New models read the scores as they are (transform Plain), the published form with
// three changes: a row scored above 1 moves the mean and variance at AnomalyWeight of
// its weight, and a score counts for at most UpdateCap (threshold units) in them, so an
// anomaly, or an outage scored in thousands, does not teach the entity that anomalies
// are normal; and the standard deviation is at least MinPlainStd. On real metrics and SKAB (hack/bench/realmetrics, hack/bench/skab,
// docs/metrics.md) this form scores better than the departures below, which were
// chosen on generated series and are kept only to score model files that recorded
// them.
//
// Transform Power reads y, a power of the newest score and of the mean of its newest
// few, in two tests: the newest row's finds a one-row spike that a mean would dilute,
// the short mean's a rise too small for one row; a row scores the rarer of the two.
// The power is y = u^p: a reconstruction error is a mean of squared
// errors, skewed to the right, and a power below 1 makes it close to Gaussian (the
// cube root of a chi-square variable is, Wilson and Hilferty 1931); a power scales
// with the error's scale, so z, and the score, do not. The power is the one under
// which the calibration scores put the calibrated threshold (u = 1) at the Gaussian
// tail of Target: on rows like its calibration rows the stage flags as the threshold
// does, whatever the errors' tail, and on rows that drift it follows them. Model
// files written before it recorded no transform and keep the log of the short mean
// plus Offset.
//
// Under Power, a rise moves the mean and variance by at most PowerClip standard
// deviations a row, so an outage does not blind the entity to what follows; a rise
// that lasts widens the clip row by row (SustainShare), so a lasting change is learnt
// as the new normal after its onset has been flagged. Plain clips nothing: on real
// metrics, whose noise comes in bursts, a clipped variance never learns a series'
// scale and flags each burst.
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

// Defaults and bounds of the windows. The long window is Ahmad et al.'s: a month of
// 5-minute rows.
const (
	DefaultLongWindow  = 8640
	DefaultShortWindow = 3
	MinLongWindow      = 10
	MaxLongWindow      = 1_000_000
	MaxShortWindow     = 16
)

// Transforms of a score before the Gaussian reading.
const (
	// Plain reads the short mean as it is: new models.
	Plain = "Plain"
	// Power reads a power of the newest score and of the short mean.
	Power = "Power"
	// Log reads log(short mean + Offset) alone: model files without a transform.
	Log = "Log"
)

// Offset is added to the short mean before its log (transform Log), in threshold
// units: a series whose scores sit at a thousandth of the threshold does not flag a
// move to a hundredth, and a flat series that a model reconstructs exactly (scores of
// 0) has a finite log.
const Offset = 0.01

// MinStd bounds the standard deviation of y from below (transform Log): a series
// whose scores never move (a flat metric) would otherwise flag the smallest wobble.
const MinStd = 0.1

// MinPowerStd is MinStd for a power, in powers of threshold units: the threshold is 1
// under every power, and a series whose scores never move flags a move to a good
// share of it, not the smallest wobble.
const MinPowerStd = 0.05

// MinPlainStd is MinStd for Plain, in threshold units: a series that scores far under
// its threshold flags a move to a good share of it, not a wobble that comes back every
// day (docs/metrics.md has what lower floors cost on real metrics).
const MinPlainStd = 0.1

// Bounds of the power: close to 0 a power reads the log, at 1 the raw score.
const (
	MinPower     = 0.02
	MaxPower     = 1
	DefaultPower = 1.0 / 3
)

// Defaults of Plain's two changes to the published form, chosen on the real metrics of
// hack/bench/realmetrics and SKAB (docs/metrics.md has each variant tried): a lasting
// change is learnt at a tenth of the pace while it scores above 1, and a score counts
// for at most three times the threshold.
const (
	DefaultAnomalyWeight = 0.1
	DefaultUpdateCap     = 3.0
)

// Clip bounds, in standard deviations, how far one y moves the mean and variance
// (transform Log).
const Clip = 3.0

// PowerClip is Clip for transform Power. Tighter than Clip: where anomalies come
// often, each one widens the variance, and with a wider clip those after it go unseen
// (docs/metrics.md has the figures).
const PowerClip = 2.0

// SustainShare is the share of the long window a lasting rise must hold for to double
// the clip: a change that holds for about that long becomes the new normal, where an
// anomaly of a few hours stays one to its end and leaves the state as it was.
const SustainShare = 1.0 / 8

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
	c := &Config{Method: n.Method, Transform: Plain, LongWindow: DefaultLongWindow, ShortWindow: DefaultShortWindow,
		Target: min(max(target, MinTarget), MaxTarget), AnomalyWeight: DefaultAnomalyWeight, UpdateCap: DefaultUpdateCap}
	if n.LongWindow != nil {
		c.LongWindow = int(*n.LongWindow)
	}
	if n.ShortWindow != nil {
		c.ShortWindow = int(*n.ShortWindow)
	}
	c.Prior = Prior{Std: MinPlainStd}
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
	// Transform is Plain or Power, or empty for Log.
	Transform string `json:"transform,omitempty"`
	// Power is the power of Transform Power.
	Power float64 `json:"power,omitempty"`
	// LongWindow is the span, in rows, of the mean and variance (the weight of the
	// newest y is 1 / LongWindow once an entity has that many rows).
	LongWindow int `json:"longWindow,omitempty"`
	// ShortWindow is how many of the newest scores are averaged.
	ShortWindow int `json:"shortWindow,omitempty"`
	// Target is the tail probability a score of 1 stands for: the share of normal rows
	// the threshold is meant to flag.
	Target float64 `json:"target,omitempty"`
	// Prior is y's distribution over the calibration rows (y of the short mean; under
	// Plain, of the scores themselves); every entity starts from it.
	Prior Prior `json:"prior"`
	// RowPrior is the same for y of the newest score alone (Power only).
	RowPrior *Prior `json:"rowPrior,omitempty"`
	// AnomalyWeight is the share of its weight a row scored above 1 moves the mean and
	// variance by, and UpdateCap the most a score counts for in them (Plain only).
	AnomalyWeight float64 `json:"anomalyWeight,omitempty"`
	UpdateCap     float64 `json:"updateCap,omitempty"`
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
	switch c.Transform {
	case "", Log:
	case Plain:
		if !(c.AnomalyWeight > 0 && c.AnomalyWeight <= 1) {
			return fmt.Errorf("normalization anomaly weight %v: want above 0, at most 1", c.AnomalyWeight)
		}
		if !(c.UpdateCap >= 1) || math.IsInf(c.UpdateCap, 0) {
			return fmt.Errorf("normalization update cap %v: want a finite number of at least 1", c.UpdateCap)
		}
	case Power:
		if !(c.Power >= MinPower && c.Power <= MaxPower) {
			return fmt.Errorf("normalization power %v: want %v to %v", c.Power, MinPower, MaxPower)
		}
		if c.RowPrior == nil || !c.RowPrior.finite() {
			return errors.New("normalization row prior is not a finite mean and standard deviation")
		}
	default:
		return fmt.Errorf("normalization transform %q is not %s, %s or %s", c.Transform, Plain, Power, Log)
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
	case !c.Prior.finite():
		return errors.New("normalization prior is not a finite mean and standard deviation")
	}
	return nil
}

func (p Prior) finite() bool {
	return !math.IsNaN(p.Mean) && !math.IsInf(p.Mean, 0) && p.Std >= 0 && !math.IsInf(p.Std, 0)
}

func (c *Config) power() bool { return c.Transform == Power }

func (c *Config) plain() bool { return c.Transform == Plain }

// minStd is the transform's floor of a standard deviation.
func (c *Config) minStd() float64 {
	switch {
	case c.plain():
		return MinPlainStd
	case c.power():
		return MinPowerStd
	}
	return MinStd
}

// State is one entity's: the weighted mean and variance of y of the short mean and
// of the newest score, their weight so far, and the newest scores in a ring. The zero
// State starts from the priors.
type State struct {
	short, row  moments
	n           int32
	pos, filled uint8
	// run counts rows whose rise was clipped, less those since that were not (Power).
	run  uint16
	ring [MaxShortWindow]float32
}

type moments struct{ mean, variance float64 }

// Next scores u (raw / threshold, the network's score) for the entity whose state is
// s, then folds it into s: the score compares u with the entity's past, not with
// itself.
func (c *Config) Next(s *State, u float64) float64 {
	y, yRow := c.push(s, u)
	score := c.score(s.short, y)
	if c.power() {
		score = max(score, c.score(s.row, yRow))
	}
	s.n = min(s.n+1, int32(c.LongWindow))
	a := 1 / float64(s.n)
	switch {
	case c.plain():
		// The short mean is tested against the scores' own distribution, which
		// anomalies move little.
		if score > 1 {
			a *= c.AnomalyWeight
		}
		c.update(&s.short, min(yRow, c.UpdateCap), a, math.Inf(1))
		return score
	case !c.power():
		c.update(&s.short, y, a, Clip)
		return score
	}
	// A rise that lasts is the new normal: every row it lasts widens the clip, so
	// the state learns it within a few dozen rows, where one row or a short burst
	// moves it by at most PowerClip standard deviations a row.
	clip := PowerClip * (1 + float64(s.run)/(SustainShare*float64(c.LongWindow)))
	if yRow-s.row.mean > clip*max(math.Sqrt(s.row.variance), c.minStd()) {
		s.run = min(s.run+1, math.MaxUint16)
	} else if s.run > 0 {
		s.run-- // a row back inside the clip does not end a lasting rise
	}
	c.update(&s.short, y, a, clip)
	c.update(&s.row, yRow, a, clip)
	return score
}

// push adds u to s's ring and returns y of the ring's mean and of u alone.
func (c *Config) push(s *State, u float64) (y, yRow float64) {
	if s.n == 0 {
		s.short = moments{c.Prior.Mean, c.Prior.Std * c.Prior.Std}
		if c.RowPrior != nil {
			s.row = moments{c.RowPrior.Mean, c.RowPrior.Std * c.RowPrior.Std}
		}
		s.n = int32(min(PriorRows, c.LongWindow))
	}
	if !(u >= 0) { // NaN or negative: no score is below 0
		u = 0
	}
	u = min(u, maxScore)
	s.ring[s.pos] = float32(u)
	s.pos = uint8((int(s.pos) + 1) % c.ShortWindow)
	s.filled = uint8(min(int(s.filled)+1, c.ShortWindow))
	var sum float64
	for _, v := range s.ring[:s.filled] {
		sum += float64(v)
	}
	m := sum / float64(s.filled)
	switch {
	case c.plain():
		return m, u
	case c.power():
		return math.Pow(m, c.Power), math.Pow(u, c.Power)
	}
	return math.Log(m + Offset), 0
}

// score is log(Q) / log(Target) for y under m.
func (c *Config) score(m moments, y float64) float64 {
	z := (y - m.mean) / max(math.Sqrt(m.variance), c.minStd())
	return LogUpperTail(z) / math.Log(c.Target)
}

// update folds y into m with weight a.
func (c *Config) update(m *moments, y, a, clip float64) {
	// A rise counts for at most clip standard deviations: one outage must not widen
	// the variance so far that the anomalies after it go unseen. A lasting change
	// still moves the mean and widens the variance, only more slowly. Falls are never
	// anomalies and count in full, as in the prior.
	d := min(y-m.mean, clip*max(math.Sqrt(m.variance), c.minStd()))
	m.mean += a * d
	m.variance = (1 - a) * (m.variance + a*d*d)
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

// SetPriors measures y over runs of calibration scores (threshold units, each run in
// time order; 1 is their 1 - Target quantile) and makes their distributions the priors
// every entity starts from; with Transform Power it first finds the power under which
// u = 1 lies at the Gaussian tail of Target from the newest scores' mean. Both read
// the scores as a State does at rest, with rises clipped: the stage's threshold on
// rows like the calibration rows is then the calibrated one.
func (c *Config) SetPriors(runs [][]float64) {
	if c.power() {
		c.Power = c.fitPower(runs)
	}
	var short, row []float64
	for _, run := range runs {
		s := State{n: 1}
		for _, u := range run {
			y, yRow := c.push(&s, u)
			short = append(short, y)
			row = append(row, yRow)
		}
	}
	c.Prior = c.moments(short)
	if c.plain() {
		c.Prior = c.moments(row)
	}
	if c.power() {
		p := c.moments(row)
		c.RowPrior = &p
	}
}

// fitSample bounds how many scores the power is fitted on.
const fitSample = 50_000

// fitPower is the power p at which (1 - mean) / std of u^p over the runs is the z of
// Target. The z grows with p on right-skewed scores, so a bisection finds it; where
// none fits, the bound nearest to fitting.
func (c *Config) fitPower(runs [][]float64) float64 {
	var us []float64
	for _, run := range runs {
		us = append(us, run...)
	}
	if len(us) > fitSample { // evenly spaced, in time order within each run
		step := float64(len(us)) / fitSample
		for i := range fitSample {
			us[i] = us[int(float64(i)*step)]
		}
		us = us[:fitSample]
	}
	want := math.Sqrt2 * math.Erfcinv(2*c.Target)
	ys := make([]float64, len(us))
	z := func(p float64) float64 {
		for i, u := range us {
			ys[i] = math.Pow(min(max(u, 0), maxScore), p)
		}
		m := c.moments(ys)
		if m.Rows < 2 || !(m.Std > 0) {
			return math.NaN()
		}
		return (1 - m.Mean) / m.Std
	}
	lo, hi := float64(MinPower), float64(MaxPower)
	zlo, zhi := z(lo), z(hi)
	switch {
	case math.IsNaN(zlo) || math.IsNaN(zhi):
		return DefaultPower
	case zlo >= want:
		return lo
	case zhi <= want:
		return hi
	}
	for range 30 {
		mid := (lo + hi) / 2
		if z(mid) < want {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// moments is the mean and standard deviation of ys as a State's updates leave them at
// rest (transform Power): rises clipped at PowerClip standard deviations, so the mean is
// where the clipped deviations average 0 and the variance their mean square. With
// transforms Plain and Log, the plain mean and standard deviation.
func (c *Config) moments(ys []float64) Prior {
	var w welford
	for _, y := range ys {
		w.add(y)
	}
	if w.n == 0 {
		if c.power() || c.plain() {
			return Prior{Std: c.minStd()}
		}
		return Prior{Mean: math.Log(Offset), Std: MinStd}
	}
	mean, std := w.mean, math.Sqrt(w.m2/float64(w.n))
	if !c.power() {
		return Prior{Mean: mean, Std: std, Rows: w.n}
	}
	n := float64(len(ys))
	for range 100 {
		limit := PowerClip * max(std, c.minStd())
		var sum, sq float64
		for _, y := range ys {
			d := min(y-mean, limit)
			sum += d
			sq += d * d
		}
		shift, next := sum/n, math.Sqrt(sq/n)
		mean += shift
		done := math.Abs(shift) <= 1e-9*max(std, c.minStd()) && math.Abs(next-std) <= 1e-9*std
		std = next
		if done {
			break
		}
	}
	return Prior{Mean: mean, Std: std, Rows: len(ys)}
}

// welford is a running mean and variance.
type welford struct {
	n        int
	mean, m2 float64
}

func (w *welford) add(y float64) {
	w.n++
	d := y - w.mean
	w.mean += d / float64(w.n)
	w.m2 += d * (y - w.mean)
}
