package controllers

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
)

func TestParseSchedule(t *testing.T) {
	for _, c := range []struct {
		schedule, zone, err string
	}{
		{"0 3 * * *", "", ""},
		{"@daily", "Europe/Berlin", ""},
		{"@every 6h", "", ""},
		{"61 3 * * *", "", `spec.training.schedule "61 3 * * *"`},
		{"0 3 * * mon-fry", "", `spec.training.schedule "0 3 * * mon-fry"`},
		{"0 3 * * *", "Mars/Olympus", `spec.training.timeZone "Mars/Olympus" is not an IANA time zone`},
	} {
		_, err := parseSchedule(kadetv1.TrainingSpec{Schedule: c.schedule, TimeZone: c.zone})
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q in %q: %v", c.schedule, c.zone, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q in %q: error %v; want one containing %q", c.schedule, c.zone, err, c.err)
		}
	}
}

func TestRetrainingDue(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	mt := func(s string) *metav1.Time { return &metav1.Time{Time: at(s)} }
	det := func(schedule string, lastTick, lastRun, trained *metav1.Time, maxAge time.Duration) *kadetv1.Detector {
		d := &kadetv1.Detector{}
		d.Spec.Training.Schedule, d.Spec.Training.TimeZone = schedule, "Europe/Berlin"
		if maxAge > 0 {
			d.Spec.Training.MaxModelAge = &metav1.Duration{Duration: maxAge}
		}
		d.Status.Retraining = &kadetv1.RetrainingStatus{LastScheduleTime: lastTick, LastRun: lastRun}
		if trained != nil {
			d.Status.Model = &kadetv1.ModelStatus{Version: "v", TrainedAt: trained}
		}
		return d
	}
	for _, c := range []struct {
		name      string
		det       *kadetv1.Detector
		now       string
		run, next string // "" for none
	}{
		{"before the first tick", det("0 3 * * *", mt("2026-11-28 12:00"), nil, nil, 0), "2026-11-29 02:59", "", "2026-11-29 03:00"},
		{"at the tick", det("0 3 * * *", mt("2026-11-28 12:00"), nil, nil, 0), "2026-11-29 03:00", "2026-11-29 03:00", "2026-11-30 03:00"},
		{"three missed ticks give the latest", det("0 3 * * *", mt("2026-11-26 03:00"), nil, nil, 0), "2026-11-29 09:00", "2026-11-29 03:00", "2026-11-30 03:00"},
		// 02:30 does not exist on the spring-forward day in Berlin (02:00 jumps to
		// 03:00): robfig/cron skips that day, as Kubernetes CronJobs (the same parser) do.
		{"spring forward", det("30 2 * * *", mt("2026-03-28 12:00"), nil, nil, 0), "2026-03-29 04:00", "", "2026-03-30 02:30"},
		// 02:30 happens twice on the fall-back day: one run.
		{"fall back", det("30 2 * * *", mt("2026-10-24 12:00"), nil, nil, 0), "2026-10-25 04:00", "2026-10-25 02:30", "2026-10-26 02:30"},
		{"model younger than maxModelAge", det("", nil, nil, mt("2026-11-29 00:00"), 24*time.Hour), "2026-11-29 12:00", "", "2026-11-30 00:00"},
		{"model older than maxModelAge", det("", nil, nil, mt("2026-11-27 00:00"), 24*time.Hour), "2026-11-29 12:00", "2026-11-29 12:00", "2026-11-30 12:00"},
		{"a run since the model: wait for it", det("", nil, mt("2026-11-29 11:00"), mt("2026-11-27 00:00"), 24*time.Hour), "2026-11-29 12:00", "", "2026-11-30 11:00"},
		{"that run failed a maxModelAge ago: again", det("", nil, mt("2026-11-28 11:00"), mt("2026-11-27 00:00"), 24*time.Hour), "2026-11-29 12:00", "2026-11-29 12:00", "2026-11-30 12:00"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sched, err := parseSchedule(c.det.Spec.Training)
			if err != nil {
				t.Fatal(err)
			}
			d := retrainingDue(c.det, sched, at(c.now))
			str := func(p *time.Time) string {
				if p == nil {
					return ""
				}
				return p.In(berlin).Format("2006-01-02 15:04")
			}
			if got := str(d.run); got != c.run {
				t.Errorf("run %q; want %q", got, c.run)
			}
			if got := str(d.next); got != c.next {
				t.Errorf("next %q; want %q", got, c.next)
			}
		})
	}
}
