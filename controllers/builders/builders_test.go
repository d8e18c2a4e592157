package builders

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/detector/contract"
)

var cfg = Config{Image: "example.com/kadet:1", ImagePullPolicy: corev1.PullIfNotPresent}

func det(opts ...func(*kadetv1.Detector)) *kadetv1.Detector {
	d := &kadetv1.Detector{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "fraud", UID: "uid-1"},
		Spec: kadetv1.DetectorSpec{
			DataSourceRef: kadetv1.LocalObjectReference{Name: "tx"},
			Model:         kadetv1.ModelSpec{Type: kadetv1.Autoencoder},
			Training:      kadetv1.TrainingSpec{Epochs: 10, BatchSize: 32, LearningRate: 0.001},
		},
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

func csvDS(mutate func(*kadetv1.CSVSource)) *kadetv1.DataSource {
	c := &kadetv1.CSVSource{ConfigMapKeyRef: &kadetv1.ConfigMapKeyReference{Name: "tx-csv", Key: "tx.csv"}, Delimiter: ";"}
	if mutate != nil {
		mutate(c)
	}
	return &kadetv1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "tx"}, Spec: kadetv1.DataSourceSpec{CSV: c}}
}

func mustPlan(t *testing.T, d *kadetv1.Detector, ds *kadetv1.DataSource) *TrainingPlan {
	t.Helper()
	p, err := ResolveTraining(d, ds, "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolveTrainingData(t *testing.T) {
	pvc := &kadetv1.PVCFile{ClaimName: "datasets", Path: "mnist/train-images.gz"}
	tests := []struct {
		name       string
		ds         *kadetv1.DataSource
		wantFile   string
		wantLabels string
		wantMounts []string
	}{{
		name:       "csv from a ConfigMap key is mounted as a file",
		ds:         csvDS(nil),
		wantFile:   "/var/run/kadet/data/tx.csv",
		wantMounts: []string{"/var/run/kadet/data"},
	}, {
		name:       "csv from a PVC mounts the claim read-only",
		ds:         csvDS(func(c *kadetv1.CSVSource) { c.ConfigMapKeyRef, c.PersistentVolumeClaim = nil, pvc }),
		wantFile:   "/var/run/kadet/pvc/datasets/mnist/train-images.gz",
		wantMounts: []string{"/var/run/kadet/pvc/datasets"},
	}, {
		name:     "csv from a URL mounts nothing",
		ds:       csvDS(func(c *kadetv1.CSVSource) { c.ConfigMapKeyRef, c.URL = nil, "https://example.com/tx.csv" }),
		wantFile: "https://example.com/tx.csv",
	}, {
		name: "images and labels on one PVC mount it once",
		ds: &kadetv1.DataSource{Spec: kadetv1.DataSourceSpec{Images: &kadetv1.ImageSource{
			File:      kadetv1.RemoteFile{PersistentVolumeClaim: pvc},
			LabelFile: &kadetv1.RemoteFile{PersistentVolumeClaim: &kadetv1.PVCFile{ClaimName: "datasets", Path: "mnist/labels.gz"}},
			Classes:   []int32{3},
		}}},
		wantFile:   "/var/run/kadet/pvc/datasets/mnist/train-images.gz",
		wantLabels: "/var/run/kadet/pvc/datasets/mnist/labels.gz",
		wantMounts: []string{"/var/run/kadet/pvc/datasets"},
	}, {
		name: "prometheus token is mounted from its Secret",
		ds: &kadetv1.DataSource{Spec: kadetv1.DataSourceSpec{Prometheus: &kadetv1.PrometheusSource{
			URL: "http://prom:9090", Queries: []kadetv1.PrometheusQuery{{Name: "load", Query: "up"}},
			BearerTokenSecretRef: &kadetv1.SecretKeyReference{Name: "prom", Key: "token"},
		}}},
		wantMounts: []string{"/var/run/kadet/secrets/prometheus"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPlan(t, det(), tt.ds)
			d := p.Request.Data
			var file, labels string
			switch {
			case d.CSV != nil:
				file = d.CSV.File.String()
			case d.Images != nil:
				file = d.Images.File.String()
				if d.Images.LabelFile != nil {
					labels = d.Images.LabelFile.String()
				}
			case d.Prometheus != nil && d.Prometheus.BearerTokenFile != "/var/run/kadet/secrets/prometheus/token":
				t.Errorf("bearer token file = %q", d.Prometheus.BearerTokenFile)
			}
			if file != tt.wantFile || labels != tt.wantLabels {
				t.Errorf("file, labels = %q, %q; want %q, %q", file, labels, tt.wantFile, tt.wantLabels)
			}
			var mounts []string
			for _, m := range p.Mounts {
				if !m.ReadOnly {
					t.Errorf("data mount %s is writable", m.MountPath)
				}
				mounts = append(mounts, m.MountPath)
			}
			if strings.Join(mounts, ",") != strings.Join(tt.wantMounts, ",") || len(p.Volumes) != len(p.Mounts) {
				t.Errorf("mounts = %v (%d volumes); want %v", mounts, len(p.Volumes), tt.wantMounts)
			}
		})
	}
}

// Every Prometheus credential reaches the pod as a mounted file and never as a value in
// the request, whose hash names the Job and which the model file records.
func TestResolvePrometheusAccess(t *testing.T) {
	ds := &kadetv1.DataSource{Spec: kadetv1.DataSourceSpec{Prometheus: &kadetv1.PrometheusSource{
		URL: "https://mimir:443", Queries: []kadetv1.PrometheusQuery{{Name: "lat", Query: "latency"}},
		BasicAuthSecretRef: &kadetv1.LocalObjectReference{Name: "mimir-auth"},
		TLS:                &kadetv1.PrometheusTLS{CAConfigMapRef: &kadetv1.ConfigMapKeyReference{Name: "ca", Key: "bundle.pem"}, ServerName: "mimir.internal"},
		Headers: []kadetv1.PrometheusHeader{{Name: "X-Scope-OrgID", Value: "team-a"},
			{Name: "X-Api-Key", ValueFrom: &kadetv1.SecretKeyReference{Name: "mimir-key", Key: "key"}}},
		EntityLabels: []string{"namespace", "pod"}, MaxGap: new(int32(5)),
	}}}
	p := mustPlan(t, det(), ds)
	d := p.Request.Data.Prometheus
	want := contract.ResolvedPrometheus{
		URL: "https://mimir:443", Queries: []contract.PrometheusQuery{{Name: "lat", Query: "latency"}}, Range: "0s", Step: "0s",
		EntityLabels: []string{"namespace", "pod"}, MaxGap: new(int32(5)),
		BasicAuth: &contract.ResolvedBasicAuth{UsernameFile: "/var/run/kadet/secrets/prometheus-basic-auth/username",
			PasswordFile: "/var/run/kadet/secrets/prometheus-basic-auth/password"},
		TLS:         &contract.ResolvedTLS{CAFile: "/var/run/kadet/secrets/prometheus-ca/ca.crt", ServerName: "mimir.internal"},
		Headers:     map[string]string{"X-Scope-OrgID": "team-a"},
		HeaderFiles: map[string]string{"X-Api-Key": "/var/run/kadet/secrets/prometheus-header-1/value"},
	}
	if !reflect.DeepEqual(*d, want) {
		t.Errorf("resolved\n%+v\nwant\n%+v", *d, want)
	}
	byName := map[string]corev1.Volume{}
	for _, v := range p.Volumes {
		byName[v.Name] = v
	}
	if s := byName["prometheus-basic-auth"].Secret; s == nil || s.SecretName != "mimir-auth" || len(s.Items) != 2 ||
		s.Items[0].Key != "username" || s.Items[1].Key != "password" {
		t.Errorf("basic auth volume %+v", byName["prometheus-basic-auth"])
	}
	if c := byName["prometheus-ca"].ConfigMap; c == nil || c.Name != "ca" || c.Items[0].Key != "bundle.pem" {
		t.Errorf("CA volume %+v", byName["prometheus-ca"])
	}
	// A header's Secret is mounted, never copied into the request.
	if s := byName["prometheus-header-1"].Secret; s == nil || s.SecretName != "mimir-key" || s.Items[0].Key != "key" || s.Items[0].Path != "value" {
		t.Errorf("header volume %+v", byName["prometheus-header-1"])
	}
	if i := slices.IndexFunc(p.Mounts, func(m corev1.VolumeMount) bool { return m.Name == "prometheus-header-1" }); i < 0 ||
		p.Mounts[i].MountPath != "/var/run/kadet/secrets/prometheus-header-1" || !p.Mounts[i].ReadOnly {
		t.Errorf("mounts %+v", p.Mounts)
	}
}

// The presets follow the data: a Detector on Prometheus watches a stream, so its
// sequence model scores causally and its threshold aims at one false alarm in 10,000
// rows; on a file the defaults stay; what the spec says always wins.
func TestResolveTrainingPresetsFollowTheSource(t *testing.T) {
	prom := &kadetv1.DataSource{Spec: kadetv1.DataSourceSpec{Prometheus: &kadetv1.PrometheusSource{
		URL: "http://prom:9090", Queries: []kadetv1.PrometheusQuery{{Name: "load", Query: "up"}},
	}}}
	conv := func(d *kadetv1.Detector) { d.Spec.Model.Type = kadetv1.ConvAutoencoder }
	for _, tt := range []struct {
		name       string
		det        *kadetv1.Detector
		ds         *kadetv1.DataSource
		rule       string
		percentile float64
	}{
		{"conv on prometheus", det(conv), prom, contract.ScoringCausal, 99.99},
		{"conv on a csv", det(conv), csvDS(nil), contract.ScoringCausal, 99},
		{"conv on prometheus with its own rule and percentile", det(conv, func(d *kadetv1.Detector) {
			d.Spec.Model.ScoringRule = contract.ScoringAllWindows
			d.Spec.Threshold.Percentile = new(99.5)
		}), prom, contract.ScoringAllWindows, 99.5},
		{"dense autoencoder on prometheus", det(), prom, "", 99.99},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := mustPlan(t, tt.det, tt.ds).Request
			if r.Model.ScoringRule != tt.rule || *r.Threshold.Percentile != tt.percentile {
				t.Errorf("scoring rule %q, percentile %v; want %q, %v", r.Model.ScoringRule, *r.Threshold.Percentile, tt.rule, tt.percentile)
			}
		})
	}
}

