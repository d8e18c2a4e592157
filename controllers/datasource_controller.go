package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
)

// secretRecheck is how often a DataSource waiting for a Secret looks again: Secrets
// are read directly, not watched, so kadet never caches every Secret of the cluster.
const secretRecheck = 30 * time.Second

// DataSourceReconciler checks that what a DataSource refers to exists and is usable.
type DataSourceReconciler struct {
	client.Client
	// APIReader reads Secrets without caching them.
	APIReader client.Reader
	// Workers is how many DataSources are reconciled at once (at least one).
	Workers int
	// AllowLocalTargets lets the manager check a Prometheus at a loopback or
	// link-local address (its own, a node's metadata service): off, such a DataSource
	// is refused with the reason.
	AllowLocalTargets bool
}

// reference is one object a DataSource needs.
type reference struct {
	kind, name, key string
}

func (r reference) indexKey() string { return r.kind + "/" + r.name }

// references lists the cluster objects spec needs, in the order a user reads them.
func references(spec *kadetv1.DataSourceSpec) []reference {
	var refs []reference
	pvc := func(f *kadetv1.PVCFile) {
		if f != nil {
			refs = append(refs, reference{kind: "PersistentVolumeClaim", name: f.ClaimName})
		}
	}
	switch {
	case spec.CSV != nil:
		if c := spec.CSV.ConfigMapKeyRef; c != nil {
			refs = append(refs, reference{kind: "ConfigMap", name: c.Name, key: c.Key})
		}
		pvc(spec.CSV.PersistentVolumeClaim)
	case spec.Images != nil:
		pvc(spec.Images.File.PersistentVolumeClaim)
		if spec.Images.LabelFile != nil {
			pvc(spec.Images.LabelFile.PersistentVolumeClaim)
		}
	case spec.Prometheus != nil:
		pr := spec.Prometheus
		if s := pr.BearerTokenSecretRef; s != nil {
			refs = append(refs, reference{kind: "Secret", name: s.Name, key: s.Key})
		}
		if s := pr.BasicAuthSecretRef; s != nil {
			refs = append(refs, reference{kind: "Secret", name: s.Name, key: corev1.BasicAuthUsernameKey},
				reference{kind: "Secret", name: s.Name, key: corev1.BasicAuthPasswordKey})
		}
		if t := pr.TLS; t != nil && t.CASecretRef != nil {
			refs = append(refs, reference{kind: "Secret", name: t.CASecretRef.Name, key: t.CASecretRef.Key})
		}
		for _, h := range pr.Headers {
			if s := h.ValueFrom; s != nil {
				refs = append(refs, reference{kind: "Secret", name: s.Name, key: s.Key})
			}
		}
		if t := pr.TLS; t != nil && t.CAConfigMapRef != nil {
			refs = append(refs, reference{kind: "ConfigMap", name: t.CAConfigMapRef.Name, key: t.CAConfigMapRef.Key})
		}
	}
	return refs
}

// +kubebuilder:rbac:groups=anomaly.kadet.dev,resources=datasources,verbs=get;list;watch
// +kubebuilder:rbac:groups=anomaly.kadet.dev,resources=datasources/status,verbs=get;update;patch

// Reconcile sets the DataSource's Ready condition from its references.
func (r *DataSourceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	ds := &kadetv1.DataSource{}
	if err := r.Get(ctx, req.NamespacedName, ds); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := ds.DeepCopy()
	defer func() {
		requeue, err := patchStatus(ctx, r.Client, ds, before)
		if err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, err})
		} else if requeue {
			// The pass worked from a stale copy: run it again on a fresh one, stall or not.
			result, retErr = ctrl.Result{RequeueAfter: staleRetry}, nil
		}
	}()
	ds.Status.SourceType = ds.Spec.Type()
	o, err := r.observe(ctx, ds)
	conds := dataSourceConditions(o, ds.Generation)
	for _, typ := range []string{kadetv1.ReconcilingCondition, kadetv1.StalledCondition} {
		if !slices.ContainsFunc(conds, func(c metav1.Condition) bool { return c.Type == typ }) {
			removeCondition(ds, typ) // what an earlier pass saw, not this one
		}
	}
	for _, c := range conds {
		setStatusCondition(ds, c)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	ds.Status.ObservedGeneration = ds.Generation
	switch {
	case o.waitsForSecret && len(o.missing) > 0:
		return ctrl.Result{RequeueAfter: secretRecheck}, nil
	case o.serverReason == kadetv1.ReasonServerUnreachable || o.serverReason == kadetv1.ReasonNoSeries:
		return ctrl.Result{RequeueAfter: serverRecheck}, nil
	}
	return ctrl.Result{}, nil
}

