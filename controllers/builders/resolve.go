package builders

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/detector/contract"
)

// TrainingPlan is a Detector's TrainingRequest plus the volumes that make the
// request's local paths exist inside the training pod.
type TrainingPlan struct {
	Request contract.TrainingRequest
	Hash    string
	// BaseHash leaves out the retrain token and scheduled run: the spec alone.
	BaseHash string
	Volumes  []corev1.Volume
	Mounts   []corev1.VolumeMount
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
	src := contract.SourceRows
	switch {
	case ds.Spec.Images != nil:
		src = contract.SourceImages
	case ds.Spec.Prometheus != nil:
		src = contract.SourceStream
	}
	p := &TrainingPlan{Request: contract.TrainingRequest{
		APIVersion:    contract.APIVersion,
		Kind:          contract.Kind,
		Detector:      contract.ObjectKey{Namespace: det.Namespace, Name: det.Name},
		Model:         contract.ResolvedModel(contractModel(det.Spec.Model), src),
		Preprocessing: contract.Preprocessing{Scaling: cmp.Or(string(det.Spec.Preprocessing.Scaling), contract.DefaultScaling)},
		Training: contract.TrainingParameters{
			Epochs: t.Epochs, BatchSize: t.BatchSize, LearningRate: t.LearningRate,
			ValidationSplit: ptr.Deref(t.ValidationSplit, contract.DefaultValidationSplit),
			Seed:            ptr.Deref(t.Seed, contract.DefaultSeed),
		},
		Threshold:     contract.ResolvedThreshold(contractThreshold(det.Spec.Threshold), src),
		Normalization: resolveNormalization(det, src),
		RetrainToken:  det.Annotations[AnnotationRetrain],
	}}
	if rs := det.Status.Retraining; rs != nil && rs.LastRun != nil {
		p.Request.Run = rs.LastRun.UTC().Format(time.RFC3339)
	}
	p.Request.Training.KeepFlagged = t.LeaveOutFlagged != nil && !*t.LeaveOutFlagged
	if es := t.EarlyStopping; es != nil {
		p.Request.Training.EarlyStopping = &contract.EarlyStopping{Patience: es.Patience, MinDelta: es.MinDelta}
	}
	p.Request.Data.Digest = dataDigest
	p.resolveData(&ds.Spec)
	p.Request.Preprocessing.ScaleBy = resolveScaleBy(det, p.Request.Data.NamesEntities())
	p.Request.Model.Seasonality = resolveSeasonality(det, src)
	p.Request.Backtest = resolveBacktest(det, src)
	hash, err := p.Request.Hash()
	if err != nil {
		return nil, err
	}
	p.Hash = hash
	if p.BaseHash, err = p.Request.BaseHash(); err != nil {
		return nil, err
	}
	return p, nil
}

// resolveNormalization is the likelihood stage det trains with: its spec's; else, for
// a Detector with a model, what that model has, so a default that changes never
// retrains a Detector behind its owner's back; else the default for its model and
// source.
func resolveNormalization(det *kadetv1.Detector, src contract.Source) *contract.Normalization {
	if n := det.Spec.Scoring.Normalization; n != nil {
		return contract.ResolvedNormalization(&contract.Normalization{Method: n.Method, LongWindow: n.LongWindow, ShortWindow: n.ShortWindow},
			contract.ModelType(det.Spec.Model.Type), src)
	}
	if m := det.Status.Model; m != nil {
		return contract.ResolvedNormalization(&contract.Normalization{Method: cmp.Or(m.Normalization, contract.NormalizationNone)},
			contract.ModelType(det.Spec.Model.Type), src)
	}
	return contract.ResolvedNormalization(nil, contract.ModelType(det.Spec.Model.Type), src)
}

// resolveScaleBy is how det's model scales entities: its spec's; else, for a Detector
// with a model, what that model does (a default that changes never retrains behind
// its owner's back); else the default for data whose rows name entities or not.
func resolveScaleBy(det *kadetv1.Detector, entities bool) string {
	if s := det.Spec.Preprocessing.ScaleBy; s != "" {
		return contract.ResolvedScaleBy(string(s), entities)
	}
	if m := det.Status.Model; m != nil {
		return contract.ResolvedScaleBy(cmp.Or(m.ScaleBy, contract.ScaleByModel), entities)
	}
	return contract.ResolvedScaleBy("", entities)
}

// resolveSeasonality is the seasonality det trains with: its spec's; else, for a
// Detector with a model, what that model has (a default that changes never retrains
// behind its owner's back); else the default for its model and source.
func resolveSeasonality(det *kadetv1.Detector, src contract.Source) string {
	t := contract.ModelType(det.Spec.Model.Type)
	if s := det.Spec.Model.Seasonality; s != "" {
		return contract.ResolvedSeasonality(string(s), t, src)
	}
	if m := det.Status.Model; m != nil {
		return contract.ResolvedSeasonality(cmp.Or(m.Seasonality, contract.SeasonalityNone), t, src)
	}
	return contract.ResolvedSeasonality("", t, src)
}

