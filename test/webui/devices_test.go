package webui_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/webui"
	"github.com/clusterducks/clusterducks/workers/panel"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"github.com/clusterducks/clusterducks/workflows"
)

// TestDevicesBulkActions: on the Devices list an operator ticks two rows and locks both
// with one click — one operation (through the devices' workflows on the real Temporal),
// whose page the button leads to, listing each device's outcome — then deletes both with
// one click (rows only: no disks), the third device untouched each time; "select all
// shown" ticks every row; the page still fits 1280 and 390 px with its selection bar,
// every action in view.
func TestDevicesBulkActions(t *testing.T) {
	p := startPanel(t, "postgres", webui.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tmp, err := panel.StartTemporal(ctx, harness.TemporalClient(t), p.Store, temporalclient.Config{Address: "127.0.0.1:7233", Namespace: "default"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tmp.Worker.Stop)
	nid := p.must201Network(t, "Bulk Net")
	ids := map[string]uint{}
	for i, name := range []string{"pc-a", "pc-b", "pc-c"} {
		mac := fmt.Sprintf("52:54:00:00:1b:%02x", i+1)
		res, err := p.Store.CreateDevice(ctx, p.Admin, &models.DeviceInput{NetworkID: &nid, MAC: &mac, Name: &name})
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = res.Object.(*models.Device).ID
		t.Cleanup(func() {
			tmp.Client.TerminateWorkflow(context.Background(), workflows.DeviceWorkflowID(ids[name]), "", "test over") //nolint:errcheck
		})
	}
	device := func(name string) (models.Device, bool) {
		var d models.Device
		err := p.DB.Where("id = ?", ids[name]).Take(&d).Error
		return d, err == nil
	}
	b := newBrowser(t, p.URL, outDir(t))
	b.login(p.Admin.Email, adminPassword)
	selected := func() string { return b.text("#bulk-count") }
	tick := func(names ...string) {
		t.Helper()
		for _, n := range names {
			b.click(fmt.Sprintf(`input[data-select="bulk-form"][aria-label="Select %s"]`, n))
		}
	}

	b.open("/devices")
	b.find("#bulk-form")
	b.checkLabels("devices")
	if got := selected(); got != "0 selected" || b.js(`return document.getElementById('bulk-lock').disabled`) != true {
		t.Errorf("nothing ticked: count %q, the actions should wait for a selection", got)
	}
	// Select all shown, then none.
	b.click("#bulk-all")
	if got := selected(); got != "3 selected" {
		t.Errorf("select all shown: %q", got)
	}
	b.click("#bulk-all")
	if got := selected(); got != "0 selected" {
		t.Errorf("select none: %q", got)
	}

	// Lock two: one click, both locked, the third as it was.
	tick("pc-a", "pc-b")
	if got := selected(); got != "2 selected" {
		t.Errorf("two ticked: %q", got)
	}
	b.screenshot("devices-two-selected")
	b.post("#bulk-lock")
	var op models.Operation
	if err := p.DB.Where("kind = ?", models.OpBulkLock).Take(&op).Error; err != nil {
		t.Fatalf("the bulk lock recorded no bulk-lock operation: %v", err)
	}
	if want := fmt.Sprintf("/operations/%d", op.ID); strings.Split(b.path(), "?")[0] != want {
		b.screenshot("bulk-lock-answer")
		t.Fatalf("after the bulk lock: at %s, want its operation's page %s: %q", b.path(), want, b.text("main"))
	}
	var nops int64
	p.DB.Model(&models.Operation{}).Count(&nops)
	if nops != 1 {
		t.Errorf("a bulk lock of two devices recorded %d operations, want 1", nops)
	}
	b.waitFor("the bulk lock to succeed", time.Minute, func() bool {
		p.DB.Take(&op, op.ID)
		return op.Finished()
	})
	b.open(fmt.Sprintf("/operations/%d", op.ID))
	outcomes := b.jsString(`return Array.from(document.querySelectorAll('#bulk-result tbody tr')).map(function (tr) {
		return tr.cells[0].textContent.trim() + '=' + tr.dataset.state }).join(',')`)
	if op.State != models.OpSucceeded || outcomes != "pc-a=done,pc-b=done" || !strings.Contains(b.text("main"), "succeeded") {
		b.screenshot("bulk-lock-operation")
		t.Fatalf("the bulk lock's operation %+v; its page lists %q: %q", op, outcomes, b.text("main"))
	}
	b.screenshot("bulk-lock-operation")
	b.open("/devices")
	for name, want := range map[string]bool{"pc-a": true, "pc-b": true, "pc-c": false} {
		if d, ok := device(name); !ok || d.Locked != want {
			t.Errorf("%s after locking pc-a and pc-b: locked %v, want %v", name, d.Locked, want)
		}
	}
	lockCells := b.jsString(`return Array.from(document.querySelectorAll('#list tbody tr')).map(function (tr) {
		return tr.querySelector('td[data-label="Name"]').textContent.trim() + '=' + tr.querySelector('td[data-label="Lock"]').textContent.trim() }).sort().join(',')`)
	if lockCells != "pc-a=locked,pc-b=locked,pc-c=unlocked" {
		t.Errorf("the list after the bulk lock shows %s", lockCells)
	}
	var events int64
	p.DB.Model(&models.AuditEvent{}).Where("action = ?", "bulk-lock").Count(&events)
	if events != 1 {
		t.Errorf("the bulk lock was audited %d times, want once", events)
	}

	// The page with its selection bar fits both widths.
	for _, w := range []int{1280, 390} {
		b.width(w)
		b.waitFor(fmt.Sprintf("layout at %d px", w), 5*time.Second, func() bool { return b.js(`return window.innerWidth`) == float64(w) })
		b.actionsInView("devices")
		out := b.jsString(`var w = window.innerWidth, bad = [];
			document.querySelectorAll('#bulk-form button, #bulk-form select, #bulk-all').forEach(function (e) {
				var r = e.getBoundingClientRect();
				if (r.width === 0 || r.left < 0 || r.right > w) bad.push((e.id || e.name) + ' at ' + Math.round(r.left) + '..' + Math.round(r.right));
			});
			return bad.join(', ')`)
		if out != "" {
			b.screenshot(fmt.Sprintf("bulk-bar-%d", w))
			t.Errorf("at %d px the selection bar's controls leave the viewport: %s", w, out)
		}
		b.screenshot(fmt.Sprintf("devices-bulk-%d", w))
	}
	b.width(1280)

	// Delete two (confirmed): both gone, the third kept.
	tick("pc-a", "pc-b")
	b.post("#bulk-delete")
	if !strings.Contains(b.text("main"), "The selected devices are deleted") {
		b.screenshot("bulk-delete-answer")
		t.Fatalf("after the bulk delete: at %s: %q", b.path(), b.text("main"))
	}
	for name, want := range map[string]bool{"pc-a": false, "pc-b": false, "pc-c": true} {
		if _, ok := device(name); ok != want {
			t.Errorf("%s after deleting pc-a and pc-b: present %v, want %v", name, ok, want)
		}
	}
	if rows := b.jsString(`return Array.from(document.querySelectorAll('#list tbody td[data-label="Name"]')).map(function (td) { return td.textContent.trim() }).join(',')`); rows != "pc-c" {
		t.Errorf("the list after the bulk delete: %s", rows)
	}

	// Sent with nothing ticked (a script, or no JavaScript): refused, naming the selection.
	b.js(`document.querySelectorAll('#bulk-form button').forEach(function (x) { x.disabled = false })`)
	b.post("#bulk-unlock")
	if !strings.Contains(b.text("main"), "select at least one device") {
		t.Errorf("an empty selection: %q", b.text("main"))
	}
	if d, ok := device("pc-c"); !ok || d.Locked {
		t.Errorf("pc-c after an empty bulk unlock: %+v %v", d, ok)
	}
}