// A Detector's likelihood stage is its spec's, else its model's, else the default
// (None): a Detector keeps what its model has when the spec says nothing.
func TestResolveNormalization(t *testing.T) {
	prom := &kadetv1.DataSource{Spec: kadetv1.DataSourceSpec{Prometheus: &kadetv1.PrometheusSource{
		URL: "http://prom:9090", Queries: []kadetv1.PrometheusQuery{{Name: "load", Query: "up"}},
	}}}
	lstm := func(d *kadetv1.Detector) { d.Spec.Model.Type = kadetv1.LSTMAutoencoder }
	trained := func(n string) func(*kadetv1.Detector) {
		return func(d *kadetv1.Detector) { d.Status.Model = &kadetv1.ModelStatus{Version: "v1", Normalization: n} }
	}
	spec := func(n kadetv1.ScoringNormalization) func(*kadetv1.Detector) {
		return func(d *kadetv1.Detector) { d.Spec.Scoring.Normalization = &n }
	}
	for _, tt := range []struct {
		name string
		det  *kadetv1.Detector
		ds   *kadetv1.DataSource
		want *contract.Normalization
	}{
		{"a new LSTM on prometheus", det(lstm), prom, &contract.Normalization{Method: contract.NormalizationLikelihood}},
		{"a new conv on prometheus", det(func(d *kadetv1.Detector) { d.Spec.Model.Type = kadetv1.ConvAutoencoder }), prom,
			&contract.Normalization{Method: contract.NormalizationLikelihood}},
		{"a new LSTM on prometheus that asks for it", det(lstm, spec(kadetv1.ScoringNormalization{Method: "Likelihood"})), prom,
			&contract.Normalization{Method: contract.NormalizationLikelihood}},
		{"a new LSTM on a csv", det(lstm), csvDS(nil), nil},
		{"a new dense autoencoder on prometheus", det(), prom, nil},
		{"an LSTM trained before the default keeps None", det(lstm, trained("")), prom, nil},
		{"an LSTM trained with the default keeps it", det(lstm, trained(contract.NormalizationLikelihood)), prom,
			&contract.Normalization{Method: contract.NormalizationLikelihood}},
		{"the spec's None wins", det(lstm, spec(kadetv1.ScoringNormalization{Method: "None"})), prom, nil},
		{"the spec's windows", det(lstm, trained(""), spec(kadetv1.ScoringNormalization{Method: "Likelihood", LongWindow: new(int32(500)), ShortWindow: new(int32(3))})),
			csvDS(nil), &contract.Normalization{Method: contract.NormalizationLikelihood, LongWindow: new(int32(500)), ShortWindow: new(int32(3))}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustPlan(t, tt.det, tt.ds).Request.Normalization; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("normalization %+v, want %+v", got, tt.want)
			}
		})
	}
}

