package controllers

import (
	"strings"
	"testing"
)

// The manager runs with exactly config/rbac (the chart's ClusterRole); kubectl auth
// can-i, asked as that user, shows what it cannot do: read Secrets anywhere it was not
// granted them, reach into pods, or change RBAC beyond the namespaced Roles it makes
// for each Detector (which the API server lets it grant only rights it holds).
func TestManagerHoldsLeastPrivilege(t *testing.T) {
	granted := newNamespace(t)
	allowSecrets(t, granted)
	other := newNamespace(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"get", "secrets", "-n", other}, "no"},
		{[]string{"list", "secrets", "--all-namespaces"}, "no"},
		{[]string{"watch", "secrets", "-n", granted}, "no"},
		{[]string{"get", "secrets", "-n", granted}, "yes"},
		{[]string{"create", "pods", "--subresource=exec", "-n", other}, "no"},
		{[]string{"create", "pods", "--subresource=portforward", "-n", other}, "no"},
		{[]string{"get", "pods", "--subresource=proxy", "-n", other}, "no"},
		{[]string{"get", "services", "--subresource=proxy", "-n", other}, "no"},
		{[]string{"create", "pods", "-n", other}, "no"},
		{[]string{"delete", "pods", "-n", other}, "no"},
		{[]string{"create", "clusterroles"}, "no"},
		{[]string{"create", "clusterrolebindings"}, "no"},
		{[]string{"escalate", "roles", "-n", other}, "no"},
		{[]string{"bind", "roles", "-n", other}, "no"},
		{[]string{"bind", "clusterroles", "-n", other}, "no"},
		{[]string{"delete", "roles", "-n", other}, "no"},
		{[]string{"create", "serviceaccounts", "--subresource=token", "-n", other}, "no"},
		{[]string{"impersonate", "users"}, "no"},
		{[]string{"delete", "namespaces"}, "no"},
		{[]string{"create", "nodes"}, "no"},
		{[]string{"delete", "customresourcedefinitions"}, "no"},
		{[]string{"update", "detectors", "-n", other}, "no"},
		// What it needs, so the refusals above are not those of a user with no rights.
		{[]string{"create", "roles", "-n", other}, "yes"},
		{[]string{"create", "jobs", "-n", other}, "yes"},
		{[]string{"patch", "detectors", "--subresource=status", "-n", other}, "yes"},
		{[]string{"get", "pods", "-n", other}, "yes"},
	}
	for _, tt := range tests {
		args := append([]string{"auth", "can-i", "--as", "kadet-manager"}, tt.args...)
		out, _ := kubectl(t, args...) // can-i exits 1 for "no"
		// The first line is the answer; a warning about cluster-scoped resources may follow.
		if got, _, _ := strings.Cut(strings.TrimSpace(out), "\n"); got != tt.want {
			t.Errorf("can-i %s: %q; want %s", strings.Join(tt.args, " "), got, tt.want)
		}
	}
}
