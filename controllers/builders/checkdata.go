package builders

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"slices"
	"strings"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/detector/data"
)

// CheckCSV reads a CSV the controller can see itself (a ConfigMap key) the way the
// training pod will, so a file that cannot train stalls the Detector with the field and
// the line at fault instead of failing a pod. A column the DataSource names but the
// header lacks is reported against the field that names it.
func CheckCSV(ds *kadetv1.DataSource, content []byte) error {
	c := ds.Spec.CSV
	if c == nil || c.ConfigMapKeyRef == nil {
		return nil
	}
	source := fmt.Sprintf("ConfigMap %q key %q", c.ConfigMapKeyRef.Name, c.ConfigMapKeyRef.Key)
	opt := data.CSVOptions{Columns: c.Columns, TimestampColumn: c.TimestampColumn, LabelColumn: c.LabelColumn, EntityColumn: c.EntityColumn}
	if c.Delimiter != "" {
		opt.Delimiter = []rune(c.Delimiter)[0]
	}
	r := csv.NewReader(bytes.NewReader(content))
	r.Comma = ','
	if opt.Delimiter != 0 {
		r.Comma = opt.Delimiter
	}
	if header, err := r.Read(); err == nil {
		for i := range header {
			header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
		}
		missing := func(field, name string) error {
			return incompatible("DataSource %q %s: column %q is not in the header of %s (columns: %s)",
				ds.Name, field, name, source, strings.Join(header, ", "))
		}
		if c.LabelColumn != "" && !slices.Contains(header, c.LabelColumn) {
			return missing("spec.csv.labelColumn", c.LabelColumn)
		}
		if c.TimestampColumn != "" && !slices.Contains(header, c.TimestampColumn) {
			return missing("spec.csv.timestampColumn", c.TimestampColumn)
		}
		if c.EntityColumn != "" && !slices.Contains(header, c.EntityColumn) {
			return missing("spec.csv.entityColumn", c.EntityColumn)
		}
		for i, col := range c.Columns {
			if !slices.Contains(header, col) {
				return missing(fmt.Sprintf("spec.csv.columns[%d]", i), col)
			}
		}
	}
	_, err := data.ReadCSV(bytes.NewReader(content), source, opt)
	var de *data.Error
	if errors.As(err, &de) {
		return incompatible("DataSource %q spec.csv: %s", ds.Name, de.Error())
	}
	return err
}