// A Detector's scaling scope is its spec's, else its model's, else the default (each
// entity by its own statistics when the rows name entities).
func TestResolveScaleBy(t *testing.T) {
	prom := func(labels ...string) *kadetv1.DataSource {
		return &kadetv1.DataSource{Spec: kadetv1.DataSourceSpec{Prometheus: &kadetv1.PrometheusSource{
			URL: "http://prom:9090", Queries: []kadetv1.PrometheusQuery{{Name: "latency", Query: "up"}}, EntityLabels: labels,
		}}}
	}
	trained := func(s string) func(*kadetv1.Detector) {
		return func(d *kadetv1.Detector) { d.Status.Model = &kadetv1.ModelStatus{Version: "v1", ScaleBy: s} }
	}
	spec := func(s kadetv1.ScaleBy) func(*kadetv1.Detector) {
		return func(d *kadetv1.Detector) { d.Spec.Preprocessing.ScaleBy = s }
	}
	for _, tt := range []struct {
		name string
		det  *kadetv1.Detector
		ds   *kadetv1.DataSource
		want string
	}{
		{"a new Detector over pods", det(), prom("pod"), contract.ScaleByEntity},
		{"a new Detector over one series", det(), prom(), ""},
		{"a new Detector over a csv with an entity column", det(), csvDS(func(c *kadetv1.CSVSource) { c.EntityColumn = "host" }), contract.ScaleByEntity},
		{"a new Detector over a csv", det(), csvDS(nil), ""},
		{"a model from before keeps one scaler", det(trained("")), prom("pod"), ""},
		{"a model scaled by entity keeps it", det(trained(contract.ScaleByEntity)), prom("pod"), contract.ScaleByEntity},
		{"the spec's Model wins", det(trained(contract.ScaleByEntity), spec(kadetv1.ScaleByModel)), prom("pod"), ""},
		{"the spec's Entity wins", det(trained(""), spec(kadetv1.ScaleByEntity)), prom("pod"), contract.ScaleByEntity},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustPlan(t, tt.det, tt.ds).Request.Preprocessing.ScaleBy; got != tt.want {
				t.Errorf("scaleBy %q, want %q", got, tt.want)
			}
		})
	}
	// A model from before hashes as it did: no retraining when kadet is upgraded.
	old := det(trained(""))
	b, _ := json.Marshal(mustPlan(t, old, prom("pod")).Request.Preprocessing)
	if strings.Contains(string(b), "scaleBy") {
		t.Errorf("a model from before resolves to %s: its request's hash changes", b)
	}
}

// A sequence model's seasonality is its spec's, else its model's (a model from before
// has none, and its request hashes as it did), else Auto; a row model has none.
func TestResolveSeasonality(t *testing.T) {
	conv := func(d *kadetv1.Detector) { d.Spec.Model.Type = kadetv1.ConvAutoencoder }
	trained := func(s string) func(*kadetv1.Detector) {
		return func(d *kadetv1.Detector) { d.Status.Model = &kadetv1.ModelStatus{Version: "v1", Seasonality: s} }
	}
	spec := func(s kadetv1.Seasonality) func(*kadetv1.Detector) {
		return func(d *kadetv1.Detector) { d.Spec.Model.Seasonality = s }
	}
	for _, tt := range []struct {
		name string
		det  *kadetv1.Detector
		want string
	}{
		{"a new ConvAutoencoder", det(conv), contract.SeasonalityAuto},
		{"a new dense autoencoder", det(), ""},
		{"a model from before keeps None", det(conv, trained("")), ""},
		{"a model trained with Auto keeps it", det(conv, trained(contract.SeasonalityAuto)), contract.SeasonalityAuto},
		{"the spec's None wins", det(conv, trained(contract.SeasonalityAuto), spec(kadetv1.SeasonalityNone)), ""},
		{"the spec's Week wins", det(conv, trained(""), spec(kadetv1.SeasonalityWeek)), "Week"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustPlan(t, tt.det, csvDS(nil)).Request.Model.Seasonality; got != tt.want {
				t.Errorf("seasonality %q, want %q", got, tt.want)
			}
		})
	}
	b, _ := json.Marshal(mustPlan(t, det(conv, trained("")), csvDS(nil)).Request.Model)
	if strings.Contains(string(b), "seasonality") {
		t.Errorf("a model from before resolves to %s: its request's hash changes", b)
	}
}

// A Prometheus Detector's versions are backtested on its spec's stretch, else, for a
// Detector with a model trained without a backtest, on none (its hash stays), else on
// the newest fifth; episodes merge across the alert's for, which never retrains.
func TestResolveBacktest(t *testing.T) {
	prom := &kadetv1.DataSource{Spec: kadetv1.DataSourceSpec{Prometheus: &kadetv1.PrometheusSource{
		URL: "http://prom:9090", Queries: []kadetv1.PrometheusQuery{{Name: "load", Query: "up"}},
	}}}
	trained := func(backtested bool) func(*kadetv1.Detector) {
		return func(d *kadetv1.Detector) {
			d.Status.Model = &kadetv1.ModelStatus{Version: "v1"}
			if backtested {
				d.Status.Model.Backtest = &kadetv1.BacktestSummary{Skipped: "too few rows"}
			}
		}
	}
	spec := func(b kadetv1.BacktestSpec) func(*kadetv1.Detector) {
		return func(d *kadetv1.Detector) { d.Spec.Backtest = &b }
	}
	alertFor := func(d *kadetv1.Detector) { d.Spec.Alerting.For = &metav1.Duration{Duration: 15 * time.Minute} }
	for _, tt := range []struct {
		name string
		det  *kadetv1.Detector
		ds   *kadetv1.DataSource
		want *contract.Backtest
	}{
		{"a new Detector", det(), prom, &contract.Backtest{HoldOut: 0.2, MergeGap: "5m0s"}},
		{"a new Detector alerting after 15m", det(alertFor), prom, &contract.Backtest{HoldOut: 0.2, MergeGap: "15m0s"}},
		{"a new Detector on a csv", det(), csvDS(nil), nil},
		{"a model from before keeps none", det(trained(false)), prom, nil},
		{"a backtested model keeps the default", det(trained(true)), prom, &contract.Backtest{HoldOut: 0.2, MergeGap: "5m0s"}},
		{"the spec's share", det(trained(false), spec(kadetv1.BacktestSpec{HoldOutPercent: new(int32(10))})), prom,
			&contract.Backtest{HoldOut: 0.1, MergeGap: "5m0s"}},
		{"the spec's range", det(spec(kadetv1.BacktestSpec{Range: &metav1.Duration{Duration: 6 * time.Hour}})), prom,
			&contract.Backtest{Range: "6h0m0s", MergeGap: "5m0s"}},
		{"the spec's 0 turns it off", det(spec(kadetv1.BacktestSpec{HoldOutPercent: new(int32(0))})), prom, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustPlan(t, tt.det, tt.ds).Request.Backtest; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("backtest %+v, want %+v", got, tt.want)
			}
		})
	}
	if got := mustPlan(t, det(), prom).Hash; got != mustPlan(t, det(alertFor), prom).Hash {
		t.Errorf("the alert's for changed the request's hash")
	}
	b, _ := json.Marshal(mustPlan(t, det(trained(false)), prom).Request)
	if strings.Contains(string(b), "backtest") {
		t.Errorf("a model from before resolves to %s: its request's hash changes", b)
	}
	if _, err := ResolveTraining(det(spec(kadetv1.BacktestSpec{})), csvDS(nil), ""); err == nil || !strings.Contains(err.Error(), "spec.backtest is for a prometheus DataSource") {
		t.Errorf("a backtest on a csv: %v", err)
	}
}

