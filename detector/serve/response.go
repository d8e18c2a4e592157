package serve

import (
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/scoring"
)

// writeJSON answers code with v as one line of JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// errorBody is every error response: what is wrong, and where when known.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

// writeScoreError answers 400 for rows the model cannot score as sent (too few rows
// for a sequence model's window), else 500.
func writeScoreError(w http.ResponseWriter, err error) {
	if data.IsInputError(err) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeError(w, http.StatusInternalServerError, err.Error())
}

func writeRequestError(w http.ResponseWriter, err error) {
	var re *RequestError
	if errors.As(err, &re) {
		writeJSON(w, cmp.Or(re.Status, http.StatusBadRequest), errorBody{Error: re.Error(), Field: re.Field})
		return
	}
	writeError(w, http.StatusBadRequest, err.Error())
}

// Result is one record's answer.
type Result struct {
	scoring.Scored
	Explanation []Contribution `json:"explanation,omitempty"`
}

// Contribution is a feature's (or an image region's) share of the reconstruction error.
type Contribution struct {
	Feature string  `json:"feature"`
	Share   float64 `json:"share"`
}

// ModelRef names the model that answered.
type ModelRef struct {
	Name      string  `json:"name"`
	Version   string  `json:"version"`
	Digest    string  `json:"digest"`
	Threshold float64 `json:"threshold"`
}

// DetectResponse is POST /v1/detect's answer.
type DetectResponse struct {
	Model   ModelRef `json:"model"`
	Results []Result `json:"results"`
}
