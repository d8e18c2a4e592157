package pipeline

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/scoring"
	"github.com/kadet-dev/kadet/detector/seasonal"
)

// seasonStart is Monday 7 December 2026, 00:00 UTC.
var seasonStart = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC).Unix()

// writeNoisyAtNoon writes days of 5-minute rows (time as RFC 3339, value) of a daily
// cycle whose noise is six times as large from 12:00 to 15:59 UTC, and, with spikes,
// a rise of 4 at 03:00 each day: small beside the afternoon's noise, large beside
// the night's. It returns the spikes' rows.
func writeNoisyAtNoon(t *testing.T, path string, days int, seed uint64, spikes bool) []int {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	b.WriteString("time,value\n")
	var at []int
	for i := range days * 288 {
		ts := seasonStart + int64(300*i)
		sd := 0.5
		if h := (ts % 86400) / 3600; h >= 12 && h < 16 {
			sd = 3
		}
		v := 50 + 10*math.Sin(2*math.Pi*float64(i)/288) + sd*rng.NormFloat64()
		if spikes && i%288 == 36 {
			v += 4
			at = append(at, i)
		}
		fmt.Fprintf(&b, "%s,%.4f\n", time.Unix(ts, 0).UTC().Format(time.RFC3339), v)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return at
}

// A series six times noisier in the afternoon: one threshold for every hour is set by
// the afternoon, and a rise at night eight times the night's noise stays under
// it; with seasonality Day each hour is judged against its own typical score, and the
// same rises are found, without false alarms.
func TestSeasonalityDayFindsWhatTheNoisyHoursHide(t *testing.T) {
	dir := t.TempDir()
	trainCSV, testCSV := filepath.Join(dir, "train.csv"), filepath.Join(dir, "test.csv")
	writeNoisyAtNoon(t, trainCSV, 4, 1, false)
	spikes := writeNoisyAtNoon(t, testCSV, 3, 2, true)
	found, falseAlarms := map[string]int{}, map[string]int{}
	for _, season := range []string{seasonal.None, seasonal.Day} {
		req := request(trainCSV, contract.ConvAutoencoder)
		req.Model = contract.ResolvedModel(contract.Model{Type: contract.ConvAutoencoder, Window: new(int32(16)), Channels: []int32{8, 8},
			ScoringRule: contract.ScoringCausal, Seasonality: season}, contract.SourceRows)
		req.Data.CSV.LabelColumn = ""
		req.Training.Epochs = 8
		req.Threshold = contract.Threshold{Method: contract.ThresholdPercentile, Percentile: new(99.99)}
		var logged bytes.Buffer
		out, err := Train(context.Background(), req, filepath.Join(dir, season), Options{Log: slog.New(slog.NewTextHandler(&logged, nil))})
		if err != nil {
			t.Fatal(err)
		}
		// The log says what was learnt, and only when something was.
		if said := strings.Contains(logged.String(), `msg="scores are divided by their UTC hour's factor" seasonality=Day period=Day`); said != (season == seasonal.Day) {
			t.Errorf("seasonality %s: log %q", season, logged.String())
		}
		m, err := artifact.Load(out.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if season == seasonal.Day {
			if m.Meta.Seasons == nil || m.Meta.Seasons.Period != seasonal.Day || out.Result.SeasonalPeriod != seasonal.Day || out.Result.Seasonality != seasonal.Day {
				t.Fatalf("seasons %+v, result %q/%q: want Day", m.Meta.Seasons, out.Result.Seasonality, out.Result.SeasonalPeriod)
			}
			if noon, night := m.Meta.Seasons.Factor(seasonStart+14*3600), m.Meta.Seasons.Factor(seasonStart+3*3600); noon < 5*night {
				t.Errorf("factor at 14:00 %.2f, at 03:00 %.2f: want the afternoon's far above the night's", noon, night)
			}
			// Scored without the rows' times, a seasonal model would judge every hour
			// alike: a file without the column it trained with needs one named.
			raw, _ := os.ReadFile(testCSV)
			renamed := strings.Replace(string(raw), "time,value", "when,value", 1)
			_, err := scoring.CSV(m, strings.NewReader(renamed), &bytes.Buffer{}, "test.csv", scoring.CSVOptions{Delimiter: ','})
			if err == nil || !strings.Contains(err.Error(), "follow the hour of the day (seasonality Day): name the rows' timestamp column") {
				t.Fatalf("scoring without a timestamp column: %v", err)
			}
			if m.Meta.TimestampColumn != "time" {
				t.Errorf("model's timestamp column %q, want time", m.Meta.TimestampColumn)
			}
		} else if m.Meta.Seasons != nil || out.Result.SeasonalPeriod != "" {
			t.Fatalf("seasonality None learnt %+v", m.Meta.Seasons)
		}
		f, err := os.Open(testCSV)
		if err != nil {
			t.Fatal(err)
		}
		var res bytes.Buffer
		// The column the model trained with is the default.
		_, err = scoring.CSV(m, f, &res, "test.csv", scoring.CSVOptions{Delimiter: ','})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&res).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		isSpike := map[int]bool{}
		for _, i := range spikes {
			isSpike[i] = true
		}
		for i, rec := range recs[1:] {
			flagged := rec[len(rec)-1] == "true"
			near := false
			for _, s := range spikes {
				near = near || (i >= s && i < s+16) // the spike's row and the windows after it
			}
			switch {
			case isSpike[i] && flagged:
				found[season]++
			case !near && flagged && i >= 16:
				falseAlarms[season]++
			}
		}
		// The newest-row path the watch takes scores as the batch does.
		x := make([]float32, 0, 16)
		times := make([]int64, 0, 16)
		for _, rec := range recs[1+spikes[0]-15 : 1+spikes[0]+1] {
			v, _ := strconv.ParseFloat(rec[1], 32)
			at, _ := seasonal.ParseTime(rec[0])
			x, times = append(x, float32(v)), append(times, at)
		}
		norm := m.Meta.Normalization
		m.Meta.Normalization = nil
		batch, err := scoring.ScoreRun(m, nil, x, 0, times)
		if err != nil {
			t.Fatal(err)
		}
		newest, err := scoring.ScoreNewest(m, x, 1, times[15], nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		m.Meta.Normalization = norm
		if got, want := newest[0].Score, batch[15].Score; math.Abs(got-want) > 1e-6*max(1, want) {
			t.Errorf("%s: newest-row score %v, batch score of the same row %v", season, got, want)
		}
	}
	if found[seasonal.Day] != len(spikes) || falseAlarms[seasonal.Day] > 0 {
		t.Errorf("seasonality Day: %d of %d night rises found, %d false alarms; want all and none", found[seasonal.Day], len(spikes), falseAlarms[seasonal.Day])
	}
	if found[seasonal.None] >= found[seasonal.Day] {
		t.Errorf("seasonality None found %d of %d night rises, Day %d: want Day to find what the afternoon's threshold hides", found[seasonal.None], len(spikes), found[seasonal.Day])
	}
	t.Logf("night rises found of %d: None %d (false alarms %d), Day %d (false alarms %d)", len(spikes),
		found[seasonal.None], falseAlarms[seasonal.None], found[seasonal.Day], falseAlarms[seasonal.Day])
}

// Seasonality a model cannot have, or training rows that cannot give it, are refused
// with what is wrong; Auto over rows that do not fill the day trains every hour alike.
func TestSeasonalityRefusals(t *testing.T) {
	dir := t.TempDir()
	full, half := filepath.Join(dir, "full.csv"), filepath.Join(dir, "half.csv")
	writeNoisyAtNoon(t, full, 2, 1, false)
	raw, _ := os.ReadFile(full)
	lines := strings.SplitAfter(string(raw), "\n")
	if err := os.WriteFile(half, []byte(strings.Join(lines[:1+144], "")), 0o644); err != nil { // 00:00 to 11:55
		t.Fatal(err)
	}
	conv := func(season string) contract.Model {
		return contract.ResolvedModel(contract.Model{Type: contract.ConvAutoencoder, Window: new(int32(16)), Channels: []int32{4},
			ScoringRule: contract.ScoringCausal, Seasonality: season}, contract.SourceRows)
	}
	for _, c := range []struct {
		name, file string
		model      contract.Model
		want       string
	}{
		{"an unknown period", full, conv("Month"), `seasonality "Month": want None, Day, Week or Auto`},
		{"Day on a dense autoencoder", full, contract.Model{Type: contract.Autoencoder, Seasonality: "Day"}, "seasonality Day is for sequence models"},
		// The validation split holds the last fifth: the first hour without rows is 10:00.
		{"Day over half a day", half, conv("Day"), "seasonality Day: hour 10:00-10:59 UTC has 0 training rows, and every hour needs 6"},
		{"Week over two days", full, conv("Week"), "training rows, and every hour needs 6: train on rows that cover every hour of the week"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := request(c.file, c.model.Type)
			req.Model, req.Data.CSV.LabelColumn, req.Training.Epochs = c.model, "", 1
			_, err := Train(context.Background(), req, filepath.Join(dir, "m"), Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want an error saying %q", err, c.want)
			}
		})
	}
	req := request(half, contract.ConvAutoencoder)
	req.Model, req.Data.CSV.LabelColumn, req.Training.Epochs = conv(seasonal.Auto), "", 1
	out, err := Train(context.Background(), req, filepath.Join(dir, "auto"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Result.Seasonality != seasonal.Auto || out.Result.SeasonalPeriod != "" {
		t.Errorf("Auto over half a day: seasonality %q, period %q; want Auto and none", out.Result.Seasonality, out.Result.SeasonalPeriod)
	}
}