// resolveBacktest is the backtest det's new versions get: its spec's; else, for a
// Detector with a model trained without one, none (a default that changes never
// retrains behind its owner's back); else the default for its source. Episodes
// merge across the alert's for.
func resolveBacktest(det *kadetv1.Detector, src contract.Source) *contract.Backtest {
	var b *contract.Backtest
	switch s := det.Spec.Backtest; {
	case s != nil && s.Range != nil:
		b = &contract.Backtest{Range: s.Range.Duration.String()}
	case s != nil && s.HoldOutPercent != nil:
		b = &contract.Backtest{HoldOut: float64(*s.HoldOutPercent) / 100}
	case det.Status.Model != nil && det.Status.Model.Backtest == nil:
		return nil
	}
	if b = contract.ResolvedBacktest(b, src); b != nil {
		b.MergeGap = mergeGap(det)
	}
	return b
}

// mergeGap is the gap across which det's backtests merge anomalous rows into one
// episode: its alert's for.
func mergeGap(det *kadetv1.Detector) string {
	gap, _ := time.ParseDuration(DefaultAlertFor)
	if f := det.Spec.Alerting.For; f != nil {
		gap = f.Duration
	}
	return gap.String()
}

// contractModel is the API's model spec in the contract's terms.
func contractModel(m kadetv1.ModelSpec) contract.Model {
	return contract.Model{
		Type: contract.ModelType(m.Type), HiddenLayers: slices.Clone(m.HiddenLayers), LatentSize: m.LatentSize,
		Activation: string(m.Activation), Window: m.Window, Stride: m.Stride, Channels: slices.Clone(m.Channels),
		KernelSize: m.KernelSize, ScoringRule: m.ScoringRule, StuckValues: m.StuckValues, Resampling: string(m.Resampling), Dropout: m.Dropout,
		Seasonality: string(m.Seasonality),
	}
}

// contractThreshold is the API's threshold spec in the contract's terms.
func contractThreshold(t kadetv1.ThresholdSpec) contract.Threshold {
	return contract.Threshold{
		Method: contract.ThresholdMethod(t.Method), Percentile: t.Percentile, StdDevs: t.StdDevs,
		Value: t.Value, Contamination: t.Contamination,
	}
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
	case model == kadetv1.ConvAutoencoder && src == "images" &&
		(det.Spec.Model.Window != nil || det.Spec.Model.Stride != nil || det.Spec.Model.ScoringRule != ""):
		return incompatible("window, stride and scoringRule are for a ConvAutoencoder over a series (csv or prometheus); DataSource %q is images", ds.Name)
	case model == kadetv1.LSTMAutoencoder && src == "images":
		return incompatible("model type LSTMAutoencoder needs a csv or prometheus DataSource; DataSource %q is images", ds.Name)
	case model == kadetv1.ConvAutoencoder && src != "images" && det.Spec.Model.Window == nil &&
		contract.DefaultWindow%(1<<len(det.Spec.Model.Channels)) != 0:
		return incompatible("spec.model.channels: %d conv blocks halve the window %d times, and the default window of %d rows cannot be halved that often; set spec.model.window to a multiple of %d",
			len(det.Spec.Model.Channels), len(det.Spec.Model.Channels), contract.DefaultWindow, 1<<len(det.Spec.Model.Channels))
	case src == "images" && det.Spec.Scoring.Normalization != nil && det.Spec.Scoring.Normalization.Method == contract.NormalizationLikelihood:
		return incompatible("spec.scoring.normalization: Likelihood is for a sequence model over a series (csv or prometheus); DataSource %q is images", ds.Name)
	case det.Spec.Preprocessing.ScaleBy == kadetv1.ScaleByEntity && (ds.Spec.Prometheus == nil || len(ds.Spec.Prometheus.EntityLabels) == 0) &&
		(ds.Spec.CSV == nil || ds.Spec.CSV.EntityColumn == ""):
		return incompatible("spec.preprocessing.scaleBy: Entity needs rows that name their entity (prometheus.entityLabels or csv.entityColumn); DataSource %q names none", ds.Name)
	case det.Spec.Backtest != nil && ds.Spec.Prometheus == nil:
		return incompatible("spec.backtest is for a prometheus DataSource (a csv or images DataSource's held-out rows are in the training metrics); DataSource %q is %s", ds.Name, src)
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
		d.CSV = &contract.ResolvedCSV{
			Columns: slices.Clone(c.Columns), TimestampColumn: c.TimestampColumn,
			LabelColumn: c.LabelColumn, EntityColumn: c.EntityColumn, Delimiter: delim,
		}
		switch {
		case c.ConfigMapKeyRef != nil:
			d.CSV.File = contract.FileLocation{Path: path.Join(DataDir, c.ConfigMapKeyRef.Key)}
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
			d.CSV.File = contract.FileLocation{URL: c.URL}
		}
	case spec.Images != nil:
		im := spec.Images
		d.Images = &contract.ResolvedImages{File: p.remoteFile(im.File), Classes: slices.Clone(im.Classes)}
		if im.LabelFile != nil {
			lf := p.remoteFile(*im.LabelFile)
			d.Images.LabelFile = &lf
		}
	case spec.Prometheus != nil:
		p.resolvePrometheus(spec.Prometheus)
	}
}

