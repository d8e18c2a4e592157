package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/kadet-dev/kadet/detector/contract"
)

// Limits bound what a URL may cost.
type Limits struct {
	// MaxBytes is the largest body read from a URL; a larger one is refused.
	MaxBytes int64
	// Timeout bounds the whole download.
	Timeout time.Duration
}

// DefaultLimits suit training data: up to 2 GiB within 10 minutes.
var DefaultLimits = Limits{MaxBytes: 2 << 30, Timeout: 10 * time.Minute}

// Open opens a local file or downloads a URL. The caller closes the reader.
func Open(ctx context.Context, loc contract.FileLocation, lim Limits) (io.ReadCloser, error) {
	if loc.Path != "" {
		f, err := os.Open(loc.Path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, &Error{Source: loc.Path, Msg: "file does not exist"}
		}
		return f, err
	}
	if loc.URL == "" {
		return nil, &Error{Source: "data", Msg: "neither a path nor a URL is given"}
	}
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.URL, nil)
	if err != nil {
		cancel()
		return nil, &Error{Source: loc.URL, Msg: err.Error()}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("downloading %s: %w", loc.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, &Error{Source: loc.URL, Msg: fmt.Sprintf("server answered %s", resp.Status)}
	}
	if resp.ContentLength > lim.MaxBytes {
		resp.Body.Close()
		cancel()
		return nil, &Error{Source: loc.URL, Msg: fmt.Sprintf("body of %d bytes exceeds the size limit of %d bytes", resp.ContentLength, lim.MaxBytes)}
	}
	return &limitedBody{body: resp.Body, cancel: cancel, left: lim.MaxBytes, limit: lim.MaxBytes, source: loc.URL}, nil
}

// limitedBody fails, rather than truncates, when a body exceeds its limit.
type limitedBody struct {
	body   io.ReadCloser
	cancel context.CancelFunc
	left   int64
	limit  int64
	source string
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		if n, _ := l.body.Read(one[:]); n > 0 {
			return 0, &Error{Source: l.source, Msg: fmt.Sprintf("body exceeds the size limit of %d bytes", l.limit)}
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.body.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error {
	l.cancel()
	return l.body.Close()
}

// LoadCSV opens loc and reads it as CSV.
func LoadCSV(ctx context.Context, loc contract.FileLocation, opt CSVOptions, lim Limits) (*Table, error) {
	rc, err := Open(ctx, loc, lim)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return ReadCSV(rc, loc.String(), opt)
}