// Retraining leaves flagged rows out unless the spec says false; unset adds nothing to
// the request, so a Detector's hash is what it was before the field.
func TestResolveLeaveOutFlagged(t *testing.T) {
	for _, tt := range []struct {
		set  *bool
		keep bool
	}{{nil, false}, {new(true), false}, {new(false), true}} {
		d := det(func(d *kadetv1.Detector) { d.Spec.Training.LeaveOutFlagged = tt.set })
		r := mustPlan(t, d, csvDS(nil)).Request
		if r.Training.KeepFlagged != tt.keep {
			t.Errorf("leaveOutFlagged %v: keepFlagged %v", tt.set, r.Training.KeepFlagged)
		}
		if b, _ := json.Marshal(r.Training); tt.set == nil && strings.Contains(string(b), "keepFlagged") {
			t.Errorf("unset leaveOutFlagged changes the request: %s", b)
		}
	}
}

func TestResolveTrainingRefusesIncompatibleData(t *testing.T) {
	images := &kadetv1.DataSource{ObjectMeta: metav1.ObjectMeta{Name: "digits"}, Spec: kadetv1.DataSourceSpec{
		Images: &kadetv1.ImageSource{File: kadetv1.RemoteFile{URL: "https://example.com/x.gz"}},
	}}
	tests := []struct {
		name string
		det  *kadetv1.Detector
		ds   *kadetv1.DataSource
		want string // "" means compatible
	}{
		{"autoencoder on csv", det(), csvDS(nil), ""},
		{"mlp without labels", det(func(d *kadetv1.Detector) { d.Spec.Model.Type = kadetv1.MLPClassifier }), csvDS(nil),
			"MLPClassifier needs a csv DataSource with labelColumn"},
		{"mlp with labels", det(func(d *kadetv1.Detector) { d.Spec.Model.Type = kadetv1.MLPClassifier }),
			csvDS(func(c *kadetv1.CSVSource) { c.LabelColumn = "fraud" }), ""},
		{"conv over windows of csv rows", det(func(d *kadetv1.Detector) { d.Spec.Model.Type = kadetv1.ConvAutoencoder }), csvDS(nil), ""},
		{"conv on images", det(func(d *kadetv1.Detector) { d.Spec.Model.Type = kadetv1.ConvAutoencoder }), images, ""},
		{"conv window on images", det(func(d *kadetv1.Detector) {
			d.Spec.Model.Type, d.Spec.Model.Window = kadetv1.ConvAutoencoder, ptr.To[int32](16)
		}), images, "window, stride and scoringRule are for a ConvAutoencoder over a series"},
		{"lstm on images", det(func(d *kadetv1.Detector) { d.Spec.Model.Type = kadetv1.LSTMAutoencoder }), images,
			"LSTMAutoencoder needs a csv or prometheus DataSource"},
		{"best f1 without labels", det(func(d *kadetv1.Detector) { d.Spec.Threshold.Method = kadetv1.ThresholdBestF1 }),
			csvDS(nil), "BestF1 needs labels"},
		{"six conv blocks over the default window", det(func(d *kadetv1.Detector) {
			d.Spec.Model.Type, d.Spec.Model.Channels = kadetv1.ConvAutoencoder, []int32{8, 8, 8, 8, 8, 8}
		}), csvDS(nil), "spec.model.channels: 6 conv blocks halve the window 6 times, and the default window of 32 rows cannot be halved that often; set spec.model.window to a multiple of 64"},
		{"five conv blocks over the default window", det(func(d *kadetv1.Detector) {
			d.Spec.Model.Type, d.Spec.Model.Channels = kadetv1.ConvAutoencoder, []int32{8, 8, 8, 8, 8}
		}), csvDS(nil), ""},
		{"six conv blocks over a window of 64", det(func(d *kadetv1.Detector) {
			d.Spec.Model.Type, d.Spec.Model.Channels, d.Spec.Model.Window = kadetv1.ConvAutoencoder, []int32{8, 8, 8, 8, 8, 8}, ptr.To[int32](64)
		}), csvDS(nil), ""},
		{"scaled by entity without entities", det(func(d *kadetv1.Detector) { d.Spec.Preprocessing.ScaleBy = kadetv1.ScaleByEntity }),
			csvDS(nil), "spec.preprocessing.scaleBy: Entity needs rows that name their entity"},
		{"scaled by entity over pods", det(func(d *kadetv1.Detector) { d.Spec.Preprocessing.ScaleBy = kadetv1.ScaleByEntity }),
			csvDS(func(c *kadetv1.CSVSource) { c.EntityColumn = "pod" }), ""},
		{"six conv blocks over images", det(func(d *kadetv1.Detector) {
			d.Spec.Model.Type, d.Spec.Model.Channels = kadetv1.ConvAutoencoder, []int32{8, 8, 8, 8, 8, 8}
		}), images, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ResolveTraining(tt.det, tt.ds, "")
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error = %v; want one containing %q", err, tt.want)
			}
		})
	}
}

