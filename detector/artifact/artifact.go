// Package artifact reads and writes kadet model files: one self-describing file holding
// the model's architecture, scaler, threshold, training metrics and weights, sealed by a
// SHA-256 digest.
//
// Layout (little endian):
//
//	magic "KADETMDL" | format version uint32 | metadata length uint32 | metadata JSON |
//	weights: float32 values of each tensor listed in the metadata, in order | SHA-256 of all before
package artifact

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/normalize"
	"github.com/kadet-dev/kadet/detector/preprocess"
	"github.com/kadet-dev/kadet/detector/seasonal"
)

// FormatVersion is the version this package writes and the newest it reads.
const FormatVersion = 1

// Magic opens every model file.
const Magic = "KADETMDL"

// MaxMetadata bounds the metadata section, so a corrupt length cannot ask for gigabytes.
const MaxMetadata = 64 << 20

const headerLen = len(Magic) + 4 + 4

// Metadata describes a model; it is the JSON section of the file.
type Metadata struct {
	// Name is the Detector the model was trained for.
	Name  string     `json:"name,omitempty"`
	Model model.Spec `json:"model"`
	// Stride is the step between the windows a sequence model scores.
	Stride int `json:"stride,omitempty"`
	// ScoringRule is how a sequence model turns window errors into row scores:
	// AllWindows (empty in older files) or Causal.
	ScoringRule string `json:"scoringRule,omitempty"`
	// Normalization is the stage that turns a sequence model's scores into anomaly
	// likelihoods per entity; absent (or None) scores with raw / threshold.
	Normalization *normalize.Config `json:"normalization,omitempty"`
	// Seasons divides a sequence model's raw scores by a factor per hour of the day
	// or week before they meet the threshold; absent when every hour is alike.
	Seasons *seasonal.Profile `json:"seasons,omitempty"`
	// TimestampColumn is the CSV column the rows' times were read from, which a
	// seasonal model's scoring of a CSV reads unless told another; empty otherwise.
	TimestampColumn string `json:"timestampColumn,omitempty"`
	// FlatLimits is, per feature of a sequence model, the longest run of one repeated
	// value that is not an anomaly (0: not checked); absent when none is checked.
	FlatLimits []int `json:"flatLimits,omitempty"`
	// Image is set when the features are the pixels of images of this size.
	Image    *ImageShape        `json:"image,omitempty"`
	Features []string           `json:"features"`
	Scaler   *preprocess.Scaler `json:"scaler"`
	// EntityScalers, in a model that scales each entity by its own statistics, are
	// the scalers fitted on each entity's training rows; an entity not among them is
	// scaled by a scaler of its own history (EntityScaler). Absent when one scaler
	// serves every entity.
	EntityScalers map[string]*preprocess.Scaler `json:"entityScalers,omitempty"`
	Threshold     Threshold                     `json:"threshold"`
	Training      TrainingInfo                  `json:"training"`
	Data          []preprocess.FeatureSummary   `json:"data"`
	// Calibration is what live scores are compared with; absent in files from before
	// drift checks.
	Calibration *Calibration `json:"calibration,omitempty"`
	// Prometheus records what a model trained on Prometheus saw.
	Prometheus *PrometheusSource `json:"prometheus,omitempty"`
	Tensors    []TensorInfo      `json:"tensors"`
	Kadet      string            `json:"kadetVersion"`
	CreatedAt  time.Time         `json:"createdAt"`
}

// PrometheusSource is the provenance of a model trained on Prometheus: the server, the
// queries and entity labels, the range read, and the rows it gave with their digest.
// No credential is recorded.
type PrometheusSource struct {
	URL          string                     `json:"url"`
	Queries      []contract.PrometheusQuery `json:"queries"`
	EntityLabels []string                   `json:"entityLabels,omitempty"`
	Start        time.Time                  `json:"start"`
	End          time.Time                  `json:"end"`
	Step         string                     `json:"step"`
	Rows         int                        `json:"rows"`
	Entities     int                        `json:"entities"`
	Dropped      int                        `json:"droppedRows"`
	Carried      int                        `json:"carriedValues"`
	// Digest is the sha256 of the rows read (timestamps, entities and values).
	Digest string `json:"digest"`
}

// ImageShape is the height and width of image inputs.
type ImageShape struct {
	Rows int `json:"rows"`
	Cols int `json:"cols"`
}

// Threshold is the calibrated raw-score threshold and how it was chosen.
type Threshold struct {
	Method    string  `json:"method"`
	Parameter float64 `json:"parameter,omitempty"`
	Value     float64 `json:"value"`
}

// Calibration summarises the scores the threshold was calibrated on.
type Calibration struct {
	// Scores is a sorted sample of the normal calibration scores, in score units (1 is
	// the threshold).
	Scores []float64 `json:"scores"`
	// ExpectedAnomalyRate is the share of normal rows the threshold is meant to flag:
	// what a percentile or contamination asks for, else the share of calibration scores
	// above the threshold.
	ExpectedAnomalyRate float64 `json:"expectedAnomalyRate"`
}

