package webui

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// svgTree is what the tests read back from a chart: it must parse as XML.
type svgTree struct {
	XMLName   xml.Name `xml:"svg"`
	NS        string   `xml:"xmlns,attr"`
	Role      string   `xml:"role,attr"`
	Labelled  string   `xml:"aria-labelledby,attr"`
	Title     svgText  `xml:"title"`
	Desc      svgText  `xml:"desc"`
	Texts     []svgLbl `xml:"text"`
	Polylines []struct {
		Points string `xml:"points,attr"`
	} `xml:"polyline"`
	Circles []struct {
		CX string `xml:"cx,attr"`
	} `xml:"circle"`
}

type svgText struct {
	ID   string `xml:"id,attr"`
	Text string `xml:",chardata"`
}

type svgLbl struct {
	Label string `xml:"data-label,attr"`
	Text  string `xml:",chardata"`
}

func parseSVG(t *testing.T, c chart) svgTree {
	t.Helper()
	out := string(c.svg())
	var tree svgTree
	d := xml.NewDecoder(strings.NewReader(out))
	if err := d.Decode(&tree); err != nil {
		t.Fatalf("not valid SVG/XML: %v\n%s", err, out)
	}
	if _, err := d.Token(); err != io.EOF {
		t.Fatalf("content after the svg element: %v\n%s", err, out)
	}
	if tree.NS != "http://www.w3.org/2000/svg" || tree.Role != "img" || strings.Contains(out, "style=") || strings.Contains(out, "<script") {
		t.Fatalf("namespace %q, role %q, or inline style/script:\n%s", tree.NS, tree.Role, out)
	}
	if tree.Labelled != c.ID+"-title "+c.ID+"-desc" || tree.Title.ID != c.ID+"-title" || tree.Desc.ID != c.ID+"-desc" || tree.Title.Text != c.Title {
		t.Fatalf("accessible name: labelledby %q, title %+v, desc id %q", tree.Labelled, tree.Title, tree.Desc.ID)
	}
	return tree
}

func labels(tr svgTree) map[string]string {
	m := map[string]string{}
	for _, l := range tr.Texts {
		if l.Label != "" {
			m[l.Label] = l.Text
		}
	}
	return m
}

// TestChartSVG: the renderer gives valid, accessible SVG without inline style for no
// point (the "No samples yet" text), one point (a dot), many points (a line with its
// min and max labelled), a constant series (one label, no division by zero) and a gap
// (the line breaks); escaping holds and a long series is thinned.
func TestChartSVG(t *testing.T) {
	to := time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC)
	from := to.Add(-time.Hour)
	series := func(n int, step time.Duration, v func(i int) float64) []chartPoint {
		var out []chartPoint
		for i := range n {
			out = append(out, chartPoint{T: from.Add(time.Duration(i+1) * step), V: v(i)})
		}
		return out
	}

	t.Run("none", func(t *testing.T) {
		tr := parseSVG(t, chart{ID: "c0", Title: "Pool <used> & \"free\"", From: from, To: to})
		if len(tr.Polylines) != 0 || len(tr.Circles) != 0 || !strings.Contains(tr.Desc.Text, "No samples yet") {
			t.Fatalf("empty chart: %+v", tr)
		}
		found := false
		for _, l := range tr.Texts {
			found = found || l.Text == "No samples yet"
		}
		if !found {
			t.Fatal("the empty chart does not say No samples yet")
		}
	})
	t.Run("outside the window", func(t *testing.T) {
		tr := parseSVG(t, chart{ID: "c0b", Title: "x", From: from, To: to, Points: []chartPoint{{T: from.Add(-time.Minute), V: 5}}})
		if len(tr.Polylines)+len(tr.Circles) != 0 {
			t.Fatal("a point before the window was drawn")
		}
	})
	t.Run("one", func(t *testing.T) {
		tr := parseSVG(t, chart{ID: "c1", Title: "Sessions", From: from, To: to, Points: series(1, time.Minute, func(int) float64 { return 3 })})
		if len(tr.Circles) != 1 || len(tr.Polylines) != 0 || labels(tr)["max"] != "3" {
			t.Fatalf("one point: %+v", tr)
		}
	})
	t.Run("many", func(t *testing.T) {
		tr := parseSVG(t, chart{ID: "c2", Title: "Used", From: from, To: to, Points: series(50, time.Minute, func(i int) float64 { return float64(10 + i) }),
			Format: func(v float64) string { return bytesFigure(v * (1 << 30)) }})
		if len(tr.Polylines) != 1 || len(strings.Fields(tr.Polylines[0].Points)) != 50 {
			t.Fatalf("many points: %+v", tr.Polylines)
		}
		if l := labels(tr); l["min"] != "10.0 GiB" || l["max"] != "59.0 GiB" {
			t.Fatalf("min/max labels: %v", l)
		}
		if !strings.Contains(tr.Desc.Text, "latest 59.0 GiB") {
			t.Fatalf("desc: %q", tr.Desc.Text)
		}
		// Every point lies in the plot area.
		for _, p := range strings.Fields(tr.Polylines[0].Points) {
			var x, y float64
			if _, err := fmt.Sscan(strings.Replace(p, ",", " ", 1), &x, &y); err != nil || x < plotL || x > plotR || y < plotT || y > plotB {
				t.Fatalf("point %q outside the plot (%v)", p, err)
			}
		}
	})
	t.Run("constant", func(t *testing.T) {
		tr := parseSVG(t, chart{ID: "c3", Title: "Flat", From: from, To: to, Points: series(10, time.Minute, func(int) float64 { return 0 })})
		if len(tr.Polylines) != 1 || strings.Contains(tr.Polylines[0].Points, "NaN") || strings.Contains(tr.Polylines[0].Points, "Inf") {
			t.Fatalf("constant series: %+v", tr.Polylines)
		}
		if l := labels(tr); l["max"] != "0" || l["min"] != "" {
			t.Fatalf("constant series labels: %v", l)
		}
	})
	t.Run("gap", func(t *testing.T) {
		pts := series(10, time.Minute, func(int) float64 { return 1 })
		pts = append(pts, series(10, time.Minute, func(i int) float64 { return 2 })...)
		for i := 10; i < 20; i++ {
			pts[i].T = pts[i].T.Add(30 * time.Minute)
		}
		tr := parseSVG(t, chart{ID: "c4", Title: "Gap", From: from, To: to, Points: pts})
		if len(tr.Polylines) != 2 {
			t.Fatalf("a 30-minute gap in 1-minute samples: %d lines", len(tr.Polylines))
		}
	})
	t.Run("thinned", func(t *testing.T) {
		week := chart{ID: "c5", Title: "Week", From: to.Add(-7 * 24 * time.Hour), To: to}
		for i := range 7 * 24 * 240 { // a week of 15 s samples
			week.Points = append(week.Points, chartPoint{T: week.From.Add(time.Duration(i) * 15 * time.Second), V: float64(i % 100)})
		}
		tr := parseSVG(t, week)
		n := 0
		for _, p := range tr.Polylines {
			n += len(strings.Fields(p.Points))
		}
		if n == 0 || n > chartBuckets+1 {
			t.Fatalf("a week of samples drawn with %d points", n)
		}
	})
}
