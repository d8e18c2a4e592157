package data

import (
	"context"
	"io"

	"github.com/kadet-dev/kadet/detector/contract"
)

// Load reads the table a training request's data names.
func Load(ctx context.Context, d contract.ResolvedData) (*Table, error) {
	switch {
	case d.CSV != nil:
		c := d.CSV
		delim := ','
		if c.Delimiter != "" {
			delim = []rune(c.Delimiter)[0]
		}
		return LoadCSV(ctx, c.File, CSVOptions{
			Columns: c.Columns, TimestampColumn: c.TimestampColumn, LabelColumn: c.LabelColumn, EntityColumn: c.EntityColumn, Delimiter: delim,
		}, DefaultLimits)
	case d.Images != nil:
		return loadImages(ctx, d.Images)
	case d.Prometheus != nil:
		return LoadPrometheus(ctx, d.Prometheus, DefaultPromOptions)
	}
	return nil, &Error{Source: "training request", Msg: "names no data: give csv, images or prometheus"}
}

// loadImages reads IDX images (and labels) into a table of pixels in [0, 1], keeping
// only the requested classes.
func loadImages(ctx context.Context, src *contract.ResolvedImages) (*Table, error) {
	if len(src.Classes) > 0 && src.LabelFile == nil {
		return nil, &Error{Source: src.File.String(), Msg: "images classes need a label file"}
	}
	read := func(loc contract.FileLocation, fn func(io.Reader) error) error {
		rc, err := Open(ctx, loc, DefaultLimits)
		if err != nil {
			return err
		}
		defer rc.Close()
		return fn(rc)
	}
	var im *Images
	if err := read(src.File, func(r io.Reader) (err error) {
		im, err = ReadIDXImages(r, src.File.String())
		return err
	}); err != nil {
		return nil, err
	}
	var labels []uint8
	if src.LabelFile != nil {
		if err := read(*src.LabelFile, func(r io.Reader) (err error) {
			labels, err = ReadIDXLabels(r, src.LabelFile.String())
			return err
		}); err != nil {
			return nil, err
		}
	}
	return ImageTable(im, labels, src.Classes, src.File.String())
}
