package builders

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/detector/contract"
)

// Config is the operator-wide part of every pod the builders make.
type Config struct {
	// Image holds the detector binary.
	Image           string
	ImagePullPolicy corev1.PullPolicy
	// Command runs the detector binary inside Image.
	Command []string
	// ScoringPeerNamespaces are the namespaces whose pods a scoring NetworkPolicy
	// admits by default, besides the Detector's own (Prometheus's, to scrape them).
	ScoringPeerNamespaces []string
}

// DefaultCommand is the detector binary's path on the image's PATH.
var DefaultCommand = []string{"detector"}

func (c Config) command() []string {
	if len(c.Command) == 0 {
		return DefaultCommand
	}
	return c.Command
}

func objectMeta(det *kadetv1.Detector, name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: name, Namespace: det.Namespace, Labels: commonLabels(det, component),
		OwnerReferences: []metav1.OwnerReference{ownerRef(det)},
	}
}

// ownerRef makes det the controller of a child, so children are garbage-collected with
// it and their changes trigger its reconcile.
func ownerRef(det *kadetv1.Detector) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: kadetv1.GroupVersion.String(), Kind: "Detector", Name: det.Name, UID: det.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}
}

// SpecConfigMap holds the rendered TrainingRequest. It is immutable and named by the
// request's hash, so a training pod always reads the spec it was started for.
func SpecConfigMap(det *kadetv1.Detector, plan *TrainingPlan) (*corev1.ConfigMap, error) {
	b, err := json.MarshalIndent(plan.Request, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("rendering training spec: %w", err)
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(det, SpecConfigMapName(det, plan.Hash), ComponentTraining),
		Immutable:  ptr.To(true),
		Data:       map[string]string{contract.SpecFileName: string(b)},
	}
	cm.Labels[LabelSpecHash] = plan.Hash
	return cm, nil
}

// ProgressConfigMap is the one object a training pod may write: it reports epoch and
// loss there and the controller mirrors them into status.training.
func ProgressConfigMap(det *kadetv1.Detector) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(det, ProgressConfigMapName(det), ComponentTraining),
	}
}

// TrainerServiceAccount is the identity of training pods.
func TrainerServiceAccount(det *kadetv1.Detector) *corev1.ServiceAccount {
	return serviceAccount(det, TrainerName(det), ComponentTraining)
}

// serviceAccount is a pod identity of det's; its Role and RoleBinding share its name.
func serviceAccount(det *kadetv1.Detector, name, component string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: objectMeta(det, name, component),
	}
}

// TrainerRole lets training pods update their progress ConfigMap and nothing else.
func TrainerRole(det *kadetv1.Detector) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: objectMeta(det, TrainerName(det), ComponentTraining),
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"configmaps"},
			ResourceNames: []string{ProgressConfigMapName(det)},
			Verbs:         []string{"get", "update", "patch"},
		}},
	}
}

// TrainerRoleBinding binds TrainerRole to TrainerServiceAccount.
func TrainerRoleBinding(det *kadetv1.Detector) *rbacv1.RoleBinding {
	return roleBinding(det, TrainerName(det), ComponentTraining)
}

// roleBinding binds the Role of a name to the ServiceAccount of the same name.
func roleBinding(det *kadetv1.Detector, name, component string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: objectMeta(det, name, component),
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: det.Namespace}},
	}
}

// ModelPVC holds every model version of det. With retention Retain it has no owner, so
// deleting the Detector keeps the models.
func ModelPVC(det *kadetv1.Detector) *corev1.PersistentVolumeClaim {
	s := det.Spec.Storage
	mode := s.AccessMode
	if mode == "" {
		mode = corev1.ReadWriteOnce
	}
	// An empty class is documented as the default class; on a PVC an empty class means
	// no class at all (static volumes only), so it is left out.
	class := s.StorageClassName
	if class != nil && *class == "" {
		class = nil
	}
	pvc := &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: objectMeta(det, ModelPVCName(det), "models"),
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{mode},
			StorageClassName: class,
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: ptr.Deref(s.Size, kadetv1.DefaultModelStorage)},
			},
		},
	}
	if s.RetentionPolicy != kadetv1.DeleteModels {
		pvc.OwnerReferences = nil
	}
	return pvc
}

// podSecurityContext runs every kadet pod as an unprivileged user; fsGroup makes the
// model volume writable for it.
func podSecurityContext() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532), RunAsGroup: ptr.To[int64](65532),
		FSGroup:        ptr.To[int64](65532),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func containerSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

func modelVolume(det *kadetv1.Detector, readOnly bool) corev1.Volume {
	return corev1.Volume{Name: "models", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: ModelPVCName(det), ReadOnly: readOnly},
	}}
}

