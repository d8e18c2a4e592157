package serve

import (
	"math"
	"strconv"
	"unsafe"
)

// fastInstances parses the common request, {"instances": [[numbers...], ...]}, straight
// into float32 rows. Profiles of batch-1 requests showed encoding/json (and jsoniter,
// which allocates a string per number) spending more time on the 784 numbers of an
// MNIST image than the model spent scoring it; this scanner parses each number in
// place. It accepts only that one shape, with JSON's number grammar checked by
// strconv; anything else (records, other fields, a wrong width, a bad value, malformed
// JSON) returns ok == false, and encoding/json takes over to say what is wrong. The
// fuzz target checks that both agree on everything this accepts.
func fastInstances(body []byte, d, maxInstances int) (x []float32, n int, ok bool) {
	p := &scanner{b: body}
	if !p.consume('{') || !p.literal(`"instances"`) || !p.consume(':') || !p.consume('[') {
		return nil, 0, false
	}
	x = make([]float32, 0, d)
	for {
		if n == maxInstances || !p.consume('[') {
			return nil, 0, false
		}
		for j := 0; j < d; j++ {
			if j > 0 && !p.consume(',') {
				return nil, 0, false
			}
			v, ok := p.number()
			if !ok {
				return nil, 0, false
			}
			x = append(x, v)
		}
		if !p.consume(']') {
			return nil, 0, false
		}
		n++
		if p.consume(',') {
			continue
		}
		if !p.consume(']') || !p.consume('}') {
			return nil, 0, false
		}
		p.space()
		return x, n, p.i == len(p.b)
	}
}

type scanner struct {
	b []byte
	i int
}

func (p *scanner) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *scanner) consume(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *scanner) literal(s string) bool {
	p.space()
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// pow10 holds the powers of ten a float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// number reads a JSON number that fits a finite float32. A plain decimal of at most 15
// digits (every pixel of an image request) is converted here: its digits and the
// power of ten are exact float64s, so one division rounds correctly, as strconv's own
// fast path does; anything else goes to strconv.ParseFloat. Both give the float64
// encoding/json would, then float32 as the model uses.
func (p *scanner) number() (float32, bool) {
	p.space()
	start := p.i
	neg := p.i < len(p.b) && p.b[p.i] == '-'
	if neg {
		p.i++
	}
	var mant uint64
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		mant = mant*10 + uint64(p.b[p.i]-'0')
		p.i++
	}
	// JSON: at least one digit, and no leading zero before another digit.
	if p.i == digits || (p.b[digits] == '0' && p.i-digits > 1) {
		return 0, false
	}
	n, frac := p.i-digits, 0
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		f := p.i
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			mant = mant*10 + uint64(p.b[p.i]-'0')
			p.i++
		}
		if p.i == f {
			return 0, false
		}
		frac = p.i - f
		n += frac
	}
	exact := n <= 15 // mant < 10^15 < 2^53, and frac <= 15 < len(pow10); no overflow
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		exact = false
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		exp := p.i
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
		}
		if p.i == exp {
			return 0, false
		}
	}
	if exact {
		v := float64(mant) / pow10[frac]
		if neg {
			v = -v
		}
		return float32(v), true
	}
	tok := p.b[start:p.i]
	// The bytes outlive the call; ParseFloat keeps no reference to the string.
	v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(tok), len(tok)), 64)
	if err != nil || math.IsInf(v, 0) || math.Abs(v) > math.MaxFloat32 {
		return 0, false
	}
	return float32(v), true
}
