package main

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// chartH is the chart's height, and plotW the width of a panel's plot of
// weight 1, in points; the width follows from the panels drawn.
const chartH, plotW = vg.Length(430), vg.Length(240)

// minChartW keeps the header of a one-panel chart readable.
const minChartW = vg.Length(600)

func init() {
	// Liberation Sans has the metrics of Arial and Helvetica, which the
	// SVG names as fallbacks (see chartSVG): text measured here fits there.
	plot.DefaultFont = font.Font{Typeface: "Liberation", Variant: "Sans"}
}

var (
	colorMe     = color.RGBA{0x1f, 0x77, 0xb4, 0xff}
	colorJWKS   = color.RGBA{0xaa, 0xaa, 0xaa, 0xff}
	colorStores = []color.Color{colorMe, color.RGBA{0xff, 0x7f, 0x0e, 0xff}, color.RGBA{0x2c, 0xa0, 0x2c, 0xff}}
	colorRevoke = color.RGBA{0xd6, 0x27, 0x28, 0xff}
	colorStrict = color.RGBA{0x94, 0x67, 0xbd, 0xff}
	colorGrid   = color.Gray{0xe4}
)

// panel is one plot of the chart, with its legend drawn beside it so that
// it never covers, or is cut by, the data.
type panel struct {
	plot   *plot.Plot
	legend plot.Legend
	// weight is the panel's share of the width left after the legends.
	weight float64
	// caption explains the panel under the chart; "" when it needs nothing.
	caption string
}

// chartPanels returns a panel for each kind of figure the run measured,
// and none for what it did not measure.
func (r *report) chartPanels() ([]*panel, error) {
	var ps []*panel
	if p, err := r.throughputPanel(); err != nil {
		return nil, err
	} else if p != nil {
		ps = append(ps, p)
	}
	if p, err := r.latencyPanel(); err != nil {
		return nil, err
	} else if p != nil {
		ps = append(ps, p)
	}
	return ps, nil
}

// throughputPanel draws the median slice of /me and of the JWKS per
// store, with their ratio under each store.
func (r *report) throughputPanel() (*panel, error) {
	var me, jwks plotter.Values
	var names []string
	top := 0.0
	for _, t := range r.Throughput {
		m, j := median(t.MeRPS), median(t.JWKSRPS)
		if m <= 0 && j <= 0 {
			continue
		}
		me, jwks = append(me, m), append(jwks, j)
		names = append(names, fmt.Sprintf("%s\nratio %.3f", t.Store, floor3(t.Ratio())))
		top = max(top, m, j)
	}
	if len(names) == 0 {
		return nil, nil
	}
	p := newPlot("Throughput (median slice)")
	p.Y.Label.Text = "requests per second"
	p.Y.Min, p.Y.Max = 0, top*1.15
	p.Y.Tick.Marker = rateTicks{}
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	grid.Horizontal.Color = colorGrid
	p.Add(grid)
	const w = vg.Length(34)
	var leg []plot.Thumbnailer
	for k, s := range []struct {
		v plotter.Values
		c color.Color
	}{{me, colorMe}, {jwks, colorJWKS}} {
		b, err := plotter.NewBarChart(s.v, w)
		if err != nil {
			return nil, err
		}
		b.Color, b.LineStyle.Width = s.c, 0
		b.Offset = (w/2 + 2) * vg.Length(2*k-1)
		labels := plotter.XYLabels{XYs: make(plotter.XYs, len(s.v))}
		for i, v := range s.v {
			labels.XYs[i] = plotter.XY{X: float64(i), Y: v}
			labels.Labels = append(labels.Labels, thousands(int(math.Round(v))))
		}
		l, err := plotter.NewLabels(labels)
		if err != nil {
			return nil, err
		}
		for i := range l.TextStyle {
			l.TextStyle[i].Font.Size = 9
			l.TextStyle[i].XAlign = draw.XCenter
		}
		l.Offset = vg.Point{X: b.Offset, Y: 3}
		p.Add(b, l)
		leg = append(leg, b)
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(names))-0.4
	lg := newLegend()
	lg.Add("GET /api/v1/me", leg[0])
	lg.Add("GET /.well-known/jwks.json", leg[1])
	return &panel{plot: p, legend: lg, weight: 0.8 + 0.2*float64(len(names)),
		caption: "Throughput: a closed loop of keep-alive clients alternating slices of /me and of the JWKS on one server; ratio: median /me slice ÷ median JWKS slice."}, nil
}

