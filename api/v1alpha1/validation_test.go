package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/kadet-dev/kadet/detector/contract"
)

// These tests send manifests to a real kube-apiserver with kadet's CRDs installed and
// check that each invalid one is refused with a message naming the field.

var k8sClient client.Client

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/controlplane.sh)")
		os.Exit(1)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		os.Exit(1)
	}
	k8sClient, err = client.New(cfg, client.Options{})
	code := 1
	if err == nil {
		code = m.Run()
	} else {
		fmt.Fprintln(os.Stderr, err)
	}
	_ = env.Stop()
	os.Exit(code)
}

func object(t *testing.T, manifest string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		t.Fatalf("bad test manifest: %v\n%s", err, manifest)
	}
	if u.GetNamespace() == "" {
		u.SetNamespace("default")
	}
	return u
}

const dsHeader = "apiVersion: anomaly.kadet.dev/v1alpha1\nkind: DataSource\nmetadata: {name: ds-%d}\n"
const detHeader = "apiVersion: anomaly.kadet.dev/v1alpha1\nkind: Detector\nmetadata: {name: det-%d}\n"

// detSpec wraps a Detector spec fragment around a valid minimal spec.
func detSpec(extra string) string {
	return "spec:\n  dataSourceRef: {name: tx}\n" + extra
}

