package data

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kadet-dev/kadet/detector/contract"
)

func TestLoadReadsTheRequestsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.csv")
	if err := os.WriteFile(path, []byte("t;a;b\n2;3;4\n1;1;2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tbl, err := Load(context.Background(), contract.ResolvedData{CSV: &contract.ResolvedCSV{
		File: contract.FileLocation{Path: path}, TimestampColumn: "t", Delimiter: ";",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Rows() != 2 || strings.Join(tbl.Columns, ",") != "a,b" || tbl.X[0] != 3 {
		t.Errorf("table %v %v", tbl.Columns, tbl.X)
	}
	tbl.SortByTime()
	if tbl.X[0] != 1 || tbl.Timestamps[0] != "1" || tbl.Lines[0] != 3 {
		t.Errorf("sorted rows %v, timestamps %v, lines %v", tbl.X, tbl.Timestamps, tbl.Lines)
	}
}

func TestLoadRefusesWhatItCannotRead(t *testing.T) {
	for name, tt := range map[string]struct {
		data contract.ResolvedData
		want string
	}{
		"no data": {contract.ResolvedData{}, "names no data"},
		"classes without labels": {contract.ResolvedData{Images: &contract.ResolvedImages{
			File: contract.FileLocation{Path: "/nonexistent"}, Classes: []int32{3}}}, "classes need a label file"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(context.Background(), tt.data)
			if err == nil || !IsInputError(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v; want an input error saying %q", err, tt.want)
			}
		})
	}
}
