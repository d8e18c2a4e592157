// Package controllers reconciles DataSources (are their references there?) and
// Detectors (into training Jobs, a model volume, and a scoring Deployment and Service),
// writing each object's status once per pass.
package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/applier"
	"github.com/kadet-dev/kadet/controllers/builders"
)

// FieldOwner is kadet's server-side apply field manager.
const FieldOwner = client.FieldOwner("kadet")

// DetectorReconciler turns a Detector into a training Job per spec and, once a model
// exists, a scoring Deployment and Service.
type DetectorReconciler struct {
	client.Client
	// APIReader reads pods directly: only finished training pods are ever read, so a
	// cluster-wide pod cache would cost memory for nothing.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	Config    builders.Config
	// Clock tells the time of schedules and model ages; nil is the real clock.
	Clock clock.PassiveClock
	// Workers is how many Detectors are reconciled at once (at least one); the work
	// queue never hands one Detector to two workers.
	Workers int

	// csvChecks remembers the outcome of reading each DataSource's ConfigMap CSV, by the
	// digest of its content and options, so a pass parses a file only when it changed.
	csvChecks sync.Map // types.NamespacedName -> csvCheck

	// writes remembers the children this process applied until the cache shows them
	// (see package applier).
	writes applier.Memo
}

type csvCheck struct {
	key string
	err error
}

// pass carries what one reconcile learns from one step to the next, and the events
// it holds back until its status is written.
type pass struct {
	det        *kadetv1.Detector
	dataSource *kadetv1.DataSource
	plan       *builders.TrainingPlan
	watch      *builders.WatchPlan
	// served is the model the scoring pods should serve: the pin, or the newest.
	served *kadetv1.ModelStatus
	// modelVersions lists the Detector's ModelVersions; kadetVersion is the detector
	// binary's version from the latest training result.
	modelVersions []kadetv1.ModelVersion
	kadetVersion  string
	// requeueAfter asks for a pass at a time (the next scheduled run), when nothing
	// else brings one sooner.
	requeueAfter time.Duration
	events       []pendingEvent
}

// requeue asks for a pass after d at the latest.
func (p *pass) requeue(d time.Duration) {
	d = max(d, time.Second)
	if p.requeueAfter == 0 || d < p.requeueAfter {
		p.requeueAfter = d
	}
}

type subReconciler func(context.Context, *kadetv1.Detector, *pass) error

// +kubebuilder:rbac:groups=anomaly.kadet.dev,resources=detectors,verbs=get;list;watch
// +kubebuilder:rbac:groups=anomaly.kadet.dev,resources=detectors/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=services;serviceaccounts,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// The manager's /metrics asks the API server who calls it and whether they may.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete

// Reconcile gets the Detector, defers one status patch, handles deletion and
// suspension, then runs the ordered sub-reconcilers until one stops the pass.
func (r *DetectorReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	det := &kadetv1.Detector{}
	if err := r.Get(ctx, req.NamespacedName, det); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// Children carry owner references; garbage collection removes them.
	if !det.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	before := det.DeepCopy()
	p := &pass{det: det}
	defer func() {
		result, retErr = summarize(det, retErr)
		if retErr == nil && p.requeueAfter > 0 && (result.RequeueAfter == 0 || p.requeueAfter < result.RequeueAfter) {
			result.RequeueAfter = p.requeueAfter
		}
		p.recordTransition(before, det)
		requeue, err := patchStatus(ctx, r.Client, det, before)
		r.flushEvents(p, err == nil && !requeue)
		if err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, err})
		} else if requeue {
			// The pass worked from a stale copy: run it again on a fresh one, stall or not.
			result, retErr = ctrl.Result{RequeueAfter: staleRetry}, nil
		}
	}()
	if det.Spec.Suspend {
		log.FromContext(ctx).V(1).Info("suspended: nothing is created or changed")
		return ctrl.Result{}, nil
	}
	for _, step := range []subReconciler{
		r.reconcileNames, r.reconcileDataSource, r.reconcileStorage, r.reconcileRetraining, r.reconcileDrift, r.reconcileSpec, r.reconcileWatch,
		r.reconcileTraining, r.reconcileVersions, r.reconcileBacktestRun, r.reconcileScoring,
	} {
		if err := step(ctx, det, p); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, nil
}