// invalidManifests are refused at admission; each names the field and what is wrong.
var invalidManifests = []struct {
	name     string
	header   string
	body     string
	wantPath string
	wantMsg  string
}{
	{"datasource without a source", dsHeader, "spec: {}", "spec", "exactly one of csv, images or prometheus must be set"},
	{"datasource with two sources", dsHeader, "spec:\n  csv: {url: 'https://x/a.csv'}\n  prometheus: {url: 'http://p', queries: [{name: a, query: up}]}",
		"spec", "exactly one of csv, images or prometheus must be set"},
	{"csv without a file", dsHeader, "spec:\n  csv: {columns: [a]}", "spec.csv", "exactly one of configMapKeyRef, persistentVolumeClaim or url must be set"},
	{"csv with two files", dsHeader, "spec:\n  csv: {url: 'https://x/a.csv', configMapKeyRef: {name: a, key: b}}",
		"spec.csv", "exactly one of configMapKeyRef, persistentVolumeClaim or url must be set"},
	{"csv url not http", dsHeader, "spec:\n  csv: {url: 'ftp://x/a.csv'}", "spec.csv.url", "should match"},
	{"csv delimiter of two characters", dsHeader, "spec:\n  csv: {url: 'https://x/a.csv', delimiter: ';;'}", "spec.csv.delimiter", "Too long"},
	{"csv delimiter is a quote", dsHeader, "spec:\n  csv: {url: 'https://x/a.csv', delimiter: '\"'}", "spec.csv.delimiter", "must not be a quote or a line break"},
	{"csv label column is the timestamp column", dsHeader, "spec:\n  csv: {url: 'https://x/a.csv', labelColumn: t, timestampColumn: t}",
		"spec.csv", "labelColumn and timestampColumn must differ"},
	{"csv label column is a feature", dsHeader, "spec:\n  csv: {url: 'https://x/a.csv', labelColumn: fraud, columns: [a, fraud]}",
		"spec.csv", "labelColumn must not be one of the feature columns"},
	{"csv configMap key with a slash", dsHeader, "spec:\n  csv: {configMapKeyRef: {name: a, key: 'x/y'}}", "spec.csv.configMapKeyRef.key", "should match"},
	{"pvc path is absolute", dsHeader, "spec:\n  csv: {persistentVolumeClaim: {claimName: data, path: /etc/passwd}}",
		"spec.csv.persistentVolumeClaim.path", "path must be relative to the volume root"},
	{"pvc path climbs out", dsHeader, "spec:\n  csv: {persistentVolumeClaim: {claimName: data, path: a/../../b}}",
		"spec.csv.persistentVolumeClaim.path", "path must not contain '..'"},
	{"images without a file", dsHeader, "spec:\n  images: {classes: [1]}", "spec.images.file", "Required value"},
	{"image classes without labels", dsHeader, "spec:\n  images: {file: {url: 'https://x/i.gz'}, classes: [3]}",
		"spec.images", "classes needs labelFile"},
	{"image class out of range", dsHeader, "spec:\n  images: {file: {url: 'https://x/i.gz'}, labelFile: {url: 'https://x/l.gz'}, classes: [300]}",
		"spec.images.classes[0]", "less than or equal to 255"},
	{"image file with url and pvc", dsHeader, "spec:\n  images: {file: {url: 'https://x/i.gz', persistentVolumeClaim: {claimName: d, path: i.gz}}}",
		"spec.images.file", "exactly one of persistentVolumeClaim or url must be set"},
	{"prometheus without queries", dsHeader, "spec:\n  prometheus: {url: 'http://p:9090', queries: []}",
		"spec.prometheus.queries", "should have at least 1 items"},
	{"prometheus query name not an identifier", dsHeader, "spec:\n  prometheus: {url: 'http://p:9090', queries: [{name: 1load, query: up}]}",
		"spec.prometheus.queries[0].name", "should match"},
	{"prometheus duplicate query names", dsHeader, "spec:\n  prometheus: {url: 'http://p:9090', queries: [{name: a, query: up}, {name: a, query: down}]}",
		"spec.prometheus.queries[1]", "Duplicate value"},
	{"prometheus step below a second", dsHeader, "spec:\n  prometheus: {url: 'http://p:9090', queries: [{name: a, query: up}], step: 500ms}",
		"spec.prometheus", "step must be at least 1s"},
	{"prometheus too many points", dsHeader, "spec:\n  prometheus: {url: 'http://p:9090', queries: [{name: a, query: up}, {name: b, query: up}], range: 2400h, step: 1s}",
		"spec.prometheus", "at most 10,000,000 points"},
	{"prometheus bearer and basic auth", dsHeader, "spec:\n  prometheus: {url: 'http://p:9090', queries: [{name: a, query: up}], bearerTokenSecretRef: {name: t, key: k}, basicAuthSecretRef: {name: b}}",
		"spec.prometheus", "not both"},
	{"prometheus authorization header", dsHeader, "spec:\n  prometheus: {url: 'http://p:9090', queries: [{name: a, query: up}], headers: [{name: Authorization, value: x}]}",
		"spec.prometheus.headers[0]", "credentials go in bearerTokenSecretRef"},
	{"prometheus two CA bundles", dsHeader, "spec:\n  prometheus: {url: 'https://p:9090', queries: [{name: a, query: up}], tls: {caSecretRef: {name: a, key: b}, caConfigMapRef: {name: c, key: d}}}",
		"spec.prometheus.tls", "not both"},
	{"prometheus CA and insecure", dsHeader, "spec:\n  prometheus: {url: 'https://p:9090', queries: [{name: a, query: up}], tls: {caSecretRef: {name: a, key: b}, insecureSkipVerify: true}}",
		"spec.prometheus.tls", "insecureSkipVerify skips"},
	{"prometheus entity label not a label name", dsHeader, "spec:\n  prometheus: {url: 'http://p:9090', queries: [{name: a, query: up}], entityLabels: [pod-name]}",
		"spec.prometheus.entityLabels[0]", "should match"},
	{"prometheus range not a duration", dsHeader, "spec:\n  prometheus: {url: 'http://p:9090', queries: [{name: a, query: up}], range: 1d}",
		"spec.prometheus.range", "should match"},

	{"detector without model", detHeader, "spec:\n  dataSourceRef: {name: tx}", "spec.model", "Required value"},
	{"detector without data source", detHeader, "spec:\n  model: {type: Autoencoder}", "spec.dataSourceRef", "Required value"},
	{"unknown model type", detHeader, detSpec("  model: {type: Transformer}"), "spec.model.type", "Unsupported value"},
	{"unknown activation", detHeader, detSpec("  model: {type: Autoencoder, activation: Swish}"), "spec.model.activation", "Unsupported value"},
	{"window on a dense autoencoder", detHeader, detSpec("  model: {type: Autoencoder, window: 16}"), "spec.model", "window applies only to types LSTMAutoencoder and ConvAutoencoder"},
	{"conv window not halved twice", detHeader, detSpec("  model: {type: ConvAutoencoder, window: 18}"), "spec.model", "window must be divisible by 2 to the number of channels"},
	{"conv window not halved three times", detHeader, detSpec("  model: {type: ConvAutoencoder, channels: [8, 8, 8], window: 20}"), "spec.model", "window must be divisible by 2 to the number of channels"},
	{"scoring rule on a dense autoencoder", detHeader, detSpec("  model: {type: Autoencoder, scoringRule: Causal}"), "spec.model", "scoringRule applies only to types LSTMAutoencoder and ConvAutoencoder"},
	{"unknown scoring rule", detHeader, detSpec("  model: {type: LSTMAutoencoder, scoringRule: Newest}"), "spec.model.scoringRule", "Unsupported value"},
	{"stride longer than window", detHeader, detSpec("  model: {type: LSTMAutoencoder, window: 8, stride: 9}"), "spec.model", "stride must not exceed window"},
	{"channels on an LSTM", detHeader, detSpec("  model: {type: LSTMAutoencoder, channels: [8]}"), "spec.model", "channels applies only to type ConvAutoencoder"},
	{"resampling on an LSTM", detHeader, detSpec("  model: {type: LSTMAutoencoder, resampling: Strided}"), "spec.model", "resampling applies only to type ConvAutoencoder"},
	{"dropout on a dense autoencoder", detHeader, detSpec("  model: {type: Autoencoder, dropout: 0.2}"), "spec.model", "dropout applies only to type ConvAutoencoder"},
	{"latent size on a strided conv", detHeader, detSpec("  model: {type: ConvAutoencoder, resampling: Strided, latentSize: 8}"), "spec.model", "latentSize does not apply to resampling Strided"},
	{"unknown resampling", detHeader, detSpec("  model: {type: ConvAutoencoder, resampling: Dilated}"), "spec.model.resampling", "Unsupported value"},
	{"dropout too large", detHeader, detSpec("  model: {type: ConvAutoencoder, dropout: 0.95}"), "spec.model.dropout", "model.dropout must be a share from 0 to 0.9"},
	{"even kernel size", detHeader, detSpec("  model: {type: ConvAutoencoder, kernelSize: 4}"), "spec.model.kernelSize", "kernelSize must be odd"},
	{"hidden layer of width 0", detHeader, detSpec("  model: {type: Autoencoder, hiddenLayers: [64, 0]}"), "spec.model.hiddenLayers[1]", "greater than or equal to 1"},
	{"zero epochs", detHeader, detSpec("  model: {type: Autoencoder}\n  training: {epochs: 0}"), "spec.training.epochs", "greater than or equal to 1"},
	{"zero learning rate", detHeader, detSpec("  model: {type: Autoencoder}\n  training: {learningRate: 0}"), "spec.training.learningRate", "greater than 0"},
	{"validation split too large", detHeader, detSpec("  model: {type: Autoencoder}\n  training: {validationSplit: 0.9}"), "spec.training.validationSplit", "training.validationSplit must be a fraction of the rows from 0 to 0.5"},
	{"early stopping without patience", detHeader, detSpec("  model: {type: Autoencoder}\n  training: {earlyStopping: {minDelta: 0.1}}"),
		"spec.training.earlyStopping.patience", "Required value"},
	{"fixed threshold without value", detHeader, detSpec("  model: {type: Autoencoder}\n  threshold: {method: Fixed}"),
		"spec.threshold", "value is required by method Fixed"},
	{"value with percentile method", detHeader, detSpec("  model: {type: Autoencoder}\n  threshold: {method: Percentile, value: 3}"),
		"spec.threshold", "value is required by method Fixed and applies to it only"},
	{"percentile of 100", detHeader, detSpec("  model: {type: Autoencoder}\n  threshold: {percentile: 100}"), "spec.threshold.percentile", "less than 100"},
	{"stdDevs with percentile method", detHeader, detSpec("  model: {type: Autoencoder}\n  threshold: {method: Percentile, stdDevs: 3}"),
		"spec.threshold", "stdDevs applies only to method MeanStd"},
	{"contamination above one half", detHeader, detSpec("  model: {type: Autoencoder}\n  threshold: {method: Contamination, contamination: 0.7}"),
		"spec.threshold.contamination", "threshold.contamination must be a fraction above 0 and at most 0.5"},
	{"contamination of zero", detHeader, detSpec("  model: {type: Autoencoder}\n  threshold: {method: Contamination, contamination: 0}"),
		"spec.threshold.contamination", "threshold.contamination must be a fraction above 0"},
	{"percentile written as a fraction", detHeader, detSpec("  model: {type: Autoencoder}\n  threshold: {percentile: 0.99}"),
		"spec.threshold.percentile", "not a fraction: write 99 for the 99th percentile"},
	{"unknown threshold method", detHeader, detSpec("  model: {type: Autoencoder}\n  threshold: {method: Magic}"), "spec.threshold.method", "Unsupported value"},
	{"scoring port out of range", detHeader, detSpec("  model: {type: Autoencoder}\n  scoring: {port: 70000}"), "spec.scoring.port", "less than or equal to 65535"},
	{"negative replicas", detHeader, detSpec("  model: {type: Autoencoder}\n  scoring: {replicas: -1}"), "spec.scoring.replicas", "greater than or equal to 0"},
	{"schedule of three fields", detHeader, detSpec("  model: {type: Autoencoder}\n  training: {schedule: '0 3 *'}"), "spec.training.schedule", "training.schedule must be five cron fields"},
	{"schedule in words", detHeader, detSpec("  model: {type: Autoencoder}\n  training: {schedule: 'every night'}"), "spec.training.schedule", "training.schedule must be five cron fields"},
	{"max model age not a duration", detHeader, detSpec("  model: {type: Autoencoder}\n  training: {maxModelAge: 1d}"), "spec.training.maxModelAge", "should match"},
	{"keep no versions", detHeader, detSpec("  model: {type: Autoencoder}\n  storage: {keepVersions: 0}"), "spec.storage.keepVersions", "greater than or equal to 1"},
	{"watch interval under a second", detHeader, detSpec("  model: {type: Autoencoder}\n  scoring: {interval: 500ms}"), "spec.scoring", "scoring.interval must be at least 1s"},
	{"watch interval not a duration", detHeader, detSpec("  model: {type: Autoencoder}\n  scoring: {interval: often}"), "spec.scoring.interval", "should match"},
	{"watch delay not a duration", detHeader, detSpec("  model: {type: Autoencoder}\n  scoring: {delay: -5s}"), "spec.scoring.delay", "should match"},
	{"alert for not a duration", detHeader, detSpec("  model: {type: Autoencoder}\n  alerting: {for: soon}"), "spec.alerting.for", "should match"},
	{"alert severity with a space", detHeader, detSpec("  model: {type: Autoencoder}\n  alerting: {severity: 'very bad'}"), "spec.alerting.severity", "should match"},
	{"alert label not a label name", detHeader, detSpec("  model: {type: Autoencoder}\n  alerting: {labels: {team-name: sre}}"), "spec.alerting.labels", "alerting.labels keys must be Prometheus label names"},
	{"alert label reserved", detHeader, detSpec("  model: {type: Autoencoder}\n  alerting: {labels: {__name__: x}}"), "spec.alerting.labels", "not starting with __"},
	{"single-pod access mode", detHeader, detSpec("  model: {type: Autoencoder}\n  storage: {accessMode: ReadWriteOncePod}"), "spec.storage.accessMode", "Unsupported value"},
	{"unknown retention policy", detHeader, detSpec("  model: {type: Autoencoder}\n  storage: {retentionPolicy: Keep}"), "spec.storage.retentionPolicy", "Unsupported value"},
	{"name too long for its children", "apiVersion: anomaly.kadet.dev/v1alpha1\nkind: Detector\nmetadata: {name: a-detector-name-that-is-far-too-long-for-kadet-%d}\n",
		detSpec("  model: {type: Autoencoder}"), "metadata.name", "must be at most 40 characters"},
	{"name starting with a digit", "apiVersion: anomaly.kadet.dev/v1alpha1\nkind: Detector\nmetadata: {name: 9det-%d}\n",
		detSpec("  model: {type: Autoencoder}"), "metadata.name", "must be a DNS label starting with a letter"},
}

