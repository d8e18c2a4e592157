package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/backtest"
	"github.com/kadet-dev/kadet/detector/internal/gen"
	"github.com/kadet-dev/kadet/detector/report"
)

// writePageModel saves a version with a loss history and a score histogram, as
// training writes them.
func writePageModel(t *testing.T, dir string, at time.Time, epochs int) string {
	t.Helper()
	v := writeModel(t, dir, 1, at)
	path, _ := artifact.Path(dir, v)
	m, err := artifact.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for e := 1; e <= epochs; e++ {
		val := 0.9 / float64(e)
		m.Meta.Training.History = append(m.Meta.Training.History, artifact.EpochLoss{Epoch: e, Loss: 1 / float64(e), ValLoss: &val})
	}
	m.Meta.Training.Metrics = map[string]float64{"loss": 1 / float64(epochs), "valLoss": 0.9 / float64(epochs), "auroc": 0.97}
	_ = os.RemoveAll(filepath.Join(dir, v))
	scores := make([]float32, 400)
	for i := range scores {
		scores[i] = float32(i%40) / 80
	}
	png, err := report.Histogram("held-out scores", scores, 0.45)
	if err != nil {
		t.Fatal(err)
	}
	return gen.Save(t, dir, m, at, map[string][]byte{artifact.ReportFileName: png})
}

// The model page names the served version and lists every version; the histogram
// and the loss curves are drawn, as a headless Chromium's screenshot shows: it holds
// the histogram's bar colour, the threshold's red and both loss curves' colours.
func TestModelPageRendersInChromium(t *testing.T) {
	dir := t.TempDir()
	old := writePageModel(t, dir, time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC), 8)
	served := writePageModel(t, dir, time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC), 20)
	_, ts, _ := newServer(t, dir, Options{Version: served})

	resp, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	html := string(body)
	for _, want := range []string{served + " (served)", old, "auroc 0.97", "<svg", `src="report.png?version=` + served + `"`} {
		if !strings.Contains(html, want) {
			t.Errorf("page has no %q", want)
		}
	}
	r, err := http.Get(ts.URL + "/report.png?version=../../etc")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest {
		t.Errorf("a path as version: %s", r.Status)
	}

	img := screenshot(t, ts.URL+"/", 1000)
	for name, c := range map[string][3]uint8{
		"histogram bars": {70, 110, 180}, "threshold line": {220, 0, 0},
		"training loss": {0x1f, 0x5f, 0xbf}, "validation loss": {0xe8, 0x71, 0x1a},
	} {
		if n := countColour(img, c); n < 50 {
			t.Errorf("the screenshot has %d pixels of the %s colour %v; want it drawn", n, name, c)
		}
	}
}

// screenshot is headless Chromium's picture of url in a window 1100 wide and height
// high (KADET_KEEP_SCREENSHOT names a file to keep it in).
func screenshot(t *testing.T, url string, height int) image.Image {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: `apt-get install chromium` (make test and .ci/run install it)")
	}
	shot := filepath.Join(t.TempDir(), "page.png")
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		fmt.Sprintf("--window-size=1100,%d", height), "--screenshot="+shot, url)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("KADET_KEEP_SCREENSHOT"); keep != "" {
		_ = os.WriteFile(keep, b, 0o644)
	}
	return img
}

// The backtest section plots each entity: the band the model expects the metric in
// and the flagged episode shaded where it was injected (its place across the plot as
// a share of the band's width); a picked entity is the one plotted.
func TestBacktestPlotsInChromium(t *testing.T) {
	dir := t.TempDir()
	served := writePageModel(t, dir, time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC), 5)
	start := int64(1_764_000_000)
	r := backtest.Report{Features: []string{"latency"}}
	for k, e := range []string{`pod="a"`, `pod="b"`} {
		sr := backtest.Series{Entity: e, Band: []float32{0.4}}
		for i := range 200 {
			v := float32(5 + math.Sin(float64(i)/10))
			sr.At = append(sr.At, start+int64(i)*60)
			sr.Expected = append(sr.Expected, v)
			score := 0.3
			if k == 1 && i >= 120 && i <= 140 { // the incident on b
				v += 4
				score = 40
			}
			sr.Values, sr.Score = append(sr.Values, v), append(sr.Score, score)
		}
		r.Series = append(r.Series, sr)
	}
	r.Episodes = []backtest.Episode{{Entity: `pod="b"`, Start: start + 120*60, End: start + 140*60, Rows: 21, Peak: 40, PeakAt: start + 130*60}}
	r.Series[0], r.Series[1] = r.Series[1], r.Series[0] // b has the episode: first
	r.Series[0].Episodes, r.Series[0].Peak = 1, 40
	r.Rows, r.Entities, r.Anomalies, r.Start, r.End = 400, 2, 21, start, start+199*60
	b, _ := json.Marshal(r)
	if err := os.WriteFile(filepath.Join(dir, served, backtest.FileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, ts, _ := newServer(t, dir, Options{Version: served})

	picked := screenshot(t, ts.URL+"/?entity="+url.QueryEscape(`pod="b"`), 1400)
	if n := countColour(picked, [3]uint8{0xbf, 0xe3, 0xbf}); n < 2000 {
		t.Errorf("%d pixels of the band's colour; want the band drawn", n)
	}
	bandX0, bandX1, _ := columns(picked, [3]uint8{0xbf, 0xe3, 0xbf})
	shadeX0, shadeX1, shaded := columns(picked, [3]uint8{0xff, 0xd6, 0xd6})
	if shaded < 500 {
		t.Fatalf("%d pixels of the episode's shading; want it shaded", shaded)
	}
	from, to := float64(shadeX0-bandX0)/float64(bandX1-bandX0), float64(shadeX1-bandX0)/float64(bandX1-bandX0)
	if math.Abs(from-120.0/199) > 0.02 || math.Abs(to-140.0/199) > 0.02 {
		t.Errorf("the episode is shaded from %.3f to %.3f of the plot; want %.3f to %.3f", from, to, 120.0/199, 140.0/199)
	}
	resp, err := http.Get(ts.URL + "/?entity=" + url.QueryEscape(`pod="a"`))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if html := string(page); !strings.Contains(html, `aria-label="backtest of pod=&#34;a&#34;"`) || strings.Contains(html, `aria-label="backtest of pod=&#34;b&#34;"`) ||
		!strings.Contains(html, "400 rows of 2 entities") {
		t.Errorf("picking pod a does not plot it alone:\n%s", html)
	}
}

// columns are the leftmost and rightmost columns holding pixels of colour c, and how
// many such pixels there are.
func columns(img image.Image, c [3]uint8) (x0, x1, n int) {
	b := img.Bounds()
	x0, x1 = b.Max.X, b.Min.X
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r, c[0]) && near(g, c[1]) && near(bl, c[2]) {
				x0, x1, n = min(x0, x), max(x1, x), n+1
			}
		}
	}
	return x0, x1, n
}

func near(a uint32, b uint8) bool { d := int(a>>8) - int(b); return d > -6 && d < 6 }

// countColour counts pixels within a few levels of c.
func countColour(img image.Image, c [3]uint8) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r, c[0]) && near(g, c[1]) && near(bl, c[2]) {
				n++
			}
		}
	}
	return n
}
