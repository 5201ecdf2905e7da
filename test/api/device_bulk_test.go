package api_test

import (
	"fmt"
	"testing"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
)

// TestDeviceBulk: POST devices/bulk.json locks, unlocks, moves, restores and deletes
// several devices (by id, name or MAC) as one change, scoped like the single actions: a
// device of another client is 404 naming devices and nothing changes, a refused device
// (no disk to restore, a group of another network) changes nothing either, bad input is
// 422 naming the field, and a restore or a delete of devices with disks answers 202 with
// the operations, per device.
func TestDeviceBulk(t *testing.T) {
	for _, driver := range harness.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			w := buildWorld(t, driver)
			p, a := w.p, w.userA
			const bulk = "/api/v0.9.2/devices/bulk.json"
			d1 := id(p.must(201, a, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": w.netA, "mac": "52:54:00:00:0c:01", "name": "pc-1"}))
			d2 := id(p.must(201, a, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": w.netA, "mac": "52:54:00:00:0c:02", "name": "pc-2"}))
			devB := w.objects["devices"]
			var groups []models.Group
			if err := p.DB.Where("network_id = ?", w.netA).Find(&groups).Error; err != nil || len(groups) != 1 {
				t.Fatalf("client A's group: %v %v", groups, err)
			}
			gA, gB := int(groups[0].ID), w.objects["groups"]
			device := func(did int) models.Device {
				t.Helper()
				var d models.Device
				if err := p.DB.Take(&d, did).Error; err != nil {
					t.Fatalf("device %d: %v", did, err)
				}
				return d
			}
			ops := func() int64 {
				var n int64
				p.DB.Model(&models.Operation{}).Where("object_type = ?", "device").Count(&n)
				return n
			}
			refused := func(code int, field string, body map[string]any) {
				t.Helper()
				got, v, _ := p.do(a, "POST", bulk, body)
				if m, _ := v.(map[string]any); got != code || m["field"] != field {
					t.Fatalf("%v: %d %v, want %d naming %s", body, got, v, code, field)
				}
			}

			// By id, by name and by MAC; a device named twice counts once.
			m := p.must(200, a, "POST", bulk, map[string]any{"action": "lock", "devices": []any{d1, "pc-2", "52-54-00-00-0C-01"}})
			items, _ := m["devices"].([]any)
			if len(items) != 2 || m["failed"] != float64(0) || m["action"] != "lock" {
				t.Fatalf("bulk lock: %v", m)
			}
			for _, it := range items {
				if it.(map[string]any)["state"] != "done" {
					t.Errorf("bulk lock item: %v", it)
				}
			}
			if !device(d1).Locked || !device(d2).Locked {
				t.Fatalf("after a bulk lock: %+v %+v", device(d1), device(d2))
			}

			// Another client's device: 404 naming devices, and the visible ones stay as they were.
			refused(404, "devices", map[string]any{"action": "unlock", "devices": []any{d1, devB}})
			refused(404, "devices", map[string]any{"action": "delete", "devices": []any{d2, "no-such-pc"}})
			refused(404, "devices", map[string]any{"action": "unlock", "devices": []any{devB}})
			if !device(d1).Locked || !device(d2).Locked {
				t.Fatal("a refused bulk unlock changed a device")
			}
			if code, _, _ := p.do(w.userB, "POST", bulk, map[string]any{"action": "unlock", "devices": []any{devB}}); code != 200 {
				t.Errorf("client B unlocking its own device: %d", code)
			}

			// Bad input names its field.
			refused(422, "action", map[string]any{"devices": []any{d1}})
			refused(422, "action", map[string]any{"action": "explode", "devices": []any{d1}})
			refused(422, "devices", map[string]any{"action": "lock"})
			refused(422, "devices", map[string]any{"action": "lock", "devices": []any{}})
			refused(422, "devices", map[string]any{"action": "lock", "devices": []any{" "}})
			refused(422, "devices", map[string]any{"action": "lock", "devices": []any{true}})
			refused(422, "group_id", map[string]any{"action": "move", "devices": []any{d1}})
			refused(422, "group_id", map[string]any{"action": "lock", "devices": []any{d1}, "group_id": gA})
			refused(422, "colour", map[string]any{"action": "lock", "devices": []any{d1}, "colour": "red"})
			// A group of another network: refused for the device, nothing moved.
			refused(422, "group_id", map[string]any{"action": "move", "devices": []any{d1, d2}, "group_id": gB})
			if device(d1).GroupID != nil || device(d2).GroupID != nil {
				t.Fatal("a refused move moved a device")
			}

			m = p.must(200, a, "POST", bulk, map[string]any{"action": "move", "devices": []any{d1, d2}, "group": gA})
			if g := device(d2).GroupID; g == nil || int(*g) != gA || m["group_id"] != float64(gA) {
				t.Fatalf("after a bulk move to group %d: %v, answer %v", gA, g, m)
			}
			p.must(200, a, "POST", bulk, map[string]any{"action": "unlock", "devices": []any{d1, d2}})
			if device(d1).Locked || device(d2).Locked {
				t.Fatal("bulk unlock left a device locked")
			}

			// A restore needs a disk: d1 has none, so neither is restored.
			srv := w.p.DB.Model(&models.Device{}).Where("id = ?", d2)
			var srvA models.Server
			if err := p.DB.Where("network_id = ?", w.netA).Take(&srvA).Error; err != nil {
				t.Fatal(err)
			}
			if err := srv.Update("server_id", srvA.ID).Error; err != nil {
				t.Fatal(err)
			}
			before := ops()
			refused(409, "devices", map[string]any{"action": "restore", "devices": []any{d2, d1}})
			if ops() != before {
				t.Fatal("a refused bulk restore recorded an operation")
			}
			m = p.must(202, a, "POST", bulk, map[string]any{"action": "restore", "devices": []any{d2}})
			if o, _ := m["operation"].(map[string]any); o["kind"] != models.OpBulkRestore || o["object_type"] != "device" {
				t.Fatalf("bulk restore: %v", m)
			}
			if it := m["devices"].([]any)[0].(map[string]any); it["state"] != "queued" || it["operation_id"] == nil {
				t.Fatalf("bulk restore item: %v", it)
			}

			// Delete: one transaction, d2's disk to the erator by the one bulk-delete
			// operation, whose result lists d2 (d1 has no disk: nothing after the commit).
			before = ops()
			code, v, hdr := p.do(a, "POST", bulk, map[string]any{"action": "delete", "devices": []any{d1, d2}})
			m, _ = v.(map[string]any)
			o, _ := m["operation"].(map[string]any)
			if code != 202 || o["kind"] != models.OpBulkDelete || o["object_id"] != float64(d2) || ops() != before+1 {
				t.Fatalf("bulk delete: %d %v (%d operations recorded)", code, m, ops()-before)
			}
			if loc := hdr.Get("Location"); loc != o["url"] || loc == "" {
				t.Errorf("bulk delete's Location %q, operation %v", loc, o["url"])
			}
			if res, _ := o["result"].([]any); len(res) != 1 || res[0].(map[string]any)["id"] != float64(d2) || res[0].(map[string]any)["state"] != "queued" {
				t.Errorf("bulk delete's result: %v", o["result"])
			}
			var left int64
			p.DB.Model(&models.Device{}).Where("id IN ?", []int{d1, d2}).Count(&left)
			if left != 0 {
				t.Fatalf("%d devices left after a bulk delete", left)
			}
			var events int64
			p.DB.Model(&models.AuditEvent{}).Where("action = ?", "bulk-delete").Count(&events)
			if events != 1 {
				t.Errorf("bulk delete audited %d times, want once", events)
			}
			p.must(200, a, "GET", fmt.Sprintf("/api/v0.9.2/operations/%d.json", id(o)), nil)
		})
	}
}

// TestDeviceListFilters: GET devices.json filters by group_id, server_id, version_id (an
// id, or none), locked and compliant (on the strict group's assigned version), in the database (X-Total-Count counts the matches), and sorts
// by server; a bad value is 422 naming its parameter, and a list without the filter
// refuses it the same way.
func TestDeviceListFilters(t *testing.T) {
	for _, driver := range harness.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			w := buildWorld(t, driver)
			p, a := w.p, w.userA
			var g models.Group
			var srv models.Server
			if err := p.DB.Where("network_id = ?", w.netA).Take(&g).Error; err != nil {
				t.Fatal(err)
			}
			if err := p.DB.Where("network_id = ?", w.netA).Take(&srv).Error; err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				body := map[string]any{"network": w.netA, "mac": fmt.Sprintf("52:54:00:00:0f:%02x", i), "locked": i%2 == 0}
				if i < 3 {
					body["group_id"] = g.ID
				}
				d := id(p.must(201, a, "POST", "/api/v0.9.2/devices.json", body))
				if i == 0 {
					p.DB.Model(&models.Device{}).Where("id = ?", d).Update("server_id", srv.ID)
				}
			}
			count := func(q string) string {
				t.Helper()
				code, v, h := p.do(a, "GET", fmt.Sprintf("/api/v0.9.2/devices.json?network_id=%d&%s", w.netA, q), nil)
				if code != 200 {
					t.Fatalf("%s: %d %v", q, code, v)
				}
				return h.Get("X-Total-Count")
			}
			// The world's network has one device already: unlocked, no group, no disk.
			for q, want := range map[string]string{
				fmt.Sprintf("group_id=%d", g.ID): "3", "group_id=none": "2", "locked=true": "2", "locked=false": "3",
				fmt.Sprintf("server_id=%d", srv.ID): "1", "server_id=0": "4", "version_id=none": "5",
				fmt.Sprintf("group_id=%d&locked=true", g.ID): "2", "sort=-server": "5",
			} {
				if got := count(q); got != want {
					t.Errorf("devices.json?%s: %s devices, want %s", q, got, want)
				}
			}
			// Compliance: the group turns strict and follows its newest ready version, v2
			// (v3 is still pending); device 0's disk is a v2 clone (compliant), device 1's a
			// v1 clone and device 2 has none (both not); the two without a group are.
			var vs []models.GroupVersion
			for n, state := range []string{models.StateReady, models.StateReady, "pending"} {
				v := models.GroupVersion{GroupID: g.ID, Number: n + 1, State: state}
				if err := p.DB.Create(&v).Error; err != nil {
					t.Fatal(err)
				}
				vs = append(vs, v)
			}
			var devs []models.Device
			if err := p.DB.Where("group_id = ?", g.ID).Order("id").Find(&devs).Error; err != nil || len(devs) != 3 {
				t.Fatalf("group devices: %v %v", devs, err)
			}
			p.DB.Model(&models.Device{}).Where("id = ?", devs[0].ID).Update("clone_version_id", vs[1].ID)
			p.DB.Model(&models.Device{}).Where("id = ?", devs[1].ID).Update("clone_version_id", vs[0].ID)
			if got := count("compliant=false"); got != "0" {
				t.Errorf("devices.json?compliant=false with no strict group: %s devices, want 0", got)
			}
			p.DB.Model(&models.Group{}).Where("id = ?", g.ID).Update("strict_versioning", true)
			for q, want := range map[string]string{
				"compliant=true": "3", "compliant=false": "2", "compliant=false&locked=true": "1",
				fmt.Sprintf("compliant=true&group_id=%d", g.ID): "1",
			} {
				if got := count(q); got != want {
					t.Errorf("devices.json?%s: %s devices, want %s", q, got, want)
				}
			}
			// Pinned to v1, device 1 is the compliant one.
			p.DB.Model(&models.Group{}).Where("id = ?", g.ID).Update("assigned_version_id", vs[0].ID)
			if got := count(fmt.Sprintf("compliant=true&group_id=%d", g.ID)); got != "1" {
				t.Errorf("pinned to v1: %s compliant devices of the group, want 1", got)
			}
			if got := count(fmt.Sprintf("compliant=true&version_id=%d", vs[0].ID)); got != "1" {
				t.Errorf("pinned to v1: %s compliant v1 clones, want 1", got)
			}
			for q, field := range map[string]string{"group_id=abc": "group_id", "locked=maybe": "locked", "server_id=-1": "server_id", "compliant=2": "compliant"} {
				code, v, _ := p.do(a, "GET", "/api/v0.9.2/devices.json?"+q, nil)
				if m, _ := v.(map[string]any); code != 422 || m["field"] != field {
					t.Errorf("devices.json?%s: %d %v, want 422 naming %s", q, code, v, field)
				}
			}
			if code, v, _ := p.do(a, "GET", "/api/v0.9.2/volumes.json?locked=true", nil); code != 422 || v.(map[string]any)["field"] != "locked" {
				t.Errorf("volumes.json?locked=true: %d %v, want 422 naming locked", code, v)
			}
		})
	}
}
