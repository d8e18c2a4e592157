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
	// Feedback compares both models on labelled feedback, when there is some.
	Feedback *FeedbackComparison `json:"feedback,omitempty"`
	// Time is when the report was written.
	Time time.Time `json:"time"`
}

// FeedbackDirName is the folder on the model volume that holds labelled feedback: one
// file per scoring pod, FeedbackFileSuffix at the end of its name, a JSON FeedbackMark
// per line.
const (
	FeedbackDirName    = "feedback"
	FeedbackFileSuffix = ".jsonl"
)

// FeedbackMark is one label people gave through POST /v1/feedback: a record (its
// features by name) or an entity and a time, anomalous or not.
type FeedbackMark struct {
	Features map[string]float64 `json:"features,omitempty"`
	Entity   string             `json:"entity,omitempty"`
	Time     *time.Time         `json:"time,omitempty"`
	Anomaly  bool               `json:"anomaly"`
	// Received is when the scoring pod stored it; Version the model serving then.
	Received time.Time `json:"received"`
	Version  string    `json:"version,omitempty"`
}

// FeedbackComparison is how the served and the shadow model score the labelled
// feedback marks that carry features: F1 at each one's threshold and AUROC.
type FeedbackComparison struct {
	Marks       int     `json:"marks"`
	Anomalies   int     `json:"anomalies"`
	ServedF1    float64 `json:"servedF1"`
	ShadowF1    float64 `json:"shadowF1"`
	ServedAUROC float64 `json:"servedAUROC"`
	ShadowAUROC float64 `json:"shadowAUROC"`
}
