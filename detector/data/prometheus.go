package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/kadet-dev/kadet/detector/contract"
)

// PromOptions tune how Prometheus is read; tests shorten the waits.
type PromOptions struct {
	// Timeout bounds each request.
	Timeout time.Duration
	// Attempts is how many times a transient failure (connection refused, timeout,
	// 5xx, 429) is tried before it is reported; Backoff is the first wait, doubled
	// after each attempt.
	Attempts int
	Backoff  time.Duration
	// MaxPoints is the most points per series one request asks for: Prometheus
	// refuses more than 11,000.
	MaxPoints int
	// Now is the end of the range when the source gives none.
	Now func() time.Time
}

// DefaultPromOptions are the reader's settings in the detector binary.
var DefaultPromOptions = PromOptions{Timeout: 30 * time.Second, Attempts: 5, Backoff: 500 * time.Millisecond, MaxPoints: 11000, Now: time.Now}

// MaxPromPoints bounds the points one training run may fetch (queries x steps, before
// entities multiply them): a range and step past it are refused before any request.
const MaxPromPoints = 10_000_000

// PromStats say what a Prometheus read saw, for the model's provenance.
type PromStats struct {
	Start, End time.Time
	Step       time.Duration
	Entities   int
	Rows       int
	// Carried counts values carried forward over gaps; Dropped counts rows left out
	// because a gap was longer than MaxGap (or a query had no value yet).
	Carried, Dropped int
	Requests         int
}

// LoadPrometheus reads every query of src over its range at its step into a table:
// one column per query, one row per step (and per entity when src has entity labels),
// rows grouped by entity and in time order.
func LoadPrometheus(ctx context.Context, src *contract.ResolvedPrometheus, opt PromOptions) (*Table, error) {
	r, err := newPromReader(src, opt)
	if err != nil {
		return nil, err
	}
	return r.load(ctx)
}

type promReader struct {
	src        *contract.ResolvedPrometheus
	opt        PromOptions
	api        v1.API
	start, end time.Time
	step       time.Duration
	maxGap     int
	stats      PromStats
}

func newPromReader(src *contract.ResolvedPrometheus, opt PromOptions) (*promReader, error) {
	fail := func(format string, args ...any) error {
		return &Error{Source: src.URL, Msg: fmt.Sprintf(format, args...)}
	}
	if len(src.Queries) == 0 {
		return nil, fail("no queries")
	}
	rng, err := contract.ParseDuration(src.Range)
	if err != nil || rng <= 0 {
		return nil, fail("range %q is not a positive duration such as 24h or 7d", src.Range)
	}
	step, err := contract.ParseDuration(src.Step)
	if err != nil || step < time.Second {
		return nil, fail("step %q is not a duration of at least 1s", src.Step)
	}
	points := int64(rng/step) + 1
	if total := points * int64(len(src.Queries)); total > MaxPromPoints {
		return nil, fail("range %s at step %s is %d points for each of %d queries, %d in all; the limit is %d: shorten the range or lengthen the step",
			src.Range, src.Step, points, len(src.Queries), total, MaxPromPoints)
	}
	end := opt.Now()
	if src.End != "" {
		if end, err = time.Parse(time.RFC3339, src.End); err != nil {
			return nil, fail("end %q is not an RFC 3339 time", src.End)
		}
	}
	// The grid is aligned to the step, so reads of the same range agree on their rows.
	end = end.Truncate(step)
	maxGap := contract.DefaultMaxGap
	if src.MaxGap != nil {
		maxGap = int(*src.MaxGap)
	}
	access := PromAccess{BearerTokenFile: src.BearerTokenFile, Headers: src.Headers, HeaderFiles: src.HeaderFiles}
	if b := src.BasicAuth; b != nil {
		access.UsernameFile, access.PasswordFile = b.UsernameFile, b.PasswordFile
	}
	if t := src.TLS; t != nil {
		access.CAFile, access.ServerName, access.InsecureSkipVerify = t.CAFile, t.ServerName, t.InsecureSkipVerify
	}
	promAPI, err := NewPromAPI(src.URL, access)
	if err != nil {
		return nil, err
	}
	return &promReader{src: src, opt: opt, api: promAPI, start: end.Add(-rng), end: end, step: step, maxGap: maxGap}, nil
}

