package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
)

// IDX magic numbers: unsigned bytes, 3 dimensions (images) or 1 (labels).
const (
	idxImagesMagic = 0x00000803
	idxLabelsMagic = 0x00000801
	// maxIDXItems bounds what a corrupt header can make us allocate.
	maxIDXItems = 1 << 24
)

// Images are 8-bit grey images, flattened row-major.
type Images struct {
	Count, Rows, Cols int
	Pixels            []uint8
}

// ReadIDXImages reads an IDX image file (the MNIST format), gzip-compressed or raw.
func ReadIDXImages(r io.Reader, source string) (*Images, error) {
	br, err := maybeGunzip(r, source)
	if err != nil {
		return nil, err
	}
	if err := readMagic(br, source, idxImagesMagic, "image"); err != nil {
		return nil, err
	}
	var h [3]uint32
	if err := binary.Read(br, binary.BigEndian, &h); err != nil {
		return nil, &Error{Source: source, Msg: "truncated IDX header"}
	}
	n, rows, cols := int(h[0]), int(h[1]), int(h[2])
	if n == 0 || rows == 0 || cols == 0 || n > maxIDXItems || rows*cols > 1<<20 {
		return nil, &Error{Source: source, Msg: fmt.Sprintf("implausible IDX image dimensions %d x %d x %d", n, rows, cols)}
	}
	// The buffer grows with the data actually read, so a header that promises more than
	// the file holds costs no more memory than the file.
	var buf bytes.Buffer
	got, err := io.CopyN(&buf, br, int64(n)*int64(rows*cols))
	if err != nil && err != io.EOF {
		return nil, &Error{Source: source, Msg: fmt.Sprintf("reading images: %v", err)}
	}
	if int(got) != n*rows*cols {
		return nil, &Error{Source: source, Msg: fmt.Sprintf("truncated: header promises %d images of %dx%d, data holds %d full images",
			n, rows, cols, int(got)/(rows*cols))}
	}
	im := &Images{Count: n, Rows: rows, Cols: cols, Pixels: buf.Bytes()}
	return im, drain(br, source)
}

// ReadIDXLabels reads an IDX label file, gzip-compressed or raw.
func ReadIDXLabels(r io.Reader, source string) ([]uint8, error) {
	br, err := maybeGunzip(r, source)
	if err != nil {
		return nil, err
	}
	if err := readMagic(br, source, idxLabelsMagic, "label"); err != nil {
		return nil, err
	}
	var n uint32
	if err := binary.Read(br, binary.BigEndian, &n); err != nil {
		return nil, &Error{Source: source, Msg: "truncated IDX header"}
	}
	if n == 0 || n > maxIDXItems {
		return nil, &Error{Source: source, Msg: fmt.Sprintf("implausible IDX label count %d", n)}
	}
	labels := make([]uint8, n)
	if got, err := io.ReadFull(br, labels); err != nil {
		return nil, &Error{Source: source, Msg: fmt.Sprintf("truncated: header promises %d labels, data holds %d", n, got)}
	}
	return labels, drain(br, source)
}

func readMagic(r io.Reader, source string, want uint32, kind string) error {
	var magic uint32
	if err := binary.Read(r, binary.BigEndian, &magic); err != nil {
		return &Error{Source: source, Msg: "truncated IDX header"}
	}
	if magic != want {
		return &Error{Source: source, Msg: fmt.Sprintf("magic number 0x%08x is not an IDX %s file (want 0x%08x)", magic, kind, want)}
	}
	return nil
}

// drain reads what follows the data, so a gzip stream's checksum and length are
// verified: a cut-off download fails here instead of passing as complete.
func drain(r io.Reader, source string) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return &Error{Source: source, Msg: "truncated or corrupt after the data: " + err.Error()}
	}
	return nil
}

// maybeGunzip looks at the first two bytes and decompresses gzip data transparently.
func maybeGunzip(r io.Reader, source string) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(2)
	if err != nil {
		return nil, &Error{Source: source, Msg: "file is empty or truncated"}
	}
	if head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, &Error{Source: source, Msg: "bad gzip header: " + err.Error()}
		}
		return bufio.NewReaderSize(zr, 1<<16), nil
	}
	return br, nil
}

// ImageTable turns images into a table of pixels scaled to [0, 1], keeping only the
// given classes when labels are given; a labels/images count mismatch is an error.
func ImageTable(im *Images, labels []uint8, classes []int32, source string) (*Table, error) {
	if labels != nil && len(labels) != im.Count {
		return nil, &Error{Source: source, Msg: fmt.Sprintf("size mismatch: %d images but %d labels", im.Count, len(labels))}
	}
	keep := map[uint8]bool{}
	for _, c := range classes {
		keep[uint8(c)] = true
	}
	d := im.Rows * im.Cols
	t := &Table{Source: source, Columns: make([]string, d), ImageRows: im.Rows, ImageCols: im.Cols}
	for j := range t.Columns {
		t.Columns[j] = fmt.Sprintf("px_%d_%d", j/im.Cols, j%im.Cols)
	}
	for i := 0; i < im.Count; i++ {
		if len(keep) == 0 || keep[labels[i]] {
			t.Lines = append(t.Lines, i) // the image's index in the file
		}
	}
	// Sized once: growing 47M pixels by append copied the whole table ~30 times (6 s
	// for MNIST's training set).
	var scaled [256]float32 // a pixel's value in [0, 1]; a lookup instead of a division each
	for p := range scaled {
		scaled[p] = float32(p) / 255
	}
	t.X = make([]float32, len(t.Lines)*d)
	for k, i := range t.Lines {
		row := t.X[k*d : (k+1)*d]
		for j, p := range im.Pixels[i*d : (i+1)*d] {
			row[j] = scaled[p]
		}
	}
	if len(t.Lines) == 0 {
		return nil, &Error{Source: source, Msg: fmt.Sprintf("no image of classes %v", classes)}
	}
	return t, nil
}