// dataSourceObservation is what one pass saw of a DataSource's references and server.
type dataSourceObservation struct {
	namespace string
	spec      *kadetv1.DataSourceSpec
	// err is an API server that could not be asked.
	err error
	// missing says what is wrong with each reference that is not usable.
	missing []string
	// waitsForSecret is set when a missing reference is a Secret (read, not watched).
	waitsForSecret bool
	// secretsHidden is set when kadet may not read the namespace's Secrets.
	secretsHidden bool
	// serverReason and serverMessage are Prometheus's answer when its queries are not
	// usable (empty when they are, or were not asked).
	serverReason, serverMessage string
}

// observe checks ds's references and, for Prometheus, asks the server its queries.
func (r *DataSourceReconciler) observe(ctx context.Context, ds *kadetv1.DataSource) (dataSourceObservation, error) {
	o := dataSourceObservation{namespace: ds.Namespace, spec: &ds.Spec}
	for _, ref := range references(&ds.Spec) {
		problem, err := r.check(ctx, ds.Namespace, ref)
		if errors.Is(err, errSecretsHidden) {
			o.secretsHidden = true
			continue
		}
		if err != nil {
			o.err = err
			return o, err
		}
		if problem != "" {
			if !slices.Contains(o.missing, problem) { // two keys of one missing Secret
				o.missing = append(o.missing, problem)
			}
			o.waitsForSecret = o.waitsForSecret || ref.kind == "Secret"
		}
	}
	if len(o.missing) > 0 || o.secretsHidden || ds.Spec.Prometheus == nil {
		return o, nil
	}
	// The pods that read the data mount the Secrets themselves; without them the
	// server cannot be asked as they will ask it.
	var err error
	if o.serverReason, o.serverMessage, err = r.checkPrometheus(ctx, ds.Namespace, ds.Spec.Prometheus); err != nil {
		o.err = err
	}
	return o, err
}

// dataSourceConditions are a DataSource's Ready, Reconciling and Stalled conditions
// for generation gen, from what a pass observed: Reconciling while kadet retries on
// its own (the API server or Prometheus did not answer, a metric has no series yet),
// Stalled while only a change by someone can help (a reference is missing, a query is
// refused).
func dataSourceConditions(o dataSourceObservation, gen int64) []metav1.Condition {
	cond := func(typ string, st metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: st, Reason: reason, Message: msg, ObservedGeneration: gen}
	}
	notReady := func(st metav1.ConditionStatus, reason, msg string, transient bool) []metav1.Condition {
		progress := kadetv1.StalledCondition
		if transient {
			progress = kadetv1.ReconcilingCondition
		}
		return []metav1.Condition{cond(kadetv1.ReadyCondition, st, reason, msg), cond(progress, metav1.ConditionTrue, reason, msg)}
	}
	switch {
	case o.err != nil:
		return notReady(metav1.ConditionUnknown, kadetv1.ReasonReconcileError, o.err.Error(), true)
	case len(o.missing) > 0:
		return notReady(metav1.ConditionFalse, kadetv1.ReasonReferenceNotFound, strings.Join(o.missing, "; "), false)
	case o.secretsHidden:
		return []metav1.Condition{cond(kadetv1.ReadyCondition, metav1.ConditionTrue, kadetv1.ReasonReferencesResolved,
			fmt.Sprintf("%s; its Secrets are not checked: kadet may not read Secrets in namespace %s (bind the ClusterRole kadet-secret-reader there, or list the namespace in the chart's rbac.secretReaderNamespaces, to have them and the server checked before training)",
				describe(o.spec), o.namespace))}
	case o.serverReason != "":
		transient := o.serverReason == kadetv1.ReasonServerUnreachable || o.serverReason == kadetv1.ReasonNoSeries
		return notReady(metav1.ConditionFalse, o.serverReason, o.serverMessage, transient)
	}
	return []metav1.Condition{cond(kadetv1.ReadyCondition, metav1.ConditionTrue, kadetv1.ReasonReferencesResolved, describe(o.spec))}
}

