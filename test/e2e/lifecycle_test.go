package e2e

import (
	"bytes"
	"context"
	"fmt"
	stdimage "image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	kadetv1 "github.com/kadet-dev/kadet/api/v1alpha1"
	"github.com/kadet-dev/kadet/controllers/builders"
)

// 9. Model lifecycle: a schedule that ticks every minute trains new versions by
// itself; with keepVersions 2 the third training removes the oldest file from the
// volume (the model page no longer lists it) and its ModelVersion; pinning an older
// version makes every scoring answer carry that version's digest, with no failed
// request during the switch; the model page renders in headless Chromium.
func TestScheduleKeepVersionsAndPinning(t *testing.T) {
	start := time.Now()
	ns := namespace(t, "lifecycle")
	mustKubectl(t, cardManifest("cards", cardCSV(300, 3), 5,
		"  storage: {keepVersions: 2}\n"), "apply", "-n", ns, "-f", "-")
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=5m", "detector/cards")
	mustKubectl(t, nil, "patch", "-n", ns, "detector/cards", "--type=merge", "-p", `{"spec":{"training":{"schedule":"* * * * *"}}}`)

	versionsOf := func() []kadetv1.ModelVersion {
		list := &kadetv1.ModelVersionList{}
		if err := env.client.List(context.Background(), list, client.InNamespace(ns), client.MatchingLabels{builders.LabelDetector: "cards"}); err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(list.Items, func(a, b kadetv1.ModelVersion) int { return strings.Compare(a.Spec.Version, b.Spec.Version) })
		return list.Items
	}
	var first string
	trained := map[string]bool{}
	waitFor(t, "three versions from the schedule, the first pruned", 5*time.Minute, func() (bool, error) {
		d := getDetector(t, ns, "cards")
		if m := d.Status.Model; m != nil {
			if first == "" {
				first = m.Version
			}
			trained[m.Version] = true
		}
		vs := versionsOf()
		return len(trained) >= 3 && len(vs) == 2 && !slices.ContainsFunc(vs, func(v kadetv1.ModelVersion) bool { return v.Spec.Version == first }), nil
	})
	t.Logf("three trainings (%d s after Ready the schedule was set), the first version pruned: %s", int(time.Since(start).Seconds()), time.Since(start).Round(time.Second))
	// Stop the schedule, so the versions hold still for the rest.
	mustKubectl(t, nil, "patch", "-n", ns, "detector/cards", "--type=json", "-p", `[{"op":"remove","path":"/spec/training/schedule"}]`)
	mustKubectl(t, nil, "wait", "-n", ns, "--for=condition=Ready", "--timeout=3m", "detector/cards")
	vs := versionsOf()
	older, newer := vs[0], vs[len(vs)-1]
	out := mustKubectl(t, nil, "get", "modelversions", "-n", ns, "-l", builders.LabelDetector+"=cards")
	t.Logf("kubectl get modelversions:\n%s", out)
	if !strings.Contains(out, "Serving") || !strings.Contains(out, "Available") {
		t.Errorf("phases in kubectl get modelversions:\n%s", out)
	}

	// The page: the served version, the other one, not the pruned one; and Chromium
	// draws it (the histogram's blue bars and the loss curve).
	var url string
	waitFor(t, "a ready scoring pod", time.Minute, func() (bool, error) {
		u, err := scoringURLs(context.Background(), ns, "cards", 8080)
		if len(u) == 1 {
			url = u[0]
		}
		return len(u) == 1, err
	})
	resp, err := httpClient.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), newer.Spec.Version+" (served)") || !strings.Contains(string(page), older.Spec.Version) ||
		strings.Contains(string(page), first) {
		t.Errorf("model page versions: want %s served, %s listed, %s gone:\n%s", newer.Spec.Version, older.Spec.Version, first, page)
	}
	shot := filepath.Join(env.dir, "model-page.png")
	cmd := exec.Command("chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1100,1000",
		"--screenshot="+shot, url+"/")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(shot)
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if n, m := colourPixels(img, [3]uint8{70, 110, 180}), colourPixels(img, [3]uint8{0x1f, 0x5f, 0xbf}); n < 50 || m < 50 {
		t.Errorf("the page's screenshot (%s) has %d histogram and %d loss-curve pixels", shot, n, m)
	}

	// Pin the older version under load: every answer after the switch carries its
	// digest, none fails.
	var (
		ok, fail atomic.Int64
		mu       sync.Mutex
		digests  []string
		firstErr atomic.Value
	)
	traffic := startLoad(ns, "cards", 8080, 1, 5*time.Millisecond, func(r *detectResponse, err error) {
		if err != nil {
			fail.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		ok.Add(1)
		mu.Lock()
		digests = append(digests, r.Model.Digest)
		mu.Unlock()
	})
	pinned := time.Now()
	mustKubectl(t, nil, "patch", "-n", ns, "detector/cards", "--type=merge", "-p",
		fmt.Sprintf(`{"spec":{"scoring":{"modelVersion":%q}}}`, older.Spec.Version))
	waitFor(t, "the pinned version served", 3*time.Minute, func() (bool, error) {
		d := getDetector(t, ns, "cards")
		return d.Status.ServedVersion == older.Spec.Version && d.Status.ObservedGeneration == d.Generation &&
			readyCondition(d) != nil && readyCondition(d).Status == "True", nil
	})
	switched := time.Since(pinned)
	// "After the switch" is from when a caller can know of it: the load's list of ready
	// pods read after the status said so, and the one request (one worker) that was on
	// its way to the old pod meanwhile answered.
	traffic.awaitRefresh()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(digests) }
	inFlight := count()
	waitFor(t, "the request on its way during the refresh answered", 10*time.Second, func() (bool, error) {
		return count() > inFlight, nil
	})
	mark := count()
	time.Sleep(2 * time.Second)
	traffic.Stop()
	if fail.Load() != 0 {
		t.Errorf("%d of %d requests failed while pinning; first: %v", fail.Load(), fail.Load()+ok.Load(), firstErr.Load())
	}
	for _, d := range digests[mark:] {
		if d != older.Spec.Digest {
			t.Fatalf("after the switch an answer came from %s; want the pinned %s", d, older.Spec.Digest)
		}
	}
	if len(digests) == mark {
		t.Error("no request after the switch")
	}
	t.Logf("pinned %s: served after %s, %d requests, 0 failed; scenario took %s", older.Spec.Version, switched.Round(time.Second),
		ok.Load(), time.Since(start).Round(time.Second))
}

func colourPixels(img stdimage.Image, c [3]uint8) int {
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
