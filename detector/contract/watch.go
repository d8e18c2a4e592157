package contract

import (
	"encoding/json"
	"fmt"
	"time"
)

// WatchKind is the kind of a rendered WatchRequest.
const WatchKind = "WatchRequest"

// WatchFileName is the key of the watch ConfigMap and the file a scoring pod reads.
const WatchFileName = "watch.json"

// WatchStatusKey is the key of the watch ConfigMap's status, which the scoring pod
// that leads the watch writes (at most every WatchStatusInterval) and the controller
// mirrors into the Detector's status.
const WatchStatusKey = "status.json"

// WatchStatusInterval spaces the scoring pods' status writes.
const WatchStatusInterval = 30 * time.Second

// RecentAnomalies is how many anomaly episodes the watch status keeps.
const RecentAnomalies = 10

// WatchRequest tells a scoring pod to watch the Prometheus queries its model was
// trained on: the controller renders it from the Detector and its DataSource.
type WatchRequest struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Detector   ObjectKey `json:"detector"`
	// Prometheus is how to reach the server (URL, credentials as files, TLS, headers),
	// the step and the gap rule. Its queries and entity labels are the DataSource's; the
	// pod reads the ones its model was trained on, which are the same once the model of
	// the current spec is served.
	Prometheus ResolvedPrometheus `json:"prometheus"`
	// Interval is how often the newest window is scored; Delay shifts the query's end
	// back for stores where samples arrive late. Go durations.
	Interval string `json:"interval"`
	Delay    string `json:"delay,omitempty"`
	// Lease names the coordination.k8s.io Lease the scoring pods elect the one watching
	// pod with; empty watches without an election (one process outside a cluster).
	Lease string `json:"lease,omitempty"`
	// StatusConfigMap names the ConfigMap the watching pod writes WatchStatusKey into.
	StatusConfigMap string `json:"statusConfigMap,omitempty"`
}

// ParseWatchRequest decodes and checks a rendered WatchRequest.
func ParseWatchRequest(b []byte) (*WatchRequest, error) {
	var r WatchRequest
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("watch request: %w", err)
	}
	switch {
	case r.APIVersion != APIVersion || r.Kind != WatchKind:
		return nil, fmt.Errorf("watch request: apiVersion %q kind %q, want %s %s", r.APIVersion, r.Kind, APIVersion, WatchKind)
	case r.Prometheus.URL == "":
		return nil, fmt.Errorf("watch request: prometheus.url is empty")
	}
	if _, err := r.Intervals(); err != nil {
		return nil, err
	}
	return &r, nil
}

// WatchTimes are a WatchRequest's durations, parsed.
type WatchTimes struct {
	Interval, Delay, Step time.Duration
}

// Intervals parses the request's interval, delay and step.
func (r *WatchRequest) Intervals() (WatchTimes, error) {
	var t WatchTimes
	var err error
	if t.Step, err = time.ParseDuration(r.Prometheus.Step); err != nil || t.Step < time.Second {
		return t, fmt.Errorf("watch request: prometheus.step %q is not a duration of at least 1s", r.Prometheus.Step)
	}
	if t.Interval, err = time.ParseDuration(r.Interval); err != nil || t.Interval < time.Second {
		return t, fmt.Errorf("watch request: interval %q is not a duration of at least 1s", r.Interval)
	}
	if r.Delay != "" {
		if t.Delay, err = time.ParseDuration(r.Delay); err != nil || t.Delay < 0 {
			return t, fmt.Errorf("watch request: delay %q is not a duration of at least 0s", r.Delay)
		}
	}
	return t, nil
}

// WatchStatus is what the watching pod reports: how many entities are anomalous now,
// when it last scored, and the latest anomaly episodes, newest first.
type WatchStatus struct {
	// Leader is the pod that wrote this status.
	Leader string `json:"leader,omitempty"`
	// LastScoreTime is the time of the newest row scored (the query's end).
	LastScoreTime *time.Time `json:"lastScoreTime,omitempty"`
	Entities      int        `json:"entities"`
	AnomalousNow  int        `json:"anomalousNow"`
	// ScaledFromHistory counts the entities of a model that scales by entity that it
	// did not see in training: each is scaled by its own history.
	ScaledFromHistory int `json:"scaledFromHistory,omitempty"`
	// Episodes are the latest RecentAnomalies anomaly episodes, newest first.
	Episodes []AnomalyEpisode `json:"episodes,omitempty"`
}

// AnomalyEpisode is a run of consecutive anomalous scores of one entity.
type AnomalyEpisode struct {
	// Entity is the entity's labels, as in a PromQL selector; empty for a source
	// without entity labels.
	Entity string    `json:"entity,omitempty"`
	Start  time.Time `json:"start"`
	// End is the time of the first score back under the threshold; nil while ongoing.
	End *time.Time `json:"end,omitempty"`
	// PeakScore is the highest score of the episode, at PeakTime; TopFeatures are the
	// features that contributed most to it, largest first.
	PeakScore   float64   `json:"peakScore"`
	PeakTime    time.Time `json:"peakTime"`
	TopFeatures []string  `json:"topFeatures,omitempty"`
}
