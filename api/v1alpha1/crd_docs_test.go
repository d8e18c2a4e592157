package v1alpha1_test

import (
	"os"
	"path/filepath"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// Every field of every CRD has a description: `kubectl explain` and the API reference
// show it, and a field without one is a field a user has to guess about.
func TestEveryCRDFieldIsDescribed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) != 3 {
		t.Fatalf("CRD files %v, %v; want 3", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(b, &crd); err != nil {
			t.Fatal(err)
		}
		fields := 0
		var walk func(path string, s *apiextensionsv1.JSONSchemaProps)
		walk = func(path string, s *apiextensionsv1.JSONSchemaProps) {
			for name, p := range s.Properties {
				fields++
				// metadata is the apiserver's ObjectMeta, described there.
				if p.Description == "" && path+name != ".metadata" {
					t.Errorf("%s: %s%s has no description", crd.Name, path, name)
				}
				walk(path+name+".", &p)
			}
			if s.Items != nil && s.Items.Schema != nil {
				walk(path, s.Items.Schema)
			}
		}
		for _, v := range crd.Spec.Versions {
			walk(".", v.Schema.OpenAPIV3Schema)
		}
		if fields < 20 {
			t.Errorf("%s: walked only %d fields", crd.Name, fields)
		}
	}
}