func TestInvalidManifestsAreRefused(t *testing.T) {
	for i, tt := range invalidManifests {
		t.Run(tt.name, func(t *testing.T) {
			obj := object(t, fmt.Sprintf(tt.header, i)+tt.body)
			err := k8sClient.Create(context.Background(), obj)
			if err == nil {
				t.Fatalf("accepted:\n%s", tt.body)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantPath+":") && !strings.Contains(msg, tt.wantPath+"[") && !strings.Contains(msg, tt.wantPath+" ") {
				t.Errorf("error does not name field %s:\n%s", tt.wantPath, msg)
			}
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("error does not say %q:\n%s", tt.wantMsg, msg)
			}
		})
	}
}

func TestMinimalManifestsAreDefaulted(t *testing.T) {
	det := object(t, "apiVersion: anomaly.kadet.dev/v1alpha1\nkind: Detector\nmetadata: {name: minimal}\n"+
		detSpec("  model: {type: Autoencoder}"))
	if err := k8sClient.Create(context.Background(), det); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		// The contract repeats these for requests built without the API server.
		"spec.training.epochs": int64(contract.DefaultEpochs), "spec.training.batchSize": int64(contract.DefaultBatchSize),
		"spec.training.learningRate": contract.DefaultLearningRate, "spec.training.validationSplit": contract.DefaultValidationSplit,
		"spec.training.seed": int64(contract.DefaultSeed), "spec.training.backoffLimit": int64(1),
		"spec.threshold.method": "Percentile", "spec.preprocessing.scaling": "Standardize", "spec.model.activation": "ReLU",
		"spec.scoring.replicas": int64(1), "spec.scoring.port": int64(8080),
		"spec.storage.size": "1Gi", "spec.storage.accessMode": "ReadWriteOnce", "spec.storage.retentionPolicy": "Retain",
	}
	for path, v := range want {
		got, found, err := unstructured.NestedFieldNoCopy(det.Object, strings.Split(path, ".")...)
		if err != nil || !found || got != v {
			t.Errorf("%s = %v (%T), found %v; want %v", path, got, got, found, v)
		}
	}

	ds := object(t, "apiVersion: anomaly.kadet.dev/v1alpha1\nkind: DataSource\nmetadata: {name: minimal}\n"+
		"spec:\n  prometheus: {url: 'http://p:9090', queries: [{name: a, query: up}]}")
	if err := k8sClient.Create(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	for path, v := range map[string]string{"spec.prometheus.range": "24h", "spec.prometheus.step": "1m"} {
		if got, _, _ := unstructured.NestedString(ds.Object, strings.Split(path, ".")...); got != v {
			t.Errorf("%s = %q; want %q", path, got, v)
		}
	}
}

