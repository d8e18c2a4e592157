package serve

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// The scanner's own decimal conversion gives exactly the float32 that
// strconv.ParseFloat (encoding/json's parser) gives, on the numbers clients send:
// shortest float32 and float64 forms, fixed decimals of every length around the
// 15-digit limit of the exact path, and exponents (left to strconv).
func TestNumberMatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var inputs []string
	for i := 0; i < 20000; i++ {
		v := rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)-6))
		inputs = append(inputs,
			strconv.FormatFloat(float64(float32(v)), 'f', -1, 32),
			strconv.FormatFloat(v, 'f', -1, 64),
			strconv.FormatFloat(v, 'f', rng.IntN(18), 64),
			strconv.FormatFloat(v, 'e', -1, 64),
			strconv.FormatFloat(float64(rng.Uint32()), 'f', 0, 64),
		)
	}
	inputs = append(inputs, "0", "-0", "0.0", "1", "123456789012345", "1234567890123456",
		"0.000000000000001", "999999999999999.9", "9007199254740993", "3.4028234e38", "1e-46")
	for _, in := range inputs {
		p := &scanner{b: []byte(in)}
		got, ok := p.number()
		want, err := strconv.ParseFloat(in, 64)
		if err != nil || !ok || p.i != len(in) {
			t.Fatalf("%q: ok %v, read %d bytes, strconv error %v", in, ok, p.i, err)
		}
		if math.Float32bits(got) != math.Float32bits(float32(want)) {
			t.Fatalf("%q: scanner %v, strconv %v", in, got, float32(want))
		}
	}
}

func BenchmarkFastInstancesMNIST(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	body := []byte(`{"instances":[[`)
	for j := 0; j < 784; j++ {
		if j > 0 {
			body = append(body, ',')
		}
		v := float32(0)
		if rng.IntN(5) == 0 {
			v = float32(rng.IntN(256)) / 255
		}
		body = strconv.AppendFloat(body, float64(v), 'f', -1, 32)
	}
	body = append(body, "]]}"...)
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		if _, _, ok := fastInstances(body, 784, 10); !ok {
			b.Fatal("not parsed")
		}
	}
}