// PromAccess is how to reach a Prometheus server: credentials as files (the training
// pod mounts them from Secrets) or as values (the controller reads the Secrets), TLS
// and extra headers.
type PromAccess struct {
	BearerTokenFile, UsernameFile, PasswordFile string
	BearerToken, Username, Password             string
	CAFile                                      string
	CA                                          string // PEM
	ServerName                                  string
	InsecureSkipVerify                          bool
	Headers                                     map[string]string
	// HeaderFiles are headers whose values are read from files, by name.
	HeaderFiles map[string]string
	// MaxResponseBytes bounds one answer of the server (DefaultMaxPromResponse when
	// 0): a server that sends more is cut off with an error, not read into memory.
	MaxResponseBytes int64
	// RefuseLocal refuses to connect to a loopback, link-local or unspecified address
	// (ErrLocalTarget), whatever name resolves to it: from the manager's network
	// position those are the manager itself and the node's cloud metadata service.
	RefuseLocal bool
}

// ErrLocalTarget is a connection refused by RefuseLocal.
var ErrLocalTarget = errors.New("a loopback or link-local address (the manager's own, or a cloud metadata service)")

// refuseLocal is a dialer's Control: it sees the address a name resolved to, so a
// name that resolves to a refused address is refused too.
func refuseLocal(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip != nil && (ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsUnspecified()) {
		return fmt.Errorf("refusing to connect to %s, %w", address, ErrLocalTarget)
	}
	return nil
}

// RefusedByClient says err is the client's own refusal (a redirect, an answer too
// large, a local address), not the server's.
func RefusedByClient(err error) bool {
	var tooLarge *ErrTooLarge
	return errors.Is(err, ErrRedirect) || errors.Is(err, ErrLocalTarget) || errors.As(err, &tooLarge)
}

// DefaultMaxPromResponse bounds one answer of Prometheus a training or scoring pod
// reads: a range request holds at most MaxPoints steps of every series it selects.
const DefaultMaxPromResponse = 256 << 20

// ErrRedirect is a server that answered with a redirect. The client follows none: the
// DataSource's credentials and headers would go with it to wherever it points.
var ErrRedirect = errors.New("the server answered with a redirect, which kadet does not follow (the credentials would go with it): give the final address in the URL")

// NewPromAPI is the client of Prometheus's HTTP API for url with access, built by
// Prometheus's own libraries.
func NewPromAPI(url string, a PromAccess) (v1.API, error) {
	fail := func(err error) error { return &Error{Source: url, Msg: fmt.Sprintf("client settings: %v", err)} }
	hc := promconfig.HTTPClientConfig{BearerTokenFile: a.BearerTokenFile, BearerToken: promconfig.Secret(a.BearerToken), EnableHTTP2: true,
		TLSConfig: promconfig.TLSConfig{CAFile: a.CAFile, CA: a.CA, ServerName: a.ServerName, InsecureSkipVerify: a.InsecureSkipVerify}}
	if a.UsernameFile != "" || a.PasswordFile != "" || a.Username != "" || a.Password != "" {
		hc.BasicAuth = &promconfig.BasicAuth{UsernameFile: a.UsernameFile, PasswordFile: a.PasswordFile,
			Username: a.Username, Password: promconfig.Secret(a.Password)}
	}
	if len(a.Headers)+len(a.HeaderFiles) > 0 {
		hc.HTTPHeaders = &promconfig.Headers{Headers: map[string]promconfig.Header{}}
		for k, v := range a.Headers {
			hc.HTTPHeaders.Headers[k] = promconfig.Header{Values: []string{v}}
		}
		for k, f := range a.HeaderFiles {
			hc.HTTPHeaders.Headers[k] = promconfig.Header{Files: []string{f}}
		}
	}
	if err := hc.Validate(); err != nil {
		return nil, fail(err)
	}
	var opts []promconfig.HTTPClientOption
	if a.RefuseLocal {
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: refuseLocal}
		opts = append(opts, promconfig.WithDialContextFunc(d.DialContext))
	}
	rt, err := promconfig.NewRoundTripperFromConfig(hc, "kadet", opts...)
	if err != nil {
		return nil, fail(err)
	}
	limit := a.MaxResponseBytes
	if limit <= 0 {
		limit = DefaultMaxPromResponse
	}
	httpClient := &http.Client{
		Transport:     &cappedTransport{rt: rt, limit: limit},
		CheckRedirect: func(*http.Request, []*http.Request) error { return ErrRedirect },
	}
	client, err := api.NewClient(api.Config{Address: url, Client: httpClient})
	if err != nil {
		return nil, &Error{Source: url, Msg: err.Error()}
	}
	return v1.NewAPI(client), nil
}

