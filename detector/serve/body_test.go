package serve

import (
	"bytes"
	"testing"
)

// readAll returns exactly the bytes sent whatever size was announced, and an announced
// size alone never makes it allocate more than preallocLimit.
func TestReadAll(t *testing.T) {
	big := make([]byte, 3*preallocLimit+17)
	for i := range big {
		big[i] = byte(i)
	}
	for _, tc := range []struct {
		name     string
		body     []byte
		announce int64
	}{
		{"as announced", big[:1000], 1000},
		{"larger than the preallocation", big, int64(len(big))},
		{"announced 8 MiB, sent 10 bytes", big[:10], 8 << 20},
		{"more than announced", big[:5000], 100},
		{"unknown length", big, -1},
		{"empty", nil, 0},
	} {
		got, err := readAll(bytes.NewReader(tc.body), tc.announce)
		if err != nil || !bytes.Equal(got, tc.body) {
			t.Errorf("%s: read %d bytes (%v), want %d", tc.name, len(got), err, len(tc.body))
		}
		if tc.announce > preallocLimit && len(tc.body) < preallocLimit && cap(got) > preallocLimit {
			t.Errorf("%s: holds %d bytes for a %d-byte body", tc.name, cap(got), len(tc.body))
		}
	}
}