// resolvePrometheus renders a Prometheus source; every credential is a file from a
// Secret mounted read-only, so none is ever in the request, its hash or the model file.
func (p *TrainingPlan) resolvePrometheus(pr *kadetv1.PrometheusSource) {
	d := &contract.ResolvedPrometheus{
		URL: pr.URL, Range: pr.Range.Duration.String(), Step: pr.Step.Duration.String(),
		EntityLabels: slices.Clone(pr.EntityLabels), MaxGap: pr.MaxGap,
	}
	p.Request.Data.Prometheus = d
	for _, q := range pr.Queries {
		d.Queries = append(d.Queries, contract.PrometheusQuery{Name: q.Name, Query: q.Query})
	}
	mount := func(name string, src corev1.VolumeSource) string {
		dir := path.Join(SecretsDir, strings.TrimSuffix(name, "-token"))
		p.Volumes = append(p.Volumes, corev1.Volume{Name: name, VolumeSource: src})
		p.Mounts = append(p.Mounts, corev1.VolumeMount{Name: name, MountPath: dir, ReadOnly: true})
		return dir
	}
	secret := func(name string, items ...corev1.KeyToPath) corev1.VolumeSource {
		return corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name, Items: items}}
	}
	for i, h := range pr.Headers {
		if ref := h.ValueFrom; ref != nil {
			if d.HeaderFiles == nil {
				d.HeaderFiles = map[string]string{}
			}
			dir := mount(fmt.Sprintf("prometheus-header-%d", i), secret(ref.Name, corev1.KeyToPath{Key: ref.Key, Path: "value"}))
			d.HeaderFiles[h.Name] = path.Join(dir, "value")
			continue
		}
		if d.Headers == nil {
			d.Headers = map[string]string{}
		}
		d.Headers[h.Name] = h.Value
	}
	if ref := pr.BearerTokenSecretRef; ref != nil {
		dir := mount("prometheus-token", secret(ref.Name, corev1.KeyToPath{Key: ref.Key, Path: "token"}))
		d.BearerTokenFile = path.Join(dir, "token")
	}
	if ref := pr.BasicAuthSecretRef; ref != nil {
		dir := mount("prometheus-basic-auth", secret(ref.Name,
			corev1.KeyToPath{Key: corev1.BasicAuthUsernameKey, Path: "username"}, corev1.KeyToPath{Key: corev1.BasicAuthPasswordKey, Path: "password"}))
		d.BasicAuth = &contract.ResolvedBasicAuth{UsernameFile: path.Join(dir, "username"), PasswordFile: path.Join(dir, "password")}
	}
	if t := pr.TLS; t != nil {
		d.TLS = &contract.ResolvedTLS{ServerName: t.ServerName, InsecureSkipVerify: ptr.Deref(t.InsecureSkipVerify, false)}
		switch {
		case t.CASecretRef != nil:
			d.TLS.CAFile = path.Join(mount("prometheus-ca", secret(t.CASecretRef.Name, corev1.KeyToPath{Key: t.CASecretRef.Key, Path: "ca.crt"})), "ca.crt")
		case t.CAConfigMapRef != nil:
			d.TLS.CAFile = path.Join(mount("prometheus-ca", corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: t.CAConfigMapRef.Name},
				Items:                []corev1.KeyToPath{{Key: t.CAConfigMapRef.Key, Path: "ca.crt"}},
			}}), "ca.crt")
		}
	}
}

func (p *TrainingPlan) remoteFile(f kadetv1.RemoteFile) contract.FileLocation {
	if f.PersistentVolumeClaim != nil {
		return p.pvcFile(f.PersistentVolumeClaim)
	}
	return contract.FileLocation{URL: f.URL}
}

// pvcFile mounts a data PVC read-only (once, however many files it holds) and
// returns the file's path inside the pod.
func (p *TrainingPlan) pvcFile(f *kadetv1.PVCFile) contract.FileLocation {
	dir := path.Join(PVCDataRoot, f.ClaimName)
	if !slices.ContainsFunc(p.Mounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir }) {
		name := fmt.Sprintf("data-pvc-%d", len(p.Volumes))
		p.Volumes = append(p.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: f.ClaimName, ReadOnly: true},
		}})
		p.Mounts = append(p.Mounts, corev1.VolumeMount{Name: name, MountPath: dir, ReadOnly: true})
	}
	return contract.FileLocation{Path: path.Join(dir, f.Path)}
}
