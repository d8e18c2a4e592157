package node

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestLogWriterAndReader(t *testing.T) {
	dir := t.TempDir()
	r := &podRun{dir: dir, pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}},
		containers: []*containerRun{{spec: corev1.Container{Name: "c"}}}}
	w, err := newLogWriter(r.logPath("c", 0))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		_, _ = io.WriteString(w.stdout, strings.Repeat("x", i)+"line\n")
	}
	_, _ = io.WriteString(w.stderr, "no newline at the end")
	w.closeWriters()
	w.wait(time.Second)

	read := func(opts api.ContainerLogOpts) string {
		t.Helper()
		rc, err := r.logs(context.Background(), "c", opts)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		return string(b)
	}
	all := read(api.ContainerLogOpts{})
	if strings.Count(all, "\n") != 6 || !strings.Contains(all, "xxxxline\n") || !strings.Contains(all, "no newline at the end\n") {
		t.Fatalf("all lines: %q", all)
	}
	if got := read(api.ContainerLogOpts{Tail: 2}); strings.Count(got, "\n") != 2 {
		t.Fatalf("tail 2: %q", got)
	}
	ts := read(api.ContainerLogOpts{Tail: 1, Timestamps: true})
	stamp, _, _ := strings.Cut(ts, " ")
	if _, err := time.Parse(time.RFC3339Nano, stamp); err != nil {
		t.Fatalf("--timestamps line %q: %v", ts, err)
	}
	if got := read(api.ContainerLogOpts{LimitBytes: 10}); len(got) != 10 {
		t.Fatalf("limit 10 bytes: %q", got)
	}
	if got := read(api.ContainerLogOpts{SinceTime: time.Now().Add(time.Hour)}); got != "" {
		t.Fatalf("since the future: %q", got)
	}
	if _, err := r.logs(context.Background(), "nope", api.ContainerLogOpts{}); err == nil {
		t.Fatal("logs of a missing container")
	}
	if _, err := r.logs(context.Background(), "c", api.ContainerLogOpts{Previous: true}); err == nil {
		t.Fatal("previous logs of a container that never restarted")
	}
	// stdout and stderr interleave in arrival order; the stored order is the truth.
	lines := strings.SplitAfter(all, "\n")
	if got, want := tailLog(r.logPath("c", 0), 2, 1000), lines[4]+lines[5]; got != want {
		t.Fatalf("termination fallback: %q, want %q", got, want)
	}
	if got, want := tailLog(r.logPath("c", 0), 80, 8), all[len(all)-8:]; got != want {
		t.Fatalf("termination fallback capped at 8 bytes: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "logs", "c", "0.log")); err != nil {
		t.Fatal(err)
	}
}
