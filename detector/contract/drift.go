package contract

import "time"

// DriftReportPrefix starts the key of each scoring pod's drift report in the scoring
// pods' status ConfigMap: "drift.<pod name>". Each pod writes only its own key.
const DriftReportPrefix = "drift."

// DriftReportInterval spaces a pod's drift reports; a report is written only when it
// changed, and at least every DriftHeartbeat so the controller can tell a pod that is
// gone from one with nothing new to say.
const (
	DriftReportInterval = 15 * time.Second
	DriftHeartbeat      = 5 * time.Minute
)

// DriftReportedPSI is the smallest PSI a report names a feature with (0.1 is where a
// feature starts to move); DriftReportedFeatures the most it names.
const (
	DriftReportedPSI      = 0.1
	DriftReportedFeatures = 10
)

// DriftReport is one scoring pod's measure of how far the rows it scored lately are
// from its model's training data. Values are rounded to two decimals, so a pod seeing
// steady traffic writes the same report and no write follows.
type DriftReport struct {
	// Version is the model version the rows were scored with.
	Version string `json:"version"`
	// Rows in the window, and the window's size: the measures count once it is full.
	Rows   int `json:"rows"`
	Window int `json:"window"`
	// ScoreKS is the Kolmogorov-Smirnov statistic of the window's scores against the
	// model's calibration scores.
	ScoreKS float64 `json:"scoreKS"`
	// Features with a PSI of at least DriftReportedPSI, largest first.
	Features []FeatureDrift `json:"features,omitempty"`
	// Time is when the report was written; it changes only with the rest or on a
	// heartbeat.
	Time time.Time `json:"time"`
}

// FeatureDrift is a feature's population stability index over the window.
type FeatureDrift struct {
	Name string  `json:"name"`
	PSI  float64 `json:"psi"`
}

// ShadowReportPrefix starts the key of each scoring pod's shadow report in the status
// ConfigMap: "shadow.<pod name>".
const ShadowReportPrefix = "shadow."

// ShadowReport is what one scoring pod counted of the shadow model it scores beside
// the served one.
type ShadowReport struct {
	// Version is the shadow model's; Served the model answering requests.
	Version string `json:"version"`
	Served  string `json:"served"`
	// Since is when the pod started scoring it in shadow.
	Since time.Time `json:"since"`
	// Rows both models scored; Anomalies the shadow flagged, ServedAnomalies the served
	// model flagged, Agreed rows with the same verdict, Dropped rows the shadow skipped.
	Rows            int64 `json:"rows"`
	Anomalies       int64 `json:"anomalies"`
	ServedAnomalies int64 `json:"servedAnomalies"`
	Agreed          int64 `json:"agreed"`
	Dropped         int64 `json:"dropped,omitempty"`
	// ExpectedAnomalyRate is the share of normal rows the shadow's threshold is meant
	// to flag, from its calibration (0: its file does not say).
	ExpectedAnomalyRate float64 `json:"expectedAnomalyRate"`
	// Incompatible says why the shadow cannot score the served model's rows.
	Incompatible string `json:"incompatible,omitempty"`
	// Time is when the report was written.
	Time time.Time `json:"time"`
}
