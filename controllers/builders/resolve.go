package builders

import (
	"fmt"
	"path"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

// TrainingPlan is a Detector's TrainingRequest plus the volumes that make the
// request's local paths exist inside the training pod.
type TrainingPlan struct {
	Request kadetv1.TrainingRequest
	Hash    string
	Volumes []corev1.Volume
	Mounts  []corev1.VolumeMount
}

// IncompatibleError says a Detector cannot train on its DataSource as declared.
type IncompatibleError struct{ msg string }

func (e *IncompatibleError) Error() string { return e.msg }

func incompatible(format string, args ...any) error {
	return &IncompatibleError{msg: fmt.Sprintf(format, args...)}
}

// ResolveTraining renders the TrainingRequest of det on ds. dataDigest is the digest
// of data the controller can read itself (a ConfigMap key), or empty.
func ResolveTraining(det *kadetv1.Detector, ds *kadetv1.DataSource, dataDigest string) (*TrainingPlan, error) {
	if err := checkCompatible(det, ds); err != nil {
		return nil, err
	}
	t := det.Spec.Training
	p := &TrainingPlan{Request: kadetv1.TrainingRequest{
		APIVersion:    kadetv1.GroupVersion.String(),
		Kind:          kadetv1.TrainingRequestKind,
		Detector:      kadetv1.ObjectKey{Namespace: det.Namespace, Name: det.Name},
		Model:         kadetv1.ResolvedModel(det.Spec.Model),
		Preprocessing: det.Spec.Preprocessing,
		Training: kadetv1.TrainingParameters{
			Epochs: t.Epochs, BatchSize: t.BatchSize, LearningRate: t.LearningRate,
			ValidationSplit: ptr.Deref(t.ValidationSplit, kadetv1.DefaultValidationSplit),
			Seed:            ptr.Deref(t.Seed, kadetv1.DefaultSeed), EarlyStopping: t.EarlyStopping,
		},
		Threshold:    kadetv1.ResolvedThreshold(det.Spec.Threshold),
		RetrainToken: det.Annotations[AnnotationRetrain],
	}}
	if p.Request.Preprocessing.Scaling == "" {
		p.Request.Preprocessing.Scaling = "Standardize"
	}
	p.Request.Data.Digest = dataDigest
	p.resolveData(&ds.Spec)
	hash, err := p.Request.Hash()
	if err != nil {
		return nil, err
	}
	p.Hash = hash
	return p, nil
}

// checkCompatible refuses model / data combinations that cannot train, with a message
// that says what to change.
func checkCompatible(det *kadetv1.Detector, ds *kadetv1.DataSource) error {
	src := ds.Spec.Type()
	model := det.Spec.Model.Type
	hasLabels := (ds.Spec.CSV != nil && ds.Spec.CSV.LabelColumn != "") ||
		(ds.Spec.Images != nil && ds.Spec.Images.LabelFile != nil)
	switch {
	case model == kadetv1.MLPClassifier && (ds.Spec.CSV == nil || ds.Spec.CSV.LabelColumn == ""):
		return incompatible("model type MLPClassifier needs a csv DataSource with labelColumn; DataSource %q has none", ds.Name)
	case model == kadetv1.ConvAutoencoder && src == "images" && (det.Spec.Model.Window != nil || det.Spec.Model.Stride != nil):
		return incompatible("window and stride are for a ConvAutoencoder over a series (csv or prometheus); DataSource %q is images", ds.Name)
	case model == kadetv1.LSTMAutoencoder && src == "images":
		return incompatible("model type LSTMAutoencoder needs a csv or prometheus DataSource; DataSource %q is images", ds.Name)
	case det.Spec.Threshold.Method == kadetv1.ThresholdBestF1 && !hasLabels:
		return incompatible("threshold method BestF1 needs labels (csv labelColumn or images labelFile); DataSource %q has none", ds.Name)
	}
	return nil
}

func (p *TrainingPlan) resolveData(spec *kadetv1.DataSourceSpec) {
	d := &p.Request.Data
	switch {
	case spec.CSV != nil:
		c := spec.CSV
		delim := c.Delimiter
		if delim == "" {
			delim = ","
		}
		d.CSV = &kadetv1.ResolvedCSV{
			Columns: slices.Clone(c.Columns), TimestampColumn: c.TimestampColumn,
			LabelColumn: c.LabelColumn, Delimiter: delim,
		}
		switch {
		case c.ConfigMapKeyRef != nil:
			d.CSV.File = kadetv1.FileLocation{Path: path.Join(DataDir, c.ConfigMapKeyRef.Key)}
			p.Volumes = append(p.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: c.ConfigMapKeyRef.Name},
					Items:                []corev1.KeyToPath{{Key: c.ConfigMapKeyRef.Key, Path: c.ConfigMapKeyRef.Key}},
				},
			}})
			p.Mounts = append(p.Mounts, corev1.VolumeMount{Name: "data", MountPath: DataDir, ReadOnly: true})
		case c.PersistentVolumeClaim != nil:
			d.CSV.File = p.pvcFile(c.PersistentVolumeClaim)
		default:
			d.CSV.File = kadetv1.FileLocation{URL: c.URL}
		}
	case spec.Images != nil:
		im := spec.Images
		d.Images = &kadetv1.ResolvedImages{File: p.remoteFile(im.File), Classes: slices.Clone(im.Classes)}
		if im.LabelFile != nil {
			lf := p.remoteFile(*im.LabelFile)
			d.Images.LabelFile = &lf
		}
	case spec.Prometheus != nil:
		pr := spec.Prometheus
		d.Prometheus = &kadetv1.ResolvedPrometheus{
			URL: pr.URL, Queries: slices.Clone(pr.Queries), Range: pr.Range.Duration.String(), Step: pr.Step.Duration.String(),
		}
		if ref := pr.BearerTokenSecretRef; ref != nil {
			dir := path.Join(SecretsDir, "prometheus")
			d.Prometheus.BearerTokenFile = path.Join(dir, "token")
			p.Volumes = append(p.Volumes, corev1.Volume{Name: "prometheus-token", VolumeSource: corev1.VolumeSource{
				Secret: &corev1.SecretVolumeSource{
					SecretName: ref.Name, Items: []corev1.KeyToPath{{Key: ref.Key, Path: "token"}},
				},
			}})
			p.Mounts = append(p.Mounts, corev1.VolumeMount{Name: "prometheus-token", MountPath: dir, ReadOnly: true})
		}
	}
}

func (p *TrainingPlan) remoteFile(f kadetv1.RemoteFile) kadetv1.FileLocation {
	if f.PersistentVolumeClaim != nil {
		return p.pvcFile(f.PersistentVolumeClaim)
	}
	return kadetv1.FileLocation{URL: f.URL}
}

// pvcFile mounts a data PVC read-only (once, however many files it holds) and
// returns the file's path inside the pod.
func (p *TrainingPlan) pvcFile(f *kadetv1.PVCFile) kadetv1.FileLocation {
	dir := path.Join(PVCDataRoot, f.ClaimName)
	if !slices.ContainsFunc(p.Mounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir }) {
		name := fmt.Sprintf("data-pvc-%d", len(p.Volumes))
		p.Volumes = append(p.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: f.ClaimName, ReadOnly: true},
		}})
		p.Mounts = append(p.Mounts, corev1.VolumeMount{Name: name, MountPath: dir, ReadOnly: true})
	}
	return kadetv1.FileLocation{Path: path.Join(dir, f.Path)}
}