func TestTrainingPlanHash(t *testing.T) {
	base := mustPlan(t, det(), csvDS(nil)).Hash
	tests := []struct {
		name    string
		det     *kadetv1.Detector
		digest  string
		changes bool
	}{
		{"same spec", det(), "", false},
		{"scoring replicas do not retrain", det(func(d *kadetv1.Detector) { d.Spec.Scoring.Replicas = ptr.To[int32](3) }), "", false},
		{"training resources do not retrain", det(func(d *kadetv1.Detector) {
			d.Spec.Training.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}
		}), "", false},
		{"epochs retrain", det(func(d *kadetv1.Detector) { d.Spec.Training.Epochs = 11 }), "", true},
		{"threshold retrains", det(func(d *kadetv1.Detector) { d.Spec.Threshold.Percentile = ptr.To(95.0) }), "", true},
		{"data change retrains", det(), "sha256:other", true},
		{"a model's None is the spec's None", det(func(d *kadetv1.Detector) { d.Status.Model = &kadetv1.ModelStatus{Version: "v1"} }), "", false},
		{"retrain annotation retrains", det(func(d *kadetv1.Detector) {
			d.Annotations = map[string]string{AnnotationRetrain: "2026-11-28"}
		}), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ResolveTraining(tt.det, csvDS(nil), tt.digest)
			if err != nil {
				t.Fatal(err)
			}
			if (p.Hash != base) != tt.changes {
				t.Errorf("hash %s vs base %s; want changed=%v", p.Hash, base, tt.changes)
			}
		})
	}
}

func TestTrainingJob(t *testing.T) {
	tests := []struct {
		name  string
		det   *kadetv1.Detector
		check func(t *testing.T, job *batchv1.Job)
	}{{
		name: "defaults",
		det:  det(),
		check: func(t *testing.T, job *batchv1.Job) {
			if *job.Spec.BackoffLimit != 1 || job.Spec.ActiveDeadlineSeconds != nil {
				t.Errorf("backoffLimit %d, activeDeadlineSeconds %v", *job.Spec.BackoffLimit, job.Spec.ActiveDeadlineSeconds)
			}
			rules := job.Spec.PodFailurePolicy.Rules
			if rules[0].Action != batchv1.PodFailurePolicyActionFailJob || rules[0].OnExitCodes.Values[0] != contract.ExitInvalidInput {
				t.Errorf("invalid input does not fail the Job at once: %+v", rules[0])
			}
			c := job.Spec.Template.Spec.Containers[0]
			if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
				t.Errorf("termination message policy %s", c.TerminationMessagePolicy)
			}
			if !*c.SecurityContext.ReadOnlyRootFilesystem || *job.Spec.Template.Spec.SecurityContext.RunAsNonRoot != true {
				t.Error("training pod is not locked down")
			}
			if !hasBLASThreads(c, TrainerContainer) {
				t.Error("the BLAS thread pool does not follow the CPU limit")
			}
		},
	}, {
		name: "limits from the spec",
		det: det(func(d *kadetv1.Detector) {
			d.Spec.Training.BackoffLimit = ptr.To[int32](4)
			d.Spec.Training.ActiveDeadlineSeconds = ptr.To[int64](600)
			d.Spec.Training.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}
		}),
		check: func(t *testing.T, job *batchv1.Job) {
			if *job.Spec.BackoffLimit != 4 || *job.Spec.ActiveDeadlineSeconds != 600 {
				t.Errorf("backoffLimit %d, activeDeadlineSeconds %d", *job.Spec.BackoffLimit, *job.Spec.ActiveDeadlineSeconds)
			}
			if m := job.Spec.Template.Spec.Containers[0].Resources.Limits.Memory(); m.String() != "2Gi" {
				t.Errorf("memory limit %s", m)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := mustPlan(t, tt.det, csvDS(nil))
			job := TrainingJob(tt.det, plan, cfg)
			if job.Name != "fraud-train-"+plan.Hash || job.Labels[LabelSpecHash] != plan.Hash ||
				job.Spec.Template.Labels[LabelSpecHash] != plan.Hash {
				t.Errorf("job %s not named and labelled by hash %s", job.Name, plan.Hash)
			}
			if !metav1.IsControlledBy(job, tt.det) {
				t.Error("job is not controlled by the Detector")
			}
			c := job.Spec.Template.Spec.Containers[0]
			if c.Image != cfg.Image || strings.Join(c.Command, " ") != "detector" {
				t.Errorf("image %s command %v", c.Image, c.Command)
			}
			mounts := map[string]bool{}
			for _, m := range c.VolumeMounts {
				mounts[m.MountPath] = m.ReadOnly
			}
			for path, ro := range map[string]bool{SpecDir: true, ModelDir: false, TmpDir: false, DataDir: true} {
				if got, ok := mounts[path]; !ok || got != ro {
					t.Errorf("mount %s: present=%v readOnly=%v; want readOnly=%v", path, ok, got, ro)
				}
			}
			tt.check(t, job)
		})
	}
}

func TestScoringDeploymentAndService(t *testing.T) {
	model := &kadetv1.ModelStatus{Version: "20261128-abc", Digest: "sha256:123"}
	tests := []struct {
		name         string
		det          *kadetv1.Detector
		wantReplicas int32
		wantPort     int32
	}{
		{"defaults", det(), 1, 8080},
		{"replicas and port", det(func(d *kadetv1.Detector) {
			d.Spec.Scoring.Replicas, d.Spec.Scoring.Port = ptr.To[int32](3), 9000
		}), 3, 9000},
		{"zero replicas", det(func(d *kadetv1.Detector) { d.Spec.Scoring.Replicas = ptr.To[int32](0) }), 0, 8080},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dep := ScoringDeployment(tt.det, model, nil, cfg)
			checkDeployment(t, dep, model, tt.wantReplicas, tt.wantPort)
			svc := ScoringService(tt.det)
			if svc.Name != dep.Name || svc.Spec.Ports[0].Port != tt.wantPort {
				t.Errorf("service %s port %d", svc.Name, svc.Spec.Ports[0].Port)
			}
			for k, v := range svc.Spec.Selector {
				if dep.Spec.Template.Labels[k] != v {
					t.Errorf("service selector %s=%s does not select the scoring pods", k, v)
				}
			}
			if got := Endpoint(tt.det); got != "http://fraud-scoring.ml.svc:"+itoa(tt.wantPort) {
				t.Errorf("endpoint %s", got)
			}
		})
	}
}

