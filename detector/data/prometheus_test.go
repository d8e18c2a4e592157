package data

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/hack/promtest"
)

// The history every test reads: three days at one sample a minute, ending at end.
var (
	end      = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	start    = end.Add(-72 * time.Hour)
	minutes  = 72*60 + 1
	fastOpts = PromOptions{Timeout: 5 * time.Second, Attempts: 2, Backoff: 10 * time.Millisecond, MaxPoints: 11000, Now: time.Now}
)

// load is a daily cycle with a weekly drift; every value is a multiple of 1/4, so it
// survives float32 exactly.
func loadValue(i int) float64 {
	return math.Round(4*(100+20*math.Sin(2*math.Pi*float64(i)/1440)+float64(i%7))) / 4
}

func history() []promtest.Series {
	mk := func(metric string, labels map[string]string, f func(int) float64) promtest.Series {
		v := make([]float64, minutes)
		for i := range v {
			v[i] = f(i)
		}
		return promtest.Series{Metric: metric, Labels: labels, Start: start, Step: time.Minute, Values: v}
	}
	gappy := mk("gappy", nil, func(i int) float64 { return float64(i) })
	// Two NaN samples are bridged; three are a gap too long for maxGap 2.
	for _, i := range []int{100, 101, 200, 201, 202} {
		gappy.Values[i] = math.NaN()
	}
	return []promtest.Series{
		mk("load", map[string]string{"job": "api"}, loadValue),
		mk("errors", map[string]string{"job": "api"}, func(i int) float64 { return float64(i % 13) }),
		mk("latency", map[string]string{"pod": "a", "namespace": "shop"}, func(i int) float64 { return float64(i % 5) }),
		mk("latency", map[string]string{"pod": "b", "namespace": "shop"}, func(i int) float64 { return 10 + float64(i%3) }),
		mk("latency", map[string]string{"pod": "c", "namespace": "shop"}, func(i int) float64 { return 20 }),
		gappy,
	}
}

func promServer(t *testing.T) *promtest.Server {
	t.Helper()
	return promtest.Start(t, promtest.Options{History: history()})
}

func source(url string, queries ...string) *contract.ResolvedPrometheus {
	src := &contract.ResolvedPrometheus{URL: url, Range: "72h", Step: "1m", End: end.Format(time.RFC3339)}
	for i := 0; i+1 < len(queries); i += 2 {
		src.Queries = append(src.Queries, contract.PrometheusQuery{Name: queries[i], Query: queries[i+1]})
	}
	return src
}

func TestPrometheusRowsEqualTheHistory(t *testing.T) {
	srv := promServer(t)
	src := source(srv.URL, "load", "load", "errors", "errors")
	one, err := LoadPrometheus(context.Background(), src, fastOpts)
	if err != nil {
		t.Fatal(err)
	}
	if one.Rows() != minutes || !slices.Equal(one.Columns, []string{"load", "errors"}) {
		t.Fatalf("%d rows of %v; want %d of [load errors]", one.Rows(), one.Columns, minutes)
	}
	for i := range minutes {
		ts := strconv.FormatInt(start.Add(time.Duration(i)*time.Minute).Unix(), 10)
		if got := one.Row(i); one.Timestamps[i] != ts || float64(got[0]) != loadValue(i) || float64(got[1]) != float64(i%13) {
			t.Fatalf("row %d at %s = %v; want %s: [%v %v]", i, one.Timestamps[i], got, ts, loadValue(i), i%13)
		}
	}
	if s := one.Prometheus; s.Requests != 2 || s.Rows != minutes || s.Dropped != 0 || s.Carried != 0 {
		t.Errorf("stats %+v", *s)
	}
	// In requests of 1,000 steps (five of them per query) the rows are the same.
	split := fastOpts
	split.MaxPoints = 1000
	many, err := LoadPrometheus(context.Background(), src, split)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(many.X, one.X) || !slices.Equal(many.Timestamps, one.Timestamps) || many.Prometheus.Requests != 10 {
		t.Fatalf("split read: %d rows in %d requests; want the same %d rows in 10", many.Rows(), many.Prometheus.Requests, one.Rows())
	}
}

