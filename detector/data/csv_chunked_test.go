package data

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kadet-dev/kadet/detector/contract"
)

// A body sent without Content-Length is cut off by the reader itself.
func TestChunkedBodyOverLimitIsRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 50; i++ {
			fmt.Fprint(w, "1,2\n")
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	_, err := LoadCSV(context.Background(), contract.FileLocation{URL: srv.URL}, CSVOptions{}, Limits{MaxBytes: 64, Timeout: DefaultLimits.Timeout})
	if err == nil || !strings.Contains(err.Error(), "exceeds the size limit of 64 bytes") {
		t.Fatalf("err = %v", err)
	}
}
