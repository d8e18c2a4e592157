package node

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"POD_IP": "127.0.10.2", "EMPTY": ""}
	for in, want := range map[string]string{
		"--addr=$(POD_IP):8080": "--addr=127.0.10.2:8080",
		"$(MISSING)":            "$(MISSING)",
		"$$(POD_IP)":            "$(POD_IP)",
		"a$(EMPTY)b":            "ab",
		"cost $5":               "cost $5",
		"$(UNCLOSED":            "$(UNCLOSED",
		"trailing $":            "trailing $",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFieldValue(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1",
		Labels: map[string]string{"app": "x"}}, Spec: corev1.PodSpec{NodeName: "n", ServiceAccountName: "sa"}}
	for path, want := range map[string]string{
		"metadata.name": "p", "metadata.namespace": "ns", "metadata.uid": "u1", "spec.nodeName": "n",
		"spec.serviceAccountName": "sa", "status.podIP": "127.0.10.9", "status.hostIP": hostIP,
		"metadata.labels['app']": "x",
	} {
		got, err := fieldValue(pod, path, "127.0.10.9")
		if err != nil || got != want {
			t.Errorf("fieldValue(%s) = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := fieldValue(pod, "spec.nope", ""); err == nil {
		t.Error("an unknown field path was accepted")
	}
}

func TestResourceValue(t *testing.T) {
	p := &Provider{cfg: Config{Memory: resource.MustParse("8Gi")}}
	c := corev1.Container{Name: "c", Resources: corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m")},
		Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
	}}
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
	for _, tc := range []struct {
		res, divisor, want string
	}{
		{"limits.cpu", "1", "2"}, // rounded up, as the kubelet does
		{"limits.cpu", "1m", "1500"},
		{"requests.memory", "1Mi", "1024"},
		{"limits.memory", "1Gi", "8"}, // no limit: the node's memory
	} {
		got, err := p.resourceValue(pod, &c, &corev1.ResourceFieldSelector{Resource: tc.res, Divisor: resource.MustParse(tc.divisor)})
		if err != nil || got != tc.want {
			t.Errorf("%s / %s = %q, %v; want %s", tc.res, tc.divisor, got, err, tc.want)
		}
	}
	if _, err := p.resourceValue(pod, &c, &corev1.ResourceFieldSelector{ContainerName: "other", Resource: "limits.cpu"}); err == nil {
		t.Error("a missing container was accepted")
	}
}

func TestBinaryMapping(t *testing.T) {
	p := &Provider{cfg: Config{Images: map[string]string{"ghcr.io/kadet-dev/kadet": "/bin", "exact:1.0": "/usr/bin"}}}
	for _, tc := range []struct {
		image   string
		command []string
		want    string
		ok      bool
	}{
		{"ghcr.io/kadet-dev/kadet:demo", []string{"sh"}, "/bin/sh", true},
		{"ghcr.io/kadet-dev/kadet@sha256:abc", []string{"/sh"}, "/bin/sh", true},
		{"exact:1.0", []string{"env"}, "/usr/bin/env", true},
		{"exact:2.0", []string{"env"}, "", false},
		{"ghcr.io/kadet-dev/kadet:demo", nil, "", false},
		{"ghcr.io/kadet-dev/kadet:demo", []string{"no-such-binary"}, "", false},
	} {
		got, err := p.binary(tc.image, tc.command)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("binary(%s, %v) = %q, %v", tc.image, tc.command, got, err)
		}
	}
}