func TestPrometheusEntities(t *testing.T) {
	srv := promServer(t)
	src := source(srv.URL, "latency", "latency", "load", "sum(load)")
	if _, err := LoadPrometheus(context.Background(), src, fastOpts); err == nil ||
		!strings.Contains(err.Error(), "query latency (latency) returned 3 series") || !strings.Contains(err.Error(), `pod="b"`) ||
		!strings.Contains(err.Error(), "entityLabels") {
		t.Fatalf("several series without entity labels: %v", err)
	}
	src.EntityLabels = []string{"namespace", "pod"}
	tbl, err := LoadPrometheus(context.Background(), src, fastOpts)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Rows() != 3*minutes || tbl.Prometheus.Entities != 3 {
		t.Fatalf("%d rows, %d entities; want %d, 3", tbl.Rows(), tbl.Prometheus.Entities, 3*minutes)
	}
	// Rows come entity by entity; sum(load), with no entity label, joins every entity.
	for _, c := range []struct {
		row     int
		entity  string
		latency float64
	}{{0, `namespace="shop",pod="a"`, 0}, {minutes + 7, `namespace="shop",pod="b"`, 10 + 7%3}, {3*minutes - 1, `namespace="shop",pod="c"`, 20}} {
		i := c.row % minutes
		if got := tbl.Row(c.row); tbl.Entities[c.row] != c.entity || float64(got[0]) != c.latency || float64(got[1]) != loadValue(i) {
			t.Errorf("row %d: %s %v; want %s [%v %v]", c.row, tbl.Entities[c.row], got, c.entity, c.latency, loadValue(i))
		}
	}
	// An entity's key gives back its label values, quotes and commas included.
	for _, key := range []string{tbl.Entities[0], `a="x,y=\"z\"",b=""`} {
		labels, err := EntityLabels(key)
		if err != nil {
			t.Fatal(err)
		}
		back := ""
		for _, l := range []string{"namespace", "pod", "a", "b"} {
			if v, ok := labels[l]; ok {
				back += fmt.Sprintf(",%s=%q", l, v)
			}
		}
		if back[1:] != key {
			t.Errorf("EntityLabels(%s) = %v", key, labels)
		}
	}
	if _, err := EntityLabels(`pod=a`); err == nil {
		t.Error("an unquoted value was read as an entity")
	}
	// Two series of one entity cannot both be its column.
	src.EntityLabels = []string{"namespace"}
	if _, err := LoadPrometheus(context.Background(), src, fastOpts); err == nil || !strings.Contains(err.Error(), "several series for entity") {
		t.Fatalf("two series for one entity: %v", err)
	}
}

func TestPrometheusGaps(t *testing.T) {
	srv := promServer(t)
	tbl, err := LoadPrometheus(context.Background(), source(srv.URL, "gappy", "gappy"), fastOpts)
	if err != nil {
		t.Fatal(err)
	}
	s := tbl.Prometheus
	if tbl.Rows() != minutes-3 || s.Dropped != 3 || s.Carried != 2 {
		t.Fatalf("%d rows, %d dropped, %d carried; want %d rows, 3 dropped, 2 carried (two NaN bridged, a run of three dropped)",
			tbl.Rows(), s.Dropped, s.Carried, minutes-3)
	}
	at := func(minute int) (float32, bool) {
		ts := strconv.FormatInt(start.Add(time.Duration(minute)*time.Minute).Unix(), 10)
		i := slices.Index(tbl.Timestamps, ts)
		if i < 0 {
			return 0, false
		}
		return tbl.Row(i)[0], true
	}
	if v, ok := at(101); !ok || v != 99 {
		t.Errorf("minute 101 (NaN, bridged): %v %v; want 99 carried from minute 99", v, ok)
	}
	for _, m := range []int{200, 201, 202} {
		if _, ok := at(m); ok {
			t.Errorf("minute %d is in a gap of 3 > maxGap 2 and should be dropped", m)
		}
	}
	// maxGap 0 carries nothing.
	src := source(srv.URL, "gappy", "gappy")
	src.MaxGap = new(int32(0))
	if tbl, err := LoadPrometheus(context.Background(), src, fastOpts); err != nil || tbl.Rows() != minutes-5 {
		t.Fatalf("maxGap 0: %v rows, %v", tbl.Rows(), err)
	}
}

