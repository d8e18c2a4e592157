package artifact

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/preprocess"
)

func sample(t testing.TB) (Metadata, *model.Network) {
	t.Helper()
	spec := model.Spec{Type: model.Autoencoder, Inputs: 3, Hidden: []int{4}, Latent: 2, Activation: model.ReLU}
	net, err := model.New(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	x := []float32{1, 2, 3, 4, 5, 6}
	sc, _ := preprocess.Fit(preprocess.Standardize, x, 3)
	return Metadata{
		Model: spec, Features: []string{"a", "b", "c"}, Scaler: sc,
		Threshold: Threshold{Method: "Percentile", Parameter: 99, Value: 0.5},
		Training:  TrainingInfo{Seed: 1, Epochs: 2, Metrics: map[string]float64{"loss": 0.1}},
		Data:      preprocess.Summarize(x, []string{"a", "b", "c"}),
		Kadet:     "test", CreatedAt: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC),
	}, net
}

func TestRoundTripIsExact(t *testing.T) {
	meta, net := sample(t)
	b, digest, err := Encode(meta, net)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Digest != digest || !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("digest %s vs %s", m.Digest, digest)
	}
	for i, p := range net.Params {
		if !bytes.Equal(f32bytes(p.Data), f32bytes(m.Network.Params[i].Data)) {
			t.Fatalf("tensor %s changed in the round trip", p.Name)
		}
	}
	again, _, _ := Encode(m.Meta, m.Network)
	if !bytes.Equal(again, b) {
		t.Fatal("re-encoding a decoded model changed its bytes")
	}
}

func f32bytes(v []float32) []byte {
	var buf bytes.Buffer
	_ = binary.Write(&buf, binary.LittleEndian, v)
	return buf.Bytes()
}

func TestBadFilesAreRefusedWithTheirOwnMessage(t *testing.T) {
	meta, net := sample(t)
	good, _, _ := Encode(meta, net)
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	future := bytes.Clone(good)
	binary.LittleEndian.PutUint32(future[8:12], FormatVersion+1)
	tests := map[string]struct {
		b    []byte
		want string
	}{
		"flipped byte":   {flipped, "digest does not match"},
		"truncated":      {good[:len(good)-100], "digest does not match"},
		"header only":    {good[:12], "truncated"},
		"future version": {future, "format version 2 is newer than this detector reads (1)"},
		"not a model":    {[]byte("hello, world, this is a csv"), "not a kadet model file"},
		"empty":          {nil, "not a kadet model file"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(tt.b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want %q", err, tt.want)
			}
		})
	}
	// A well-sealed file with a scoring rule this detector does not know.
	ruled := meta
	ruled.ScoringRule = "Newest"
	b, _, _ := Encode(ruled, net)
	if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), `scoring rule "Newest"`) {
		t.Fatalf("unknown scoring rule: %v", err)
	}
	// A well-sealed file whose tensors do not fit its architecture.
	meta.Model.Hidden = []int{5}
	b, _, _ = Encode(meta, net)
	if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), "does not match its architecture") {
		t.Fatalf("mismatched architecture: %v", err)
	}
}