// errSecretsHidden says the manager may not read Secrets in the DataSource's
// namespace: by default it holds no cluster-wide right to them, and a namespace grants
// it by binding the kadet-secret-reader ClusterRole.
var errSecretsHidden = errors.New("kadet may not read Secrets in this namespace")

// serverRecheck is how often a DataSource whose Prometheus did not answer asks again.
const serverRecheck = 30 * time.Second

// maxCheckResponse bounds the answer to one check query.
const maxCheckResponse = 8 << 20

// checkPrometheus asks the server each query as an instant query, with the
// DataSource's credentials: a PromQL error comes back with Prometheus's message and
// position. It returns the reason and message of a Ready condition that is not True,
// or an empty reason.
func (r *DataSourceReconciler) checkPrometheus(ctx context.Context, ns string, pr *kadetv1.PrometheusSource) (reason, msg string, err error) {
	// One instant query's answer: a server that sends more is cut off, so no server
	// named in a DataSource can fill the manager's memory.
	access := data.PromAccess{MaxResponseBytes: maxCheckResponse, RefuseLocal: !r.AllowLocalTargets}
	secretKey := func(name, key string) (string, error) {
		s := &corev1.Secret{}
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
			return "", fmt.Errorf("reading Secret %s/%s: %w", ns, name, err)
		}
		return string(s.Data[key]), nil
	}
	if ref := pr.BearerTokenSecretRef; ref != nil {
		if access.BearerToken, err = secretKey(ref.Name, ref.Key); err != nil {
			return "", "", err
		}
		access.BearerToken = strings.TrimSpace(access.BearerToken)
	}
	if ref := pr.BasicAuthSecretRef; ref != nil {
		if access.Username, err = secretKey(ref.Name, corev1.BasicAuthUsernameKey); err != nil {
			return "", "", err
		}
		if access.Password, err = secretKey(ref.Name, corev1.BasicAuthPasswordKey); err != nil {
			return "", "", err
		}
	}
	if t := pr.TLS; t != nil {
		access.ServerName, access.InsecureSkipVerify = t.ServerName, ptr.Deref(t.InsecureSkipVerify, false)
		switch {
		case t.CASecretRef != nil:
			if access.CA, err = secretKey(t.CASecretRef.Name, t.CASecretRef.Key); err != nil {
				return "", "", err
			}
		case t.CAConfigMapRef != nil:
			// The cache holds a digest of the bundle, not the bundle (digestsOnly).
			cm := &corev1.ConfigMap{}
			if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: t.CAConfigMapRef.Name}, cm); err != nil {
				return "", "", fmt.Errorf("reading ConfigMap %s/%s: %w", ns, t.CAConfigMapRef.Name, err)
			}
			access.CA = cm.Data[t.CAConfigMapRef.Key]
		}
	}
	for _, h := range pr.Headers {
		if access.Headers == nil {
			access.Headers = map[string]string{}
		}
		access.Headers[h.Name] = h.Value
		if ref := h.ValueFrom; ref != nil {
			v, err := secretKey(ref.Name, ref.Key)
			if err != nil {
				return "", "", err
			}
			access.Headers[h.Name] = strings.TrimSpace(v)
		}
	}
	promAPI, err := data.NewPromAPI(pr.URL, access)
	if err != nil {
		return kadetv1.ReasonQueryRefused, contract.RedactURLs(err.Error()), nil
	}
	// Status is read by more people than the spec: the URL's credentials stay in it.
	where := contract.RedactURL(pr.URL)
	var refused []string
	for _, q := range pr.Queries {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		msg, transient, qerr := data.CheckPromQuery(qctx, promAPI, q.Query)
		cancel()
		switch {
		case qerr == nil:
		case data.RefusedByClient(qerr):
			msg := contract.RedactURLs(msg)
			if errors.Is(qerr, data.ErrLocalTarget) {
				msg += "; the manager asks such servers only with --allow-local-prometheus (chart value allowLocalPrometheus)"
			}
			return kadetv1.ReasonQueryRefused, fmt.Sprintf("Prometheus at %s: %s", where, msg), nil
		case errors.Is(qerr, data.ErrNoSeriesNow):
			// A metric that has not been scraped yet: training would be refused, so
			// the Detector waits for it instead.
			return kadetv1.ReasonNoSeries, fmt.Sprintf("query %s %s on Prometheus at %s; asking again every %s", q.Name, msg, where, serverRecheck), nil
		case transient:
			return kadetv1.ReasonServerUnreachable, fmt.Sprintf("Prometheus at %s did not answer (%s); asking again every %s", where, contract.RedactURLs(msg), serverRecheck), nil
		default:
			refused = append(refused, fmt.Sprintf("query %s: %s", q.Name, msg))
		}
	}
	if len(refused) > 0 {
		return kadetv1.ReasonQueryRefused, fmt.Sprintf("Prometheus at %s refused %s", where, contract.RedactURLs(strings.Join(refused, "; "))), nil
	}
	return "", "", nil
}