// cappedTransport cuts every answer's body off at limit bytes with an error.
type cappedTransport struct {
	rt    http.RoundTripper
	limit int64
}

func (t *cappedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err == nil {
		resp.Body = &cappedBody{ReadCloser: resp.Body, left: t.limit, limit: t.limit}
	}
	return resp, err
}

// ErrTooLarge is an answer longer than the client's limit.
type ErrTooLarge struct{ Limit int64 }

func (e *ErrTooLarge) Error() string {
	return fmt.Sprintf("the answer is larger than %d MiB, the most one answer may hold: narrow the query (fewer series) or shorten the range", e.Limit>>20)
}

type cappedBody struct {
	io.ReadCloser
	left, limit int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return n, &ErrTooLarge{Limit: b.limit}
	}
	return n, err
}

// answerMessage is what an error answer says, without what a server that is not
// Prometheus sent: the body of another service must not reach a status that others
// read.
func answerMessage(apiErr *v1.Error) string {
	if apiErr.Type == v1.ErrBadResponse && !strings.HasPrefix(apiErr.Msg, "bad response code") {
		return "the answer is not a Prometheus API response"
	}
	return apiErr.Msg
}

// ErrNoSeriesNow is an instant query that parses but returns nothing: a metric not
// scraped yet, or no longer.
var ErrNoSeriesNow = errors.New("returns no series now")

// CheckPromQuery runs q as an instant query, so a DataSource can say at once whether
// the server answers and the query parses. Unreachable servers (and 5xx, 429) come
// back as transient, and so does a query with no series now (ErrNoSeriesNow); a
// refused query or credentials as the server's message.
func CheckPromQuery(ctx context.Context, promAPI v1.API, q string) (msg string, isTransient bool, err error) {
	var v model.Value
	v, _, err = promAPI.Query(ctx, q, time.Now())
	if err == nil {
		if vec, ok := v.(model.Vector); ok && len(vec) == 0 {
			return ErrNoSeriesNow.Error(), true, ErrNoSeriesNow
		}
		return "", false, nil
	}
	var (
		apiErr   *v1.Error
		tooLarge *ErrTooLarge
	)
	switch {
	case errors.Is(err, ErrRedirect):
		return ErrRedirect.Error(), false, err
	case errors.As(err, &tooLarge):
		return tooLarge.Error(), false, err
	case errors.Is(err, ErrLocalTarget):
		return firstLine(err.Error()), false, err
	case !errors.As(err, &apiErr):
		// No answer at all: the server, its DNS name or the network may come back.
		return firstLine(err.Error()), true, err
	case transient(err):
		return firstLine(string(apiErr.Type) + ": " + answerMessage(apiErr)), true, err
	}
	if msg := credentialRefusal(apiErr); msg != "" {
		return msg, false, err
	}
	return firstLine(answerMessage(apiErr)), false, err
}

// series is one query's values per entity, by grid index.
type series map[string]map[int]float64

func (r *promReader) load(ctx context.Context) (*Table, error) {
	r.stats = PromStats{Start: r.start, End: r.end, Step: r.step}
	perQuery := make([]series, len(r.src.Queries))
	broadcast := make([]bool, len(r.src.Queries))
	for i, q := range r.src.Queries {
		s, global, err := r.fetch(ctx, q)
		if err != nil {
			return nil, err
		}
		perQuery[i], broadcast[i] = s, global
	}
	return r.rows(perQuery, broadcast)
}