func TestSaveIsAtomicAndVersioned(t *testing.T) {
	dir := t.TempDir()
	meta, net := sample(t)
	b, digest, _ := Encode(meta, net)
	v1 := NewVersion(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), digest)
	v2 := NewVersion(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), digest)
	for _, v := range []string{v2, v1} {
		if _, err := Save(dir, v, map[string][]byte{FileName: b}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Save(dir, v1, map[string][]byte{FileName: b}); err == nil {
		t.Fatal("an existing version was overwritten")
	}
	// Leftovers of a killed save are not versions.
	if err := os.Mkdir(filepath.Join(dir, ".partial-x"), 0o755); err != nil {
		t.Fatal(err)
	}
	vs, err := Versions(dir)
	if err != nil || len(vs) != 2 || vs[0] != v1 || vs[1] != v2 {
		t.Fatalf("versions %v %v", vs, err)
	}
	newest, _ := Path(dir, "")
	if m, err := Load(newest); err != nil || m.Digest != digest || !strings.Contains(newest, v2) {
		t.Fatalf("newest %s: %v", newest, err)
	}
	if _, err := Path(dir, "../etc"); err == nil {
		t.Fatal("a path outside the model directory was accepted as a version")
	}
}

// FuzzDecode: no input makes Decode panic, and whatever it accepts re-encodes to a file
// it accepts again. With seal set the fuzzer's bytes get a valid digest appended, so
// the parsing behind the digest check is fuzzed too.
func FuzzDecode(f *testing.F) {
	meta, net := sample(f)
	good, _, _ := Encode(meta, net)
	body := good[:len(good)-sha256.Size]
	f.Add(good, false)
	f.Add(body, true)
	f.Add(body[:40], true)
	f.Add([]byte(Magic+"\x01\x00\x00\x00\xff\xff\xff\xff"), true)
	f.Fuzz(func(t *testing.T, b []byte, seal bool) {
		if seal {
			sum := sha256.Sum256(b)
			b = append(bytes.Clone(b), sum[:]...)
		}
		m, err := Decode(b)
		if err != nil {
			return
		}
		again, _, err := Encode(m.Meta, m.Network)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("re-encoded model does not decode: %v", err)
		}
	})
}

func TestEntityScalers(t *testing.T) {
	meta, net := sample(t)
	// One scaler for every entity: whatever the entity, the model's.
	if sc, known, err := meta.EntityScaler("pod-a", nil); sc != meta.Scaler || !known || err != nil {
		t.Fatalf("model-wide: %v %v %v", sc, known, err)
	}
	a, _ := preprocess.Fit(preprocess.Standardize, []float32{10, 20, 30, 12, 22, 32}, 3)
	meta.EntityScalers = map[string]*preprocess.Scaler{"pod-a": a}
	b, _, err := Encode(meta, net)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Meta.ScalesByEntity() {
		t.Fatal("entity scalers lost in the file")
	}
	sc, known, err := m.Meta.EntityScaler("pod-a", nil)
	if err != nil || !known || sc.Offset[0] != 11 || sc.Scale[0] != 1 {
		t.Errorf("pod-a: %+v %v %v; want its own scaler", sc, known, err)
	}
	// An entity not seen in training: scaled by its history.
	sc, known, err = m.Meta.EntityScaler("pod-b", []float32{100, 0, 5, 104, 0, 5})
	if err != nil || known || sc.Offset[0] != 102 || sc.Scale[0] != 2 {
		t.Errorf("pod-b: %+v %v %v; want offset 102, scale 2 from its history", sc, known, err)
	}
	if _, _, err := m.Meta.EntityScaler("pod-c", nil); err == nil {
		t.Error("an unseen entity without history got a scaler")
	}
	// A file whose entity scaler is broken is refused, naming the entity.
	for name, bad := range map[string]*preprocess.Scaler{
		"zero scale":  {Kind: preprocess.Standardize, Offset: []float32{0, 0, 0}, Scale: []float32{1, 0, 1}},
		"two columns": {Kind: preprocess.Standardize, Offset: []float32{0, 0}, Scale: []float32{1, 1}},
		"missing":     nil,
	} {
		meta.EntityScalers = map[string]*preprocess.Scaler{"pod-x": bad}
		b, _, _ := Encode(meta, net)
		if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), `entity "pod-x"`) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A model file beyond MaxFileBytes is refused before a byte of it is read, with its
// size and the limit (a sparse file: nothing is written to disk).
func TestOversizedFileIsRefusedUnread(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxFileBytes + 1<<20); err != nil {
		t.Skipf("no sparse file here: %v", err)
	}
	f.Close()
	_, err = Load(path)
	if err == nil || !strings.Contains(err.Error(), "the model file is 8193 MiB, more than the 8192 MiB a model file may be") {
		t.Fatalf("an oversized file: %v", err)
	}
}