// rateTicks labels a linear axis every 1, 2 or 5 times a power of ten,
// the smallest step that gives at most 10 labels, with a thousands
// separator.
type rateTicks struct{}

func (rateTicks) Ticks(lo, hi float64) []plot.Tick {
	e := math.Floor(math.Log10(hi - lo))
	var step float64
	for _, m := range []float64{0.1, 0.2, 0.5, 1} {
		if step = m * math.Pow(10, e); (hi-lo)/step <= 10 {
			break
		}
	}
	decimals := max(0, int(math.Ceil(-math.Log10(step)-1e-9)))
	var ts []plot.Tick
	for i := math.Ceil(lo/step - 1e-9); i*step <= hi*(1+1e-9); i++ {
		v := i * step
		label := thousands(int(math.Round(v)))
		if decimals > 0 {
			label = fmt.Sprintf("%.*f", decimals, v)
		}
		ts = append(ts, plot.Tick{Value: v, Label: label})
		if minor := v + step/2; minor <= hi {
			ts = append(ts, plot.Tick{Value: minor})
		}
	}
	return ts
}

// quantiles are the points of each latency line.
var quantiles = []struct {
	label string
	q     float64
}{{"p50", .5}, {"p90", .9}, {"p99", .99}, {"p99.9", .999}, {"max", 1}}

// latencySeries is one line of the latency panel.
type latencySeries struct {
	name  string
	color color.Color
	dash  bool
	h     *histogram
	// revocation is a revocation's visibility, not a request's latency.
	revocation bool
}

func (r *report) latencySeries() []latencySeries {
	var ss []latencySeries
	for i, t := range r.Throughput {
		c := colorStores[i%len(colorStores)]
		if t.Me.Count() > 0 {
			ss = append(ss, latencySeries{name: "/me, " + t.Store, color: c, h: &t.Me})
		}
		if t.JWKS.Count() > 0 {
			ss = append(ss, latencySeries{name: "JWKS, " + t.Store, color: c, dash: true, h: &t.JWKS})
		}
	}
	for _, v := range r.Revocation {
		if v.Visible.Count() == 0 {
			continue
		}
		name, c := "revoked → refused on B", colorRevoke
		if v.Strict {
			name, c = "same, strict mode", colorStrict
		}
		ss = append(ss, latencySeries{name: name, color: c, h: &v.Visible, revocation: true})
	}
	return ss
}

