// Package applier server-side applies the objects a controller owns, and skips the
// writes that would change nothing: a pass that finds every object as it should be
// makes no write, so a thousand idle Detectors cost the API server reads only.
//
// Each applied object carries the hash of what was sent (AnnotationHash). When the
// copy read (from the cache) carries the hash of the same desired object, nothing is
// sent. The cache can lag behind the controller's own writes: a Memo remembers, per
// object, the hash sent and the generation the API server answered with until the
// cache shows them, so a copy that still shows an earlier state (A, then B written,
// then A wanted again) neither skips the write back to A nor passes for a finished
// rollout of it.
package applier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// AnnotationHash on an applied object records the hash of what was last applied.
const AnnotationHash = "anomaly.kadet.dev/applied-hash"

// Memo holds, for each object applied until the cache shows that write, the hash sent
// and the generation the API server answered with. The zero Memo is ready to use.
type Memo struct {
	m sync.Map // "kind/namespace/name" -> state
}

type state struct {
	hash       string
	generation int64
}

func key(kind string, obj client.Object) string {
	return kind + "/" + obj.GetNamespace() + "/" + obj.GetName()
}

// Behind reports whether obj of kind, read from the cache (where objects carry no
// kind), is older than what was last applied to it.
func (m *Memo) Behind(kind string, obj client.Object) bool {
	s, ok := m.m.Load(key(kind, obj))
	return ok && s.(state).generation > obj.GetGeneration()
}

// Len is how many writes the cache has yet to show.
func (m *Memo) Len() int {
	n := 0
	m.m.Range(func(_, _ any) bool { n++; return true })
	return n
}

// NotControlledError is an object of the desired name that exists and is not
// controlled by the desired object's controller: applying over it would take over
// someone else's object.
type NotControlledError struct {
	// Object names the existing object (kind namespace/name).
	Object string
	// Controller is the existing object's controller reference; nil when it has none.
	Controller *metav1.OwnerReference
}

func (e *NotControlledError) Error() string {
	if e.Controller == nil {
		return e.Object + " exists and has no controller"
	}
	return fmt.Sprintf("%s exists and is controlled by %s %s", e.Object, e.Controller.Kind, e.Controller.Name)
}

// CheckControlled returns a *NotControlledError when existing is not controlled by
// want (the same UID). A nil want claims nothing, so nothing is checked.
func CheckControlled(existing client.Object, want *metav1.OwnerReference) error {
	if want == nil {
		return nil
	}
	if got := metav1.GetControllerOf(existing); got == nil || got.UID != want.UID {
		return &NotControlledError{Object: Ref(existing), Controller: got}
	}
	return nil
}

// Apply server-side applies obj (typed, with its kind set, or unstructured) as owner,
// taking the fields it sets from any other manager, unless the copy c reads already
// carries the hash of the same desired object. Fields the apiserver defaults and
// fields other managers set are left alone; a field changed by hand behind the
// owner's back is put back at the owner's next change of the object. An existing
// object that obj's controller does not control is never applied over
// (*NotControlledError).
func Apply(ctx context.Context, c client.Client, memo *Memo, owner client.FieldOwner, obj client.Object) error {
	return apply(ctx, c, memo, owner, obj, false)
}

// Adopt is Apply for an object the caller has found to be its own by other means
// (a label): an existing copy without a controller is applied over, and so gains
// obj's controller; one with another controller is still refused.
func Adopt(ctx context.Context, c client.Client, memo *Memo, owner client.FieldOwner, obj client.Object) error {
	return apply(ctx, c, memo, owner, obj, true)
}

func apply(ctx context.Context, c client.Client, memo *Memo, owner client.FieldOwner, obj client.Object, adopt bool) error {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return fmt.Errorf("converting %s: %w", Ref(obj), err)
	}
	// A typed object serializes empty status and timestamps; they are not ours to own.
	delete(u, "status")
	unstructured.RemoveNestedField(u, "metadata", "creationTimestamp")
	b, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", Ref(obj), err)
	}
	sum := sha256.Sum256(b)
	hash := hex.EncodeToString(sum[:8])
	k := key(obj.GetObjectKind().GroupVersionKind().Kind, obj)
	remembered, known := memo.m.Load(k)
	existing, ok := obj.DeepCopyObject().(client.Object)
	found := ok && c.Get(ctx, client.ObjectKeyFromObject(obj), existing) == nil
	if found && (!adopt || metav1.GetControllerOfNoCopy(existing) != nil) {
		if err := CheckControlled(existing, metav1.GetControllerOfNoCopy(obj)); err != nil {
			return err
		}
	}
	if found && existing.GetAnnotations()[AnnotationHash] == hash {
		if !known {
			return nil
		}
		if s := remembered.(state); s.hash == hash {
			// The cache shows this process's last write: the annotation alone tells
			// from now on, and the memo forgets it, so it holds only writes the cache
			// has yet to show (not one entry per object ever applied).
			if existing.GetGeneration() >= s.generation {
				memo.m.CompareAndDelete(k, remembered)
			}
			return nil
		}
	}
	if err := unstructured.SetNestedField(u, hash, "metadata", "annotations", AnnotationHash); err != nil {
		return fmt.Errorf("annotating %s: %w", Ref(obj), err)
	}
	sent := &unstructured.Unstructured{Object: u}
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(sent), owner, client.ForceOwnership); err != nil {
		return fmt.Errorf("applying %s: %w", Ref(obj), err)
	}
	memo.m.Store(k, state{hash: hash, generation: sent.GetGeneration()})
	return nil
}

// Ref names obj for messages: its kind (its Go type's name when the kind is not set,
// as on objects read from the cache) and namespace/name.
func Ref(obj client.Object) string {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		kind = reflect.TypeOf(obj).Elem().Name()
	}
	return kind + " " + client.ObjectKeyFromObject(obj).String()
}