func TestPrometheusRefusals(t *testing.T) {
	srv := promServer(t)
	closed := "http://" + closedAddr(t)
	for _, c := range []struct {
		name string
		src  *contract.ResolvedPrometheus
		want []string
	}{
		{"bad promql", source(srv.URL, "x", "rate(load[5m]"), []string{"query x (rate(load[5m])", "1:", "parse error"}},
		{"no series", source(srv.URL, "x", "nothing_here"), []string{"query x (nothing_here) returned no series between"}},
		{"unreachable", source(closed, "x", "up"), []string{closed, "query x (up) failed after 2 attempts", "connection refused"}},
		{"too many points", func() *contract.ResolvedPrometheus {
			s := source(closed, "a", "up", "b", "up")
			s.Range, s.Step = "2400h", "1s"
			return s
		}(), []string{"8640001 points for each of 2 queries", "the limit is 10000000"}},
		{"bad range", func() *contract.ResolvedPrometheus { s := source(srv.URL, "a", "up"); s.Range = "a day"; return s }(), []string{`range "a day" is not a positive duration`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadPrometheus(context.Background(), c.src, fastOpts)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !IsInputError(err) {
				t.Errorf("%v is not an input error", err)
			}
		})
	}
}

// Faults a real server does not produce on demand: a hanging connection, a 503, a
// 429 then success, garbage.
func TestPrometheusFaults(t *testing.T) {
	var calls atomic.Int32
	stop := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/hang/api/v1/query_range", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	mux.HandleFunc("/503/api/v1/query_range", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/429/api/v1/query_range", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"status":"error","errorType":"too_many_requests","error":"slow down"}`)
			return
		}
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1763596800,"1"]]}]}}`)
	})
	mux.HandleFunc("/garbage/api/v1/query_range", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fmt.Fprint(w, "\x00\x01 not json")
	})
	fake := httptest.NewServer(mux)
	defer fake.Close()
	defer close(stop)
	opts := fastOpts
	opts.Timeout, opts.Attempts = 200*time.Millisecond, 3
	for _, c := range []struct {
		path  string
		calls int32
		want  string
	}{
		{"/hang", 3, "failed after 3 attempts"},
		{"/503", 3, "failed after 3 attempts"},
		{"/garbage", 1, "query x (up)"},
	} {
		calls.Store(0)
		src := source(fake.URL+c.path, "x", "up")
		_, err := LoadPrometheus(context.Background(), src, opts)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), fake.URL+c.path) || calls.Load() != c.calls {
			t.Errorf("%s: %d calls, %v; want %d calls and %q", c.path, calls.Load(), err, c.calls, c.want)
		}
	}
	calls.Store(0)
	src := source(fake.URL+"/429", "x", "up")
	src.Range = "1m"
	src.End = time.Unix(1763596800, 0).UTC().Format(time.RFC3339)
	if tbl, err := LoadPrometheus(context.Background(), src, opts); err != nil || tbl.Rows() != 1 || calls.Load() != 2 {
		t.Errorf("429 then success: %d calls, %v", calls.Load(), err)
	}
}