func checkDeployment(t *testing.T, dep *appsv1.Deployment, model *kadetv1.ModelStatus, replicas, port int32) {
	t.Helper()
	if *dep.Spec.Replicas != replicas {
		t.Errorf("replicas %d; want %d", *dep.Spec.Replicas, replicas)
	}
	if a := dep.Spec.Template.Annotations; a[AnnotationModelVersion] != model.Version || a[AnnotationModelDigest] != model.Digest {
		t.Errorf("pod template annotations %v do not pin the model", a)
	}
	if dep.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Error("a rollout may take serving pods away before new ones are ready")
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Ports[0].ContainerPort != port || c.Args[len(c.Args)-1] != "$(POD_IP):"+itoa(port) {
		t.Errorf("port %d args %v", c.Ports[0].ContainerPort, c.Args)
	}
	if !hasBLASThreads(c, ScoringContainer) {
		t.Error("the BLAS thread pool does not follow the CPU limit")
	}
	if i := slices.Index(c.Args, "--model-digest"); i < 0 || c.Args[i+1] != model.Digest {
		t.Errorf("args %v do not pin the model's digest %s", c.Args, model.Digest)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.VolumeMounts[0].MountPath != ModelDir || !c.VolumeMounts[0].ReadOnly {
		t.Errorf("readiness %s, model mount %+v", c.ReadinessProbe.HTTPGet.Path, c.VolumeMounts[0])
	}
	for k, v := range dep.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the template", k, v)
		}
	}
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }

func TestModelPVC(t *testing.T) {
	tests := []struct {
		name      string
		det       *kadetv1.Detector
		wantSize  string
		wantMode  corev1.PersistentVolumeAccessMode
		wantOwner bool
		wantClass *string
	}{
		{"defaults retain the models", det(), "1Gi", corev1.ReadWriteOnce, false, nil},
		{"delete policy owns the PVC", det(func(d *kadetv1.Detector) {
			d.Spec.Storage = kadetv1.StorageSpec{Size: ptr.To(resource.MustParse("5Gi")), AccessMode: corev1.ReadWriteMany,
				RetentionPolicy: kadetv1.DeleteModels, StorageClassName: ptr.To("fast")}
		}), "5Gi", corev1.ReadWriteMany, true, ptr.To("fast")},
		{"an empty class is the default class, not none", det(func(d *kadetv1.Detector) {
			d.Spec.Storage.StorageClassName = ptr.To("")
		}), "1Gi", corev1.ReadWriteOnce, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pvc := ModelPVC(tt.det)
			if s := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; s.String() != tt.wantSize {
				t.Errorf("size %s", s.String())
			}
			if pvc.Spec.AccessModes[0] != tt.wantMode || metav1.IsControlledBy(pvc, tt.det) != tt.wantOwner {
				t.Errorf("mode %s owned %v", pvc.Spec.AccessModes[0], metav1.IsControlledBy(pvc, tt.det))
			}
			if pvc.Labels[LabelDetector] != "fraud" {
				t.Error("PVC lacks the detector label that adoption relies on")
			}
			if !ptr.Equal(pvc.Spec.StorageClassName, tt.wantClass) {
				t.Errorf("storage class %v; want %v", ptr.Deref(pvc.Spec.StorageClassName, "<nil>"), ptr.Deref(tt.wantClass, "<nil>"))
			}
		})
	}
}

func TestTrainerRBACIsLimitedToProgress(t *testing.T) {
	d := det()
	role := TrainerRole(d)
	if len(role.Rules) != 1 {
		t.Fatalf("rules %v", role.Rules)
	}
	r := role.Rules[0]
	if strings.Join(r.Resources, ",") != "configmaps" || strings.Join(r.ResourceNames, ",") != "fraud-progress" {
		t.Errorf("rule %+v reaches beyond the progress ConfigMap", r)
	}
	for _, v := range r.Verbs {
		if v == "create" || v == "delete" || v == "list" || v == "*" {
			t.Errorf("verb %s granted", v)
		}
	}
	rb := TrainerRoleBinding(d)
	if rb.RoleRef.Name != role.Name || rb.Subjects[0].Name != TrainerServiceAccount(d).Name {
		t.Errorf("binding %+v", rb)
	}
}

func TestSpecConfigMapRoundTrips(t *testing.T) {
	d := det()
	plan := mustPlan(t, d, csvDS(nil))
	cm, err := SpecConfigMap(d, plan)
	if err != nil {
		t.Fatal(err)
	}
	var got contract.TrainingRequest
	if err := json.Unmarshal([]byte(cm.Data[contract.SpecFileName]), &got); err != nil {
		t.Fatal(err)
	}
	h, _ := got.Hash()
	if h != plan.Hash || cm.Name != "fraud-spec-"+plan.Hash || !*cm.Immutable {
		t.Errorf("hash after round trip %s, plan %s, name %s", h, plan.Hash, cm.Name)
	}
	if got.Data.CSV.Delimiter != ";" || got.Model.LatentSize == nil {
		t.Errorf("request lost fields or defaults: %+v", got)
	}
}

func hasBLASThreads(c corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == "OPENBLAS_NUM_THREADS" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil &&
			e.ValueFrom.ResourceFieldRef.Resource == "limits.cpu" && e.ValueFrom.ResourceFieldRef.ContainerName == name {
			return true
		}
	}
	return false
}