// latencyPanel draws the percentiles of every latency the run recorded on
// a log scale: they span microseconds to tens of milliseconds.
func (r *report) latencyPanel() (*panel, error) {
	ss := r.latencySeries()
	lo, hi := math.Inf(1), 0.0
	for _, s := range ss {
		for _, q := range quantiles {
			if v := s.h.Quantile(q.q).Seconds(); v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if hi == 0 {
		return nil, nil
	}
	dlo, dhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dhi == dlo {
		dhi++
	}
	floor := math.Pow(10, dlo)
	p := newPlot("Latency (log scale)")
	p.Y.Scale = plot.LogScale{}
	p.Y.Min, p.Y.Max = floor, math.Pow(10, dhi)
	p.Y.Tick.Marker = durationTicks{}
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	grid.Horizontal.Color = colorGrid
	p.Add(grid)
	lg := newLegend()
	for _, s := range ss {
		xys := make(plotter.XYs, len(quantiles))
		for i, q := range quantiles {
			// A zero (a revocation B refused before the DELETE returned)
			// has no place on a log scale: it sits on the axis.
			xys[i] = plotter.XY{X: float64(i), Y: max(s.h.Quantile(q.q).Seconds(), floor)}
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = s.color, vg.Points(1.8)
		if s.dash {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		pts.Color, pts.Shape, pts.Radius = s.color, draw.CircleGlyph{}, vg.Points(2.2)
		p.Add(l, pts)
		lg.Add(s.name, l)
	}
	names := make([]string, len(quantiles))
	for i, q := range quantiles {
		names[i] = q.label
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.3, float64(len(quantiles))-0.7
	var caption []string
	for _, s := range ss {
		if s.revocation {
			caption = append(caption, "Revocation: from the DELETE's answer on A to the first 401 from B; 0 (B refused before the DELETE returned) is drawn on the axis.")
			break
		}
	}
	return &panel{plot: p, legend: lg, weight: 1.3, caption: strings.Join(caption, " ")}, nil
}

func newPlot(title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = 13
	p.Title.Padding = 8
	p.X.Tick.Label.Font.Size = 10
	p.Y.Tick.Label.Font.Size = 10
	p.Y.Label.TextStyle.Font.Size = 10
	p.X.Padding, p.Y.Padding = 0, 0
	return p
}

func newLegend() plot.Legend {
	l := plot.NewLegend()
	l.TextStyle.Font.Size = 10
	l.Top, l.Left = true, true
	l.Padding = 3
	return l
}

// durationTicks labels a log axis in seconds with durations: every power
// of ten, and 2 and 5 times one when the axis spans two decades or less.
type durationTicks struct{}

func (durationTicks) Ticks(lo, hi float64) []plot.Tick {
	d0, d1 := int(math.Floor(math.Log10(lo)+1e-9)), int(math.Ceil(math.Log10(hi)-1e-9))
	var ts []plot.Tick
	for d := d0; d <= d1; d++ {
		for m := 1; m < 10; m++ {
			v := float64(m) * math.Pow10(d)
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || (d1-d0 <= 2 && (m == 2 || m == 5)) {
				t.Label = tickDur(time.Duration(math.Round(v * 1e9)))
			}
			ts = append(ts, t)
		}
	}
	return ts
}

// tickDur labels a duration of one significant digit.
func tickDur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%d ns", d)
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d/time.Microsecond)
	case d < time.Second:
		return fmt.Sprintf("%d ms", d/time.Millisecond)
	default:
		return fmt.Sprintf("%d s", d/time.Second)
	}
}

// chartLayout is where each part of the chart goes.
type chartLayout struct {
	header, caption []string
	// headerStyle is the first header line's; textStyle the others'.
	headerStyle, textStyle text.Style
	plots, legends         []vg.Rectangle
	headerY, captionY      vg.Length // top of the header, top of the caption
	width                  vg.Length // of the whole chart
}

const chartMargin, legendGap, panelGap = vg.Length(12), vg.Length(10), vg.Length(28)

func textStyle(size vg.Length) text.Style {
	return text.Style{
		Color:   color.Black,
		Font:    font.From(plot.DefaultFont, size),
		XAlign:  draw.XLeft,
		YAlign:  draw.YTop,
		Handler: plot.DefaultTextHandler,
	}
}

// layout places the header (title and the command that wrote the chart),
// the panels, each with its legend on its right, and the caption.
func (r *report) layout(ps []*panel) chartLayout {
	l := chartLayout{headerStyle: textStyle(14), textStyle: textStyle(10)}
	l.textStyle.Color = color.Gray{0x44}
	// A viewer without Liberation Sans, Arial or Helvetica draws with a
	// wider font: leave room for it.
	const slack = 1.2
	legendW := make([]vg.Length, len(ps))
	weights := 0.0
	l.width = 2*chartMargin + vg.Length(max(len(ps)-1, 0))*panelGap
	for i, p := range ps {
		legendW[i] = p.legend.Rectangle(draw.Canvas{}).Size().X * slack
		weights += p.weight
		l.width += legendW[i] + legendGap + plotW*vg.Length(p.weight)
	}
	l.width = max(l.width, minChartW)
	width := l.width - 2*chartMargin
	l.header = append([]string{"sessiond benchmarks, " + r.Started.UTC().Format("2006-01-02 15:04 MST")},
		wrapText(l.textStyle, "Written by "+r.command(), width/slack)...)
	for _, p := range ps {
		if p.caption != "" {
			l.caption = append(l.caption, wrapText(l.textStyle, p.caption, width/slack)...)
		}
	}

	lineH := func(s text.Style) vg.Length { return s.Height("Ag") * 1.25 }
	l.headerY = chartH - chartMargin
	top := l.headerY - lineH(l.headerStyle) - vg.Length(len(l.header)-1)*lineH(l.textStyle) - 10
	l.captionY = chartMargin + vg.Length(len(l.caption))*lineH(l.textStyle)
	bottom := l.captionY + 8
	if len(l.caption) == 0 {
		bottom = chartMargin
	}

	avail := width - vg.Length(max(len(ps)-1, 0))*panelGap
	for i := range ps {
		avail -= legendW[i] + legendGap
	}
	x := chartMargin
	for i, p := range ps {
		w := avail * vg.Length(p.weight/weights)
		l.plots = append(l.plots, vg.Rectangle{Min: vg.Point{X: x, Y: bottom}, Max: vg.Point{X: x + w, Y: top}})
		x += w + legendGap
		// The legend starts level with the top of the data area, under
		// the panel's title.
		ly := top - p.plot.Title.TextStyle.Rectangle(p.plot.Title.Text).Size().Y - p.plot.Title.Padding
		l.legends = append(l.legends, vg.Rectangle{Min: vg.Point{X: x, Y: bottom}, Max: vg.Point{X: x + legendW[i], Y: ly}})
		x += legendW[i] + panelGap
	}
	return l
}

// wrapText cuts s at spaces into lines no wider than w.
func wrapText(sty text.Style, s string, w vg.Length) []string {
	var lines []string
	line := ""
	for _, word := range strings.Split(s, " ") {
		if line != "" && sty.Width(line+" "+word) > w {
			lines = append(lines, line)
			line = word
			continue
		}
		if line == "" {
			line = word
		} else {
			line += " " + word
		}
	}
	return append(lines, line)
}

// chartSVG draws the chart, or returns nil when the run measured nothing
// it shows.
func (r *report) chartSVG() ([]byte, error) {
	ps, err := r.chartPanels()
	if err != nil || len(ps) == 0 {
		return nil, err
	}
	l := r.layout(ps)
	c := vgsvg.New(l.width, chartH)
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())

	y := l.headerY
	for i, s := range l.header {
		sty := l.textStyle
		if i == 0 {
			sty = l.headerStyle
		}
		dc.FillText(sty, vg.Point{X: chartMargin, Y: y}, s)
		y -= sty.Height("Ag") * 1.25
	}
	y = l.captionY
	for _, s := range l.caption {
		dc.FillText(l.textStyle, vg.Point{X: chartMargin, Y: y}, s)
		y -= l.textStyle.Height("Ag") * 1.25
	}
	for i, p := range ps {
		p.plot.Draw(draw.Canvas{Canvas: c, Rectangle: l.plots[i]})
		p.legend.Draw(draw.Canvas{Canvas: c, Rectangle: l.legends[i]})
	}
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return nil, err
	}
	// Name metric-compatible fonts for viewers without Liberation Sans.
	return bytes.ReplaceAll(b.Bytes(), []byte("font-family:Liberation Sans;"),
		[]byte("font-family:'Liberation Sans',Arial,Helvetica,sans-serif;")), nil
}

// chartAlt describes the chart's panels, for the report's image link.
func (r *report) chartAlt() string {
	ps, _ := r.chartPanels()
	var ts []string
	for _, p := range ps {
		ts = append(ts, p.plot.Title.Text)
	}
	return strings.Join(ts, " and ")
}
