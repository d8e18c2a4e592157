package serve

import (
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/seasonal"
)

// The model page: GET / shows the served model (what it is, what data it saw, its
// score histogram with the threshold, its loss per epoch) and every version on the
// volume. Plain HTML and inline SVG: no script, so it renders the same through
// kubectl port-forward, a proxy, or a headless browser.

// versionRow is one version in the page's table.
type versionRow struct {
	Version, TrainedAt, Threshold, Loss, ValLoss, Extra string
	Served                                              bool
	Err                                                 string
}

type pageData struct {
	Name, Version, Digest, Type, Rule, Threshold, TrainedAt, Kadet string
	Features, Seasons                                              string
	Rows                                                           int
	Prometheus                                                     *artifact.PrometheusSource
	HasReport                                                      bool
	Loss                                                           template.HTML
	Versions                                                       []versionRow
	Backtest                                                       *backtestView
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kadet: {{.Name}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:24px 0 8px}
dl{display:grid;grid-template-columns:max-content auto;gap:4px 16px;margin:0}
dt{color:#666} dd{margin:0;font-family:ui-monospace,monospace}
table{border-collapse:collapse} td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;font-family:ui-monospace,monospace;font-size:13px}
th{font-family:system-ui,sans-serif;color:#666} tr.served td{background:#eef5ff;font-weight:600}
.plots{display:flex;gap:24px;flex-wrap:wrap} figure{margin:0} figcaption{color:#666;font-size:13px}
</style></head><body>
<h1>{{.Name}}</h1>
<p>kadet anomaly detector, serving model <b>{{.Version}}</b></p>
<dl>
<dt>model</dt><dd>{{.Type}}{{if .Rule}}, scoring rule {{.Rule}}{{end}}</dd>
<dt>threshold</dt><dd>{{.Threshold}} (raw score; a score above 1 is an anomaly)</dd>
<dt>digest</dt><dd>{{.Digest}}</dd>
<dt>trained</dt><dd>{{.TrainedAt}} by detector {{.Kadet}}</dd>
<dt>features</dt><dd>{{.Features}}</dd>
{{with .Seasons}}<dt>seasons</dt><dd>{{.}}</dd>{{end}}
<dt>rows</dt><dd>{{.Rows}}</dd>
{{with .Prometheus}}<dt>prometheus</dt><dd>{{.URL}}, {{.Start.UTC.Format "2006-01-02 15:04"}} to {{.End.UTC.Format "2006-01-02 15:04"}} at {{.Step}}, {{.Rows}} rows of {{.Entities}} entities</dd>
<dt>queries</dt><dd>{{range .Queries}}{{.Name}} = {{.Query}}<br>{{end}}</dd>
<dt>rows digest</dt><dd>{{.Digest}}</dd>{{end}}
</dl>
<div class="plots">
<figure>{{if .HasReport}}<img src="report.png?version={{.Version}}" width="480" alt="histogram of held-out scores with the threshold">{{else}}<p>no score histogram in this version</p>{{end}}
<figcaption>Held-out scores and the threshold (red)</figcaption></figure>
<figure>{{.Loss}}<figcaption>Loss per epoch: training (blue), validation (orange)</figcaption></figure>
</div>
{{with .Backtest}}<h2>Backtest</h2>
<p>What this version flagged on the history held out of its training, scored as a watching pod scores it: {{.Summary}}.
Each plot shows the metric (grey), the band the model expects it in (green), the score (purple, log scale) against the threshold 1 (red), and the episodes (shaded).</p>
{{if .Entities}}<form method="get"><label>entity <select name="entity"><option value="">the {{len .Plots}} with the most episodes</option>{{range .Entities}}<option value="{{.}}"{{if eq . $.Backtest.Picked}} selected{{end}}>{{.}}</option>{{end}}</select></label> <button>show</button></form>{{end}}
{{range .Plots}}<figure>{{.}}</figure>{{end}}{{with .Note}}<p>{{.}}</p>{{end}}{{end}}
<h2>Versions on the volume</h2>
<table><tr><th>version</th><th>trained</th><th>threshold</th><th>loss</th><th>val loss</th><th>labels</th></tr>
{{range .Versions}}<tr{{if .Served}} class="served"{{end}}><td>{{.Version}}{{if .Served}} (served){{end}}</td>{{if .Err}}<td colspan="5">{{.Err}}</td>{{else}}<td>{{.TrainedAt}}</td><td>{{.Threshold}}</td><td>{{.Loss}}</td><td>{{.ValLoss}}</td><td>{{.Extra}}</td>{{end}}</tr>
{{end}}</table>
</body></html>
`))

func (s *Server) page(w http.ResponseWriter, req *http.Request) {
	l := s.current.Load()
	if l == nil {
		writeError(w, http.StatusServiceUnavailable, "no model loaded yet")
		return
	}
	m := l.model.Meta
	d := pageData{
		Name: l.name, Version: l.version, Digest: l.model.Digest, Type: m.Model.Type, Rule: m.ScoringRule,
		Threshold: fmt.Sprintf("%.6g", m.Threshold.Value), TrainedAt: m.CreatedAt.UTC().Format(time.RFC3339), Kadet: m.Kadet,
		Features: strings.Join(m.Features, ", "), Rows: m.Training.Rows, Prometheus: m.Prometheus,
		Loss: lossSVG(m.Training.History),
	}
	if p := m.Seasons; p != nil {
		d.Seasons = seasonsText(p)
	}
	if len(m.Features) > 12 {
		d.Features = fmt.Sprintf("%d (%s, ...)", len(m.Features), strings.Join(m.Features[:6], ", "))
	}
	if _, err := os.Stat(filepath.Join(s.opts.ModelDir, l.version, artifact.ReportFileName)); err == nil {
		d.HasReport = true
	}
	if r, err := readBacktest(filepath.Join(s.opts.ModelDir, l.version)); err != nil {
		d.Backtest = &backtestView{Note: "the backtest cannot be shown: " + err.Error()}
	} else if r != nil {
		d.Backtest = backtestSection(r, req.URL.Query().Get("entity"))
	}
	versions, _ := artifact.Versions(s.opts.ModelDir)
	for _, v := range slices.Backward(versions) {
		row := versionRow{Version: v, Served: v == l.version}
		path, _ := artifact.Path(s.opts.ModelDir, v)
		if vm, err := artifact.ReadMeta(path); err != nil {
			row.Err = err.Error()
		} else {
			met := vm.Training.Metrics
			row.TrainedAt = vm.CreatedAt.UTC().Format("2006-01-02 15:04:05")
			row.Threshold = fmt.Sprintf("%.6g", vm.Threshold.Value)
			row.Loss, row.ValLoss = metric(met, "loss"), metric(met, "valLoss")
			var extra []string
			for _, k := range []string{"auroc", "f1"} {
				if _, ok := met[k]; ok {
					extra = append(extra, k+" "+metric(met, k))
				}
			}
			row.Extra = strings.Join(extra, ", ")
		}
		d.Versions = append(d.Versions, row)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTemplate.Execute(w, d); err != nil {
		s.log.Error("model page", "error", err.Error())
	}
}

// seasonsText says what a model's seasonal factors divide scores by, hour by hour.
func seasonsText(p *seasonal.Profile) string {
	var b strings.Builder
	fmt.Fprintf(&b, "each row's raw score is divided by its UTC hour of the %s's factor:", strings.ToLower(p.Period))
	for h, f := range p.Factors {
		if p.Period == seasonal.Week && h%24 == 0 {
			fmt.Fprintf(&b, " %s", time.Weekday((h/24 + 1) % 7).String()[:3])
		}
		fmt.Fprintf(&b, " %02d:00 %.2f", h%24, f)
		if h < len(p.Factors)-1 {
			b.WriteByte(',')
		}
	}
	return b.String()
}

func metric(m map[string]float64, k string) string {
	v, ok := m[k]
	if !ok || math.IsNaN(v) {
		return ""
	}
	return fmt.Sprintf("%.5g", v)
}

// reportPNG serves a version's score histogram from the model directory.
func (s *Server) reportPNG(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query().Get("version")
	if v == "" {
		if l := s.current.Load(); l != nil {
			v = l.version
		}
	}
	if _, err := artifact.Path(s.opts.ModelDir, v); err != nil || v == "" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("version %q is not a model version", v))
		return
	}
	b, err := os.ReadFile(filepath.Join(s.opts.ModelDir, v, artifact.ReportFileName))
	if errors.Is(err, os.ErrNotExist) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("version %s has no %s", v, artifact.ReportFileName))
		return
	} else if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write(b)
}

// Colours of the loss curves: the page's test finds them in a screenshot.
const (
	lossColour    = "#1f5fbf"
	valLossColour = "#e8711a"
)

// lossSVG draws the loss per epoch (and the validation loss) as an inline SVG.
func lossSVG(h []artifact.EpochLoss) template.HTML {
	const w, ht, left, bottom, top, right = 480.0, 300.0, 56.0, 32.0, 12.0, 12.0
	if len(h) == 0 {
		return template.HTML(`<p>no loss history in this version</p>`)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, e := range h {
		lo, hi = math.Min(lo, e.Loss), math.Max(hi, e.Loss)
		if e.ValLoss != nil {
			lo, hi = math.Min(lo, *e.ValLoss), math.Max(hi, *e.ValLoss)
		}
	}
	if hi == lo {
		hi = lo + 1
	}
	n := len(h)
	x := func(i int) float64 {
		if n == 1 {
			return left + (w-left-right)/2
		}
		return left + float64(i)*(w-left-right)/float64(n-1)
	}
	y := func(v float64) float64 { return top + (hi-v)/(hi-lo)*(ht-top-bottom) }
	var loss, val strings.Builder
	for i, e := range h {
		fmt.Fprintf(&loss, "%.1f,%.1f ", x(i), y(e.Loss))
		if e.ValLoss != nil {
			fmt.Fprintf(&val, "%.1f,%.1f ", x(i), y(*e.ValLoss))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" role="img" aria-label="loss per epoch">`, w, ht)
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="#fafafa" stroke="#bbb"/>`, left, top, w-left-right, ht-top-bottom)
	fmt.Fprintf(&b, `<text x="4" y="%.0f" font-size="11">%.3g</text><text x="4" y="%.0f" font-size="11">%.3g</text>`, top+10, hi, ht-bottom, lo)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11">epoch 1</text><text x="%.0f" y="%.0f" font-size="11" text-anchor="end">epoch %d</text>`,
		left, ht-12, w-right, ht-12, h[n-1].Epoch)
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="3"/>`, strings.TrimSpace(loss.String()), lossColour)
	if val.Len() > 0 {
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="3"/>`, strings.TrimSpace(val.String()), valLossColour)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built here from numbers only
}
