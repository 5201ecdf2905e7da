package webui_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/webui"
)

// TestServerCharts: a server's page draws its stored samples as four inline SVG charts
// (pool used, iSCSI sessions, boot requests, replication traffic) that Chromium renders
// under the dashboard's CSP without a violation; the window selector switches between
// 1 h, 24 h and 7 d, an unknown window is refused on the page (naming it), and a server
// without samples says so in each chart.
func TestServerCharts(t *testing.T) {
	p := startPanel(t, "sqlite", webui.Options{})
	ctx := context.Background()
	nid := p.must201Network(t, "Charts Net")
	srv := &models.Server{NetworkID: nid, Name: "chart-srv", IP: "10.0.0.9", Pool: "tank"}
	quiet := &models.Server{NetworkID: nid, Name: "quiet-srv", IP: "10.0.0.10", Pool: "tank"}
	for _, s := range []*models.Server{srv, quiet} {
		if err := p.DB.Create(s).Error; err != nil {
			t.Fatal(err)
		}
	}
	// Two hours of samples a minute apart, as the health check records them: the pool
	// fills, sessions come and go, boots and replication bytes count up; the agent
	// restarts (its counters start again) an hour in.
	now := time.Now().UTC()
	for i := range 120 {
		boots, repl := int64(3*i), int64(i)<<20
		if i >= 60 {
			boots, repl = int64(i-60), int64(i-60)<<19
		}
		sessions := int64(i % 7)
		r := &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 100 << 30, PoolFree: (90 << 30) - int64(i)<<28,
			ISCSISessions: &sessions, BootRequests: &boots, ReplicationBytes: &repl}
		if err := models.RecordSample(ctx, p.DB, srv.ID, r, now.Add(time.Duration(i-120)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}

	b := newBrowser(t, p.URL, outDir(t))
	b.login(p.Admin.Email, adminPassword)
	b.consoleErrors() // what the login left
	b.open(fmt.Sprintf("/servers/%d", srv.ID))
	b.find("#charts svg.chart")
	charts := func() []map[string]any {
		v := b.js(`return Array.from(document.querySelectorAll('#charts svg.chart')).map(function (s) {
			var r = s.getBoundingClientRect(), line = s.querySelector('polyline'), max = s.querySelector('[data-label=max]');
			return {id: s.id, title: s.querySelector('title').textContent, desc: s.querySelector('desc').textContent,
				width: r.width, height: r.height, points: line ? line.points.numberOfItems : 0,
				lineWidth: line ? line.getBoundingClientRect().width : 0,
				stroke: line ? getComputedStyle(line).stroke : '', max: max ? max.textContent : '',
				empty: s.textContent.indexOf('No samples yet') >= 0,
				caption: s.closest('figure').querySelector('figcaption').textContent}
		})`)
		var out []map[string]any
		for _, c := range v.([]any) {
			out = append(out, c.(map[string]any))
		}
		return out
	}
	got := charts()
	want := []string{"chart-pool", "chart-iscsi", "chart-boot", "chart-replication"}
	if len(got) != len(want) {
		t.Fatalf("%d charts on the server's page, want %d: %v", len(got), len(want), got)
	}
	for i, c := range got {
		if c["id"] != want[i] || c["width"].(float64) < 200 || c["height"].(float64) < 50 || c["points"].(float64) < 60 ||
			c["lineWidth"].(float64) < 20 || c["empty"] == true || c["max"] == "" || c["stroke"] == "" || c["stroke"] == "none" {
			t.Errorf("chart %d is not drawn as it should be: %v", i, c)
		}
		if c["caption"] != c["title"] {
			t.Errorf("chart %v is captioned %q, titled %q", c["id"], c["caption"], c["title"])
		}
		if !strings.Contains(c["desc"].(string), "latest") {
			t.Errorf("chart %v has no description of its values: %q", c["id"], c["desc"])
		}
	}
	// The pool went from 10 GiB used to 39.75 GiB; the boots ran at 3 a minute.
	if got[0]["max"] != "39.8 GiB" || got[2]["max"] != "3" {
		t.Errorf("max labels: pool %v, boots %v", got[0]["max"], got[2]["max"])
	}
	if cur := b.text(`#charts .chart-windows [aria-current]`); cur != "24 h" {
		t.Errorf("the default window is %q, want 24 h", cur)
	}
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("the server's page logged errors (a CSP violation?): %v", errs)
	}
	b.both("server-charts")

	b.click(`#charts .chart-windows a[href$="window=1h#charts"]`)
	b.waitFor("the 1 h window", 20*time.Second, func() bool { return strings.Contains(b.path(), "window=1h") })
	b.find("#charts svg.chart")
	if cur := b.text(`#charts .chart-windows [aria-current]`); cur != "1 h" {
		t.Errorf("after choosing 1 h the current window is %q", cur)
	}
	for _, c := range charts() {
		if p := c["points"].(float64); p < 50 || p > 61 {
			t.Errorf("1 h of minute samples: chart %v has %v points", c["id"], p)
		}
	}
	b.open(fmt.Sprintf("/servers/%d?window=7d", srv.ID))
	b.screenshot("server-charts-7d")
	for _, c := range charts() {
		if c["points"].(float64) < 1 || c["empty"] == true {
			t.Errorf("7 d: chart %v: %v", c["id"], c)
		}
	}
	b.open(fmt.Sprintf("/servers/%d?window=fortnight", srv.ID))
	if msg := b.text("#charts-error"); !strings.Contains(msg, "Window") || !strings.Contains(msg, "fortnight") {
		t.Errorf("an unknown window: %q", msg)
	}
	if n := len(charts()); n != 4 {
		t.Errorf("an unknown window shows %d charts (the default window's, want 4)", n)
	}
	for _, e := range b.consoleErrors() {
		if !strings.Contains(e, "status of 422") { // the refused window's own answer
			t.Errorf("the chart windows logged an error: %v", e)
		}
	}

	b.open(fmt.Sprintf("/servers/%d", quiet.ID))
	for _, c := range charts() {
		if c["empty"] != true || c["points"].(float64) != 0 {
			t.Errorf("a server without samples: chart %v: %v", c["id"], c)
		}
	}
	b.screenshot("no-samples")
	// The check sees a violation when there is one: an inline style the CSP refuses.
	b.js(`document.querySelector('main').setAttribute('style', 'color: red')`)
	b.waitFor("the console to report the refused inline style", 10*time.Second, func() bool {
		for _, e := range b.consoleErrors() {
			if strings.Contains(e, "Content Security Policy") {
				return true
			}
		}
		return false
	})
}
