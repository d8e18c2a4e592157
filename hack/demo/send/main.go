// Command send posts sample records to a kadet scoring endpoint and prints what it
// answers, one line per record: the demo's proof that anomalies are found.
//
//	send cards  --url http://127.0.0.1:18080
//	send digits --url http://127.0.0.1:18081 --mnist DIR --normal 3
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/kadet-dev/kadet/hack/mnist"
)

type result struct {
	Score       float64 `json:"score"`
	Raw         float64 `json:"raw"`
	Anomaly     bool    `json:"anomaly"`
	Explanation []struct {
		Feature string  `json:"feature"`
		Share   float64 `json:"share"`
	} `json:"explanation"`
}

type response struct {
	Model struct {
		Version string `json:"version"`
	} `json:"model"`
	Results []result `json:"results"`
	Error   string   `json:"error"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: send cards|digits --url URL [--mnist DIR --normal DIGIT]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	url := fs.String("url", "", "scoring service base URL")
	mnistDir := fs.String("mnist", "", "folder holding t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz")
	normal := fs.Int("normal", 3, "the digit the detector was trained on")
	_ = fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "cards":
		err = cards(*url)
	case "digits":
		err = digits(*url, *mnistDir, *normal)
	default:
		err = fmt.Errorf("unknown kind %q: want cards or digits", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "send:", err)
		os.Exit(1)
	}
}

func post(url string, body any) (*response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(url+"/v1/detect", "application/json", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out response
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("%s: %s", resp.Status, raw)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, out.Error)
	}
	return &out, nil
}

// cards sends three ordinary transactions and three that no card holder makes.
func cards(url string) error {
	records := []struct {
		what string
		rec  map[string]float64
	}{
		{"groceries at lunch", map[string]float64{"amount": 18.5, "hour": 12, "merchant_risk": 0.10, "distance_km": 4}},
		{"evening taxi", map[string]float64{"amount": 24.0, "hour": 20, "merchant_risk": 0.05, "distance_km": 9}},
		{"morning coffee", map[string]float64{"amount": 6.9, "hour": 8, "merchant_risk": 0.03, "distance_km": 1}},
		{"2400 at 3am, risky merchant, 900 km away", map[string]float64{"amount": 2400, "hour": 3, "merchant_risk": 0.95, "distance_km": 900}},
		{"950 at a risky merchant", map[string]float64{"amount": 950, "hour": 14, "merchant_risk": 0.90, "distance_km": 12}},
		{"small amount 3000 km away", map[string]float64{"amount": 15, "hour": 11, "merchant_risk": 0.10, "distance_km": 3000}},
	}
	body := map[string]any{"records": []map[string]float64{}}
	for _, r := range records {
		body["records"] = append(body["records"].([]map[string]float64), r.rec)
	}
	out, err := post(url, body)
	if err != nil {
		return err
	}
	fmt.Printf("card-fraud (model %s):\n", out.Model.Version)
	for i, r := range out.Results {
		top := ""
		if len(r.Explanation) > 0 {
			top = fmt.Sprintf("  top feature %s (%.0f%%)", r.Explanation[0].Feature, 100*r.Explanation[0].Share)
		}
		fmt.Printf("  %-42s score %9.3f  anomaly=%-5v%s\n", records[i].what, r.Score, r.Anomaly, top)
	}
	return nil
}

// digits sends the first five test images of the normal digit and five of others.
func digits(url, dir string, normal int) error {
	table, err := mnist.TestSet(dir)
	if err != nil {
		return err
	}
	labels, err := mnist.TestSetLabels(dir)
	if err != nil {
		return err
	}
	d := len(table.Columns)
	var picked []int
	nNormal, nOther := 0, 0
	for i, l := range labels {
		if int(l) == normal && nNormal < 5 {
			picked, nNormal = append(picked, i), nNormal+1
		} else if int(l) != normal && nOther < 5 {
			picked, nOther = append(picked, i), nOther+1
		}
	}
	instances := make([][]float32, len(picked))
	for k, i := range picked {
		instances[k] = table.X[i*d : (i+1)*d]
	}
	out, err := post(url, map[string]any{"instances": instances})
	if err != nil {
		return err
	}
	fmt.Printf("digit-%d (model %s), trained on digit %d only:\n", normal, out.Model.Version, normal)
	for k, r := range out.Results {
		fmt.Printf("  test image %4d, a %d   score %7.3f  anomaly=%v\n", picked[k], labels[picked[k]], r.Score, r.Anomaly)
	}
	return nil
}
