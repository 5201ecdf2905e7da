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

// TestHistoryPages: the audit log is a page (who changed what, filterable, a bad filter
// named on its field) and a device's page shows its boot history.
func TestHistoryPages(t *testing.T) {
	p := startPanel(t, "sqlite", webui.Options{})
	ctx := context.Background()
	nid := p.must201Network(t, "History Net")
	b := newBrowser(t, p.URL, outDir(t))
	b.login(p.Admin.Email, adminPassword)
	b.open("/devices/new")
	b.fill("#f-mac", "52:54:00:00:0e:01")
	b.fill("#f-name", "kiosk-1")
	b.submit()
	dev, err := models.GetOwned[models.Device](ctx, p.Store, p.Admin, 1, "device")
	if err != nil || dev.Name != "kiosk-1" {
		t.Fatalf("the device the form made: %v %v", dev, err)
	}

	b.click(`.sidenav a[href="/audit"]`)
	b.waitFor("the audit log", 20*time.Second, func() bool { return b.path() == "/audit" })
	rows := b.text("#audit")
	for _, want := range []string{"create", "device kiosk-1", "52:54:00:00:0e:01", "network 1", "History Net", p.Admin.Email} {
		if !strings.Contains(rows, want) {
			t.Errorf("the audit log lacks %q:\n%s", want, rows)
		}
	}
	b.both("audit-log")
	b.open(fmt.Sprintf("/audit?network_id=%d&object=network", nid))
	if got := b.js(`return document.querySelectorAll('#audit tbody tr').length`); got != float64(1) {
		t.Errorf("filtered on the network's own events: %v rows", got)
	}
	b.open("/audit?since=someday")
	if msg := b.text("#audit-error"); !strings.Contains(msg, "Since") {
		t.Errorf("a bad date: %q", msg)
	}

	// Two boots reported by the network's server, as its agent does.
	srv := &models.Server{NetworkID: nid, Name: "boot-srv", IP: "10.0.0.9", Pool: "tank"}
	if err := p.DB.Create(srv).Error; err != nil {
		t.Fatal(err)
	}
	err = models.RecordBoots(ctx, p.DB, srv.ID, []models.BootRecord{{DeviceID: dev.ID, Booted: true, Compliant: true, Version: 3, ServerID: srv.ID, BootID: "b1"}})
	if err == nil { // and later the agent's result of that boot
		err = models.RecordBoots(ctx, p.DB, srv.ID, []models.BootRecord{{DeviceID: dev.ID, Booted: true, Compliant: true, Version: 3, ServerID: srv.ID,
			BootID: "b1", Result: models.BootResultUp, UpMS: 41200, Why: "checked in"}})
	}
	if err == nil {
		err = models.RecordBoots(ctx, p.DB, srv.ID, []models.BootRecord{{DeviceID: dev.ID, ServerID: srv.ID, Reason: "no server holds v4"}})
	}
	if err != nil {
		t.Fatal(err)
	}
	b.open(fmt.Sprintf("/devices/%d", dev.ID))
	hist := b.jsString(`var out = ''; document.querySelectorAll('section').forEach(function (s) { if (s.textContent.indexOf('Boot history') >= 0) out = s.textContent }); return out`)
	for _, want := range []string{"boot-srv", "v3", "booted", "not booted: no server holds v4", "Result", "up: checked in", "41.2 s"} {
		if !strings.Contains(hist, want) {
			t.Errorf("the device's boot history lacks %q:\n%s", want, hist)
		}
	}
	b.both("device-boot-history")

	// The server's stats: a table of figures, not JSON.
	err = models.RecordServerStats(ctx, p.DB, srv.ID, &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 100 << 30, PoolFree: 90 << 30,
		Detail: []byte(`{"pool": {"name": "tank", "free": 96636764160}, "iscsi_sessions": 3, "agent_version": "0.9.2"}`)})
	if err != nil {
		t.Fatal(err)
	}
	b.open(fmt.Sprintf("/servers/%d", srv.ID))
	stats := b.jsString(`var out = ''; document.querySelectorAll('section').forEach(function (s) { if (s.querySelector('h2').textContent === 'Stats') out = s.querySelector('table').innerText }); return out`)
	for _, want := range []string{"Pool · free\t90.0 GiB (96636764160 bytes)", "Iscsi sessions\t3", "Agent version\t0.9.2"} {
		if !strings.Contains(stats, want) {
			t.Errorf("the server's stats lack %q:\n%s", want, stats)
		}
	}
	if strings.Contains(b.text("main"), `"iscsi_sessions"`) {
		t.Error("the server page still shows the stats as JSON")
	}
	b.both("server-stats")
}