func TestCheckCSV(t *testing.T) {
	const good = "t,amount,hour,fraud\n1,12.5,3,0\n2,80.1,14,1\n"
	tests := []struct {
		name    string
		content string
		opts    func(*kadetv1.CSVSource)
		want    string // "" means it trains
	}{
		{"every column named and present", good, func(c *kadetv1.CSVSource) {
			c.Columns, c.TimestampColumn, c.LabelColumn = []string{"amount", "hour"}, "t", "fraud"
		}, ""},
		{"label column missing", good, func(c *kadetv1.CSVSource) { c.LabelColumn = "label" },
			`DataSource "tx" spec.csv.labelColumn: column "label" is not in the header of ConfigMap "tx-csv" key "data.csv" (columns: t, amount, hour, fraud)`},
		{"timestamp column missing", good, func(c *kadetv1.CSVSource) { c.TimestampColumn = "time" },
			`spec.csv.timestampColumn: column "time" is not in the header`},
		{"entity column missing", good, func(c *kadetv1.CSVSource) { c.EntityColumn = "pod" },
			`spec.csv.entityColumn: column "pod" is not in the header`},
		{"entity column present", "t,pod,amount\n1,a,3\n2,b,4\n", func(c *kadetv1.CSVSource) { c.EntityColumn, c.TimestampColumn = "pod", "t" }, ""},
		{"second feature column missing", good, func(c *kadetv1.CSVSource) { c.Columns = []string{"amount", "minute"} },
			`spec.csv.columns[1]: column "minute" is not in the header`},
		{"label that is not 0 or 1", "amount,fraud\n1,0\n2,2\n", func(c *kadetv1.CSVSource) { c.LabelColumn = "fraud" },
			`DataSource "tx" spec.csv: ConfigMap "tx-csv" key "data.csv" line 3, column "fraud": label "2" is not 0 or 1`},
		{"value that is not a number", "amount,hour\n1,3\nx,4\n", nil, `line 3, column "amount": "x" is not a number`},
		{"semicolons", "amount;hour\n1;3\n", func(c *kadetv1.CSVSource) { c.Delimiter = ";" }, ""},
		{"semicolons read as commas", "amount;hour\n1;3\n", nil, `column "amount" is not in the header`},
		{"empty file", "", nil, "file is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := &kadetv1.DataSource{ObjectMeta: metav1.ObjectMeta{Name: "tx"}, Spec: kadetv1.DataSourceSpec{CSV: &kadetv1.CSVSource{
				ConfigMapKeyRef: &kadetv1.ConfigMapKeyReference{Name: "tx-csv", Key: "data.csv"},
			}}}
			if tt.opts != nil {
				tt.opts(ds.Spec.CSV)
			} else {
				ds.Spec.CSV.Columns = []string{"amount", "hour"}
			}
			err := CheckCSV(ds, []byte(tt.content))
			var inc *IncompatibleError
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (!errors.As(err, &inc) || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error = %v; want an IncompatibleError containing %q", err, tt.want)
			}
		})
	}
}

func TestScoringNetworkPolicy(t *testing.T) {
	monitoring := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}}
	clients := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "payments"}}}
	sameNamespace := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}}
	peerNamespaces := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{"monitoring", "observability"}}}}}
	cfg := Config{Image: "i", ScoringPeerNamespaces: []string{"observability", "monitoring"}}
	tests := []struct {
		name     string
		det      *kadetv1.Detector
		cfg      Config
		wantPort int32
		wantFrom []networkingv1.NetworkPolicyPeer
	}{
		{"the default: the namespace and the peer namespaces", det(), cfg, 8080, []networkingv1.NetworkPolicyPeer{sameNamespace, peerNamespaces}},
		{"the default without peer namespaces", det(), Config{}, 8080, []networkingv1.NetworkPolicyPeer{sameNamespace}},
		{"enabled without from is the default", det(func(d *kadetv1.Detector) {
			d.Spec.Scoring.NetworkPolicy = &kadetv1.ScoringNetworkPolicy{Enabled: new(true)}
		}), cfg, 8080, []networkingv1.NetworkPolicyPeer{sameNamespace, peerNamespaces}},
		{"none asked for", det(func(d *kadetv1.Detector) {
			d.Spec.Scoring.NetworkPolicy = &kadetv1.ScoringNetworkPolicy{Enabled: new(false)}
		}), cfg, 0, nil},
		{"clients and Prometheus on the default port", det(func(d *kadetv1.Detector) {
			d.Spec.Scoring.NetworkPolicy = &kadetv1.ScoringNetworkPolicy{From: []networkingv1.NetworkPolicyPeer{clients, monitoring}}
		}), cfg, 8080, []networkingv1.NetworkPolicyPeer{clients, monitoring}},
		{"another port", det(func(d *kadetv1.Detector) {
			d.Spec.Scoring.Port = 9000
			d.Spec.Scoring.NetworkPolicy = &kadetv1.ScoringNetworkPolicy{From: []networkingv1.NetworkPolicyPeer{clients}}
		}), cfg, 9000, []networkingv1.NetworkPolicyPeer{clients}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			np := ScoringNetworkPolicy(tt.det, tt.cfg)
			if tt.wantFrom == nil {
				if np != nil {
					t.Fatalf("a NetworkPolicy nobody asked for: %+v", np)
				}
				return
			}
			// It selects exactly the scoring pods the Deployment makes.
			dep := ScoringDeployment(tt.det, &kadetv1.ModelStatus{Version: "v", Digest: "sha256:1"}, nil, Config{Image: "i"})
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err != nil || !sel.Matches(labels.Set(dep.Spec.Template.Labels)) || sel.Empty() {
				t.Fatalf("selector %v does not pick the scoring pods %v", np.Spec.PodSelector, dep.Spec.Template.Labels)
			}
			if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) || len(np.Spec.Ingress) != 1 {
				t.Fatalf("policy types %v, %d ingress rules", np.Spec.PolicyTypes, len(np.Spec.Ingress))
			}
			in := np.Spec.Ingress[0]
			if len(in.Ports) != 1 || in.Ports[0].Port.IntVal != tt.wantPort || *in.Ports[0].Protocol != corev1.ProtocolTCP {
				t.Errorf("ports %+v; want TCP %d", in.Ports, tt.wantPort)
			}
			if !reflect.DeepEqual(in.From, tt.wantFrom) {
				t.Errorf("from %+v; want %+v", in.From, tt.wantFrom)
			}
			if np.Name != ScoringName(tt.det) || np.Namespace != tt.det.Namespace {
				t.Errorf("named %s/%s", np.Namespace, np.Name)
			}
		})
	}
}

