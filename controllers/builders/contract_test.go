package builders

import (
	"encoding/json"
	"testing"

	"sigs.k8s.io/randfill"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/detector/contract"
)

// The contract's types are plain copies of the API's: the request the controller renders
// must carry every field the user set, under the same JSON name, so that the spec hash of
// an unchanged Detector stays the same and no field is silently dropped.
func TestContractCarriesEveryAPIField(t *testing.T) {
	if contract.APIVersion != kadetv1.GroupVersion.String() {
		t.Errorf("contract.APIVersion = %q; the API group version is %q", contract.APIVersion, kadetv1.GroupVersion)
	}
	f := randfill.New().NilChance(0).NumElements(1, 3)
	for i := range 20 {
		var m kadetv1.ModelSpec
		var th kadetv1.ThresholdSpec
		f.Fill(&m)
		f.Fill(&th)
		sameJSON(t, i, "model", m, contractModel(m))
		sameJSON(t, i, "threshold", th, contractThreshold(th))
	}
}

func sameJSON(t *testing.T, i int, what string, api, got any) {
	t.Helper()
	want, _ := json.Marshal(api)
	have, _ := json.Marshal(got)
	if string(want) != string(have) {
		t.Errorf("fill %d: %s in the contract is\n%s\nwant the API's\n%s", i, what, have, want)
	}
}
