package controllers

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/detector/contract"
)

// argoHealthScript is the Lua health check README tells Argo CD users to paste.
func argoHealthScript(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "```yaml\ndata:\n  resource.customizations.health.anomaly.kadet.dev_Detector:")
	if i < 0 {
		t.Fatal("README has no Argo CD health check block")
	}
	block := readme[i+len("```yaml\n"):]
	block = block[:strings.Index(block, "```")]
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal([]byte(block), &cm); err != nil {
		t.Fatalf("README's argocd-cm block is not YAML: %v", err)
	}
	return cm.Data["resource.customizations.health.anomaly.kadet.dev_Detector"]
}

// luaValue converts decoded JSON the way Argo CD hands objects to health scripts.
func luaValue(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, luaValue(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(luaValue(L, e))
		}
		return t
	case string:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case bool:
		return lua.LBool(x)
	}
	return lua.LNil
}

// argoHealth runs the script on det as Argo CD does and returns status and message.
func argoHealth(t *testing.T, script string, det *kadetv1.Detector) (string, string) {
	t.Helper()
	b, _ := json.Marshal(det)
	var obj any
	_ = json.Unmarshal(b, &obj)
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", luaValue(L, obj))
	fn, err := L.LoadString(script)
	if err != nil {
		t.Fatalf("the health check does not parse: %v", err)
	}
	L.Push(fn)
	if err := L.PCall(0, 1, nil); err != nil {
		t.Fatalf("the health check fails: %v", err)
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the health check returned %v, not a table", L.Get(-1))
	}
	return hs.RawGetString("status").String(), hs.RawGetString("message").String()
}

// README's Argo CD health check, run with gopher-lua (the interpreter Argo CD embeds)
// against real Detectors in each state the controller puts them in.
func TestArgoCDHealthCheck(t *testing.T) {
	script := argoHealthScript(t)
	ns := newNamespace(t)
	create(t, csvConfigMap(ns, "tx", sampleCSV), csvDataSource(ns, "tx", "tx"))
	det := detector(ns, "argo", "tx")
	create(t, det)
	ctx := context.Background()
	check := func(want, msg string) {
		t.Helper()
		NewWithT(t).Eventually(func(g Gomega) {
			status, message := argoHealth(t, script, getDetector(g, det))
			g.Expect(status).To(Equal(want), message)
			g.Expect(message).To(ContainSubstring(msg))
		}, timeout, interval).Should(Succeed())
	}
	job := waitForOneJob(t, det)
	check("Progressing", "training Job")

	completeJob(t, job, contract.TrainingResult{Version: "20261129-100000-aaaaaaaa", Digest: "sha256:aa", Threshold: 1})
	rollOutDeployment(t, client.ObjectKey{Namespace: ns, Name: "argo-scoring"})
	check("Healthy", "serving model 20261129-100000-aaaaaaaa")

	// A new generation the controller has not seen yet: the object as the update
	// returns it, before any pass.
	var updated *kadetv1.Detector
	NewWithT(t).Eventually(func(g Gomega) {
		d := getDetector(g, det)
		d.Spec.Training.Epochs = 7
		g.Expect(k8sClient.Update(ctx, d)).To(Succeed())
		updated = d
	}, timeout, interval).Should(Succeed())
	if status, msg := argoHealth(t, script, updated); status != "Progressing" {
		t.Errorf("a generation not yet observed reads %s (%s); want Progressing", status, msg)
	}
	failJob(t, waitForOneJob(t, det, job.Name), 2, "tx.csv line 3: bad number")
	check("Degraded", "bad number")

	NewWithT(t).Eventually(func(g Gomega) {
		d := getDetector(g, det)
		d.Spec.Suspend = true
		g.Expect(k8sClient.Update(ctx, d)).To(Succeed())
	}, timeout, interval).Should(Succeed())
	check("Suspended", "spec.suspend is true")
}
