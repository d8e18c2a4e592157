package node

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
)

// logWriter stores a process's stdout and stderr, one line per record prefixed with
// its RFC 3339 time, as CRI runtimes do, so `kubectl logs --timestamps` and
// `--since-time` work.
type logWriter struct {
	file           *os.File
	mu             sync.Mutex
	stdout, stderr *os.File // the process's ends
	readers        sync.WaitGroup
}

func newLogWriter(path string) (*logWriter, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	w := &logWriter{file: f}
	for _, out := range []**os.File{&w.stdout, &w.stderr} {
		pr, pw, err := os.Pipe()
		if err != nil {
			f.Close()
			return nil, err
		}
		*out = pw
		w.readers.Add(1)
		go w.copy(pr)
	}
	return w, nil
}

func (w *logWriter) copy(r *os.File) {
	defer w.readers.Done()
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if !strings.HasSuffix(line, "\n") {
				line += "\n"
			}
			w.mu.Lock()
			_, _ = w.file.WriteString(time.Now().UTC().Format(time.RFC3339Nano) + " " + line)
			w.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// closeWriters drops the parent's copies of the pipes' write ends once the child has them.
func (w *logWriter) closeWriters() {
	w.stdout.Close()
	w.stderr.Close()
}

// wait lets the readers drain (a grandchild may hold the pipe open: give up after d).
func (w *logWriter) wait(d time.Duration) {
	done := make(chan struct{})
	go func() { w.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
	w.mu.Lock()
	w.file.Close()
	w.mu.Unlock()
}

func (w *logWriter) close() {
	w.closeWriters()
	w.wait(time.Second)
}

type logLine struct {
	t    time.Time
	text string // with its newline
}

func parseLine(s string) logLine {
	ts, text, ok := strings.Cut(s, " ")
	t, err := time.Parse(time.RFC3339Nano, ts)
	if !ok || err != nil {
		return logLine{text: s}
	}
	return logLine{t: t, text: text}
}

// tailLog returns the last n lines of a log, at most maxBytes, without timestamps:
// the termination message of a failed container whose policy is FallbackToLogsOnError.
func tailLog(path string, n, maxBytes int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var out strings.Builder
	for _, l := range lines {
		out.WriteString(parseLine(l).text)
	}
	s := out.String()
	if len(s) > maxBytes {
		s = s[len(s)-maxBytes:]
	}
	return s
}

// logs streams a container's log as `kubectl logs` asks for it.
func (r *podRun) logs(ctx context.Context, container string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	r.mu.Lock()
	var c *containerRun
	for _, cr := range r.containers {
		if cr.spec.Name == container {
			c = cr
		}
	}
	if c == nil {
		r.mu.Unlock()
		return nil, errdefs.NotFoundf("pod %s/%s has no container %q", r.pod.Namespace, r.pod.Name, container)
	}
	restart := c.status.RestartCount
	runEnd := c.runEnd
	running := c.proc != nil
	r.mu.Unlock()
	if opts.Previous {
		if restart == 0 {
			return nil, errdefs.NotFoundf("container %q has not restarted: no previous log", container)
		}
		restart--
		running = false
	}
	path := r.logPath(container, restart)
	f, err := os.Open(path)
	if err != nil {
		return nil, errdefs.NotFoundf("container %q has no log yet", container)
	}
	since := opts.SinceTime
	if opts.SinceSeconds > 0 {
		since = time.Now().Add(-time.Duration(opts.SinceSeconds) * time.Second)
	}
	format := func(l logLine) string {
		if opts.Timestamps && !l.t.IsZero() {
			return l.t.Format(time.RFC3339Nano) + " " + l.text
		}
		return l.text
	}

	pr, pw := io.Pipe()
	go func() {
		defer f.Close()
		var out io.Writer = pw
		if opts.LimitBytes > 0 {
			out = &limitWriter{w: pw, n: opts.LimitBytes}
		}
		br := bufio.NewReader(f)
		var lines []logLine
		for {
			s, err := br.ReadString('\n')
			if s != "" && strings.HasSuffix(s, "\n") {
				l := parseLine(s)
				if since.IsZero() || !l.t.Before(since) {
					lines = append(lines, l)
				}
			}
			if err != nil {
				// The unterminated rest is still being written: read it again when following.
				if _, serr := f.Seek(-int64(len(s)), io.SeekCurrent); serr == nil {
					br.Reset(f)
				}
				break
			}
		}
		if opts.Tail > 0 && len(lines) > opts.Tail {
			lines = lines[len(lines)-opts.Tail:]
		}
		var buf bytes.Buffer
		for _, l := range lines {
			buf.WriteString(format(l))
		}
		if _, err := out.Write(buf.Bytes()); err != nil {
			pw.CloseWithError(err)
			return
		}
		if !opts.Follow || !running || runEnd == nil {
			pw.Close()
			return
		}
		var partial string
		for {
			s, err := br.ReadString('\n')
			partial += s
			if err == nil {
				if _, werr := io.WriteString(out, format(parseLine(partial))); werr != nil {
					pw.CloseWithError(werr)
					return
				}
				partial = ""
				continue
			}
			select {
			case <-ctx.Done():
				pw.Close()
				return
			case <-runEnd:
				// Drain what the process wrote before it exited, then stop.
				rest, _ := io.ReadAll(br)
				for _, s := range strings.SplitAfter(partial+string(rest), "\n") {
					if s != "" {
						_, _ = io.WriteString(out, format(parseLine(s)))
					}
				}
				pw.Close()
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return pr, nil
}

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, io.EOF
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.w.Write(p)
	l.n -= n
	if err == nil && l.n <= 0 {
		err = io.EOF
	}
	return n, err
}
