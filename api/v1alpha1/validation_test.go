package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/kadet-dev/kadet/detector/contract"
)

// These tests send manifests to a real kube-apiserver with kadet's CRDs installed and
// check that each invalid one is refused with a message naming the field.

var (
	k8sClient client.Client
	// restConfig is the admin's, for clients that impersonate users.
	restConfig *rest.Config
)

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
	restConfig = cfg
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

// detSpec wraps a Detector spec fragment around a valid minimal spec.
func detSpec(extra string) string {
	return "spec:\n  dataSourceRef: {name: tx}\n" + extra
}

// invalidCases reads testdata/invalid: one manifest a user might write per file,
// refused at admission. Its leading comments say why and what the refusal must
// contain; each case maps file, field, message and manifest to their text.
//
//	# what is wrong
//	# field: spec.model.window
//	# message: window applies only to ...
func invalidCases(t *testing.T) []map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []map[string]string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c := map[string]string{"file": filepath.Base(f), "manifest": string(raw)}
		for _, line := range strings.Split(string(raw), "\n") {
			for _, key := range []string{"field", "message"} {
				if v, ok := strings.CutPrefix(line, "# "+key+": "); ok {
					c[key] = v
				}
			}
		}
		if c["field"] == "" || c["message"] == "" {
			t.Fatalf("%s: needs '# field:' and '# message:' comments", f)
		}
		cases = append(cases, c)
	}
	return cases
}

func TestInvalidManifestsAreRefused(t *testing.T) {
	cases := invalidCases(t)
	// The issue that asked for this corpus asked for at least 60; fewer means files went missing.
	if len(cases) < 60 {
		t.Fatalf("only %d invalid manifests in testdata/invalid", len(cases))
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c["file"], ".yaml"), func(t *testing.T) {
			obj := object(t, c["manifest"])
			err := k8sClient.Create(context.Background(), obj)
			if err == nil {
				_ = k8sClient.Delete(context.Background(), obj)
				t.Fatalf("accepted:\n%s", c["manifest"])
			}
			msg := err.Error()
			if !strings.Contains(msg, c["field"]+":") && !strings.Contains(msg, c["field"]+"[") && !strings.Contains(msg, c["field"]+" ") {
				t.Errorf("error does not name field %s:\n%s", c["field"], msg)
			}
			if !strings.Contains(msg, c["message"]) {
				t.Errorf("error does not say %q:\n%s", c["message"], msg)
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

// The specs at the edges of the rules the refusals above hit are accepted.
func TestEdgeCasesAreAccepted(t *testing.T) {
	for i, spec := range []string{
		"  model: {type: ConvAutoencoder, window: 32, stride: 4}",
		"  model: {type: ConvAutoencoder, channels: [8, 8, 8], window: 24}",
		"  model: {type: ConvAutoencoder, channels: [8], window: 6}",
		"  model: {type: ConvAutoencoder, channels: [8], window: 8, kernelSize: 7}",
		"  model: {type: LSTMAutoencoder, window: 7}",
		"  model: {type: LSTMAutoencoder, stride: 32}",
		"  model: {type: LSTMAutoencoder, hiddenLayers: [4096]}",
		"  model: {type: Autoencoder, hiddenLayers: [8192, 8192], latentSize: 8192}",
		"  model: {type: Autoencoder}\n  training: {earlyStopping: {patience: 3}}",
		"  model: {type: Autoencoder}\n  training: {validationSplit: 0}",
		"  model: {type: Autoencoder}\n  training: {resources: {requests: {cpu: 500m, memory: 1073741824}, limits: {memory: 1Gi}}}",
		"  model: {type: Autoencoder}\n  scoring: {resources: {requests: {cpu: '1', memory: 1Mi}, limits: {cpu: '1', memory: 64Mi}}}",
		"  model: {type: Autoencoder}\n  storage: {size: 100Mi, storageClassName: ''}",
		"  model: {type: Autoencoder}\n  storage: {storageClassName: fast.ssd-1}",
		"  model: {type: Autoencoder}\n  alerting: {annotations: {runbook_url: 'https://r/{{ $labels.pod }}?v={{$value}}', note: 'a { b } {x} ends {', value: '{{ $value | humanize }} ({{ humanizePercentage $value }})'}, labels: {team: '{{ $labels.namespace | toLower }}-sre'}}",
	} {
		det := object(t, fmt.Sprintf("apiVersion: anomaly.kadet.dev/v1alpha1\nkind: Detector\nmetadata: {name: edge-%d}\n", i)+
			"spec:\n  dataSourceRef: {name: card.transactions-2026}\n"+spec)
		if err := k8sClient.Create(context.Background(), det); err != nil {
			t.Errorf("%s: %v", spec, err)
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
