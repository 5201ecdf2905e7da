package api_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/clusterducks/clusterducks/models"
)

// finish ends the operation an answer carries as its workflow would (succeeded), so
// the object settles and the next change is not refused as one under way.
func (p *panelT) finish(m map[string]any) {
	p.t.Helper()
	op, _ := m["operation"].(map[string]any)
	if op == nil {
		p.t.Fatalf("no operation in %v", m)
	}
	if err := models.FinishOperation(context.Background(), p.DB, models.Outcome{WorkflowProgress: models.WorkflowProgress{OperationID: uint(id(op))}}); err != nil {
		p.t.Fatal(err)
	}
}

// TestVDisks: the vdisks API's rules, through the API on each database: bad input is a 422
// naming the field and leaves no row; max_vdisks holds; a device has one vdisk; a vdisk
// grows only, moves only within its network and is deleted only once detached.
func TestVDisks(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		a := p.Admin
		n, srv := p.networkWithMaster()
		p.must(200, a, "PATCH", fmt.Sprintf("/api/v0.9.2/networks/%d.json", n), map[string]any{"max_vdisks": 2})
		d1 := id(p.must(201, a, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": n, "mac": "52:54:00:00:0a:01"}))
		d2 := id(p.must(201, a, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": n, "mac": "52:54:00:00:0a:02"}))
		other := id(p.must(201, a, "POST", "/api/v0.9.2/networks.json", map[string]any{"Name": "O", "Client": 1}))
		foreign := id(p.must(201, a, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": other, "mac": "52:54:00:00:0a:03"}))

		bad := []struct {
			name   string
			body   any
			status int
			field  string
		}{
			{"no network", map[string]any{"name": "d", "size": 1}, 422, "network_id"},
			{"absent network", map[string]any{"network": 9999, "name": "d", "size": 1}, 404, "network_id"},
			{"no name", map[string]any{"network": n, "size": 1}, 422, "name"},
			{"blank name", map[string]any{"network": n, "name": "  ", "size": 1}, 422, "name"},
			{"no size", map[string]any{"network": n, "name": "d"}, 422, "size"},
			{"size zero", map[string]any{"network": n, "name": "d", "size": 0}, 422, "size"},
			{"size negative", map[string]any{"network": n, "name": "d", "size": -3}, 422, "size"},
			{"size not a number", map[string]any{"network": n, "name": "d", "size": "big"}, 422, "size"},
			{"size too big", map[string]any{"network": n, "name": "d", "size": models.MaxVDiskGiB + 1}, 422, "size"},
			{"unknown key", map[string]any{"network": n, "name": "d", "size": 1, "colour": "red"}, 422, "colour"},
			{"device of another network", map[string]any{"network": n, "name": "d", "size": 1, "device": foreign}, 422, "device_id"},
			{"absent device", map[string]any{"network": n, "name": "d", "size": 1, "device_id": 9999}, 422, "device_id"},
		}
		for _, c := range bad {
			code, v, _ := p.do(a, "POST", "/api/v0.9.2/vdisks.json", c.body)
			m, _ := v.(map[string]any)
			if code != c.status || m["field"] != c.field {
				t.Errorf("%s: %d %v, want %d naming %q", c.name, code, v, c.status, c.field)
			}
		}
		var rows int64
		p.DB.Model(&models.VDisk{}).Count(&rows)
		if rows != 0 {
			t.Fatalf("refused creates left %d vdisk rows", rows)
		}

		v1 := p.must(202, a, "POST", "/api/v0.9.2/vdisks.json", map[string]any{"Network": n, "Name": "data", "Size": "4", "Device": d1})
		if v1["state"] != "pending" || v1["device_id"] != float64(d1) || v1["server_id"] != float64(srv) || v1["size"] != float64(4) {
			t.Fatalf("created vdisk: %v", v1)
		}
		if op := v1["operation"].(map[string]any); op["kind"] != models.OpVDiskCreate {
			t.Fatalf("operation: %v", op)
		}
		path := fmt.Sprintf("/api/v0.9.2/vdisks/%d.json", id(v1))
		// A device has one vdisk.
		code, v, _ := p.do(a, "POST", "/api/v0.9.2/vdisks.json", map[string]any{"network": n, "name": "more", "size": 1, "device": d1})
		if m, _ := v.(map[string]any); code != 409 || m["field"] != "device_id" {
			t.Errorf("second vdisk of device %d: %d %v, want 409 naming device_id", d1, code, v)
		}
		// Changes wait for the create.
		code, v, _ = p.do(a, "PATCH", path, map[string]any{"size": 8})
		if m, _ := v.(map[string]any); code != 409 || m["field"] != "size" {
			t.Errorf("resize while pending: %d %v, want 409 naming size", code, v)
		}
		p.finish(v1)
		if got := p.must(200, a, "GET", path, nil); got["state"] != "ready" {
			t.Fatalf("after its create: %v", got)
		}

		v2 := p.must(202, a, "POST", "/api/v0.9.2/vdisks.json", map[string]any{"network": n, "name": "spare", "size": 1})
		p.finish(v2)
		if v2["device_id"] != nil {
			t.Errorf("detached vdisk has a device: %v", v2)
		}
		code, v, _ = p.do(a, "POST", "/api/v0.9.2/vdisks.json", map[string]any{"network": n, "name": "third", "size": 1})
		if m, _ := v.(map[string]any); code != 409 || m["field"] != "max_vdisks" {
			t.Errorf("third vdisk with max_vdisks 2: %d %v, want 409 naming max_vdisks", code, v)
		}

		// Grow only.
		code, v, _ = p.do(a, "PATCH", path, map[string]any{"size": 2})
		if m, _ := v.(map[string]any); code != 422 || m["field"] != "size" {
			t.Errorf("shrink: %d %v, want 422 naming size", code, v)
		}
		grown := p.must(202, a, "PATCH", path, map[string]any{"size": 8, "name": "data2"})
		if grown["operation"].(map[string]any)["kind"] != models.OpVDiskResize || grown["name"] != "data2" {
			t.Fatalf("resize: %v", grown)
		}
		code, v, _ = p.do(a, "PATCH", path, map[string]any{"device_id": d2})
		if m, _ := v.(map[string]any); code != 409 || m["field"] != "device_id" {
			t.Errorf("attach while resizing: %d %v, want 409", code, v)
		}
		if err := models.FinishOperation(context.Background(), p.DB, models.Outcome{WorkflowProgress: models.WorkflowProgress{OperationID: uint(id(grown["operation"].(map[string]any)))}, VolumeSizeGiB: 8}); err != nil {
			t.Fatal(err)
		}
		if got := p.must(200, a, "GET", path, nil); got["size"] != float64(8) {
			t.Fatalf("after the resize: %v", got)
		}

		// Moves stay in the network, to a device without a vdisk; deletes need a detach.
		for _, c := range []struct {
			body   map[string]any
			status int
		}{
			{map[string]any{"device_id": foreign}, 422},
			{map[string]any{"network": other}, 422},
			{map[string]any{"size": 9, "device_id": d2}, 422},
		} {
			code, v, _ := p.do(a, "PATCH", path, c.body)
			if code != c.status {
				t.Errorf("PATCH %v: %d %v, want %d", c.body, code, v, c.status)
			}
		}
		code, v, _ = p.do(a, "DELETE", path, nil)
		if m, _ := v.(map[string]any); code != 409 || m["field"] != "device_id" {
			t.Errorf("delete while attached: %d %v, want 409 naming device_id", code, v)
		}
		moved := p.must(202, a, "PATCH", path, map[string]any{"device_id": d2})
		if moved["device_id"] != float64(d1) {
			t.Errorf("the device changes only once the move succeeded: %v", moved)
		}
		p.finish(moved)
		if got := p.must(200, a, "GET", path, nil); got["device_id"] != float64(d2) {
			t.Fatalf("after the move: %v", got)
		}
		// The exports of the device's server carry it once the device has a clone there.
		p.DB.Model(&models.Device{}).Where("id = ?", d2).Updates(map[string]any{"server_id": srv, "clone_version_id": 1})
		rows2, err := models.DesiredExports(context.Background(), p.DB, uint(srv))
		if err != nil || len(rows2) != 1 || rows2[0].VDiskID != uint(id(v1)) {
			t.Errorf("exports: %+v %v, want device %d with vdisk %d", rows2, err, d2, id(v1))
		}
		detached := p.must(202, a, "PATCH", path, map[string]any{"device_id": nil})
		p.finish(detached)
		deleted := p.must(202, a, "DELETE", path, nil)
		if deleted["state"] != "deleting" || deleted["operation"].(map[string]any)["kind"] != models.OpVDiskDelete {
			t.Fatalf("delete: %v", deleted)
		}
		again := p.must(202, a, "DELETE", path, nil)
		if id(again["operation"].(map[string]any)) != id(deleted["operation"].(map[string]any)) {
			t.Errorf("a repeated delete started a second operation: %v", again)
		}
		p.finish(deleted)
		if got := p.must(200, a, "GET", path, nil); got["state"] != "deleted" {
			t.Fatalf("after the delete: %v", got)
		}
		// A device's delete leaves its vdisk, detached.
		spare := fmt.Sprintf("/api/v0.9.2/vdisks/%d.json", id(v2))
		p.finish(p.must(202, a, "PATCH", spare, map[string]any{"device": d1}))
		p.do(a, "DELETE", fmt.Sprintf("/api/v0.9.2/devices/%d.json", d1), nil)
		if got := p.must(200, a, "GET", spare, nil); got["device_id"] != nil || got["state"] != "ready" {
			t.Fatalf("vdisk of a deleted device: %v", got)
		}
	})
}