// fetch reads one query over the whole range, in requests of at most MaxPoints steps,
// and splits its series by entity. global reports a query with one series and none of
// the entity labels, which applies to every entity.
func (r *promReader) fetch(ctx context.Context, q contract.PrometheusQuery) (series, bool, error) {
	out := series{}
	labelSets := map[string]bool{}
	byEntity := map[string]model.Metric{} // the series each entity got
	span := time.Duration(max(r.opt.MaxPoints-1, 1)) * r.step
	for from := r.start; !from.After(r.end); {
		to := from.Add(span)
		if to.After(r.end) {
			to = r.end
		}
		m, err := r.queryRange(ctx, q, v1.Range{Start: from, End: to, Step: r.step})
		if err != nil {
			return nil, false, err
		}
		for _, ss := range m {
			key := ss.Metric.String()
			labelSets[key] = true
			ent := r.entity(ss.Metric)
			vals := out[ent]
			if vals == nil {
				vals = map[int]float64{}
				out[ent] = vals
			}
			if prev, ok := byEntity[ent]; ok && prev.String() != key && len(r.src.EntityLabels) > 0 {
				return nil, false, r.queryError(q, "returns several series for entity %s (%s and %s): aggregate by the entity labels, e.g. sum by (%s) (...)",
					entityName(ent), prev, ss.Metric, strings.Join(r.src.EntityLabels, ", "))
			}
			byEntity[ent] = ss.Metric
			for _, p := range ss.Values {
				k := int(p.Timestamp.Time().Sub(r.start) / r.step)
				vals[k] = float64(p.Value)
			}
		}
		from = to.Add(r.step)
	}
	sets := slices.Sorted(maps.Keys(labelSets))
	switch {
	case len(sets) == 0:
		return nil, false, r.queryError(q, "returned no series between %s and %s", r.start.Format(time.RFC3339), r.end.Format(time.RFC3339))
	case len(r.src.EntityLabels) == 0 && len(sets) > 1:
		return nil, false, r.queryError(q, "returned %d series (%s); a query must return one, or give entityLabels to split them into entities",
			len(sets), firstFive(sets))
	}
	global := false
	if len(r.src.EntityLabels) > 0 && len(out) == 1 {
		_, global = out[r.entity(model.Metric{})]
	}
	return out, global, nil
}

func firstFive(sets []string) string {
	if len(sets) > 5 {
		return strings.Join(sets[:5], ", ") + fmt.Sprintf(" and %d more", len(sets)-5)
	}
	return strings.Join(sets, ", ")
}

// entity is the key of a series' entity: its entity label values, in order.
func (r *promReader) entity(m model.Metric) string {
	if len(r.src.EntityLabels) == 0 {
		return ""
	}
	parts := make([]string, len(r.src.EntityLabels))
	for i, l := range r.src.EntityLabels {
		parts[i] = fmt.Sprintf("%s=%q", l, string(m[model.LabelName(l)]))
	}
	return strings.Join(parts, ",")
}

func entityName(e string) string { return "{" + e + "}" }

// EntityLabels are the label values of an entity key of a Table read from Prometheus
// (`name="value",...`, in the order of the source's entity labels).
func EntityLabels(key string) (map[string]string, error) {
	out := map[string]string{}
	for rest := key; rest != ""; {
		name, after, ok := strings.Cut(rest, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("entity %q: no label=value at %q", key, rest)
		}
		q, err := strconv.QuotedPrefix(after)
		if err != nil {
			return nil, fmt.Errorf("entity %q: label %s has no quoted value", key, name)
		}
		v, _ := strconv.Unquote(q)
		out[name] = v
		rest = strings.TrimPrefix(after[len(q):], ",")
	}
	return out, nil
}

func (r *promReader) queryError(q contract.PrometheusQuery, format string, args ...any) error {
	return &Error{Source: r.src.URL, Msg: fmt.Sprintf("query %s (%s) ", q.Name, q.Query) + fmt.Sprintf(format, args...)}
}

// queryRange runs one range query, retrying transient failures with backoff.
func (r *promReader) queryRange(ctx context.Context, q contract.PrometheusQuery, rng v1.Range) (model.Matrix, error) {
	wait := r.opt.Backoff
	var last error
	for attempt := 1; attempt <= max(r.opt.Attempts, 1); attempt++ {
		rctx, cancel := context.WithTimeout(ctx, r.opt.Timeout)
		r.stats.Requests++
		v, _, err := r.api.QueryRange(rctx, q.Query, rng)
		cancel()
		if err == nil {
			m, ok := v.(model.Matrix)
			if !ok {
				return nil, r.queryError(q, "returned a %s, not a range of series", v.Type())
			}
			return m, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		last = err
		if !transient(err) {
			break
		}
		if attempt < r.opt.Attempts {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			wait *= 2
		}
	}
	return nil, r.describe(q, last)
}

// transient reports failures worth another try: the server or the network may
// recover; a bad query or bad credentials will not.
func transient(err error) bool {
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		switch apiErr.Type {
		case v1.ErrServer, v1.ErrTimeout:
			return true
		case v1.ErrClient:
			return strings.Contains(apiErr.Msg, "429")
		case v1.ErrBadResponse:
			return strings.Contains(apiErr.Msg, " 5") // a 5xx without Prometheus's JSON
		}
		return false
	}
	// A refused or reset connection and a timeout may pass; a certificate the server
	// shows or a URL that cannot be dialled as written will not.
	var ne net.Error
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// describe turns a failed request into a message that names the server and the query
// and says what to do.
func (r *promReader) describe(q contract.PrometheusQuery, err error) error {
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		if msg := credentialRefusal(apiErr); msg != "" {
			return r.queryError(q, "was refused: %s", msg)
		}
		if apiErr.Type == v1.ErrBadData {
			return r.queryError(q, "was refused by Prometheus: %s", apiErr.Msg)
		}
		return r.queryError(q, "failed after %d attempts: %s: %s", r.opt.Attempts, apiErr.Type, answerMessage(apiErr))
	}
	return r.queryError(q, "failed after %d attempts: %v", r.opt.Attempts, err)
}

