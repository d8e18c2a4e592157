package v1alpha1_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The admission policy of config/admission against a real kube-apiserver: a user who
// may create DataSources but not read a Secret cannot name that Secret in one (kadet
// would send it to the DataSource's server), and is told which Secret and why; a user
// who may read it can.
func TestDataSourceNamingASecretNeedsGetOnIt(t *testing.T) {
	ctx := context.Background()
	for _, f := range []string{"datasource-secrets-policy.yaml", "datasource-secrets-binding.yaml"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "config", "admission", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := k8sClient.Create(ctx, object(t, string(raw))); err != nil {
			t.Fatal(err)
		}
	}
	ns := "secrets-policy"
	for _, m := range []string{
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: " + ns + "}",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: prod-db, namespace: " + ns + "}\nstringData: {token: s3cret}",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: team-token, namespace: " + ns + "}\nstringData: {token: t}",
		`apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: datasource-author, namespace: ` + ns + `}
rules:
- {apiGroups: [anomaly.kadet.dev], resources: [datasources], verbs: [create, update, get]}
- {apiGroups: [""], resources: [secrets], resourceNames: [team-token], verbs: [get]}`,
		`apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: secret-owner, namespace: ` + ns + `}
rules:
- {apiGroups: [""], resources: [secrets], verbs: [get]}`,
		`apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: authors, namespace: ` + ns + `}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: datasource-author}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}`,
		`apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: owners, namespace: ` + ns + `}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: secret-owner}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}`,
	} {
		if err := k8sClient.Create(ctx, object(t, m)); err != nil {
			t.Fatal(err)
		}
	}
	as := func(user string) client.Client {
		cfg := rest.CopyConfig(restConfig)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
		c, err := client.New(cfg, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	dataSource := func(name, auth string) *unstructured.Unstructured {
		return object(t, `apiVersion: anomaly.kadet.dev/v1alpha1
kind: DataSource
metadata: {name: `+name+`, namespace: `+ns+`}
spec:
  prometheus:
    url: https://collector.example
    queries: [{name: load, query: up}]
`+auth)
	}
	alice, bob := as("alice"), as("bob")
	const refused = "names Secret prod-db of namespace secrets-policy, which you may not get"
	// A new policy takes a moment to be enforced: wait until alice's DataSource naming
	// prod-db is refused.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := alice.Create(ctx, dataSource("steal", "    bearerTokenSecretRef: {name: prod-db, key: token}\n"))
		if err != nil && strings.Contains(err.Error(), refused) {
			break
		}
		if err == nil {
			_ = k8sClient.Delete(ctx, dataSource("steal", ""))
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's DataSource naming a Secret she may not get: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for field, auth := range map[string]string{
		"basicAuthSecretRef": "    basicAuthSecretRef: {name: prod-db}\n",
		"tls.caSecretRef":    "    tls: {caSecretRef: {name: prod-db, key: ca.crt}}\n",
	} {
		err := alice.Create(ctx, dataSource(strings.ToLower(strings.ReplaceAll(field, ".", "-")), auth))
		if err == nil || !strings.Contains(err.Error(), "spec.prometheus."+field+" "+refused) {
			t.Errorf("alice names prod-db in %s: %v", field, err)
		}
	}
	err := alice.Create(ctx, dataSource("header", "    headers: [{name: X-Api-Key, valueFrom: {name: team-token, key: token}}, {name: X-Scope-OrgID, valueFrom: {name: prod-db, key: token}}]\n"))
	if err == nil || !strings.Contains(err.Error(), "spec.prometheus.headers names Secrets team-token, prod-db of namespace secrets-policy, one of which you may not get") {
		t.Errorf("alice names prod-db in a header: %v", err)
	}
	// What alice may read she may name; with no Secret at all nothing is asked.
	if err := alice.Create(ctx, dataSource("own", "    bearerTokenSecretRef: {name: team-token, key: token}\n    headers: [{name: X-Api-Key, valueFrom: {name: team-token, key: token}}]\n")); err != nil {
		t.Errorf("alice names a Secret she may get: %v", err)
	}
	if err := alice.Create(ctx, dataSource("open", "")); err != nil {
		t.Errorf("alice's DataSource without a Secret: %v", err)
	}
	// Editing her own DataSource to point at prod-db is refused too.
	own := &unstructured.Unstructured{}
	own.SetGroupVersionKind(dataSource("", "").GroupVersionKind())
	if err := alice.Get(ctx, client.ObjectKey{Namespace: ns, Name: "own"}, own); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(own.Object, "prod-db", "spec", "prometheus", "bearerTokenSecretRef", "name"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Update(ctx, own); err == nil || !strings.Contains(err.Error(), refused) {
		t.Errorf("alice edits her DataSource to name prod-db: %v", err)
	}
	if err := bob.Create(ctx, dataSource("owner", "    bearerTokenSecretRef: {name: prod-db, key: token}\n")); err != nil {
		t.Errorf("bob, who may get prod-db, names it: %v", err)
	}
}
