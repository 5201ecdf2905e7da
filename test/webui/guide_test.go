package webui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/webui"
)

// TestGuide follows the getting-started guide through the dashboard on PostgreSQL: log in,
// client → network → tunnel → server → volume (live progress to 100 %) → group → default
// group, publish, SMTP; the alerts disappear one by one; a device is locked. Each step is
// a screenshot, at 1280 px and at 390 px for the pages.
func TestGuide(t *testing.T) {
	p := startPanel(t, "postgres", webui.Options{TemporalUI: "http://127.0.0.1:8233", PollInterval: 200 * time.Millisecond})
	out := outDir(t)
	b := newBrowser(t, p.URL, out)
	ctx := context.Background()
	admin := p.Admin

	// Login: a wrong password is refused with a message, the right one opens the dashboard.
	b.open("/")
	b.waitFor("redirect to login", 10*time.Second, func() bool { return strings.HasPrefix(b.path(), "/login") })
	b.checkLabels("login")
	b.both("login")
	b.fill("#f-email", admin.Email)
	b.fill("#f-password", "wrong password")
	b.submit()
	if msg := b.text("#form-error"); !strings.Contains(msg, "Wrong e-mail or password") {
		t.Fatalf("wrong password: %q", msg)
	}
	b.screenshot("login-refused")
	b.login(admin.Email, adminPassword)

	// First install: no network yet, and SMTP is not configured.
	p.expectAlerts(b, admin, models.AlertNoNetwork, models.AlertSMTPNotConfigured)
	b.both("dashboard-first-start")

	// Add a Client: Clients page (building icon), New Client, enter details, Save.
	b.open("/clients")
	b.find("a[href='/clients'][aria-current=page] use[href='#i-building']")
	b.click("#new")
	b.checkLabels("new client")
	b.fill("#f-name", "New Client")
	b.submit()
	if !strings.Contains(b.text("h1"), "New Client") {
		t.Fatalf("client page: %q", b.text("h1"))
	}
	b.screenshot("client-created")
	var client models.Client
	if err := p.DB.Where("name = ?", "New Client").Take(&client).Error; err != nil {
		t.Fatal(err)
	}

	// Add a Network: name, limits, client, Add.
	b.open("/networks")
	b.click("#new")
	b.checkLabels("new network")
	b.fill("#f-name", "New Network")
	b.fill("#f-max_servers", "4")
	b.choose("#f-client_id", "New Client")
	b.both("network-form")
	b.submit()
	b.screenshot("network-created")
	var network models.Network
	if err := p.DB.Where("name = ?", "New Network").Take(&network).Error; err != nil {
		t.Fatal(err)
	}
	if network.ClientID != client.ID || network.MaxServers != 4 {
		t.Fatalf("network = %+v", network)
	}
	p.expectAlerts(b, admin, models.AlertNoTunnel, models.AlertNoServer, models.AlertNoVolume, models.AlertNoGroup,
		models.AlertNoDefaultGroup, models.AlertSMTPNotConfigured)
	b.both("alerts-new-network")

	// Add a Tunnel Server; the table's refresh icon reloads it in place.
	b.open("/tunnels")
	b.click("#new")
	b.checkLabels("new tunnel")
	b.choose("#f-network_id", "New Network")
	b.fill("#f-alias", "New Tunnel Service")
	b.fill("#f-ip", "192.0.2.2")
	b.submit()
	b.open("/tunnels")
	b.js(`document.querySelector('#list').setAttribute('data-old', '1')`)
	b.click("a[data-refresh]")
	b.waitFor("the refreshed table", 10*time.Second, func() bool {
		return b.jsString(`var l = document.querySelector('#list'); return l && !l.hasAttribute('data-old') ? l.textContent : ''`) != ""
	})
	if !strings.Contains(b.text("#list"), "New Tunnel Service") {
		t.Fatalf("tunnel list: %q", b.text("#list"))
	}
	b.both("tunnels")
	// The network's edit page shows the (first, so selected) tunnel.
	b.open(fmt.Sprintf("/networks/%d/edit", network.ID))
	if sel := b.jsString(`var s = document.querySelector('#f-tunnel_id'); return s.options[s.selectedIndex].text`); !strings.Contains(sel, "New Tunnel Service") {
		t.Fatalf("selected tunnel: %q", sel)
	}
	p.expectAlerts(b, admin, models.AlertNoServer, models.AlertNoVolume, models.AlertNoGroup, models.AlertNoDefaultGroup, models.AlertSMTPNotConfigured)

	// Register the master server. Bad input first: the form names the field, nothing is written.
	b.open(fmt.Sprintf("/servers/new?network_id=%d", network.ID))
	b.checkLabels("new server")
	b.fill("#f-name", "masterServer")
	b.fill("#f-ip", "192.168.1.300")
	b.fill("#f-pool", "tank")
	b.fill("#f-tunnel_port", "10022")
	b.submit()
	if msg := b.text("#form-error"); !strings.Contains(msg, "iSCSI IP") || !strings.Contains(msg, "must be an IP address") {
		t.Fatalf("bad IP: %q", msg)
	}
	if v := b.jsString(`return document.querySelector('#f-ip').getAttribute('aria-invalid') + ' ' + document.querySelector('#f-name').value`); v != "true masterServer" {
		t.Fatalf("refused form: %q", v)
	}
	b.both("server-bad-input")
	var n int64
	p.DB.Model(&models.Server{}).Count(&n)
	if n != 0 {
		t.Fatalf("a refused server left %d rows", n)
	}
	b.fill("#f-ip", "192.0.2.3")
	b.fill("#f-replication_ip", "192.0.2.4")
	b.submit()
	if key := b.text("#secret-value"); !strings.HasPrefix(key, "cdk_") {
		t.Fatalf("server key: %q", key)
	}
	b.screenshot("server-created-key")
	var srv models.Server
	if err := p.DB.Where("name = ?", "masterServer").Take(&srv).Error; err != nil {
		t.Fatal(err)
	}
	p.expectAlerts(b, admin, models.AlertMasterUnreachable, models.AlertNoVolume, models.AlertNoGroup, models.AlertNoDefaultGroup, models.AlertSMTPNotConfigured)

	// The agent reports its stats (as install.sh's agent does): "Panel to server OK" and the stats.
	stats := &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 100 << 30, PoolFree: 90 << 30, Detail: json.RawMessage(`{"pool":"tank","health":"ONLINE"}`)}
	if err := models.RecordServerStats(ctx, p.DB, srv.ID, stats); err != nil {
		t.Fatal(err)
	}
	b.open(fmt.Sprintf("/servers/%d", srv.ID))
	if st := b.text("[data-detail=Status]"); !strings.HasPrefix(st, "Panel to server OK") {
		t.Fatalf("server status: %q", st)
	}
	b.both("server-status-ok")
	p.expectAlerts(b, admin, models.AlertNoVolume, models.AlertNoGroup, models.AlertNoDefaultGroup, models.AlertSMTPNotConfigured)

	// Create a Volume and watch its creation progress live, to 100 %.
	b.open("/volumes/new")
	b.checkLabels("new volume")
	b.choose("#f-network_id", "New Network")
	b.fill("#f-alias", "New Volume 1")
	b.fill("#f-vol_size", "42")
	b.submit()
	var vol models.Volume
	if err := p.DB.Where("alias = ?", "New Volume 1").Take(&vol).Error; err != nil {
		t.Fatal(err)
	}
	var op models.Operation
	if err := p.DB.Where("object_type = ? AND object_id = ?", "volume", vol.ID).Take(&op).Error; err != nil {
		t.Fatal(err)
	}
	b.find(fmt.Sprintf("[data-op-id='%d'] [data-op-percent]", op.ID))
	b.screenshot("volume-queued")
	// Without a workflow engine here, the test reports progress the way the engine's
	// activities do (models.RecordProgress, then models.FinishOperation), and the open page
	// shows each step as it comes, without a reload.
	pct := func() string {
		return b.jsString(fmt.Sprintf(`var e = document.querySelector("[data-op-id='%d'] [data-op-percent]"); return e ? e.textContent : ''`, op.ID))
	}
	b.js(`document.body.setAttribute('data-same-page', '1')`)
	wantLink := fmt.Sprintf("http://127.0.0.1:8233/namespaces/default/workflows/volume-create-%d/run-1/history", vol.ID)
	for _, s := range []struct {
		step string
		pct  int
	}{{"preflight", 10}, {"zfs create -V 42G -s", 40}, {"set properties", 70}, {"verify", 90}} {
		if err := models.RecordProgress(ctx, p.DB, models.WorkflowProgress{OperationID: op.ID, WorkflowID: fmt.Sprintf("volume-create-%d", vol.ID), RunID: "run-1", Step: s.step, Percent: s.pct}); err != nil {
			t.Fatal(err)
		}
		b.waitFor(fmt.Sprintf("progress %d %%", s.pct), 30*time.Second, func() bool { return pct() == fmt.Sprintf("%d%%", s.pct) })
		if step := b.text(fmt.Sprintf("[data-op-id='%d'] [data-op-step]", op.ID)); step != s.step {
			t.Fatalf("step at %d %%: %q", s.pct, step)
		}
		if s.pct == 40 {
			// The workflow became known while the page was open: its Temporal Web UI link appears live.
			b.waitFor("the workflow link", 10*time.Second, func() bool {
				return b.jsString(fmt.Sprintf(`var a = document.querySelector("[data-op-id='%d'] [data-op-workflow] a"); return a ? a.getAttribute('href') : ''`, op.ID)) == wantLink
			})
			b.screenshot("volume-progress-40")
		}
	}
	if b.jsString(`return document.body.getAttribute('data-same-page')`) != "1" {
		t.Fatal("the page reloaded while the operation ran: progress is not live")
	}
	if err := models.FinishOperation(ctx, p.DB, models.Outcome{WorkflowProgress: models.WorkflowProgress{OperationID: op.ID, Message: "volume created"}}); err != nil {
		t.Fatal(err)
	}
	b.waitFor("progress 100 %", 30*time.Second, func() bool { return pct() == "100%" })
	if st := b.text(fmt.Sprintf("[data-op-id='%d'] [data-op-state]", op.ID)); st != "succeeded" {
		t.Fatalf("operation state: %q", st)
	}
	b.screenshot("volume-progress-100")
	// The page reloads once the operation ends: the volume is ready.
	b.waitFor("volume ready", 15*time.Second, func() bool {
		return b.jsString(`var e = document.querySelector('[data-detail=State]'); return e ? e.textContent : ''`) == "ready"
	})
	b.both("volume-ready")
	// The operations list shows it too, with the workflow's link into the Temporal Web UI.
	b.open("/operations")
	if href := b.jsString(fmt.Sprintf(`return document.querySelector("[data-op-id='%d'] a[target=_blank]").getAttribute('href')`, op.ID)); href != wantLink {
		t.Fatalf("workflow link: %q", href)
	}
	b.both("operations")
	p.expectAlerts(b, admin, models.AlertNoGroup, models.AlertNoDefaultGroup, models.AlertSMTPNotConfigured)

	// Create a Group based on the volume; the clone finishes; then its properties.
	b.open("/groups/new")
	b.checkLabels("new group")
	b.choose("#f-network_id", "New Network")
	b.fill("#f-name", "New Group 1")
	b.choose("#f-volume_id", "New Volume 1")
	b.submit()
	var group models.Group
	if err := p.DB.Where("name = ?", "New Group 1").Take(&group).Error; err != nil {
		t.Fatal(err)
	}
	b.screenshot("group-queued")
	finish(t, p, "group", group.ID, models.OpGroupCreate, models.Outcome{})
	p.expectAlerts(b, admin, models.AlertGroupWithoutVersion, models.AlertNoDefaultGroup, models.AlertSMTPNotConfigured)
	b.open("/groups")
	b.click(fmt.Sprintf("a[href='/groups/%d/edit']:has(use[href='#i-properties'])", group.ID))
	b.checkLabels("group properties")
	b.click("#f-strict_versioning")
	b.click("#f-lazy_locks")
	b.both("group-properties")
	b.submit()
	if err := p.DB.Take(&group, group.ID).Error; err != nil || !group.StrictVersioning || !group.LazyLocks {
		t.Fatalf("group properties not saved: %+v %v", group, err)
	}

	// Publish the group's first version from its page.
	b.open(fmt.Sprintf("/groups/%d", group.ID))
	b.post(fmt.Sprintf("form[action='/groups/%d/publish'] button", group.ID))
	var ver models.GroupVersion
	if err := p.DB.Where("group_id = ?", group.ID).Take(&ver).Error; err != nil {
		t.Fatal(err)
	}
	// The operations list follows the publish live too.
	b.open("/operations")
	var pub models.Operation
	if err := p.DB.Where("object_type = ? AND object_id = ? AND kind = ?", "group", group.ID, models.OpGroupPublish).Take(&pub).Error; err != nil {
		t.Fatal(err)
	}
	b.find(fmt.Sprintf("[data-op-id='%d'][data-done=false]", pub.ID))
	finish(t, p, "group", group.ID, models.OpGroupPublish, models.Outcome{VersionID: ver.ID, GUID: "1234567890"})
	b.waitFor("the publish to succeed on the operations list", 30*time.Second, func() bool {
		return b.jsString(fmt.Sprintf(`var e = document.querySelector("[data-op-id='%d'] [data-op-state]"); return e ? e.textContent : ''`, pub.ID)) == "succeeded"
	})
	b.screenshot("operations-publish-succeeded")
	p.expectAlerts(b, admin, models.AlertNoDefaultGroup, models.AlertSMTPNotConfigured)
	b.open(fmt.Sprintf("/groups/%d", group.ID))
	b.both("group-published")

	// Assign the group as the network's default.
	b.open(fmt.Sprintf("/networks/%d/edit", network.ID))
	b.checkLabels("edit network")
	b.choose("#f-default_group_id", "New Group 1")
	b.both("network-default-group")
	b.submit()
	p.expectAlerts(b, admin, models.AlertSMTPNotConfigured)

	// Panel Settings: SMTP. A bad port names the field; then it saves and the last alert goes.
	b.open("/settings")
	b.checkLabels("settings")
	b.fill("#f-smtp_host", "127.0.0.1")
	b.fill("#f-smtp_port", "70000")
	b.fill("#f-smtp_from", "panel@example.com")
	b.submit()
	if msg := b.text("#form-error"); !strings.Contains(msg, "SMTP port") {
		t.Fatalf("bad port: %q", msg)
	}
	b.screenshot("settings-bad-port")
	b.fill("#f-smtp_port", "2525")
	b.submit()
	p.expectAlerts(b, admin)
	b.both("dashboard-no-alerts")

	// Pin v1 on the group's page; a version that does not exist is refused on its field.
	b.open(fmt.Sprintf("/groups/%d", group.ID))
	b.checkLabels("group page")
	b.js(`var o = document.createElement('option'); o.value = '7'; o.text = 'v7'; document.querySelector('#assigned-f-version').add(o)`)
	b.choose("#assigned-f-version", "v7")
	b.post("#assigned-submit")
	if msg := b.jsString(`return document.querySelector('#assigned-f-version').closest('.field').innerText`); !strings.Contains(msg, "has no v7") {
		t.Fatalf("assign v7: %q", msg)
	}
	b.choose("#assigned-f-version", "v1")
	b.post("#assigned-submit")
	if got := b.jsString(`return document.body.innerText`); !strings.Contains(got, "v1 (pinned)") {
		t.Fatalf("assigned version not shown: %q", got)
	}
	// Register a device in the group and lock it from the list.
	b.open("/devices/new")
	b.checkLabels("new device")
	b.choose("#f-network_id", "New Network")
	b.fill("#f-mac", "52-54-00-12-34-56")
	b.fill("#f-name", "desk-1")
	b.choose("#f-group_id", "New Group 1")
	b.submit()
	var dev models.Device
	if err := p.DB.Where("mac = ?", "52:54:00:12:34:56").Take(&dev).Error; err != nil {
		t.Fatal(err)
	}
	b.open("/devices")
	b.post(fmt.Sprintf("form[action='/devices/%d/lock'] button", dev.ID))
	b.find(fmt.Sprintf("form[action='/devices/%d/unlock']", dev.ID))
	if err := p.DB.Take(&dev, dev.ID).Error; err != nil || !dev.Locked {
		t.Fatalf("device not locked: %+v %v", dev, err)
	}
	if row := b.text(fmt.Sprintf("tr[data-id='%d']", dev.ID)); !strings.Contains(row, "locked") || !strings.Contains(row, "v1") || !strings.Contains(row, "not booted yet") {
		t.Fatalf("device row: %q", row)
	}
	b.both("device-locked")

	// Maintenance: the device boots the group head; then it ends.
	b.open(fmt.Sprintf("/groups/%d", group.ID))
	b.choose("#maintenance-f-device_id", "desk-1")
	b.post("#maintenance-submit")
	if err := p.DB.Take(&group, group.ID).Error; err != nil || !group.Maintenance || group.MaintenanceDeviceID == nil || *group.MaintenanceDeviceID != dev.ID {
		t.Fatalf("maintenance not on: %+v %v", group, err)
	}
	b.both("group-maintenance")
	b.post("#maintenance-submit")
	if err := p.DB.Take(&group, group.ID).Error; err != nil || group.Maintenance {
		t.Fatalf("maintenance not off: %+v %v", group, err)
	}
	// The same for the volume (a first install): the page names the device; then it ends.
	b.open(fmt.Sprintf("/volumes/%d", vol.ID))
	b.choose("#maintenance-f-device_id", "desk-1")
	b.post("#maintenance-submit")
	if err := p.DB.Take(&vol, vol.ID).Error; err != nil || !vol.Maintenance || vol.MaintenanceDeviceID == nil || *vol.MaintenanceDeviceID != dev.ID {
		t.Fatalf("volume maintenance not on: %+v %v", vol, err)
	}
	if got := b.jsString(`return document.body.innerText`); !strings.Contains(got, "desk-1 boots the volume read-write") || !strings.Contains(got, "End maintenance") {
		t.Fatalf("volume page in maintenance: %q", got)
	}
	b.both("volume-maintenance")
	b.post("#maintenance-submit")
	if err := p.DB.Take(&vol, vol.ID).Error; err != nil || vol.Maintenance || vol.MaintenanceDeviceID != nil {
		t.Fatalf("volume maintenance not off: %+v %v", vol, err)
	}

	// A menu with items, edited as rows (a group item without its group names the field).
	b.open("/menus/new")
	b.checkLabels("new menu")
	b.choose("#f-network_id", "New Network")
	b.fill("#f-name", "Boot menu")
	b.choose(`tr[data-item-row="1"] select[name=item_type]`, "group")
	b.fill(`tr[data-item-row="1"] input[name=item_label]`, "Desktop")
	b.submit()
	if msg := b.text("#form-error"); !strings.Contains(msg, "Items") || !strings.Contains(msg, "item 1") {
		t.Fatalf("a group item without its group: %q", msg)
	}
	if b.js(`return document.querySelector('tr[data-item-row="1"] input[name=item_label]').value`) != "Desktop" {
		t.Fatal("the refused menu lost its rows")
	}
	b.choose(`tr[data-item-row="1"] select[name=item_group_id]`, "New Group 1")
	b.choose(`tr[data-item-row="2"] select[name=item_type]`, "local")
	b.fill(`tr[data-item-row="2"] input[name=item_label]`, "Boot from disk")
	b.submit()
	b.screenshot("menu-created")
	var made models.Menu
	if err := p.DB.Where("name = ?", "Boot menu").Take(&made).Error; err != nil {
		t.Fatal(err)
	}
	if items := made.View().Items; len(items) != 2 || items[0].GroupID != group.ID || items[1].Type != "local" || items[1].Label != "Boot from disk" {
		t.Fatalf("the menu's items from the rows: %+v", items)
	}

	// Delete from a list: the menu goes; a network that still has servers stays, and the
	// page says why.
	var menu models.Menu
	if err := p.DB.Where("name = ?", "Boot menu").Take(&menu).Error; err != nil {
		t.Fatal(err)
	}
	b.open("/menus")
	b.post(fmt.Sprintf("form[action='/menus/%d/delete'] button", menu.ID))
	if b.jsString(fmt.Sprintf(`return document.querySelector("tr[data-id='%d']") ? 'still there' : ''`, menu.ID)) != "" || !strings.Contains(b.text(".notice"), "Deleted") {
		t.Fatal("the menu was not deleted")
	}
	b.open("/networks")
	b.post(fmt.Sprintf("form[action='/networks/%d/delete'] button", network.ID))
	if msg := b.text("#form-error"); !strings.Contains(msg, "still has") {
		t.Fatalf("deleting a network with servers: %q", msg)
	}
	b.screenshot("network-delete-refused")
	if err := p.DB.Take(&models.Network{}, network.ID).Error; err != nil {
		t.Fatalf("the network went: %v", err)
	}

	// Users: a bad e-mail names the field; then the user is added.
	b.open("/users/new")
	b.checkLabels("new user")
	b.fill("#f-email", "not-an-address")
	b.fill("#f-password", "0123456789ab")
	b.choose("#f-client_id", "New Client")
	b.js(`document.querySelector('#main-form').noValidate = true`) // past the browser's own check, to the models'
	b.submit()
	if msg := b.text("#form-error"); !strings.HasPrefix(msg, "E-mail:") {
		t.Fatalf("bad e-mail: %q", msg)
	}
	b.fill("#f-email", "ops@example.com")
	b.fill("#f-password", "0123456789ab")
	b.submit()
	b.open("/users")
	if !strings.Contains(b.text("#list"), "ops@example.com") {
		t.Fatalf("user list: %q", b.text("#list"))
	}

	// Every list page, at both widths: its action buttons are within the viewport.
	for _, page := range []string{"clients", "users", "networks", "tunnels", "servers", "volumes", "groups", "devices", "menus", "operations"} {
		b.open("/" + page)
		b.find("main h1")
		b.actionsInView(page)
		b.width(390)
		b.waitFor("layout at 390 px", 5*time.Second, func() bool { return b.js(`return window.innerWidth`) == float64(390) })
		b.actionsInView(page)
		b.width(1280)
		b.both("list-" + page)
	}
	b.open(fmt.Sprintf("/networks/%d", network.ID))
	b.both("network-page")

	// Account settings: named API tokens. Two are made (each shown once, after a
	// redirect: a reload makes no third), both work; revoking one leaves the other working,
	// and its last use shows. The API answers with the dashboard's alerts (none).
	b.open("/account")
	b.checkLabels("account")
	alerts := func(token string) (int, string) {
		req, _ := http.NewRequest("GET", p.URL+"/api/v0.9.2/alerts.json", nil)
		req.Header.Set("Authorization", `Token token="`+token+`"`)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	newToken := func(name string) string {
		b.fill("#token-f-name", name)
		b.js(`document.body.setAttribute('data-stale', '1')`)
		b.click("#token-submit")
		b.waitFor("the account page with the new token", 30*time.Second, func() bool {
			return b.jsString(`return !document.body.hasAttribute('data-stale') && document.getElementById('api-token') ? 'y' : ''`) == "y"
		})
		return b.text("#api-token")
	}
	backup := newToken("backup script")
	b.click("[data-copy='api-token']")
	b.waitFor("the copy button to answer", 5*time.Second, func() bool {
		return b.jsString(`return document.querySelector("[data-copy='api-token']").getAttribute('data-copied') || ''`) != ""
	})
	b.both("account-token")
	b.open("/account")
	if b.jsString(`return document.getElementById('api-token') ? 'shown' : ''`) != "" {
		t.Fatal("a reload of the account page shows the token again")
	}
	token := newToken("monitoring")
	b.fill("#token-f-name", "monitoring")
	b.post("#token-submit")
	if msg := b.text("#token-err-name"); !strings.Contains(msg, "already have a token named") {
		t.Errorf("a duplicate token name: %q", msg)
	}
	for _, tok := range []string{backup, token} {
		if code, body := alerts(tok); code != 200 || body != "[]" {
			t.Fatalf("alerts.json with a new token: %d %s", code, body)
		}
	}
	b.open("/account")
	if used := b.text(`[data-token="monitoring"] td[data-label="Last used"]`); used == "never" {
		t.Errorf("the used token shows no last use")
	}
	b.post(`[data-revoke="backup script"]`)
	if code, _ := alerts(backup); code != 401 {
		t.Fatalf("a revoked token answers %d", code)
	}
	if code, _ := alerts(token); code != 200 {
		t.Fatalf("revoking one token broke another: %d", code)
	}
	b.both("account-tokens")

	// Change the password; log out; the new password works.
	b.open("/account")
	b.fill("#f-current_password", adminPassword)
	b.fill("#f-new_password", "short")
	b.fill("#f-confirm_password", "short")
	b.submit()
	if msg := b.text("#form-error"); !strings.Contains(msg, "New password") || !strings.Contains(msg, "at least 10") {
		t.Fatalf("short password: %q", msg)
	}
	b.fill("#f-current_password", adminPassword)
	b.fill("#f-new_password", "a much longer passphrase")
	b.fill("#f-confirm_password", "a much longer passphrase")
	b.submit()
	b.find(".notice")
	b.logout()
	b.both("logged-out")
	b.login(admin.Email, "a much longer passphrase")
}

// finish completes the latest operation of an object as the engine would.
func finish(t *testing.T, p *panelT, objectType string, id uint, kind string, o models.Outcome) {
	t.Helper()
	var op models.Operation
	if err := p.DB.Where("object_type = ? AND object_id = ? AND kind = ?", objectType, id, kind).Order("id DESC").Take(&op).Error; err != nil {
		t.Fatal(err)
	}
	o.OperationID = op.ID
	if err := models.FinishOperation(context.Background(), p.DB, o); err != nil {
		t.Fatal(err)
	}
}