// credentialRefusal says what a 401 or 403 means for the user, or "" for other errors.
func credentialRefusal(apiErr *v1.Error) string {
	switch {
	case strings.Contains(apiErr.Msg, strconv.Itoa(http.StatusUnauthorized)):
		return "401 unauthorized: check the bearer token or basic auth credentials"
	case strings.Contains(apiErr.Msg, strconv.Itoa(http.StatusForbidden)):
		return "403 forbidden: the credentials may not read this data"
	}
	return ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// bridge carries the last value forward over each run of missing values (NaN) of at
// most maxGap steps that follows a value; longer runs stay missing as a whole, since an
// outage filled with a stale value would train the model on data that never was. It
// returns how many values it filled.
func bridge(v []float64, maxGap int) int {
	filled := 0
	for k := 1; k < len(v); {
		if !math.IsNaN(v[k]) || math.IsNaN(v[k-1]) {
			k++
			continue
		}
		end := k
		for end < len(v) && math.IsNaN(v[end]) {
			end++
		}
		if end-k <= maxGap {
			for i := k; i < end; i++ {
				v[i] = v[k-1]
				filled++
			}
		}
		k = end
	}
	return filled
}

// rows lays the series on the step grid: per entity, a row at every step where every
// query has a value, carrying values forward over gaps of up to maxGap steps.
func (r *promReader) rows(perQuery []series, broadcast []bool) (*Table, error) {
	entities := map[string]bool{}
	for i, s := range perQuery {
		if broadcast[i] {
			continue
		}
		for e := range s {
			entities[e] = true
		}
	}
	if len(entities) == 0 { // every query applies to all: one entity
		entities[""] = true
	}
	keys := make([]string, 0, len(entities))
	for e := range entities {
		keys = append(keys, e)
	}
	slices.Sort(keys)
	n := int(r.end.Sub(r.start)/r.step) + 1
	d := len(perQuery)
	t := &Table{Source: r.src.URL}
	for _, q := range r.src.Queries {
		t.Columns = append(t.Columns, q.Name)
	}
	global := r.entity(model.Metric{})
	for _, e := range keys {
		grid := make([][]float64, d)
		first, last := n, -1
		for j, s := range perQuery {
			src := s[e]
			if broadcast[j] {
				src = s[global]
			}
			grid[j] = make([]float64, n)
			for k := range n {
				v, ok := src[k]
				if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
					grid[j][k] = math.NaN()
					continue
				}
				grid[j][k] = v
				first, last = min(first, k), max(last, k)
			}
			r.stats.Carried += bridge(grid[j], r.maxGap)
		}
		kept := 0
		for k := range n {
			ok := true
			for j := range d {
				ok = ok && !math.IsNaN(grid[j][k])
			}
			if !ok {
				if k >= first && k <= last {
					r.stats.Dropped++
				}
				continue
			}
			for j := range d {
				t.X = append(t.X, float32(grid[j][k]))
			}
			t.Timestamps = append(t.Timestamps, strconv.FormatInt(r.start.Add(time.Duration(k)*r.step).Unix(), 10))
			if len(r.src.EntityLabels) > 0 {
				t.Entities = append(t.Entities, e)
			}
			kept++
		}
		if kept > 0 {
			r.stats.Entities++
		}
	}
	r.stats.Rows = t.Rows()
	if t.Rows() == 0 {
		return nil, &Error{Source: r.src.URL, Msg: fmt.Sprintf("no step between %s and %s has a value for every query (%d values carried over gaps, %d rows dropped)",
			r.start.Format(time.RFC3339), r.end.Format(time.RFC3339), r.stats.Carried, r.stats.Dropped)}
	}
	stats := r.stats
	t.Prometheus = &stats
	return t, nil
}