// reconcileNames refuses, before anything is created, the names of children that
// objects the Detector does not control already hold. Applying and creating check
// again (a name taken later, and the children of optional parts).
func (r *DetectorReconciler) reconcileNames(ctx context.Context, det *kadetv1.Detector, _ *pass) error {
	for _, obj := range builders.ClaimedNames(det) {
		err := r.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("reading %s: %w", objectRef(obj), err)
		default:
			if err := claimed(det.Name, applier.CheckControlled(obj, controllerRef(det))); err != nil {
				return err
			}
		}
	}
	return nil
}

// claimed turns an object of a child's name that the Detector does not control into a
// stall naming it, or into a wait while it is the child of an earlier Detector of the
// same name, which garbage collection removes (its deletion brings this Detector
// back). Any other error passes unchanged.
func claimed(detector string, err error) error {
	var nc *applier.NotControlledError
	if !errors.As(err, &nc) {
		return err
	}
	c := nc.Controller
	if name, ok := detectorOf(c); ok && name == detector {
		return wait(kadetv1.ReasonProgressing, "%s belongs to an earlier Detector %s: waiting for its removal", nc.Object, detector)
	}
	owner := "it has no controller"
	if c != nil {
		owner = "its controller is " + c.Kind + " " + c.Name
	}
	return stall(kadetv1.ReasonNameConflict,
		"%s exists and is not this Detector's (%s): kadet does not take it over; delete or rename that object, or rename the Detector",
		nc.Object, owner)
}

// reconcileDataSource finds the DataSource, checks it is usable by this model and
// renders the training plan.
func (r *DetectorReconciler) reconcileDataSource(ctx context.Context, det *kadetv1.Detector, p *pass) error {
	o := dataObservation{name: det.Spec.DataSourceRef.Name}
	ds := &kadetv1.DataSource{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: det.Namespace, Name: o.name}, ds); err == nil {
		o.dataSource = ds
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading DataSource %s/%s: %w", det.Namespace, o.name, err)
	}
	var plan *builders.TrainingPlan
	if o.dataSource != nil && dataSourceReady(ds) {
		digest, missing, err := r.dataDigest(ctx, ds)
		if err != nil {
			return err
		}
		o.missingData = missing
		if missing == "" {
			var inc *builders.IncompatibleError
			plan, err = builders.ResolveTraining(det, ds, digest)
			if err == nil {
				err = r.checkCSV(ctx, ds, digest)
			}
			if errors.As(err, &inc) {
				o.incompatible = inc.Error()
			} else if err != nil {
				return err
			}
		}
	}
	c := dataSourceReadyCondition(det, o)
	setStatusCondition(det, c)
	switch c.Status {
	case metav1.ConditionUnknown:
		return wait(c.Reason, "%s", c.Message)
	case metav1.ConditionFalse:
		return stall(c.Reason, "%s", c.Message)
	}
	p.dataSource, p.plan = ds, plan
	return nil
}

// dataDigest is the digest of the data when it lives in the cluster (a ConfigMap key),
// so that a change to the data changes the spec hash and starts a new training run.
// The cache holds a data ConfigMap's digests, not its content (digestsOnly). missing
// says what is not there.
func (r *DetectorReconciler) dataDigest(ctx context.Context, ds *kadetv1.DataSource) (digest, missing string, err error) {
	if ds.Spec.CSV == nil || ds.Spec.CSV.ConfigMapKeyRef == nil {
		return "", "", nil
	}
	ref := ds.Spec.CSV.ConfigMapKeyRef
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: ref.Name}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Sprintf("ConfigMap %q not found", ref.Name), nil
		}
		return "", "", fmt.Errorf("reading ConfigMap %s/%s: %w", ds.Namespace, ref.Name, err)
	}
	v, ok := configMapValue(cm, ref.Key)
	switch {
	case !ok:
		return "", fmt.Sprintf("ConfigMap %q has no key %q", ref.Name, ref.Key), nil
	case cm.Annotations[annotationDigests] == digestMark:
		return string(v), "", nil
	}
	return contentDigest(v), "", nil
}

