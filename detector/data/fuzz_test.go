package data

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/contract"
)

// Fuzz targets for every reader of outside input: whatever the bytes, a reader returns
// a table that holds together or an error that says where the input is wrong, and
// never panics. `make fuzz` runs each for 60 s; crashers found become seeds in
// testdata/fuzz.

func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("t,a,b,label\n1,0.5,2,0\n2,1e3,-4,1\n"), true, true, byte(','))
	f.Add([]byte("\ufeffa;b\n1;2\n"), false, false, byte(';'))
	f.Add([]byte("a,b\n1,NaN\n"), false, false, byte(','))
	f.Add([]byte("a,a\n1,2\n"), false, false, byte(','))
	f.Add([]byte("a,\"b\nc\"\n1,2\n"), false, false, byte(','))
	f.Add([]byte(""), false, false, byte(','))
	f.Fuzz(func(t *testing.T, in []byte, label, timestamp bool, delim byte) {
		opt := CSVOptions{Delimiter: rune(delim)}
		if label {
			opt.LabelColumn = "label"
		}
		if timestamp {
			opt.TimestampColumn = "t"
		}
		tbl, err := ReadCSV(bytes.NewReader(in), "fuzz.csv", opt)
		if err != nil {
			if !IsInputError(err) {
				t.Fatalf("not an input error (%T): %v", err, err)
			}
			if !strings.HasPrefix(err.Error(), "fuzz.csv") {
				t.Fatalf("error does not name its source: %v", err)
			}
			return
		}
		checkTable(t, tbl)
	})
}

func FuzzReadIDX(f *testing.F) {
	images := func(n, rows, cols uint32, pixels int) []byte {
		var b bytes.Buffer
		_ = binary.Write(&b, binary.BigEndian, []uint32{idxImagesMagic, n, rows, cols})
		b.Write(bytes.Repeat([]byte{7}, pixels))
		return b.Bytes()
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	_, _ = w.Write(images(2, 2, 2, 8))
	_ = w.Close()
	f.Add(images(2, 2, 2, 8))
	f.Add(images(2, 2, 2, 7))
	f.Add(images(1<<30, 1<<20, 1<<20, 0))
	f.Add(gz.Bytes())
	f.Add([]byte{0, 0, 8, 1, 0, 0, 0, 2, 3, 4})
	f.Fuzz(func(t *testing.T, in []byte) {
		if im, err := ReadIDXImages(bytes.NewReader(in), "fuzz.idx"); err == nil {
			if im.Count*im.Rows*im.Cols != len(im.Pixels) || im.Count == 0 {
				t.Fatalf("%d images of %dx%d in %d pixels", im.Count, im.Rows, im.Cols, len(im.Pixels))
			}
		} else if !IsInputError(err) {
			t.Fatalf("not an input error (%T): %v", err, err)
		}
		if labels, err := ReadIDXLabels(bytes.NewReader(in), "fuzz.idx"); err == nil {
			if len(labels) == 0 {
				t.Fatal("no labels and no error")
			}
		} else if !IsInputError(err) {
			t.Fatalf("not an input error (%T): %v", err, err)
		}
	})
}

// FuzzPrometheusResponse serves arbitrary bodies, statuses and content types as a
// Prometheus server's answer to the range queries of a training run.
func FuzzPrometheusResponse(f *testing.F) {
	const ok = `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"host":"a"},"values":[[1700000000,"1.5"],[1700000060,"NaN"],[1700000120,"+Inf"]]}]}}`
	f.Add([]byte(ok), uint16(200), true)
	f.Add([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`), uint16(200), false)
	f.Add([]byte(`{"status":"error","errorType":"bad_data","error":"parse error"}`), uint16(400), true)
	f.Add([]byte(`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"x"]]}]}}`), uint16(200), false)
	f.Add([]byte(`<html>bad gateway</html>`), uint16(502), false)
	f.Add([]byte(`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"host":"a"},"values":[["1700000000","1"]]}]}}`), uint16(200), true)
	f.Fuzz(func(t *testing.T, body []byte, status uint16, entities bool) {
		if status < 100 || status > 599 {
			status = 200
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(int(status))
			_, _ = w.Write(body)
		}))
		defer srv.Close()
		src := &contract.ResolvedPrometheus{
			URL: srv.URL, Queries: []contract.PrometheusQuery{{Name: "load", Query: "up"}},
			Range: "5m", Step: "1m", End: "2023-11-14T22:15:00Z",
		}
		if entities {
			src.EntityLabels = []string{"host"}
		}
		opt := PromOptions{Timeout: time.Second, Attempts: 1, Backoff: time.Millisecond, MaxPoints: 11000, Now: time.Now}
		tbl, err := LoadPrometheus(context.Background(), src, opt)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		checkTable(t, tbl)
	})
}

// checkTable fails t unless tbl's parts agree in size and every value is finite.
func checkTable(t *testing.T, tbl *Table) {
	t.Helper()
	rows := tbl.Rows()
	if len(tbl.X) != rows*len(tbl.Columns) {
		t.Fatalf("%d values for %d rows of %d columns", len(tbl.X), rows, len(tbl.Columns))
	}
	for i, v := range tbl.X {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("value %d is %v", i, v)
		}
	}
	if tbl.Labels != nil && len(tbl.Labels) != rows {
		t.Fatalf("%d labels for %d rows", len(tbl.Labels), rows)
	}
	for _, l := range tbl.Labels {
		if l != 0 && l != 1 {
			t.Fatalf("label %v", l)
		}
	}
}