// feedbackVolume is the model volume again, writable, for its feedback folder.
func feedbackVolume(det *kadetv1.Detector) corev1.Volume {
	return corev1.Volume{Name: "feedback", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: ModelPVCName(det)},
	}}
}

// tmpVolume gives the read-only root filesystem a writable /tmp.
var tmpVolume = corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
}

// blasThreads sizes the detector's BLAS thread pool to the container's CPU limit
// (rounded up; the node's CPUs without a limit), as Go sizes GOMAXPROCS: more threads
// than CPUs only contend.
func blasThreads(container string) corev1.EnvVar {
	return corev1.EnvVar{Name: "OPENBLAS_NUM_THREADS", ValueFrom: &corev1.EnvVarSource{
		ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: container, Resource: "limits.cpu", Divisor: resource.MustParse("1")},
	}}
}

// TrainingJob runs `detector train` once for plan. Bad input exits with
// contract.ExitInvalidInput and fails the Job at once; other failures are retried up to the
// Detector's backoffLimit.
func TrainingJob(det *kadetv1.Detector, plan *TrainingPlan, cfg Config) *batchv1.Job {
	t := det.Spec.Training
	labels := commonLabels(det, ComponentTraining)
	labels[LabelSpecHash] = plan.Hash
	volumes := append([]corev1.Volume{
		{Name: "spec", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: SpecConfigMapName(det, plan.Hash)},
		}}},
		modelVolume(det, false), tmpVolume,
	}, plan.Volumes...)
	mounts := append([]corev1.VolumeMount{
		{Name: "spec", MountPath: SpecDir, ReadOnly: true},
		{Name: "models", MountPath: ModelDir},
		{Name: "tmp", MountPath: TmpDir},
	}, plan.Mounts...)

	job := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: objectMeta(det, TrainingJobName(det, plan.Hash), ComponentTraining),
		Spec: batchv1.JobSpec{
			BackoffLimit:          ptr.To(ptr.Deref(t.BackoffLimit, 1)),
			ActiveDeadlineSeconds: t.ActiveDeadlineSeconds,
			PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
				{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
					ContainerName: ptr.To(TrainerContainer), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn,
					Values: []int32{contract.ExitInvalidInput, contract.ExitInsufficientData},
				}},
				{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{
					{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue},
				}},
			}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:      corev1.RestartPolicyNever,
					ServiceAccountName: TrainerName(det),
					SecurityContext:    podSecurityContext(),
					Volumes:            volumes,
					Containers: []corev1.Container{{
						Name: TrainerContainer, Image: cfg.Image, ImagePullPolicy: cfg.ImagePullPolicy,
						Command: cfg.command(),
						Args: []string{"train",
							"--spec", path.Join(SpecDir, contract.SpecFileName),
							"--out", ModelDir},
						Env: []corev1.EnvVar{
							fieldEnv(contract.EnvPodNamespace, "metadata.namespace"),
							fieldEnv(contract.EnvPodName, "metadata.name"),
							{Name: contract.EnvProgressConfigMap, Value: ProgressConfigMapName(det)},
							{Name: contract.EnvSpecHash, Value: plan.Hash},
							blasThreads(TrainerContainer),
						},
						Resources:                t.Resources,
						VolumeMounts:             mounts,
						TerminationMessagePath:   corev1.TerminationMessagePathDefault,
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						SecurityContext:          containerSecurityContext(),
					}},
				},
			},
		},
	}
	job.Labels[LabelSpecHash] = plan.Hash
	return job
}

// digestArgs pass the digest model was recorded with, if any.
func digestArgs(model *kadetv1.ModelStatus) []string {
	if model.Digest == "" {
		return nil
	}
	return []string{"--model-digest", model.Digest}
}

