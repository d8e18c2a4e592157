package v1alpha1

// Condition types. Ready, Reconciling and Stalled follow kstatus; DataSourceReady,
// Trained and Serving say which part of a Detector is in what state.
const (
	ReadyCondition           = "Ready"
	ReconcilingCondition     = "Reconciling"
	StalledCondition         = "Stalled"
	DataSourceReadyCondition = "DataSourceReady"
	TrainedCondition         = "Trained"
	ServingCondition         = "Serving"
	// AlertingCondition says whether the PrometheusRule and PodMonitor of a Detector on
	// a Prometheus DataSource exist; absent when alerting is off or not applicable.
	AlertingCondition = "Alerting"
	// TrainingFailedCondition is True while the latest retraining of the current spec
	// failed and an earlier model keeps serving (the Detector stays Ready).
	TrainingFailedCondition = "TrainingFailed"
	// DriftedCondition says whether the rows the served model scores have moved from its
	// training data (with spec.retraining.onDrift); it names the features.
	DriftedCondition = "Drifted"
)

// Reasons of a Detector's conditions. The Stalled ones are listed in README's
// troubleshooting table: each says what the user has to change.
const (
	ReasonSucceeded      = "Succeeded"
	ReasonProgressing    = "Progressing"
	ReasonReconcileError = "ReconcileError"

	ReasonDataSourceNotFound = "DataSourceNotFound"
	ReasonDataSourceNotReady = "DataSourceNotReady"
	ReasonIncompatible       = "IncompatibleDataSource"
	ReasonStorageConflict    = "StorageConflict"
	// ReasonNameConflict: an object of a child's name exists that the Detector does
	// not control; kadet does not take it over.
	ReasonNameConflict   = "NameConflict"
	ReasonTrainingFailed = "TrainingFailed"
	// ReasonInvalidSchedule: spec.training.schedule or timeZone does not parse.
	ReasonInvalidSchedule = "InvalidSchedule"
	// ReasonModelVersionNotFound: spec.scoring.modelVersion names no ModelVersion.
	ReasonModelVersionNotFound = "ModelVersionNotFound"
	// ReasonRetrainingFailed: a retraining failed; the earlier model serves.
	ReasonRetrainingFailed = "RetrainingFailed"
	// ReasonTrainingRetried: a training pod failed and its Job runs another (the
	// event's reason; the Trained condition names the attempt and the cause).
	ReasonTrainingRetried = "TrainingRetried"
	// ReasonInsufficientData: a Prometheus range holds too few rows to train yet; the
	// Detector tries again when enough should have arrived.
	ReasonInsufficientData = "InsufficientData"

	ReasonTraining     = "Training"
	ReasonModelTrained = "ModelTrained"
	ReasonNoModel      = "NoModel"
	ReasonRollingOut   = "RollingOut"
	ReasonModelServed  = "ModelServed"
	ReasonScaledToZero = "ScaledToZero"

	// ReasonAlertsConfigured: the PrometheusRule and PodMonitor are applied.
	ReasonAlertsConfigured = "AlertsConfigured"
	// ReasonPrometheusOperatorMissing: the monitoring.coreos.com CRDs are not installed;
	// kadet creates the objects once they are.
	ReasonPrometheusOperatorMissing = "PrometheusOperatorMissing"
	// ReasonBacktestTooNoisy: the served version's backtest flagged more episodes a day
	// than spec.alerting.maxEpisodesPerDay; the PrometheusRule is held back.
	ReasonBacktestTooNoisy = "BacktestTooNoisy"

	// Reasons of the Drifted condition: features or scores moved past their limits;
	// within them; fewer rows than the window scored by the served version yet; no
	// scoring pod reported on the served version.
	ReasonFeaturesDrifted = "FeaturesDrifted"
	ReasonScoresDrifted   = "ScoresDrifted"
	ReasonNoDrift         = "NoDrift"
	ReasonMeasuring       = "Measuring"
	ReasonNoReports       = "NoReports"
)

// Reasons of a DataSource's Ready condition.
const (
	ReasonReferencesResolved = "ReferencesResolved"
	ReasonReferenceNotFound  = "ReferenceNotFound"
	// ReasonServerUnreachable: the Prometheus server did not answer; checked again.
	ReasonServerUnreachable = "ServerUnreachable"
	// ReasonNoSeries: a query returns no series yet (a metric not scraped yet); checked
	// again.
	ReasonNoSeries = "NoSeries"
	// ReasonQueryRefused: the server refused a query or the credentials.
	ReasonQueryRefused = "QueryRefused"
)
