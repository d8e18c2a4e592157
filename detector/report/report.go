// Package report draws the training report: a histogram of held-out scores with the
// calibrated threshold marked.
package report

import (
	"bytes"
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Histogram renders scores as a PNG histogram with a vertical line at threshold.
func Histogram(title string, scores []float32, threshold float64) ([]byte, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "raw score (anomaly above the red line)"
	p.Y.Label.Text = "held-out rows"
	vals := make(plotter.Values, len(scores))
	hi := threshold
	for i, s := range scores {
		vals[i] = float64(s)
		hi = max(hi, float64(s))
	}
	top := 1.0
	if len(vals) > 0 {
		h, err := plotter.NewHist(vals, 40)
		if err != nil {
			return nil, fmt.Errorf("histogram: %w", err)
		}
		h.FillColor = color.RGBA{R: 70, G: 110, B: 180, A: 255}
		p.Add(h)
		for _, b := range h.Bins {
			top = max(top, b.Weight)
		}
	}
	line, err := plotter.NewLine(plotter.XYs{{X: threshold, Y: 0}, {X: threshold, Y: top}})
	if err != nil {
		return nil, err
	}
	line.Color = color.RGBA{R: 220, A: 255}
	line.Width = vg.Points(2)
	p.Add(line)
	p.Legend.Add(fmt.Sprintf("threshold %.4g", threshold), line)
	p.X.Max = hi * 1.05
	p.Y.Min = 0
	canvas := vgimg.PngCanvas{Canvas: vgimg.New(8*vg.Inch, 4.5*vg.Inch)}
	p.Draw(draw.New(canvas))
	var buf bytes.Buffer
	if _, err := canvas.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
