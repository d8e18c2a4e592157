package serve

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// preallocLimit bounds what a request body's announced size alone makes the server
// allocate.
const preallocLimit = 64 << 10

// readBody reads at most MaxBodyBytes, answering 413 beyond.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > s.opts.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d", r.ContentLength, s.opts.MaxBodyBytes))
		return nil, false
	}
	body, err := readAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes), r.ContentLength)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", s.opts.MaxBodyBytes))
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return nil, false
	}
	return body, true
}

// readAll is io.ReadAll starting from the size the client announced, up to
// preallocLimit (io.ReadAll grows from 512 bytes, copying an MNIST request four
// times). Beyond the limit the buffer grows with the bytes that actually arrive, so a
// client announcing 8 MiB and sending nothing holds 64 KiB, not 8 MiB.
func readAll(r io.Reader, size int64) ([]byte, error) {
	if size <= 0 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, min(size+1, preallocLimit)) // +1: reading EOF needs no second buffer
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow (doubling) as data arrives
		}
	}
}
