package cli

import "github.com/kadet-dev/kadet/detector/contract"

// DetectorRequest is what a Detector on a Prometheus DataSource with only its model
// (type, and what else m sets) trains with, on a CSV of timestamp,value: the model
// presets, threshold, likelihood stage and seasonality a new Detector gets; epochs
// above 0 replace the default.
func DetectorRequest(csv string, m contract.Model, epochs int32) *contract.TrainingRequest {
	req := &contract.TrainingRequest{
		APIVersion: contract.APIVersion, Kind: contract.Kind,
		Detector:      contract.ObjectKey{Name: "metric"},
		Model:         contract.ResolvedModel(m, contract.SourceStream),
		Preprocessing: contract.Preprocessing{Scaling: contract.DefaultScaling},
		Training: contract.TrainingParameters{Epochs: 20, BatchSize: 64, LearningRate: 0.001,
			ValidationSplit: contract.DefaultValidationSplit, Seed: contract.DefaultSeed},
		Threshold:     contract.ResolvedThreshold(contract.Threshold{}, contract.SourceStream),
		Normalization: contract.ResolvedNormalization(nil, m.Type, contract.SourceStream),
		Data: contract.ResolvedData{CSV: &contract.ResolvedCSV{
			File: contract.FileLocation{Path: csv}, TimestampColumn: "timestamp", Delimiter: ",",
		}},
	}
	req.Model.Seasonality = contract.ResolvedSeasonality(m.Seasonality, m.Type, contract.SourceStream)
	if epochs > 0 {
		req.Training.Epochs = epochs
	}
	return req
}