// Credentials and headers: TLS and basic auth as Prometheus's own web config serves
// them; a header passes through a proxy in front of the real server.
func TestPrometheusAccess(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := selfSigned(t, dir)
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	user, pass, wrong := write("user", "kadet"), write("pass", "kadet-secret\n"), write("wrong", "guess")
	srv := promtest.Start(t, promtest.Options{History: history()[:1], Scheme: "https", WebConfig: fmt.Sprintf(
		"tls_server_config: {cert_file: %s, key_file: %s}\nbasic_auth_users: {kadet: '$2a$04$ffYzuMDYkJAAsS5LQwjvZ.7tzy0gJAMlbky3iHAE0PQUmCUnh21uS'}\n",
		certFile, keyFile)})
	src := source(srv.URL, "load", "load")
	src.TLS = &contract.ResolvedTLS{CAFile: caFile}
	src.BasicAuth = &contract.ResolvedBasicAuth{UsernameFile: user, PasswordFile: pass}
	tbl, err := LoadPrometheus(context.Background(), src, fastOpts)
	if err != nil || tbl.Rows() != minutes {
		t.Fatalf("TLS and basic auth: %v", err)
	}
	src.BasicAuth.PasswordFile = wrong
	if _, err := LoadPrometheus(context.Background(), src, fastOpts); err == nil || !strings.Contains(err.Error(), "401 unauthorized") {
		t.Errorf("wrong password: %v", err)
	}
	src.BasicAuth.PasswordFile = pass
	src.TLS = nil
	if _, err := LoadPrometheus(context.Background(), src, fastOpts); err == nil || !strings.Contains(err.Error(), "certificate") ||
		!strings.Contains(err.Error(), "after 2 attempts") {
		t.Errorf("unknown CA: %v", err)
	} else if strings.Contains(err.Error(), "kadet-secret") {
		t.Errorf("the error shows the password: %v", err)
	}
	// An insecure skip of the check works and a wrong server name does not.
	src.TLS = &contract.ResolvedTLS{CAFile: caFile, ServerName: "elsewhere"}
	if _, err := LoadPrometheus(context.Background(), src, fastOpts); err == nil {
		t.Error("a certificate for 127.0.0.1 was accepted for server name elsewhere")
	}
	src.TLS = &contract.ResolvedTLS{InsecureSkipVerify: true}
	if _, err := LoadPrometheus(context.Background(), src, fastOpts); err != nil {
		t.Errorf("insecureSkipVerify: %v", err)
	}

	// Bearer token and extra headers reach the server.
	plain := promServer(t)
	target, _ := url.Parse(plain.URL)
	var seen atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("Authorization") + "|" + r.Header.Get("X-Scope-OrgID") + "|" + r.Header.Get("X-Api-Key"))
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	}))
	defer proxy.Close()
	src = source(proxy.URL, "load", "load")
	src.BearerTokenFile = write("token", "tok-123\n")
	src.Headers = map[string]string{"X-Scope-OrgID": "tenant-a"}
	src.HeaderFiles = map[string]string{"X-Api-Key": write("api-key", "k3y\n")}
	if _, err := LoadPrometheus(context.Background(), src, fastOpts); err != nil {
		t.Fatal(err)
	}
	if got := seen.Load(); got != "Bearer tok-123|tenant-a|k3y" {
		t.Errorf("server saw %q; want the bearer token, the tenant header and the key from its file", got)
	}
}

func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// selfSigned writes a CA-signed certificate for 127.0.0.1 and returns the CA, the
// certificate and the key files.
func selfSigned(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kadet test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, cert, key
}

// BenchmarkPrometheusRead reads 10 queries of 30 days at 1m (43,201 steps each, four
// requests per query) from a real Prometheus and reports rows and points per second.
// go test ./detector/data -run '^$' -bench PrometheusRead -benchtime 3x
func BenchmarkPrometheusRead(b *testing.B) {
	const queries, days = 10, 30
	n := days*24*60 + 1
	var history []promtest.Series
	src := &contract.ResolvedPrometheus{Range: "720h", Step: "1m", End: end.Format(time.RFC3339)}
	for q := range queries {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64((i*7 + q) % 101)
		}
		name := fmt.Sprintf("bench_%d", q)
		history = append(history, promtest.Series{Metric: name, Start: end.Add(-time.Duration(n-1) * time.Minute), Step: time.Minute, Values: v})
		src.Queries = append(src.Queries, contract.PrometheusQuery{Name: name, Query: name})
	}
	srv := promtest.Start(b, promtest.Options{History: history})
	src.URL = srv.URL
	b.ResetTimer()
	rows := 0
	for range b.N {
		tbl, err := LoadPrometheus(context.Background(), src, DefaultPromOptions)
		if err != nil {
			b.Fatal(err)
		}
		rows += tbl.Rows()
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(rows)/sec, "rows/s")
	b.ReportMetric(float64(rows*queries)/sec, "points/s")
}

