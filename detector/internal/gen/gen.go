// Package gen makes the fixtures the engine's tests share: small models, saved as
// training saves them. One place, so a change to the model file's contents changes
// every test's fixture alike.
package gen

import (
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/preprocess"
	"github.com/kadet-dev/kadet/detector/seasonal"
)

// ModelOption changes a generated model, given the rows its scaler was fitted on.
type ModelOption func(m *artifact.Model, rows []float32)

// Threshold sets the model's threshold (Fixed method).
func Threshold(v float64) ModelOption {
	return func(m *artifact.Model, _ []float32) { m.Meta.Threshold = artifact.Threshold{Method: "Fixed", Value: v} }
}

// Summarized keeps the summary of the rows, as drift checks need.
func Summarized() ModelOption {
	return func(m *artifact.Model, rows []float32) { m.Meta.Data = preprocess.Summarize(rows, m.Meta.Features) }
}

// Image marks the features as the pixels of rows x cols images.
func Image(rows, cols int) ModelOption {
	return func(m *artifact.Model, _ []float32) { m.Meta.Image = &artifact.ImageShape{Rows: rows, Cols: cols} }
}

// Seasons gives the model a factor per hour of the day (Seasonal Day): factors[h%len].
func Seasons(factors ...float32) ModelOption {
	return func(m *artifact.Model, _ []float32) {
		p := &seasonal.Profile{Period: seasonal.Day, Factors: make([]float32, 24)}
		for h := range p.Factors {
			p.Factors[h] = factors[h%len(factors)]
		}
		m.Meta.Seasons = p
	}
}

// Model is an untrained network of spec (seeded), named name, over features, with a
// scaler of kind fitted on rows (rows of len(features) values), and a Percentile
// threshold of 0.5 unless an option says otherwise.
func Model(t testing.TB, name string, spec model.Spec, seed int64, features []string, kind string, rows []float32, opts ...ModelOption) *artifact.Model {
	t.Helper()
	net, err := model.New(spec, seed)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := preprocess.Fit(kind, rows, len(features))
	if err != nil {
		t.Fatal(err)
	}
	meta := artifact.Metadata{
		Name: name, Model: spec, Features: features, Scaler: sc,
		Threshold: artifact.Threshold{Method: "Percentile", Parameter: 99, Value: 0.5},
		Kadet:     "test",
	}
	if spec.Sequence() {
		meta.Stride = 1
	}
	m := &artifact.Model{Network: net, Meta: meta}
	for _, o := range opts {
		o(m, rows)
	}
	return m
}

// Save writes m as a new version in dir, created at at, with extra files beside the
// model file (a report), and returns the version.
func Save(t testing.TB, dir string, m *artifact.Model, at time.Time, extra map[string][]byte) string {
	t.Helper()
	m.Meta.CreatedAt = at
	b, digest, err := artifact.Encode(m.Meta, m.Network)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{artifact.FileName: b}
	for name, content := range extra {
		files[name] = content
	}
	v := artifact.NewVersion(at, digest)
	if _, err := artifact.Save(dir, v, files); err != nil {
		t.Fatal(err)
	}
	m.Digest = digest
	return v
}