// TrainingInfo records how the model was trained.
type TrainingInfo struct {
	Seed            int64              `json:"seed"`
	Epochs          int                `json:"epochs"`
	BatchSize       int                `json:"batchSize"`
	LearningRate    float64            `json:"learningRate"`
	ValidationSplit float64            `json:"validationSplit"`
	Rows            int                `json:"rows"`
	Metrics         map[string]float64 `json:"metrics"`
	// History is the loss (and validation loss) of every epoch run.
	History []EpochLoss `json:"history,omitempty"`
}

// EpochLoss is one epoch's losses; ValLoss is absent without a validation split.
type EpochLoss struct {
	Epoch   int      `json:"epoch"`
	Loss    float64  `json:"loss"`
	ValLoss *float64 `json:"valLoss,omitempty"`
}

// TensorInfo names a weight tensor stored after the metadata.
type TensorInfo struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
}

// Model is a loaded model file.
type Model struct {
	Meta    Metadata
	Network *model.Network
	// Digest is "sha256:<hex>" of the file.
	Digest string
}

// Encode serialises meta and net. meta.Tensors is filled from net.
func Encode(meta Metadata, net *model.Network) ([]byte, string, error) {
	meta.Tensors = meta.Tensors[:0]
	for _, p := range net.Params {
		meta.Tensors = append(meta.Tensors, TensorInfo{Name: p.Name, Shape: p.Shape})
	}
	js, err := json.Marshal(meta)
	if err != nil {
		return nil, "", fmt.Errorf("encoding model metadata: %w", err)
	}
	var buf bytes.Buffer
	buf.WriteString(Magic)
	_ = binary.Write(&buf, binary.LittleEndian, uint32(FormatVersion))
	_ = binary.Write(&buf, binary.LittleEndian, uint32(len(js)))
	buf.Write(js)
	for _, p := range net.Params {
		_ = binary.Write(&buf, binary.LittleEndian, p.Data)
	}
	sum := sha256.Sum256(buf.Bytes())
	buf.Write(sum[:])
	return buf.Bytes(), "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Decode parses and verifies a model file: magic, version, digest, metadata and every
// tensor's shape against the architecture. A bad file gets an error saying what is
// wrong with it, never a panic.
func Decode(b []byte) (*Model, error) {
	if len(b) < len(Magic) || string(b[:len(Magic)]) != Magic {
		return nil, errors.New("not a kadet model file (bad magic number)")
	}
	if len(b) < headerLen {
		return nil, errors.New("model file is truncated: header incomplete")
	}
	version := binary.LittleEndian.Uint32(b[8:12])
	if version > FormatVersion {
		return nil, fmt.Errorf("model file format version %d is newer than this detector reads (%d): upgrade kadet", version, FormatVersion)
	}
	if version == 0 {
		return nil, errors.New("model file format version 0 is invalid")
	}
	if len(b) < headerLen+sha256.Size {
		return nil, errors.New("model file is truncated: no digest")
	}
	body, stored := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	sum := sha256.Sum256(body)
	if !bytes.Equal(sum[:], stored) {
		return nil, errors.New("model file is corrupt or truncated: SHA-256 digest does not match its contents")
	}
	mlen := int(binary.LittleEndian.Uint32(b[12:16]))
	if mlen > MaxMetadata || headerLen+mlen > len(body) {
		return nil, fmt.Errorf("model file metadata length %d exceeds the file", mlen)
	}
	var meta Metadata
	dec := json.NewDecoder(bytes.NewReader(body[headerLen : headerLen+mlen]))
	if err := dec.Decode(&meta); err != nil {
		return nil, fmt.Errorf("model file metadata is not valid JSON: %w", err)
	}
	weights := body[headerLen+mlen:]
	params := make([]model.Param, 0, len(meta.Tensors))
	off := 0
	for _, t := range meta.Tensors {
		n := 1
		for _, s := range t.Shape {
			if s <= 0 || s > math.MaxInt32 || n > math.MaxInt32/s {
				return nil, fmt.Errorf("model file tensor %s has invalid shape %v", t.Name, t.Shape)
			}
			n *= s
		}
		if off+4*n > len(weights) {
			return nil, fmt.Errorf("model file tensor %s%v runs past the end of the weights", t.Name, t.Shape)
		}
		data := make([]float32, n)
		_ = binary.Read(bytes.NewReader(weights[off:off+4*n]), binary.LittleEndian, data)
		off += 4 * n
		params = append(params, model.Param{Name: t.Name, Shape: t.Shape, Data: data})
	}
	if off != len(weights) {
		return nil, fmt.Errorf("model file has %d bytes of weights beyond its tensors", len(weights)-off)
	}
	net, err := model.FromParams(meta.Model, params)
	if err != nil {
		return nil, fmt.Errorf("model file does not match its architecture: %w", err)
	}
	if err := meta.check(); err != nil {
		return nil, fmt.Errorf("model file metadata: %w", err)
	}
	return &Model{Meta: meta, Network: net, Digest: "sha256:" + hex.EncodeToString(sum[:])}, nil
}

func (m *Metadata) check() error {
	if len(m.Features) != m.Model.Features() {
		return fmt.Errorf("%d feature names for %d features per row", len(m.Features), m.Model.Features())
	}
	if m.Model.Sequence() && (m.Stride < 1 || m.Stride > m.Model.Window) {
		return fmt.Errorf("window stride %d for windows of %d rows", m.Stride, m.Model.Window)
	}
	switch m.ScoringRule {
	case "", contract.ScoringAllWindows, contract.ScoringCausal:
	default:
		return fmt.Errorf("scoring rule %q is not %s or %s", m.ScoringRule, contract.ScoringAllWindows, contract.ScoringCausal)
	}
	if n := m.Normalization; n != nil {
		if err := n.Check(); err != nil {
			return err
		}
		if n.Enabled() && !m.Model.Sequence() {
			return fmt.Errorf("normalization %s is for sequence models, not a %s over rows", n.Method, m.Model.Type)
		}
	}
	if p := m.Seasons; p != nil {
		if !m.Model.Sequence() {
			return fmt.Errorf("seasons are for sequence models, not a %s over rows", m.Model.Type)
		}
		if err := p.Validate(); err != nil {
			return err
		}
	}
	if m.FlatLimits != nil {
		if !m.Model.Sequence() || len(m.FlatLimits) != len(m.Features) {
			return fmt.Errorf("%d flat-line limits for a %s model of %d features", len(m.FlatLimits), m.Model.Type, len(m.Features))
		}
		for j, l := range m.FlatLimits {
			if l < 0 {
				return fmt.Errorf("flat-line limit %d of feature %q is negative", l, m.Features[j])
			}
		}
	}
	if m.Scaler == nil {
		return errors.New("no scaler")
	}
	if m.Image != nil && (m.Image.Rows <= 0 || m.Image.Cols <= 0 || m.Image.Rows*m.Image.Cols != m.Model.Inputs) {
		return fmt.Errorf("image shape %dx%d does not match %d inputs", m.Image.Rows, m.Image.Cols, m.Model.Inputs)
	}
	if err := m.Scaler.Validate(m.Model.Features()); err != nil {
		return err
	}
	for e, sc := range m.EntityScalers {
		if sc == nil {
			return fmt.Errorf("entity %q has no scaler", e)
		}
		if err := sc.Validate(m.Model.Features()); err != nil {
			return fmt.Errorf("entity %q: %w", e, err)
		}
	}
	if !(m.Threshold.Value > 0) || math.IsInf(m.Threshold.Value, 0) {
		return fmt.Errorf("threshold %v is not a positive number", m.Threshold.Value)
	}
	return nil
}

// ScalesByEntity says whether the model scales each entity by its own statistics.
func (m *Metadata) ScalesByEntity() bool { return m.EntityScalers != nil }

// EntityScaler is the scaler of entity's rows: the model-wide one, unless the model
// scales by entity; then the entity's from training, or, for an entity the model has
// not seen (known false), one fitted on its history: the rows of x, its newest rows
// before those it is scored on. An error says what is wrong with those rows.
func (m *Metadata) EntityScaler(entity string, history []float32) (sc *preprocess.Scaler, known bool, err error) {
	if !m.ScalesByEntity() {
		return m.Scaler, true, nil
	}
	if sc := m.EntityScalers[entity]; sc != nil {
		return sc, true, nil
	}
	if sc, err = m.Scaler.FitEntity(history, nil); err != nil {
		return nil, false, err
	}
	return sc, false, nil
}

// FileName is the model file's name inside its version folder.
const FileName = "model.kadet"

// ReadMeta reads only the header and metadata of a model file: what a listing of
// versions needs, without the weights or the digest check Load does.
func ReadMeta(path string) (*Metadata, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, headerLen)
	if _, err := io.ReadFull(f, head); err != nil || string(head[:len(Magic)]) != Magic {
		return nil, errors.New("not a kadet model file (bad magic number or truncated header)")
	}
	mlen := int(binary.LittleEndian.Uint32(head[12:16]))
	if mlen > MaxMetadata {
		return nil, fmt.Errorf("model file metadata length %d is too large", mlen)
	}
	body := make([]byte, mlen)
	if _, err := io.ReadFull(f, body); err != nil {
		return nil, fmt.Errorf("model file metadata is truncated: %w", err)
	}
	var meta Metadata
	if err := json.Unmarshal(body, &meta); err != nil {
		return nil, fmt.Errorf("model file metadata is not valid JSON: %w", err)
	}
	return &meta, nil
}

// MaxFileBytes bounds the model files Load reads: the largest networks the CRD admits
// stay under it, and a file beyond it is refused before it is read into memory.
const MaxFileBytes = 8 << 30

// Load reads and verifies a model file.
func Load(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		path = filepath.Join(path, FileName)
		return Load(path)
	}
	if st.Size() > MaxFileBytes {
		return nil, fmt.Errorf("%s: the model file is %d MiB, more than the %d MiB a model file may be", path, st.Size()>>20, MaxFileBytes>>20)
	}
	// The file may grow while it is read; no more than the limit is.
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err == nil && int64(len(b)) > MaxFileBytes {
		err = fmt.Errorf("the model file grew past the %d MiB a model file may be while it was read", MaxFileBytes>>20)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	m, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
