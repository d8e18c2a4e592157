package contract

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestResolvedModelFillsPresetsPerType(t *testing.T) {
	tests := []struct {
		in   Model
		src  Source
		want Model
	}{
		{Model{Type: Autoencoder}, SourceRows, Model{Type: Autoencoder, HiddenLayers: []int32{64, 32}, LatentSize: new(int32(8)), Activation: "ReLU"}},
		{Model{Type: MLPClassifier, Activation: "Tanh"}, SourceRows, Model{Type: MLPClassifier, HiddenLayers: []int32{64, 32}, Activation: "Tanh"}},
		{Model{Type: ConvAutoencoder}, SourceImages, Model{Type: ConvAutoencoder, Channels: []int32{16, 32}, KernelSize: new(int32(3)),
			LatentSize: new(int32(32)), Activation: "ReLU"}},
		{Model{Type: ConvAutoencoder}, SourceRows, Model{Type: ConvAutoencoder, Channels: []int32{16, 32}, KernelSize: new(int32(3)),
			LatentSize: new(int32(32)), Activation: "ReLU", ScoringRule: ScoringCausal}},
		{Model{Type: ConvAutoencoder}, SourceStream, Model{Type: ConvAutoencoder, Channels: []int32{16, 32}, KernelSize: new(int32(3)),
			LatentSize: new(int32(32)), Activation: "ReLU", ScoringRule: ScoringCausal}},
		{Model{Type: ConvAutoencoder, Resampling: ConvStrided}, SourceRows, Model{Type: ConvAutoencoder, Channels: []int32{16, 32},
			KernelSize: new(int32(3)), Activation: "ReLU", Resampling: ConvStrided, ScoringRule: ScoringCausal}},
		{Model{Type: LSTMAutoencoder, Window: new(int32(8))}, SourceRows, Model{Type: LSTMAutoencoder, HiddenLayers: []int32{32},
			LatentSize: new(int32(16)), Window: new(int32(8)), Stride: new(int32(1)), Activation: "ReLU", ScoringRule: ScoringCausal}},
		{Model{Type: LSTMAutoencoder, ScoringRule: ScoringAllWindows}, SourceStream, Model{Type: LSTMAutoencoder, HiddenLayers: []int32{32},
			LatentSize: new(int32(16)), Window: new(int32(32)), Stride: new(int32(1)), Activation: "ReLU", ScoringRule: ScoringAllWindows}},
		{Model{Type: Autoencoder}, SourceStream, Model{Type: Autoencoder, HiddenLayers: []int32{64, 32}, LatentSize: new(int32(8)), Activation: "ReLU"}},
		{Model{Type: Autoencoder, HiddenLayers: []int32{4}, LatentSize: new(int32(2))}, SourceRows,
			Model{Type: Autoencoder, HiddenLayers: []int32{4}, LatentSize: new(int32(2)), Activation: "ReLU"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.in.Type), func(t *testing.T) {
			if got := ResolvedModel(tt.in, tt.src); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ResolvedModel(%+v) =\n%+v\nwant\n%+v", tt.in, got, tt.want)
			}
		})
	}
	// The input's slices are not shared with the result.
	in := Model{Type: Autoencoder, HiddenLayers: []int32{4}}
	ResolvedModel(in, SourceRows).HiddenLayers[0] = 99
	if in.HiddenLayers[0] != 4 {
		t.Error("ResolvedModel shares its input's hidden layers")
	}
}

func TestResolvedThresholdFillsTheMethodsParameter(t *testing.T) {
	for _, tt := range []struct {
		in   Threshold
		want Threshold
	}{
		{Threshold{}, Threshold{Method: ThresholdPercentile, Percentile: new(99.0)}},
		{Threshold{Method: ThresholdPercentile}, Threshold{Method: ThresholdPercentile, Percentile: new(99.0)}},
		{Threshold{Method: ThresholdMeanStd}, Threshold{Method: ThresholdMeanStd, StdDevs: new(3.0)}},
		{Threshold{Method: ThresholdContamination}, Threshold{Method: ThresholdContamination, Contamination: new(0.01)}},
		{Threshold{Method: ThresholdPercentile, Percentile: new(95.0)}, Threshold{Method: ThresholdPercentile, Percentile: new(95.0)}},
		{Threshold{Method: ThresholdFixed, Value: new(0.5)}, Threshold{Method: ThresholdFixed, Value: new(0.5)}},
	} {
		if got := ResolvedThreshold(tt.in, SourceRows); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ResolvedThreshold(%+v) = %+v; want %+v", tt.in, got, tt.want)
		}
	}
	// A stream aims at one false alarm in 10,000 rows unless the spec says otherwise.
	if got := *ResolvedThreshold(Threshold{}, SourceStream).Percentile; got != 99.99 {
		t.Errorf("stream percentile %v; want 99.99", got)
	}
	if got := *ResolvedThreshold(Threshold{Percentile: new(99.5)}, SourceStream).Percentile; got != 99.5 {
		t.Errorf("stream with percentile 99.5 resolved to %v", got)
	}
	if got := ResolvedThreshold(Threshold{Method: ThresholdMeanStd}, SourceStream); got.Percentile != nil {
		t.Errorf("MeanStd on a stream got a percentile %v", *got.Percentile)
	}
}