// checkCSV reads a ConfigMap CSV as the training pod will (builders.CheckCSV), once
// per content (by its digest) and options: the content is read from the API server
// only then.
func (r *DetectorReconciler) checkCSV(ctx context.Context, ds *kadetv1.DataSource, digest string) error {
	if digest == "" {
		return nil
	}
	opts, err := json.Marshal(ds.Spec.CSV)
	if err != nil {
		return err
	}
	key := digest + string(opts)
	name := client.ObjectKeyFromObject(ds)
	if c, ok := r.csvChecks.Load(name); ok && c.(csvCheck).key == key {
		return c.(csvCheck).err
	}
	ref := ds.Spec.CSV.ConfigMapKeyRef
	cm := &corev1.ConfigMap{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: ref.Name}, cm); err != nil {
		return fmt.Errorf("reading ConfigMap %s/%s: %w", ds.Namespace, ref.Name, err)
	}
	content, ok := configMapValue(cm, ref.Key)
	if !ok || contentDigest(content) != digest {
		// Changed since the cache saw it: its event brings the next pass.
		return wait(kadetv1.ReasonProgressing, "ConfigMap %s changed while it was read", ref.Name)
	}
	err = builders.CheckCSV(ds, content)
	var inc *builders.IncompatibleError
	if err == nil || errors.As(err, &inc) {
		r.csvChecks.Store(name, csvCheck{key: key, err: err})
	}
	return err
}

// reconcileStorage creates or updates the model PVC. A PVC of the same name that kadet
// does not manage is never taken over.
func (r *DetectorReconciler) reconcileStorage(ctx context.Context, det *kadetv1.Detector, _ *pass) error {
	desired := builders.ModelPVC(det)
	existing := &corev1.PersistentVolumeClaim{}
	err := r.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	switch {
	case err == nil && existing.Labels[builders.LabelDetector] != det.Name:
		return stall(kadetv1.ReasonStorageConflict, "PersistentVolumeClaim %q exists and is not managed by this Detector: rename or delete it",
			desired.Name)
	case err != nil && !apierrors.IsNotFound(err):
		return fmt.Errorf("reading %s: %w", objectRef(desired), err)
	case err == nil:
		// A bound claim's class never changes: keep what it has (a claim made when an
		// empty class was still copied onto it has "", which applying without it would
		// try to unset).
		desired.Spec.StorageClassName = existing.Spec.StorageClassName
	}
	// The claim is this Detector's by its label: one kept without an owner (retention
	// Retain) gains the Detector as its controller when retention becomes Delete.
	return claimed(det.Name, applier.Adopt(ctx, r.Client, &r.writes, FieldOwner, desired))
}

// reconcileSpec writes the immutable spec ConfigMap for the current plan, the progress
// ConfigMap and the trainer's identity, limited to writing that one ConfigMap.
func (r *DetectorReconciler) reconcileSpec(ctx context.Context, det *kadetv1.Detector, p *pass) error {
	spec, err := builders.SpecConfigMap(det, p.plan)
	if err != nil {
		return fmt.Errorf("rendering the training spec ConfigMap: %w", err)
	}
	for _, obj := range []client.Object{spec, builders.ProgressConfigMap(det)} {
		if err := r.createOnce(ctx, r.Client, obj); err != nil {
			return err
		}
	}
	for _, obj := range []client.Object{
		builders.TrainerServiceAccount(det), builders.TrainerRole(det), builders.TrainerRoleBinding(det),
	} {
		if err := r.apply(ctx, obj); err != nil {
			return err
		}
	}
	return nil
}

// AnnotationAppliedHash on a child records the hash of what kadet last applied, so a
// pass that would apply the same object again writes nothing.
const AnnotationAppliedHash = applier.AnnotationHash

// apply server-side applies a child built by the builders, or writes nothing when it
// is already as built (package applier).
func (r *DetectorReconciler) apply(ctx context.Context, obj client.Object) error {
	return claimed(controllerName(obj), applier.Apply(ctx, r.Client, &r.writes, FieldOwner, obj))
}

