package node

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// containerEnv resolves c's environment as the kubelet would: envFrom, then env in
// order with $(VAR) references to earlier variables, the downward API (including
// status.podIP, which virtual-kubelet's own resolver cannot know before the pod has
// an IP) and resource limits. KUBERNETES_SERVICE_HOST/PORT point at the apiserver's
// real address: ClusterIPs do not route on this node.
func (p *Provider) containerEnv(ctx context.Context, pod *corev1.Pod, c *corev1.Container, podIP string) ([]string, error) {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	set("HOSTNAME", pod.Name)
	set("KUBERNETES_SERVICE_HOST", p.cfg.APIServerHost)
	set("KUBERNETES_SERVICE_PORT", p.cfg.APIServerPort)
	set("KUBERNETES_SERVICE_PORT_HTTPS", p.cfg.APIServerPort)

	for _, from := range c.EnvFrom {
		kind, name, optional := kindConfigMap, "", false
		switch {
		case from.ConfigMapRef != nil:
			name, optional = from.ConfigMapRef.Name, ptr.Deref(from.ConfigMapRef.Optional, false)
		case from.SecretRef != nil:
			kind, name, optional = kindSecret, from.SecretRef.Name, ptr.Deref(from.SecretRef.Optional, false)
		default:
			continue
		}
		data, err := p.objectData(ctx, pod.Namespace, kind, name, false)
		if err != nil {
			if optional {
				continue
			}
			return nil, fmt.Errorf("envFrom %w", err)
		}
		for k, v := range data {
			set(from.Prefix+k, string(v))
		}
	}

	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, vars))
			continue
		}
		v, skip, err := p.envValueFrom(ctx, pod, c, e.ValueFrom, podIP)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if !skip {
			set(e.Name, v)
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vars[k])
	}
	return out, nil
}

func (p *Provider) envValueFrom(ctx context.Context, pod *corev1.Pod, c *corev1.Container, from *corev1.EnvVarSource, podIP string) (string, bool, error) {
	switch {
	case from.FieldRef != nil:
		v, err := fieldValue(pod, from.FieldRef.FieldPath, podIP)
		return v, false, err
	case from.ResourceFieldRef != nil:
		v, err := p.resourceValue(pod, c, from.ResourceFieldRef)
		return v, false, err
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		return p.keyRef(ctx, pod.Namespace, kindConfigMap, ref.Name, ref.Key, ptr.Deref(ref.Optional, false))
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		return p.keyRef(ctx, pod.Namespace, kindSecret, ref.Name, ref.Key, ptr.Deref(ref.Optional, false))
	}
	return "", true, nil
}

// keyRef is the value of one key of a ConfigMap or Secret; skip is true when an
// optional reference finds nothing.
func (p *Provider) keyRef(ctx context.Context, ns, kind, name, key string, optional bool) (string, bool, error) {
	data, err := p.objectData(ctx, ns, kind, name, false)
	if err != nil {
		if optional {
			return "", true, nil
		}
		return "", false, err
	}
	v, ok := data[key]
	if !ok && !optional {
		return "", false, fmt.Errorf("%s %q has no key %q", kind, name, key)
	}
	return string(v), !ok, nil
}

// fieldValue is the downward API's value of path for pod.
func fieldValue(pod *corev1.Pod, path, podIP string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	}
	for _, m := range []struct {
		prefix string
		values map[string]string
	}{{"metadata.labels", pod.Labels}, {"metadata.annotations", pod.Annotations}} {
		if path == m.prefix {
			var b strings.Builder
			for k, v := range m.values {
				fmt.Fprintf(&b, "%s=%q\n", k, v)
			}
			return b.String(), nil
		}
		if key, ok := strings.CutPrefix(path, m.prefix+"['"); ok {
			return m.values[strings.TrimSuffix(key, "']")], nil
		}
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

// resourceValue is a resourceFieldRef's value: the container's limit (the node's
// capacity when it has none) or request, divided by the divisor and rounded up.
func (p *Provider) resourceValue(pod *corev1.Pod, c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	target := c
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		target = nil
		for i := range pod.Spec.Containers {
			if pod.Spec.Containers[i].Name == ref.ContainerName {
				target = &pod.Spec.Containers[i]
			}
		}
		if target == nil {
			return "", fmt.Errorf("resourceFieldRef names container %q, which the pod does not have", ref.ContainerName)
		}
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	list := target.Resources.Limits
	if kind == "requests" {
		list = target.Resources.Requests
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok {
		switch name {
		case "cpu":
			if kind == "requests" {
				q = resource.MustParse("0")
			} else {
				q = *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI)
			}
		case "memory":
			if kind == "requests" {
				q = resource.MustParse("0")
			} else {
				q = p.cfg.Memory
			}
		default:
			q = resource.MustParse("0")
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	v := math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue()))
	return strconv.FormatInt(int64(v), 10), nil
}

// expand replaces $(NAME) with vars[NAME] where defined, and $$ with $, as Kubernetes
// does for env values, command and args.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// envMap turns KEY=VALUE pairs back into a map for $(VAR) expansion in args.
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