func TestParseTrainingResult(t *testing.T) {
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	ok, _ := json.Marshal(TrainingResult{Version: "v1", Digest: "sha256:ab", Threshold: 0.5, TrainedAt: &at})
	for _, tt := range []struct {
		name, msg, wantErr string
	}{
		{"result", string(ok), ""},
		{"failure", `{"error": "bad data"}`, ""},
		{"not JSON", "panic: oops", "not a training result"},
		{"no digest", `{"version": "v1"}`, "lacks version or digest"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseTrainingResult(tt.msg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "result" && (r.Version != "v1" || !r.TrainedAt.Equal(at)) {
				t.Errorf("parsed %+v", r)
			}
		})
	}
}

func TestHashChangesWithTheRequest(t *testing.T) {
	a := TrainingRequest{APIVersion: APIVersion, Kind: Kind, Model: Model{Type: Autoencoder}}
	b := a
	b.RetrainToken = "1"
	ha, _ := a.Hash()
	hb, _ := b.Hash()
	ha2, _ := a.Hash()
	if ha != ha2 || ha == hb || len(ha) != 10 {
		t.Errorf("hashes %q %q %q", ha, ha2, hb)
	}
	if err := a.CheckVersion(); err != nil {
		t.Error(err)
	}
	a.APIVersion = "v1"
	if err := a.CheckVersion(); err == nil {
		t.Error("a request of another version passed")
	}
}

func TestInsufficientDataMessage(t *testing.T) {
	for _, tt := range []struct {
		d    InsufficientData
		want string
		wait time.Duration
	}{
		{InsufficientData{Rows: 312, Needed: 1000, Entities: 1, Step: "1m0s"}, "312 of 1,000 rows; enough in about 11h at step 1m", 688 * time.Minute},
		{InsufficientData{Rows: 40, Needed: 100, Entities: 3, Step: "30s"}, "40 of 100 rows; enough in about 10m at step 30s", 20 * 30 * time.Second},
		{InsufficientData{Rows: 0, Needed: 320, Entities: 0, Step: "1s"}, "0 of 320 rows; enough in about 5m at step 1s", 320 * time.Second},
		{InsufficientData{Rows: 90, Needed: 100, Step: "1h0m0s"}, "90 of 100 rows; enough in about 10h at step 1h", 10 * time.Hour},
	} {
		if got := tt.d.Message(); got != tt.want {
			t.Errorf("%+v: %q; want %q", tt.d, got, tt.want)
		}
		if got := tt.d.Wait(); got != tt.wait {
			t.Errorf("%+v: wait %s; want %s", tt.d, got, tt.wait)
		}
	}
}

func TestResolvedScaleBy(t *testing.T) {
	prom := func(labels ...string) ResolvedData {
		return ResolvedData{Prometheus: &ResolvedPrometheus{EntityLabels: labels}}
	}
	for _, tt := range []struct {
		name    string
		scaleBy string
		data    ResolvedData
		want    string
	}{
		{"default, entity labels", "", prom("pod"), ScaleByEntity},
		{"default, one series", "", prom(), ""},
		{"default, csv entity column", "", ResolvedData{CSV: &ResolvedCSV{EntityColumn: "host"}}, ScaleByEntity},
		{"default, csv", "", ResolvedData{CSV: &ResolvedCSV{}}, ""},
		{"default, images", "", ResolvedData{Images: &ResolvedImages{}}, ""},
		{"Model asked", ScaleByModel, prom("pod"), ""},
		{"Entity asked", ScaleByEntity, prom("pod"), ScaleByEntity},
		{"Entity without entities", ScaleByEntity, prom(), ""},
	} {
		if got := ResolvedScaleBy(tt.scaleBy, tt.data.NamesEntities()); got != tt.want {
			t.Errorf("%s: %q; want %q", tt.name, got, tt.want)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		"https://prom.example:9090/api":                                                 "https://prom.example:9090/api",
		"https://alice:hunter2@prom.example/x":                                          "https://redacted@prom.example/x",
		"https://bucket.s3.amazonaws.com/data.csv?X-Amz-Signature=abc&X-Amz-Expires=60": "https://bucket.s3.amazonaws.com/data.csv?X-Amz-Expires=redacted&X-Amz-Signature=redacted",
		`query x failed: Get "https://alice:xxxxx@h/q?token=t0k": refused`:              `query x failed: Get "https://redacted@h/q?token=redacted": refused`,
		"csv from http://h/f.csv#frag, and /data/file.csv":                              "csv from http://h/f.csv, and /data/file.csv",
		"no url here": "no url here",
	} {
		if got := RedactURLs(in); got != want {
			t.Errorf("RedactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90m": 90 * time.Minute, "1.5h": 90 * time.Minute, "7d": 7 * 24 * time.Hour,
		"2w": 14 * 24 * time.Hour, "1d12h": 36 * time.Hour} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "7 days", "d"} {
		if _, err := ParseDuration(in); err == nil || !strings.Contains(err.Error(), "is not a duration (such as 90m, 24h or 7d)") {
			t.Errorf("%q: %v", in, err)
		}
	}
}
