package webui

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A small server-side chart renderer: one series over a time window as inline SVG
// (a polyline, two axes, the series' min and max and the window's ends as labels), with
// an accessible title and description. It needs no script and no inline style, so it
// renders under the dashboard's CSP; its colours come from app.css.

// chartPoint is one value at one time.
type chartPoint struct {
	T time.Time
	V float64
}

// chartFigure is a drawn chart with its caption, as a page shows it.
type chartFigure struct {
	Title string
	SVG   template.HTML
}

// chart is one series to draw over [From, To].
type chart struct {
	ID       string // unique on the page: the SVG's title and desc ids derive from it
	Title    string
	From, To time.Time
	Points   []chartPoint // in time order
	Format   func(float64) string
}

// The SVG's coordinate box: the plot area and the margins the labels sit in.
const (
	chartW, chartH         = 600, 180
	plotL, plotR           = 78, 590
	plotT, plotB           = 12, 150
	chartBuckets           = 300 // at most this many points are drawn (two px each)
	chartGapSteps          = 3   // a gap longer than this many typical steps breaks the line
	chartNoSamples         = "No samples yet"
	chartTimeShort         = "15:04"
	chartTimeLong          = "Jan 2 15:04"
	chartLongWindowAtLeast = 12 * time.Hour
)

// svg renders the chart. Points outside the window are left out; with none left, the
// frame says "No samples yet".
func (c *chart) svg() template.HTML {
	format := c.Format
	if format == nil {
		format = func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	}
	pts := c.downsample()
	var b strings.Builder
	id := html.EscapeString(c.ID)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="%s" viewBox="0 0 %d %d" role="img" aria-labelledby="%s-title %s-desc" data-points="%d">`,
		id, chartW, chartH, id, id, len(pts))
	fmt.Fprintf(&b, `<title id="%s-title">%s</title>`, id, html.EscapeString(c.Title))
	fmt.Fprintf(&b, `<desc id="%s-desc">%s</desc>`, id, html.EscapeString(c.describe(pts, format)))
	// Axes: y on the left, x (time) at the bottom.
	fmt.Fprintf(&b, `<path class="chart-axis" d="M%d %dV%dH%d"/>`, plotL, plotT, plotB, plotR)
	layout := chartTimeShort
	if c.To.Sub(c.From) >= chartLongWindowAtLeast {
		layout = chartTimeLong
	}
	fmt.Fprintf(&b, `<text class="chart-label" x="%d" y="%d">%s</text>`, plotL, plotB+20, html.EscapeString(c.From.UTC().Format(layout)))
	fmt.Fprintf(&b, `<text class="chart-label" x="%d" y="%d" text-anchor="end">%s UTC</text>`, plotR, plotB+20, html.EscapeString(c.To.UTC().Format(layout)))
	if len(pts) == 0 {
		fmt.Fprintf(&b, `<text class="chart-empty" x="%d" y="%d" text-anchor="middle">%s</text></svg>`, (plotL+plotR)/2, (plotT+plotB)/2, chartNoSamples)
		return template.HTML(b.String())
	}
	lo, hi := pts[0].V, pts[0].V
	for _, p := range pts {
		lo, hi = min(lo, p.V), max(hi, p.V)
	}
	// A constant series is drawn across the middle.
	yLo, yHi := lo, hi
	if yHi == yLo {
		pad := math.Max(math.Abs(yLo)*0.1, 1)
		yLo, yHi = yLo-pad, yHi+pad
	}
	span := c.To.Sub(c.From).Seconds()
	if span <= 0 {
		span = 1
	}
	x := func(t time.Time) float64 { return plotL + (plotR-plotL)*t.Sub(c.From).Seconds()/span }
	y := func(v float64) float64 { return plotB - (plotB-plotT)*(v-yLo)/(yHi-yLo) }
	fmt.Fprintf(&b, `<text class="chart-label" x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle" data-label="max">%s</text>`, plotL-6, y(hi), html.EscapeString(format(hi)))
	if hi != lo {
		fmt.Fprintf(&b, `<text class="chart-label" x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle" data-label="min">%s</text>`, plotL-6, y(lo), html.EscapeString(format(lo)))
	}
	for _, seg := range segments(pts) {
		if len(seg) == 1 {
			fmt.Fprintf(&b, `<circle class="chart-dot" cx="%.1f" cy="%.1f" r="2.5"/>`, x(seg[0].T), y(seg[0].V))
			continue
		}
		b.WriteString(`<polyline class="chart-line" fill="none" points="`)
		for i, p := range seg {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", x(p.T), y(p.V))
		}
		b.WriteString(`"/>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// describe is the chart's text for screen readers: its window, how many samples, the
// range and the latest value.
func (c *chart) describe(pts []chartPoint, format func(float64) string) string {
	if len(pts) == 0 {
		return chartNoSamples + " between " + c.From.UTC().Format(time.RFC3339) + " and " + c.To.UTC().Format(time.RFC3339) + "."
	}
	lo, hi := pts[0].V, pts[0].V
	for _, p := range pts {
		lo, hi = min(lo, p.V), max(hi, p.V)
	}
	last := pts[len(pts)-1]
	return fmt.Sprintf("%s from %s to %s UTC: between %s and %s; latest %s at %s.", c.Title,
		c.From.UTC().Format(chartTimeLong), c.To.UTC().Format(chartTimeLong), format(lo), format(hi), format(last.V), last.T.UTC().Format(chartTimeLong))
}

// downsample keeps the points inside the window and averages them into at most
// chartBuckets buckets of time (so a 7-day window of 15 s samples stays a light SVG).
func (c *chart) downsample() []chartPoint {
	var in []chartPoint
	for _, p := range c.Points {
		if !p.T.Before(c.From) && !p.T.After(c.To) && !math.IsNaN(p.V) && !math.IsInf(p.V, 0) {
			in = append(in, p)
		}
	}
	if len(in) <= chartBuckets {
		return in
	}
	span := c.To.Sub(c.From)
	var out []chartPoint
	bucket, n := -1, 0
	var sumT, sumV float64
	flush := func() {
		if n > 0 {
			out = append(out, chartPoint{T: c.From.Add(time.Duration(sumT / float64(n))), V: sumV / float64(n)})
		}
	}
	for _, p := range in {
		off := p.T.Sub(c.From)
		k := int(int64(off) * chartBuckets / int64(span))
		if k != bucket {
			flush()
			bucket, n, sumT, sumV = k, 0, 0, 0
		}
		n++
		sumT += float64(off)
		sumV += p.V
	}
	flush()
	return out
}

// segments splits the points where a gap is much longer than the usual step (the
// server was not reporting): the line is not drawn across it.
func segments(pts []chartPoint) [][]chartPoint {
	if len(pts) < 3 {
		if len(pts) == 0 {
			return nil
		}
		return [][]chartPoint{pts}
	}
	steps := make([]time.Duration, len(pts)-1)
	for i := 1; i < len(pts); i++ {
		steps[i-1] = pts[i].T.Sub(pts[i-1].T)
	}
	sorted := slices.Clone(steps)
	slices.Sort(sorted)
	limit := sorted[len(sorted)/2] * chartGapSteps
	var out [][]chartPoint
	start := 0
	for i, s := range steps {
		if limit > 0 && s > limit {
			out = append(out, pts[start:i+1])
			start = i + 1
		}
	}
	return append(out, pts[start:])
}
