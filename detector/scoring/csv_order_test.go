package scoring

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/preprocess"
)

// A sequence model scores a file's rows in time order, as training orders them: a
// shuffled file gives the sorted file's output, each entity's rows in time order, and
// says it reordered them; two rows of one entity at one time are refused with both
// lines named, while two entities at one time are fine.
func TestCSVScoresRowsInTimeOrder(t *testing.T) {
	const w, f = 4, 1
	net, err := model.New(model.Spec{Type: model.ConvAutoencoder, Inputs: w * f, Window: w, Channels: []int{2}, Kernel: 3, Latent: 2, Activation: model.ReLU}, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := &artifact.Model{Network: net, Meta: artifact.Metadata{
		Features: []string{"v"}, Scaler: &preprocess.Scaler{Kind: "Standardize", Offset: []float32{0}, Scale: []float32{1}},
		ScoringRule: contract.ScoringCausal, Threshold: artifact.Threshold{Value: 0.05}, TimestampColumn: "ts",
	}}
	var rows []string
	for _, pod := range []string{"a", "b"} {
		for i := range 20 {
			rows = append(rows, fmt.Sprintf("%d,%s,%g", 1_700_000_000+60*i, pod, math.Sin(float64(i)*0.5)+float64(len(pod))))
		}
	}
	score := func(rows []string) (string, CSVStats, error) {
		var out bytes.Buffer
		st, err := CSV(m, strings.NewReader("ts,pod,v\n"+strings.Join(rows, "\n")+"\n"), &out, "x.csv",
			CSVOptions{Delimiter: ',', EntityColumn: "pod"})
		return out.String(), st, err
	}
	sorted, st, err := score(rows)
	if err != nil || st.Reordered {
		t.Fatalf("sorted file: reordered %v, %v", st.Reordered, err)
	}
	shuffled := append([]string(nil), rows...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for i, r := range shuffled { // entity a first, as in the sorted file
		if strings.Contains(r, ",a,") {
			shuffled[0], shuffled[i] = shuffled[i], shuffled[0]
			break
		}
	}
	got, st, err := score(shuffled)
	if err != nil || !st.Reordered {
		t.Fatalf("shuffled file: reordered %v, %v", st.Reordered, err)
	}
	if got != sorted {
		t.Errorf("the shuffled file scored\n%s\nthe sorted one\n%s", got, sorted)
	}

	dup := append([]string(nil), rows...)
	dup[5] = strings.Replace(dup[5], fmt.Sprint(1_700_000_000+60*5), fmt.Sprint(1_700_000_000+60*9), 1)
	_, _, err = score(dup)
	var de *data.Error
	if !errors.As(err, &de) || de.Line != 11 || !strings.Contains(err.Error(), `timestamp "1700000540" is also on line 7: two rows of entity "a" at one time`) {
		t.Errorf("a duplicate time: %v", err)
	}
}

// Values a float32 holds but whose error overflows it are refused with the row's
// line, not written as an infinite score; a model that scales each entity by its own
// statistics is refused a file read without an entity column.
func TestCSVRefusesWhatItCannotScore(t *testing.T) {
	const w = 4
	net, err := model.New(model.Spec{Type: model.ConvAutoencoder, Inputs: w, Window: w, Channels: []int{2}, Kernel: 3, Latent: 2, Activation: model.ReLU}, 1)
	if err != nil {
		t.Fatal(err)
	}
	scaler := &preprocess.Scaler{Kind: "Standardize", Offset: []float32{0}, Scale: []float32{1}}
	m := &artifact.Model{Network: net, Meta: artifact.Metadata{
		Features: []string{"v"}, Scaler: scaler, ScoringRule: contract.ScoringCausal, Threshold: artifact.Threshold{Value: 0.05},
	}}
	in := "v\n1\n2\n3\n1\n2\n3e38\n1\n"
	var out bytes.Buffer
	_, err = CSV(m, strings.NewReader(in), &out, "big.csv", CSVOptions{Delimiter: ','})
	var de *data.Error
	if !errors.As(err, &de) || de.Line != 7 || !strings.Contains(err.Error(), "too large for float32 arithmetic") {
		t.Errorf("a value whose error overflows: %v", err)
	}
	if _, err := CSV(m, strings.NewReader("v\n1\n2\n3\n1\n2\n3e3\n1\n"), &out, "ok.csv", CSVOptions{Delimiter: ','}); err != nil {
		t.Errorf("ordinary values: %v", err)
	}

	m.Meta.EntityScalers = map[string]*preprocess.Scaler{"a": scaler, "b": scaler}
	_, err = CSV(m, strings.NewReader("pod,v\na,1\na,2\na,3\na,1\nb,2\nb,3\nb,1\nb,2\n"), &out, "pods.csv", CSVOptions{Delimiter: ','})
	if err == nil || !strings.Contains(err.Error(), "scales each entity by its own statistics (2 entities in training): name the column of each row's entity") {
		t.Errorf("a model scaling by entity, no entity column: %v", err)
	}
	if _, err := CSV(m, strings.NewReader("pod,v\na,1\na,2\na,3\na,1\nb,2\nb,3\nb,1\nb,2\n"), &out, "pods.csv", CSVOptions{Delimiter: ',', EntityColumn: "pod"}); err != nil {
		t.Errorf("the same with the entity column: %v", err)
	}
}

// The page column marks the row where an alert with for would start firing: each
// entity's anomalous rows without a break for that long, once per run; a run too
// short pages nothing; without for, a run pages at its first row.
func TestCSVPages(t *testing.T) {
	net, err := model.New(model.Spec{Type: model.Autoencoder, Inputs: 1, Hidden: []int{2}, Latent: 1, Activation: model.ReLU}, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := &artifact.Model{Network: net, Meta: artifact.Metadata{
		Features: []string{"v"}, Scaler: &preprocess.Scaler{Kind: "Standardize", Offset: []float32{0}, Scale: []float32{1}},
		Threshold: artifact.Threshold{Value: 1e3},
	}}
	// A value of 1e3 is anomalous to a threshold of 1e3 (its error is about 1e6), 0 is not.
	// Entity a: anomalous at minutes 2-4 (three rows) and 8-9 (two); entity b at 3-8.
	anomalous := map[string][]int{"a": {2, 3, 4, 8, 9}, "b": {3, 4, 5, 6, 7, 8}}
	var b strings.Builder
	b.WriteString("ts,pod,v\n")
	for minute := range 12 {
		for _, pod := range []string{"a", "b"} {
			v := 0
			if slices.Contains(anomalous[pod], minute) {
				v = 1000
			}
			fmt.Fprintf(&b, "%d,%s,%d\n", 1_700_000_000+60*minute, pod, v)
		}
	}
	for _, tc := range []struct {
		alertFor time.Duration
		want     []string // pod@minute of each page
	}{
		{2 * time.Minute, []string{"a@4", "b@5"}},
		{time.Minute, []string{"a@3", "b@4", "a@9"}},
		{0, []string{"a@2", "b@3", "a@8"}},
	} {
		var out bytes.Buffer
		st, err := CSV(m, strings.NewReader(b.String()), &out, "pages.csv",
			CSVOptions{Delimiter: ',', EntityColumn: "pod", TimestampColumn: "ts", AlertFor: tc.alertFor})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&out).ReadAll()
		if err != nil || recs[0][len(recs[0])-1] != "page" {
			t.Fatalf("header %v, %v", recs[0], err)
		}
		var got []string
		for _, r := range recs[1:] {
			if r[len(r)-1] == "true" {
				ts, _ := strconv.Atoi(r[0])
				got = append(got, fmt.Sprintf("%s@%d", r[1], (ts-1_700_000_000)/60))
			}
		}
		if !slices.Equal(got, tc.want) || st.Pages != len(tc.want) || st.Days() != 11.0/(24*60) {
			t.Errorf("for %s: pages %v (%d, over %v days), want %v", tc.alertFor, got, st.Pages, st.Days(), tc.want)
		}
	}
}
