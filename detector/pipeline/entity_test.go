package pipeline

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/scoring"
)

// entityScales are the entities of the scaling test: the same shape (two features on a
// circle) at 10 ms and at 800 ms, noise in proportion.
var entityScales = map[string][2]float64{"fast": {10, 1}, "slow": {800, 100}}

// writeEntities writes rows per entity (time, pod, a, b), and, from row offFrom on,
// every tenth row of pod off moved off its circle by 3 of its radii.
func writeEntities(t *testing.T, path string, rows, seed int, off string, offFrom int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	var b strings.Builder
	b.WriteString("time,pod,a,b\n")
	for i := range rows {
		for _, pod := range []string{"fast", "slow"} {
			base, r := entityScales[pod][0], entityScales[pod][1]
			phase := float64(i) / 7
			x, y := base+r*math.Sin(phase), base+r*math.Cos(phase)
			x, y = x+0.02*r*rng.NormFloat64(), y+0.02*r*rng.NormFloat64()
			if pod == off && i >= offFrom && i%10 == 0 {
				x += 3 * r
			}
			fmt.Fprintf(&b, "%d,%s,%g,%g\n", i, pod, x, y)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// One model over a service at 10 ms and one at 800 ms: scaled as one, the fast
// service's rows are noise beside the slow one's and its anomalies go unseen; each
// scaled by its own statistics, the same anomalies are found, without false alarms on
// the slow service. An entity the model did not see is scaled by its first rows.
func TestScaleByEntityFindsTheSmallEntitysAnomalies(t *testing.T) {
	dir := t.TempDir()
	trainCSV, testCSV := filepath.Join(dir, "train.csv"), filepath.Join(dir, "test.csv")
	writeEntities(t, trainCSV, 600, 1, "", 0)
	writeEntities(t, testCSV, 200, 2, "fast", 0)
	found := map[string][2]int{} // per scaling scope: anomalies found on fast, false alarms on slow
	models := map[string]string{}
	for _, scaleBy := range []string{"", contract.ScaleByEntity} {
		req := request(trainCSV, contract.Autoencoder)
		req.Model.HiddenLayers, req.Model.LatentSize = []int32{8}, new(int32(1))
		req.Data.CSV.LabelColumn, req.Data.CSV.EntityColumn = "", "pod"
		req.Preprocessing.ScaleBy = scaleBy
		out, err := Train(context.Background(), req, filepath.Join(dir, "m"+scaleBy), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := out.Result.ScaleBy; got != scaleBy {
			t.Errorf("training result scaleBy %q; want %q", got, scaleBy)
		}
		models[scaleBy] = out.Dir
		m, err := artifact.Load(out.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if m.Meta.ScalesByEntity() != (scaleBy != "") || (scaleBy != "" && len(m.Meta.EntityScalers) != 2) {
			t.Fatalf("scaleBy %q: entity scalers %v", scaleBy, m.Meta.EntityScalers)
		}
		f, err := os.Open(testCSV)
		if err != nil {
			t.Fatal(err)
		}
		var res bytes.Buffer
		st, err := scoring.CSV(m, f, &res, testCSV, scoring.CSVOptions{Delimiter: ',', EntityColumn: "pod"})
		f.Close()
		if err != nil || st.Unseen != 0 {
			t.Fatalf("scoring: %+v, %v", st, err)
		}
		recs, _ := csv.NewReader(&res).ReadAll()
		var hits, falseAlarms int
		for _, r := range recs[1:] {
			i, err := strconv.Atoi(r[0])
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case r[1] == "fast" && i%10 == 0 && r[6] == "true":
				hits++
			case r[1] == "slow" && r[6] == "true":
				falseAlarms++
			}
		}
		found[scaleBy] = [2]int{hits, falseAlarms}
	}
	// 20 rows of fast are off its circle; the percentile threshold (99) lets about 2
	// of 200 normal rows through.
	if e := found[contract.ScaleByEntity]; e[0] < 18 || e[1] > 6 {
		t.Errorf("scaled by entity: %d of 20 anomalies found, %d false alarms on slow; want at least 18 and at most 6", e[0], e[1])
	}
	if m := found[""]; m[0] > 5 {
		t.Errorf("scaled as one: %d of 20 anomalies found: the test no longer shows what one scaler misses", m[0])
	}
	t.Logf("anomalies found of 20, false alarms of 200: scaled by entity %v, scaled as one %v", found[contract.ScaleByEntity], found[""])

	// An entity the model did not see, at 40 s: scaled by its first rows, its normal
	// rows are not all anomalies, and the scoring says it met one.
	m, err := artifact.Load(models[contract.ScaleByEntity])
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("time,pod,a,b\n")
	for i := range 200 {
		phase := float64(i) / 7
		fmt.Fprintf(&b, "%d,new,%g,%g\n", i, 40000+5000*math.Sin(phase), 40000+5000*math.Cos(phase))
	}
	var res bytes.Buffer
	st, err := scoring.CSV(m, strings.NewReader(b.String()), &res, "new.csv", scoring.CSVOptions{Delimiter: ',', EntityColumn: "pod"})
	if err != nil || st.Unseen != 1 {
		t.Fatalf("an unseen entity: %+v, %v; want one unseen", st, err)
	}
	if st.Anomalies > 10 {
		t.Errorf("an unseen entity's normal rows: %d of 200 anomalies", st.Anomalies)
	}
}