// Windows that each conv block can halve pass the rule the refusals above hit.
func TestConvWindowsAreAccepted(t *testing.T) {
	for i, model := range []string{
		"{type: ConvAutoencoder, window: 32, stride: 4}",
		"{type: ConvAutoencoder, channels: [8, 8, 8], window: 24}",
		"{type: ConvAutoencoder, channels: [8], window: 6}",
		"{type: LSTMAutoencoder, window: 7}",
	} {
		det := object(t, fmt.Sprintf("apiVersion: anomaly.kadet.dev/v1alpha1\nkind: Detector\nmetadata: {name: conv-window-%d}\n", i)+
			detSpec("  model: "+model))
		if err := k8sClient.Create(context.Background(), det); err != nil {
			t.Errorf("%s: %v", model, err)
		}
	}
}

// TestStorageUpdatesAreChecked covers the transition rules: what cannot change on a
// bound PVC cannot change on the Detector either.
func TestStorageUpdatesAreChecked(t *testing.T) {
	ctx := context.Background()
	det := object(t, "apiVersion: anomaly.kadet.dev/v1alpha1\nkind: Detector\nmetadata: {name: stored}\n"+
		detSpec("  model: {type: Autoencoder}\n  storage: {size: 2Gi}"))
	if err := k8sClient.Create(ctx, det); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, field, value, wantMsg string
	}{
		{"access mode is immutable", "accessMode", "ReadWriteMany", "accessMode is immutable"},
		{"storage class is immutable", "storageClassName", "fast", "storageClassName is immutable"},
		{"size cannot shrink", "size", "1Gi", "size can grow but not shrink"},
		{"size can grow", "size", "4Gi", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := &unstructured.Unstructured{}
			cur.SetGroupVersionKind(det.GroupVersionKind())
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(det), cur); err != nil {
				t.Fatal(err)
			}
			if err := unstructured.SetNestedField(cur.Object, tt.value, "spec", "storage", tt.field); err != nil {
				t.Fatal(err)
			}
			err := k8sClient.Update(ctx, cur)
			switch {
			case tt.wantMsg == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), "spec.storage") || !strings.Contains(err.Error(), tt.wantMsg)):
				t.Fatalf("err = %v; want spec.storage: %s", err, tt.wantMsg)
			}
		})
	}
}

// TestSamplesAreAccepted applies every document of config/samples as a user would.
func TestSamplesAreAccepted(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("samples: %v %v", files, err)
	}
	ns := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "samples"},
	}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	kinds := 0
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(raw), "\n---\n") {
			obj := object(t, doc)
			obj.SetNamespace("samples")
			if err := k8sClient.Create(context.Background(), obj); err != nil {
				t.Errorf("%s document %d (%s %s): %v", filepath.Base(f), i, obj.GetKind(), obj.GetName(), err)
			}
			if obj.GetKind() == "Detector" {
				kinds++
			}
		}
	}
	if kinds < 4 {
		t.Errorf("only %d Detector samples", kinds)
	}
}
