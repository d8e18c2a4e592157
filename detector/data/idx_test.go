package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"strings"
	"testing"
)

func idxImages(n, rows, cols int, extra int) []byte {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.BigEndian, []uint32{idxImagesMagic, uint32(n), uint32(rows), uint32(cols)})
	for i := 0; i < n*rows*cols+extra; i++ {
		b.WriteByte(byte(i))
	}
	return b.Bytes()
}

func idxLabels(labels ...uint8) []byte {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.BigEndian, []uint32{idxLabelsMagic, uint32(len(labels))})
	b.Write(labels)
	return b.Bytes()
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	_, _ = w.Write(b)
	_ = w.Close()
	return out.Bytes()
}

func TestIDXRawAndGzip(t *testing.T) {
	for name, raw := range map[string][]byte{"raw": idxImages(3, 2, 2, 0), "gzip": gz(idxImages(3, 2, 2, 0))} {
		im, err := ReadIDXImages(bytes.NewReader(raw), name)
		if err != nil || im.Count != 3 || im.Rows != 2 || im.Cols != 2 || im.Pixels[11] != 11 {
			t.Fatalf("%s: %+v %v", name, im, err)
		}
	}
	im, _ := ReadIDXImages(bytes.NewReader(idxImages(3, 2, 2, 0)), "i")
	labels, err := ReadIDXLabels(bytes.NewReader(gz(idxLabels(3, 1, 3))), "l")
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := ImageTable(im, labels, []int32{3}, "i")
	if err != nil || tbl.Rows() != 2 || tbl.Lines[1] != 2 || tbl.Row(1)[0] != 8.0/255 {
		t.Fatalf("class filter: %+v %v", tbl, err)
	}
	// Every kept pixel is its byte / 255, in the kept images' order.
	for k, i := range tbl.Lines {
		for j, v := range tbl.Row(k) {
			if want := float32(im.Pixels[i*4+j]) / 255; v != want {
				t.Fatalf("image %d pixel %d is %v, want %v", i, j, v, want)
			}
		}
	}
	if all, err := ImageTable(im, nil, nil, "i"); err != nil || all.Rows() != 3 || len(all.X) != 12 || all.X[11] != 11.0/255 {
		t.Fatalf("no filter: %+v %v", all, err)
	}
}

func TestIDXRefusals(t *testing.T) {
	im, _ := ReadIDXImages(bytes.NewReader(idxImages(3, 2, 2, 0)), "i")
	tests := map[string]struct {
		read func() error
		want string
	}{
		"labels given as images": {func() error { _, err := ReadIDXImages(bytes.NewReader(idxLabels(1, 2)), "f"); return err },
			"magic number 0x00000801 is not an IDX image file"},
		"images given as labels": {func() error { _, err := ReadIDXLabels(bytes.NewReader(idxImages(1, 1, 1, 0)), "f"); return err },
			"magic number 0x00000803 is not an IDX label file"},
		"truncated images": {func() error {
			b := idxImages(3, 2, 2, 0)
			_, err := ReadIDXImages(bytes.NewReader(b[:len(b)-5]), "f")
			return err
		},
			"truncated: header promises 3 images of 2x2, data holds 1 full images"},
		"truncated gzip": {func() error {
			b := gz(idxImages(3, 2, 2, 0))
			_, err := ReadIDXImages(bytes.NewReader(b[:len(b)-12]), "f")
			return err
		},
			"truncated"},
		"truncated header": {func() error { _, err := ReadIDXImages(bytes.NewReader(idxImages(3, 2, 2, 0)[:6]), "f"); return err },
			"truncated IDX header"},
		"size mismatch": {func() error { _, err := ImageTable(im, []uint8{1, 2}, nil, "f"); return err },
			"size mismatch: 3 images but 2 labels"},
		"absent class": {func() error { _, err := ImageTable(im, []uint8{1, 2, 1}, []int32{7}, "f"); return err },
			"no image of classes [7]"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := tt.read()
			if err == nil || !strings.Contains(err.Error(), tt.want) || !IsInputError(err) {
				t.Fatalf("err = %v; want %q", err, tt.want)
			}
		})
	}
}