func TestClaimedNames(t *testing.T) {
	withPolicy := func(d *kadetv1.Detector) { d.Spec.Scoring.NetworkPolicy = &kadetv1.ScoringNetworkPolicy{} }
	noPolicy := func(d *kadetv1.Detector) {
		d.Spec.Scoring.NetworkPolicy = &kadetv1.ScoringNetworkPolicy{Enabled: new(false)}
	}
	onDrift := func(d *kadetv1.Detector) { d.Spec.Retraining.OnDrift = &kadetv1.DriftPolicy{} }
	base := []string{"ServiceAccount fraud-trainer", "Role fraud-trainer", "RoleBinding fraud-trainer", "ConfigMap fraud-progress",
		"Deployment fraud-scoring", "Service fraud-scoring", "NetworkPolicy fraud-scoring"}
	for _, tc := range []struct {
		name string
		det  *kadetv1.Detector
		want []string
	}{
		{"every Detector", det(), base},
		{"a NetworkPolicy of its own peers", det(withPolicy), base},
		{"no NetworkPolicy", det(noPolicy), base[:len(base)-1]},
		{"pods that report drift", det(onDrift), append(slices.Clone(base), "ServiceAccount fraud-scorer", "Role fraud-scorer",
			"RoleBinding fraud-scorer", "ConfigMap fraud-watch-status")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, o := range ClaimedNames(tc.det) {
				if o.GetNamespace() != "ml" {
					t.Errorf("%s in namespace %q", o.GetName(), o.GetNamespace())
				}
				got = append(got, reflect.TypeOf(o).Elem().Name()+" "+o.GetName())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
	// Every name a child of fraud can have leads back to it, and only to Detectors
	// that could own it.
	d := det(withPolicy, onDrift)
	names := []string{ModelPVCName(d), WatchConfigMapName(d), LeaseName(d)}
	for _, o := range ClaimedNames(d) {
		names = append(names, o.GetName())
	}
	for _, n := range names {
		if got := DetectorsClaiming(n); !slices.Contains(got, "fraud") {
			t.Errorf("DetectorsClaiming(%q) = %q, want fraud among them", n, got)
		}
	}
	if got := DetectorsClaiming("fraud-scoring-scoring"); !slices.Equal(got, []string{"fraud-scoring"}) {
		t.Errorf("DetectorsClaiming(fraud-scoring-scoring) = %q", got)
	}
	for _, n := range []string{"fraud", "-scoring", "fraud-data"} {
		if got := DetectorsClaiming(n); len(got) != 0 {
			t.Errorf("DetectorsClaiming(%q) = %q, want none", n, got)
		}
	}
}

// A ModelVersion records where its data came from, without the credentials a URL held.
func TestModelVersionRecordsNoURLCredentials(t *testing.T) {
	ds := csvDS(func(c *kadetv1.CSVSource) {
		c.ConfigMapKeyRef = nil
		c.URL = "https://alice:hunter2@bucket.example/data.csv?X-Amz-Signature=s1gn"
	})
	mv := ModelVersion(det(), ds, nil, &kadetv1.ModelStatus{Version: "v1"}, "")
	if got := mv.Spec.Data.Location; got != "https://redacted@bucket.example/data.csv?X-Amz-Signature=redacted" {
		t.Errorf("location %q", got)
	}
}

func TestBacktestSummary(t *testing.T) {
	if BacktestSummary(nil) != nil {
		t.Fatal("no backtest became one")
	}
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	long := strings.Repeat("é", 600) // 1,200 bytes
	got := BacktestSummary(&contract.BacktestResult{Start: &at, End: &at, Rows: 10, Episodes: 1, EpisodesPerDay: 1.0 / 3,
		Largest: []contract.BacktestEpisode{{Entity: long, Start: at, End: at, Rows: 2, Peak: 3}}})
	if got.EpisodesPerDay != 0.33 || got.Rows != 10 || !got.Start.Time.Equal(at) || len(got.Largest) != 1 {
		t.Errorf("summary %+v", got)
	}
	if e := got.Largest[0].Entity; len(e) > 1024 || !utf8.ValidString(e) || !strings.HasSuffix(e, "...") {
		t.Errorf("entity of %d bytes, valid %v: want at most 1024, cut on a rune", len(e), utf8.ValidString(e))
	}
}

// A backtest Job is the training Job's pod (identity, volumes, Secrets, limits) running
// `detector backtest` on the served version over the request; one name per request and
// version; it goes an hour after it ends.
func TestBacktestJob(t *testing.T) {
	prom := &kadetv1.DataSource{Spec: kadetv1.DataSourceSpec{Prometheus: &kadetv1.PrometheusSource{
		URL: "http://prom:9090", Queries: []kadetv1.PrometheusQuery{{Name: "load", Query: "up"}},
		BearerTokenSecretRef: &kadetv1.SecretKeyReference{Name: "prom-token", Key: "token"},
	}}}
	d := det(func(d *kadetv1.Detector) { d.Spec.Alerting.For = &metav1.Duration{Duration: 10 * time.Minute} })
	plan := mustPlan(t, d, prom)
	cfg := Config{Image: "kadet/detector:test"}
	job := BacktestJob(d, plan, "20261201-000000-aaaaaaaa", "7d", cfg)
	train := TrainingJob(d, plan, cfg)
	if job.Name != BacktestJobName(d, "7d", "20261201-000000-aaaaaaaa") || job.Name == BacktestJobName(d, "7d", "20261202-000000-bbbbbbbb") ||
		job.Name == BacktestJobName(d, "24h", "20261201-000000-aaaaaaaa") || !strings.HasPrefix(job.Name, "fraud-backtest-") {
		t.Errorf("name %q is not one per request and version", job.Name)
	}
	c := job.Spec.Template.Spec.Containers[0]
	want := []string{"backtest", "--spec", "/etc/kadet/spec/spec.json", "--model", "/var/lib/kadet/models/20261201-000000-aaaaaaaa",
		"--range", "7d", "--merge-gap", "10m0s"}
	if !reflect.DeepEqual(c.Args, want) {
		t.Errorf("args %v; want %v", c.Args, want)
	}
	pod, trainPod := job.Spec.Template.Spec, train.Spec.Template.Spec
	if !reflect.DeepEqual(pod.Volumes, trainPod.Volumes) || !reflect.DeepEqual(c.VolumeMounts, trainPod.Containers[0].VolumeMounts) ||
		pod.ServiceAccountName != trainPod.ServiceAccountName || !reflect.DeepEqual(c.Resources, trainPod.Containers[0].Resources) {
		t.Errorf("the backtest pod differs from the training pod:\n%+v\n%+v", pod, trainPod)
	}
	if job.Labels[LabelComponent] != ComponentBacktest || job.Spec.Template.Labels[LabelComponent] != ComponentBacktest ||
		ptr.Deref(job.Spec.TTLSecondsAfterFinished, 0) != 3600 || job.OwnerReferences[0].UID != "uid-1" {
		t.Errorf("labels %v, template labels %v, ttl %v, owners %v", job.Labels, job.Spec.Template.Labels, job.Spec.TTLSecondsAfterFinished, job.OwnerReferences)
	}
	if !reflect.DeepEqual(TrainingJob(d, plan, cfg), train) {
		t.Error("building a backtest Job changed the training Job")
	}
}
