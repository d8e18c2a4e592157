package serve

import (
	"bytes"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
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

	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: `apt-get install chromium` (make test and .ci/run install it)")
	}
	shot := filepath.Join(t.TempDir(), "page.png")
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--window-size=1100,1000", "--screenshot="+shot, ts.URL+"/")
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
	for name, c := range map[string][3]uint8{
		"histogram bars": {70, 110, 180}, "threshold line": {220, 0, 0},
		"training loss": {0x1f, 0x5f, 0xbf}, "validation loss": {0xe8, 0x71, 0x1a},
	} {
		if n := countColour(img, c); n < 50 {
			t.Errorf("the screenshot has %d pixels of the %s colour %v; want it drawn", n, name, c)
		}
	}
}

// countColour counts pixels within a few levels of c.
func countColour(img image.Image, c [3]uint8) int {
	n := 0
	b := img.Bounds()
	near := func(a uint32, b uint8) bool { d := int(a>>8) - int(b); return d > -6 && d < 6 }
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
