package data

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kadet-dev/kadet/detector/contract"
)

func TestReadCSV(t *testing.T) {
	in := "\ufefftime;amount;hour;label\n2026-01-01;12.5;3;0\n2026-01-02;-4e2;14;1\n"
	tbl, err := ReadCSV(strings.NewReader(in), "tx.csv", CSVOptions{TimestampColumn: "time", LabelColumn: "label", Delimiter: ';'})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tbl.Columns) != "[amount hour]" || fmt.Sprint(tbl.X) != "[12.5 3 -400 14]" ||
		fmt.Sprint(tbl.Labels) != "[0 1]" || fmt.Sprint(tbl.Timestamps) != "[2026-01-01 2026-01-02]" || fmt.Sprint(tbl.Lines) != "[2 3]" {
		t.Fatalf("table %+v", tbl)
	}
	if tbl.Rows() != 2 || fmt.Sprint(tbl.Row(1)) != "[-400 14]" {
		t.Fatalf("rows %d row 1 %v", tbl.Rows(), tbl.Row(1))
	}
	// Selected columns come in the order asked for.
	tbl, err = ReadCSV(strings.NewReader(in), "tx.csv", CSVOptions{Columns: []string{"hour", "amount"}, Delimiter: ';'})
	if err != nil || fmt.Sprint(tbl.X) != "[3 12.5 14 -400]" {
		t.Fatalf("%v %v", tbl, err)
	}
}

func TestReadCSVErrorsNameTheirPlace(t *testing.T) {
	tests := []struct {
		name, in string
		opt      CSVOptions
		want     string
	}{
		{"empty file", "", CSVOptions{}, "tx.csv: file is empty"},
		{"header only", "a,b\n", CSVOptions{}, "tx.csv: no data rows after the header"},
		{"not a number", "a,b\n1,2\n3,abc\n", CSVOptions{}, `tx.csv line 3, column "b": "abc" is not a number`},
		{"empty cell", "a,b\n1,\n", CSVOptions{}, `tx.csv line 2, column "b": value is empty`},
		{"NaN", "a,b\n1,NaN\n", CSVOptions{}, `tx.csv line 2, column "b": "NaN" is not a finite number`},
		{"infinity", "a,b\n+Inf,1\n", CSVOptions{}, `tx.csv line 2, column "a": "+Inf" is not a finite number`},
		{"out of range", "a\n1e50\n", CSVOptions{}, `tx.csv line 2, column "a": "1e50" is out of float32 range`},
		{"wrong field count", "a,b\n1,2\n3\n", CSVOptions{}, "tx.csv line 3: wrong number of fields"},
		{"missing column", "a,b\n1,2\n", CSVOptions{Columns: []string{"a", "c"}}, `tx.csv line 1: feature column "c" is not in the header (columns: a, b)`},
		{"missing label column", "a,b\n1,2\n", CSVOptions{LabelColumn: "y"}, `label column "y" is not in the header`},
		{"bad label", "a,y\n1,2\n", CSVOptions{LabelColumn: "y"}, `tx.csv line 2, column "y": label "2" is not 0 or 1`},
		{"duplicate header", "a,a\n1,2\n", CSVOptions{}, `tx.csv line 1, column "a": column name appears twice`},
		{"only label", "y\n1\n", CSVOptions{LabelColumn: "y"}, "no feature columns"},
		{"bare quote", "a,b\n1,\"2\n", CSVOptions{}, "tx.csv line 2"},
		// Found by FuzzReadCSV: an unnamed column read as feature -1.
		{"unnamed column", ",0\n,0\n", CSVOptions{}, "tx.csv line 1: column 1 of the header has no name"},
		{"quote as delimiter", "a\n1\n", CSVOptions{Delimiter: '"'}, `tx.csv: delimiter '"' cannot separate fields`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadCSV(strings.NewReader(tt.in), "tx.csv", tt.opt)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want %q", err, tt.want)
			}
			if !IsInputError(err) {
				t.Fatalf("%v is not an input error", err)
			}
		})
	}
}

func TestLoadCSVFromPathAndURL(t *testing.T) {
	body := "a,b\n1,2\n3,4\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok.csv":
			fmt.Fprint(w, body)
		case "/big.csv":
			fmt.Fprint(w, body+strings.Repeat("5,6\n", 100))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "ok.csv")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	lim := Limits{MaxBytes: 64, Timeout: DefaultLimits.Timeout}
	ctx := context.Background()
	for _, loc := range []contract.FileLocation{{Path: path}, {URL: srv.URL + "/ok.csv"}} {
		tbl, err := LoadCSV(ctx, loc, CSVOptions{}, lim)
		if err != nil || tbl.Rows() != 2 {
			t.Fatalf("%s: %v %v", loc, tbl, err)
		}
	}
	for loc, want := range map[contract.FileLocation]string{
		{URL: srv.URL + "/big.csv"}:        "exceeds the size limit",
		{URL: srv.URL + "/missing.csv"}:    "server answered 404",
		{Path: path + ".missing"}:          "file does not exist",
		{Path: filepath.Dir(path) + "/.."}: "is a directory",
	} {
		_, err := LoadCSV(ctx, loc, CSVOptions{}, lim)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v; want %q", loc, err, want)
		}
	}
}

// An entity column groups the rows by entity (in the order entities first appear),
// each entity's rows in time order, and is not a feature; an empty entity is refused
// with its line.
func TestReadCSVGroupsRowsByEntity(t *testing.T) {
	in := "ts,pod,v\n3,b,30\n1,a,1\n2,b,20\n2,a,2\n1,b,10\n3,a,3\n"
	tbl, err := ReadCSV(strings.NewReader(in), "pods.csv", CSVOptions{TimestampColumn: "ts", EntityColumn: "pod"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tbl.Columns, []string{"v"}) {
		t.Errorf("columns %v, want [v]", tbl.Columns)
	}
	if want := []string{"b", "b", "b", "a", "a", "a"}; !slices.Equal(tbl.Entities, want) {
		t.Errorf("entities %v, want %v", tbl.Entities, want)
	}
	if want := []float32{10, 20, 30, 1, 2, 3}; !slices.Equal(tbl.X, want) {
		t.Errorf("values %v, want %v", tbl.X, want)
	}
	if want := []int{6, 4, 2, 3, 5, 7}; !slices.Equal(tbl.Lines, want) {
		t.Errorf("lines %v, want %v", tbl.Lines, want)
	}
	_, err = ReadCSV(strings.NewReader("ts,pod,v\n1,a,1\n2, ,2\n"), "pods.csv", CSVOptions{EntityColumn: "pod"})
	if err == nil || !strings.Contains(err.Error(), "pods.csv line 3") || !strings.Contains(err.Error(), "entity is empty") {
		t.Errorf("empty entity: %v", err)
	}
	_, err = ReadCSV(strings.NewReader(in), "pods.csv", CSVOptions{EntityColumn: "host"})
	if err == nil || !strings.Contains(err.Error(), `entity column "host" is not in the header`) {
		t.Errorf("missing entity column: %v", err)
	}
}