// ScoringDeployment serves model with `detector serve`. The model's version and digest
// are on the pod template, so a new model rolls the pods; maxUnavailable 0 keeps the old
// pods serving until new ones are ready.
//
// With a watch plan the pods also watch the Prometheus queries (see watchPod).
func ScoringDeployment(det *kadetv1.Detector, model *kadetv1.ModelStatus, w *WatchPlan, cfg Config) *appsv1.Deployment {
	s := det.Spec.Scoring
	port := scoringPort(det)
	probe := func(p string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: p, Port: intstr.FromString("http"),
		}}, PeriodSeconds: 5}
	}
	labels := commonLabels(det, ComponentScoring)
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: objectMeta(det, ScoringName(det), ComponentScoring),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(ptr.Deref(s.Replicas, 1)),
			Selector: &metav1.LabelSelector{MatchLabels: selectorLabels(det, ComponentScoring)},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)), MaxSurge: ptr.To(intstr.FromInt32(1)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: labels,
					Annotations: map[string]string{
						AnnotationModelVersion: model.Version, AnnotationModelDigest: model.Digest,
					},
				},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: ptr.To(false),
					SecurityContext:              podSecurityContext(),
					// The models are read-only to the scoring pods; only the volume's feedback
					// folder is theirs to write, each pod to a file named after it.
					Volumes: []corev1.Volume{modelVolume(det, true), feedbackVolume(det), tmpVolume},
					Containers: []corev1.Container{{
						Name: ScoringContainer, Image: cfg.Image, ImagePullPolicy: cfg.ImagePullPolicy,
						Command: cfg.command(),
						Args: append(append([]string{"serve", "--model-dir", ModelDir, "--model-version", model.Version},
							// The pods refuse a file that is not the one trained (replaced on the volume).
							digestArgs(model)...),
							"--feedback-dir", FeedbackDir,
							"--addr", "$(POD_IP):"+strconv.Itoa(int(port))),
						Env: []corev1.EnvVar{fieldEnv(contract.EnvPodIP, "status.podIP"), fieldEnv(contract.EnvPodName, "metadata.name"),
							blasThreads(ScoringContainer)},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port, Protocol: corev1.ProtocolTCP}},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "models", MountPath: ModelDir, ReadOnly: true},
							{Name: "feedback", MountPath: FeedbackDir, SubPath: contract.FeedbackDirName},
							{Name: "tmp", MountPath: TmpDir},
						},
						Resources:       s.Resources,
						ReadinessProbe:  probe("/readyz"),
						LivenessProbe:   probe("/healthz"),
						SecurityContext: containerSecurityContext(),
					}},
				},
			},
		},
	}
	tmpl := &dep.Spec.Template
	if ScorerIdentity(det, w) {
		scorerPod(det, &tmpl.Spec)
	}
	if w != nil {
		watchPod(det, w, &tmpl.Spec, tmpl.Annotations)
	}
	if Reports(det) {
		reportingPod(det, &tmpl.Spec)
	}
	return dep
}

// ScoringService exposes the scoring pods inside the cluster.
func ScoringService(det *kadetv1.Detector) *corev1.Service {
	port := scoringPort(det)
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: objectMeta(det, ScoringName(det), ComponentScoring),
		Spec: corev1.ServiceSpec{
			Selector: selectorLabels(det, ComponentScoring),
			Ports: []corev1.ServicePort{{
				Name: "http", Port: port, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// ScoringNetworkPolicy admits to det's scoring pods, on the scoring port, only
// spec.scoring.networkPolicy.from or, by default, the pods of det's namespace and of
// cfg's peer namespaces; nil when the Detector asks for none (enabled: false).
func ScoringNetworkPolicy(det *kadetv1.Detector, cfg Config) *networkingv1.NetworkPolicy {
	np := det.Spec.Scoring.NetworkPolicy
	if !NetworkPolicyEnabled(det) {
		return nil
	}
	var from []networkingv1.NetworkPolicyPeer
	if np != nil {
		from = slices.Clone(np.From)
	}
	if len(from) == 0 {
		// Every pod of the Detector's namespace, and of the peer namespaces.
		from = []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}
		if peers := slices.Sorted(slices.Values(cfg.ScoringPeerNamespaces)); len(peers) > 0 {
			from = append(from, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpIn, Values: peers}},
			}})
		}
	}
	port := intstr.FromInt32(scoringPort(det))
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: objectMeta(det, ScoringName(det), ComponentScoring),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: selectorLabels(det, ComponentScoring)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  from,
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: &port}},
			}},
		},
	}
}

// NetworkPolicyEnabled says whether det's scoring pods get a NetworkPolicy: unless
// its spec says enabled: false.
func NetworkPolicyEnabled(det *kadetv1.Detector) bool {
	np := det.Spec.Scoring.NetworkPolicy
	return np == nil || np.Enabled == nil || *np.Enabled
}

// Endpoint is the in-cluster URL of det's scoring Service.
func Endpoint(det *kadetv1.Detector) string {
	port := scoringPort(det)
	return fmt.Sprintf("http://%s.%s.svc:%d", ScoringName(det), det.Namespace, port)
}

// scoringPort is the Detector's scoring port; the CRD defaults it, objects built in
// code may not have been through the apiserver.
func scoringPort(det *kadetv1.Detector) int32 {
	if det.Spec.Scoring.Port == 0 {
		return 8080
	}
	return det.Spec.Scoring.Port
}
