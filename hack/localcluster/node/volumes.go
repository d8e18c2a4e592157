package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// prepareVolumes gives every volume of pod a host folder and returns them by name.
// ConfigMaps, Secrets, projected tokens and the downward API are written once, at
// start (the kubelet refreshes them; a local node for short jobs does not); a PVC is
// its bound PersistentVolume's hostPath or local path.
func (p *Provider) prepareVolumes(ctx context.Context, pod *corev1.Pod, dir, podIP string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		host := filepath.Join(dir, "volumes", v.Name)
		switch {
		case v.EmptyDir != nil:
			if err := os.MkdirAll(host, 0o777); err != nil {
				return nil, err
			}
		case v.ConfigMap != nil:
			if err := p.writeObject(ctx, pod.Namespace, host, kindConfigMap, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional); err != nil {
				return nil, fmt.Errorf("volume %q: %w", v.Name, err)
			}
		case v.Secret != nil:
			if err := p.writeObject(ctx, pod.Namespace, host, kindSecret, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional); err != nil {
				return nil, fmt.Errorf("volume %q: %w", v.Name, err)
			}
		case v.DownwardAPI != nil:
			if err := writeDownward(pod, host, v.DownwardAPI.Items, podIP); err != nil {
				return nil, fmt.Errorf("volume %q: %w", v.Name, err)
			}
		case v.Projected != nil:
			if err := p.writeProjected(ctx, pod, host, v.Projected, podIP); err != nil {
				return nil, fmt.Errorf("volume %q: %w", v.Name, err)
			}
		case v.PersistentVolumeClaim != nil:
			path, err := p.claimPath(ctx, pod.Namespace, v.PersistentVolumeClaim.ClaimName)
			if err != nil {
				return nil, fmt.Errorf("volume %q: %w", v.Name, err)
			}
			host = path
		case v.HostPath != nil:
			host = v.HostPath.Path
			if t := v.HostPath.Type; t != nil && *t == corev1.HostPathDirectoryOrCreate {
				if err := os.MkdirAll(host, 0o755); err != nil {
					return nil, fmt.Errorf("volume %q: %w", v.Name, err)
				}
			}
		default:
			return nil, fmt.Errorf("volume %q: this local node supports emptyDir, configMap, secret, downwardAPI, projected, persistentVolumeClaim and hostPath volumes", v.Name)
		}
		out[v.Name] = host
	}
	return out, nil
}

// claimPath is the host folder behind a bound PVC.
func (p *Provider) claimPath(ctx context.Context, ns, name string) (string, error) {
	pvc, err := p.client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("persistentVolumeClaim %q: %w", name, err)
	}
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
		return "", fmt.Errorf("persistentVolumeClaim %q is %s, not Bound", name, pvc.Status.Phase)
	}
	pv, err := p.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("persistentVolume %q: %w", pvc.Spec.VolumeName, err)
	}
	switch {
	case pv.Spec.HostPath != nil:
		if err := os.MkdirAll(pv.Spec.HostPath.Path, 0o777); err != nil {
			return "", err
		}
		return pv.Spec.HostPath.Path, nil
	case pv.Spec.Local != nil:
		return pv.Spec.Local.Path, nil
	}
	return "", fmt.Errorf("persistentVolume %q is neither hostPath nor local", pv.Name)
}

// The kinds of object whose keys pods read.
const (
	kindConfigMap = "configMap"
	kindSecret    = "secret"
)

// objectData reads the keys of the ConfigMap or Secret name. A ConfigMap's binaryData
// reaches volumes only: the kubelet does not put it into the environment.
func (p *Provider) objectData(ctx context.Context, ns, kind, name string, withBinary bool) (map[string][]byte, error) {
	if kind == kindSecret {
		s, err := p.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", name, err)
		}
		return s.Data, nil
	}
	cm, err := p.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("configMap %q: %w", name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	if withBinary {
		for k, v := range cm.BinaryData {
			data[k] = v
		}
	}
	return data, nil
}

// writeObject writes the keys (or the selected items) of a ConfigMap or Secret as
// files under dir; an optional one that is missing leaves dir empty.
func (p *Provider) writeObject(ctx context.Context, ns, dir, kind, name string, items []corev1.KeyToPath, optional *bool) error {
	data, err := p.objectData(ctx, ns, kind, name, true)
	if err != nil {
		if ptr.Deref(optional, false) {
			return os.MkdirAll(dir, 0o755)
		}
		return err
	}
	return writeKeys(dir, data, items, kind+" "+name)
}

// writeKeys writes each key (or the selected items) as a file under dir.
func writeKeys(dir string, data map[string][]byte, items []corev1.KeyToPath, what string) error {
	files := map[string][]byte{}
	if len(items) == 0 {
		for k, v := range data {
			files[k] = v
		}
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("%s has no key %q", what, it.Key)
		}
		files[it.Path] = v
	}
	return writeFiles(dir, files)
}

func writeFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for rel, v := range files {
		if strings.Contains(rel, "..") || filepath.IsAbs(rel) {
			return fmt.Errorf("file path %q leaves the volume", rel)
		}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, v, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func writeDownward(pod *corev1.Pod, dir string, items []corev1.DownwardAPIVolumeFile, podIP string) error {
	files := map[string][]byte{}
	for _, it := range items {
		if it.FieldRef == nil {
			return fmt.Errorf("downwardAPI item %q: only fieldRef is supported", it.Path)
		}
		v, err := fieldValue(pod, it.FieldRef.FieldPath, podIP)
		if err != nil {
			return err
		}
		files[it.Path] = []byte(v)
	}
	return writeFiles(dir, files)
}

// writeProjected writes a projected volume; its service account token comes from the
// TokenRequest API, bound to the pod as the kubelet's would be.
func (p *Provider) writeProjected(ctx context.Context, pod *corev1.Pod, dir string, v *corev1.ProjectedVolumeSource, podIP string) error {
	for _, src := range v.Sources {
		switch {
		case src.ServiceAccountToken != nil:
			t := src.ServiceAccountToken
			req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
				ExpirationSeconds: t.ExpirationSeconds,
				BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
			}}
			if t.Audience != "" {
				req.Spec.Audiences = []string{t.Audience}
			}
			sa := pod.Spec.ServiceAccountName
			if sa == "" {
				sa = "default"
			}
			tr, err := p.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("token for service account %q: %w", sa, err)
			}
			if err := writeFiles(dir, map[string][]byte{t.Path: []byte(tr.Status.Token)}); err != nil {
				return err
			}
		case src.ConfigMap != nil:
			if err := p.writeObject(ctx, pod.Namespace, dir, kindConfigMap, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional); err != nil {
				return err
			}
		case src.Secret != nil:
			if err := p.writeObject(ctx, pod.Namespace, dir, kindSecret, src.Secret.Name, src.Secret.Items, src.Secret.Optional); err != nil {
				return err
			}
		case src.DownwardAPI != nil:
			if err := writeDownward(pod, dir, src.DownwardAPI.Items, podIP); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unsupported projected source")
		}
	}
	return nil
}