// controllerName is the name of the Detector a built child names as its controller.
func controllerName(obj client.Object) string {
	name, _ := detectorOf(metav1.GetControllerOfNoCopy(obj))
	return name
}

// createOnce creates a child that others write after kadet creates it (a progress or
// status ConfigMap the pods patch): a copy in the cache that the child's controller
// controls means it exists.
func (r *DetectorReconciler) createOnce(ctx context.Context, reader client.Reader, obj client.Object) error {
	existing, ok := obj.DeepCopyObject().(client.Object)
	if ok {
		err := reader.Get(ctx, client.ObjectKeyFromObject(obj), existing)
		if err == nil {
			return claimed(controllerName(obj), applier.CheckControlled(existing, metav1.GetControllerOfNoCopy(obj)))
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("reading %s: %w", objectRef(obj), err)
		}
	}
	if err := r.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating %s: %w", objectRef(obj), err)
	}
	return nil
}

// SetupWithManager registers the controller and what it watches, and the Detectors'
// series on the manager's /metrics; it needs SetupIndexes.
func (r *DetectorReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := ctrlmetrics.Registry.Register(newStatusCollector(mgr.GetCache(), mgr.Elected(), r.now)); err != nil {
		return fmt.Errorf("registering the Detector metrics: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		// Status writes are our own: only spec and annotation (retrain) changes matter.
		For(&kadetv1.Detector{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&batchv1.Job{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.PersistentVolumeClaim{}).
		Owns(&kadetv1.ModelVersion{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Watches(&kadetv1.DataSource{}, handler.EnqueueRequestsFromMapFunc(r.detectorsForDataSource)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.detectorsForConfigMap)).
		// An object that holds a child's name and is not kadet's stalls its Detector
		// (NameConflict): its deletion or rename brings the Detector back.
		Watches(&corev1.ServiceAccount{}, claimant, foreign).
		Watches(&rbacv1.Role{}, claimant, foreign).
		Watches(&rbacv1.RoleBinding{}, claimant, foreign).
		Watches(&corev1.ConfigMap{}, claimant, foreign).
		Watches(&appsv1.Deployment{}, claimant, foreign).
		Watches(&corev1.Service{}, claimant, foreign).
		Watches(&networkingv1.NetworkPolicy{}, claimant, foreign).
		Watches(&corev1.PersistentVolumeClaim{}, claimant, foreign).
		WatchesMetadata(&apiextensionsv1.CustomResourceDefinition{}, handler.EnqueueRequestsFromMapFunc(r.detectorsForCRD),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
				return slices.Contains(monitoringCRDs, o.GetName())
			}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Workers, 1)}).
		Complete(r)
}

// claimant maps an object to the Detectors one of whose children would have its name.
var claimant = handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
	var reqs []reconcile.Request
	for _, name := range builders.DetectorsClaiming(o.GetName()) {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}})
	}
	return reqs
})

// foreign passes the objects that are not a Detector's: neither controlled by one nor
// labelled as one's (the model PVC, which outlives its Detector).
var foreign = builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
	_, labelled := o.GetLabels()[builders.LabelDetector]
	return !labelled && !isDetectorChild(o)
}))

// detectorsForDataSource maps a DataSource to the Detectors that train on it.
func (r *DetectorReconciler) detectorsForDataSource(ctx context.Context, o client.Object) []reconcile.Request {
	list := &kadetv1.DetectorList{}
	if err := r.List(ctx, list, client.InNamespace(o.GetNamespace()),
		client.MatchingFields{detectorDataSourceIndex: o.GetName()}); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, d := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&d)})
	}
	return reqs
}

// detectorsForConfigMap maps a data ConfigMap to the Detectors that train on it, so a
// change of the data starts a new training run.
func (r *DetectorReconciler) detectorsForConfigMap(ctx context.Context, o client.Object) []reconcile.Request {
	var reqs []reconcile.Request
	for _, ds := range dataSourcesReferring(ctx, r.Client, "ConfigMap", o) {
		reqs = append(reqs, r.detectorsForDataSource(ctx, &kadetv1.DataSource{ObjectMeta: metav1.ObjectMeta{
			Namespace: ds.Namespace, Name: ds.Name,
		}})...)
	}
	return reqs
}