// Servers a DataSource may name that are not Prometheus, as an attacker would set
// them up: a redirect to a host that collects the credentials, an answer without
// end, and a page of another internal service. None of them gets the token, fills
// memory, or has its page copied into the error a status shows.
func TestPrometheusHostileServers(t *testing.T) {
	var stolen atomic.Value
	stolen.Store("")
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Store(r.Header.Get("Authorization") + r.Header.Get("X-Scope-OrgID"))
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1763596800,"1"]}]}}`)
	}))
	defer collector.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/redirect/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, collector.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/endless/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[`)
		chunk := []byte(strings.Repeat(`{"metric":{"a":"b"},"value":[1763596800,"1"]},`, 1000))
		for range 1000 { // about 45 MB unless the client stops reading
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/internal/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<html><body>internal admin page: db-password=hunter2</body></html>")
	})
	mux.HandleFunc("/proxy-error/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>upstream db-password=hunter2</html>", http.StatusBadGateway)
	})
	hostile := httptest.NewServer(mux)
	defer hostile.Close()
	access := PromAccess{BearerToken: "tok-123", Headers: map[string]string{"X-Scope-OrgID": "tenant-a"}, MaxResponseBytes: 1 << 20}
	for _, tc := range []struct {
		path, want string
		transient  bool
	}{
		{"/redirect", "redirect, which kadet does not follow", false},
		{"/endless", "the answer is larger than 1 MiB", false},
		{"/internal", "the answer is not a Prometheus API response", false},
		{"/proxy-error", "502", true},
	} {
		t.Run(tc.path, func(t *testing.T) {
			promAPI, err := NewPromAPI(hostile.URL+tc.path, access)
			if err != nil {
				t.Fatal(err)
			}
			msg, transient, err := CheckPromQuery(context.Background(), promAPI, "up")
			if err == nil || !strings.Contains(msg, tc.want) || transient != tc.transient {
				t.Errorf("message %q (transient %v, %v); want %q (transient %v)", msg, transient, err, tc.want, tc.transient)
			}
			if strings.Contains(msg, "db-password") {
				t.Errorf("the message shows the server's page: %q", msg)
			}
		})
	}
	if s := stolen.Load(); s != "" {
		t.Errorf("the redirect target received %q", s)
	}
	// The manager refuses loopback and link-local targets, by address or by a name
	// that resolves to one; a pod's read does not ask.
	for _, u := range []string{hostile.URL + "/internal", strings.Replace(hostile.URL, "127.0.0.1", "localhost", 1) + "/internal", "http://169.254.169.254/latest"} {
		promAPI, err := NewPromAPI(u, PromAccess{RefuseLocal: true})
		if err != nil {
			t.Fatal(err)
		}
		msg, transient, err := CheckPromQuery(context.Background(), promAPI, "up")
		if !errors.Is(err, ErrLocalTarget) || !RefusedByClient(err) || transient || !strings.Contains(msg, "refusing to connect to ") {
			t.Errorf("%s: %q (transient %v, %v); want the local target refused", u, msg, transient, err)
		}
	}
	src := source(hostile.URL+"/redirect", "x", "up")
	src.Headers = map[string]string{"X-Scope-OrgID": "tenant-a"}
	if _, err := LoadPrometheus(context.Background(), src, fastOpts); err == nil || !strings.Contains(err.Error(), "does not follow") {
		t.Errorf("a training read through a redirect: %v", err)
	}
	src = source(hostile.URL+"/proxy-error", "x", "up")
	if _, err := LoadPrometheus(context.Background(), src, fastOpts); err == nil || strings.Contains(err.Error(), "db-password") {
		t.Errorf("a training read of a proxy's error page: %v", err)
	}
	if s := stolen.Load(); s != "" {
		t.Errorf("the redirect target received %q", s)
	}
}