// check returns what is wrong with one reference ("" when nothing is), or an error
// when the API server could not be asked.
func (r *DataSourceReconciler) check(ctx context.Context, ns string, ref reference) (string, error) {
	key := types.NamespacedName{Namespace: ns, Name: ref.name}
	var err error
	hasKey := true
	switch ref.kind {
	case "ConfigMap":
		cm := &corev1.ConfigMap{}
		if err = r.Get(ctx, key, cm); err == nil {
			_, inData := cm.Data[ref.key]
			_, inBinary := cm.BinaryData[ref.key]
			hasKey = inData || inBinary
		}
	case "PersistentVolumeClaim":
		err = r.Get(ctx, key, &corev1.PersistentVolumeClaim{})
	case "Secret":
		s := &corev1.Secret{}
		if err = r.APIReader.Get(ctx, key, s); err == nil {
			_, hasKey = s.Data[ref.key]
		}
	}
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("%s %q not found", ref.kind, ref.name), nil
	case ref.kind == "Secret" && apierrors.IsForbidden(err):
		return "", errSecretsHidden
	case err != nil:
		return "", fmt.Errorf("reading %s %s: %w", ref.kind, key, err)
	case !hasKey:
		return fmt.Sprintf("%s %q has no key %q", ref.kind, ref.name, ref.key), nil
	}
	return "", nil
}

// describe says in a few words what the DataSource reads.
func describe(spec *kadetv1.DataSourceSpec) string {
	switch {
	case spec.CSV != nil && spec.CSV.ConfigMapKeyRef != nil:
		return fmt.Sprintf("csv from ConfigMap %s key %s", spec.CSV.ConfigMapKeyRef.Name, spec.CSV.ConfigMapKeyRef.Key)
	case spec.CSV != nil && spec.CSV.PersistentVolumeClaim != nil:
		return fmt.Sprintf("csv from PVC %s path %s", spec.CSV.PersistentVolumeClaim.ClaimName, spec.CSV.PersistentVolumeClaim.Path)
	case spec.CSV != nil:
		return "csv from " + contract.RedactURL(spec.CSV.URL)
	case spec.Images != nil && spec.Images.File.PersistentVolumeClaim != nil:
		return fmt.Sprintf("images from PVC %s path %s", spec.Images.File.PersistentVolumeClaim.ClaimName, spec.Images.File.PersistentVolumeClaim.Path)
	case spec.Images != nil:
		return "images from " + contract.RedactURL(spec.Images.File.URL)
	case spec.Prometheus != nil:
		return fmt.Sprintf("%d Prometheus queries from %s", len(spec.Prometheus.Queries), contract.RedactURL(spec.Prometheus.URL))
	}
	return ""
}

func readyCondition(ds *kadetv1.DataSource) *metav1.Condition {
	return apimeta.FindStatusCondition(ds.Status.Conditions, kadetv1.ReadyCondition)
}

// dataSourceReady is true when the DataSource's current generation was checked and found ready.
func dataSourceReady(ds *kadetv1.DataSource) bool {
	c := readyCondition(ds)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == ds.Generation
}

// SetupWithManager registers the controller and what it watches; it needs SetupIndexes.
func (r *DataSourceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&kadetv1.DataSource{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.referrers("ConfigMap"))).
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(r.referrers("PersistentVolumeClaim"))).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Workers, 1)}).
		Complete(r)
}

// referrers maps an object of kind to the DataSources that refer to it.
func (r *DataSourceReconciler) referrers(kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		return dataSourcesReferring(ctx, r.Client, kind, o)
	}
}

func dataSourcesReferring(ctx context.Context, c client.Reader, kind string, o client.Object) []reconcile.Request {
	list := &kadetv1.DataSourceList{}
	if err := c.List(ctx, list, client.InNamespace(o.GetNamespace()),
		client.MatchingFields{dataSourceRefIndex: kind + "/" + o.GetName()}); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, ds := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ds)})
	}
	return reqs
}
