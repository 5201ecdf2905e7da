package api_test

import (
	"fmt"
	"testing"

	"github.com/clusterducks/clusterducks/models"
)

// TestTornVersion: a group head or a volume that a maintenance device may still write is
// never snapshotted or cloned. While the maintenance is on, publish and a group create
// from the volume answer 409; ending it answers 202 with the operation that removes the
// target, and both stay 409 (naming that operation) until it has succeeded. A maintenance
// cannot start while a copy of the disk is still to be taken. Deleting the maintenance
// device ends the maintenance the same way.
func TestTornVersion(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		a := p.Admin
		n, _ := p.networkWithMaster()
		vol := p.readyVolume(n, "base")
		grp := p.readyGroup(n, "g", vol)
		dev := id(p.must(201, a, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": n, "mac": "52:54:00:00:03:01"}))
		gm := fmt.Sprintf("/api/v0.9.2/groups/%d/maintenance.json", grp)
		publish := fmt.Sprintf("/api/v0.9.2/groups/%d/publish.json", grp)
		refused := func(what string, code int, v any, field string) {
			t.Helper()
			m, _ := v.(map[string]any)
			if code != 409 || m == nil || m["error"] == nil || (field != "" && m["field"] != field) {
				t.Fatalf("%s: %d %v, want 409 naming %q", what, code, v, field)
			}
		}

		p.must(200, a, "POST", gm, map[string]any{"device_id": dev})
		code, v, _ := p.do(a, "POST", publish, nil)
		refused("publish in maintenance", code, v, "")
		off := p.must(202, a, "DELETE", gm, nil)
		op := off["operation"].(map[string]any)
		if off["maintenance"] != false || op["state"] == nil {
			t.Fatalf("end of maintenance: %v", off)
		}
		code, v, _ = p.do(a, "POST", publish, nil)
		refused("publish while the maintenance ends", code, v, "")
		code, v, _ = p.do(a, "POST", gm, map[string]any{"device_id": dev})
		refused("maintenance again while the last one ends", code, v, "")
		if err := p.DB.Model(&models.Operation{}).Where("id = ?", id(op)).Update("state", models.OpSucceeded).Error; err != nil {
			t.Fatal(err)
		}
		pub := p.must(202, a, "POST", publish, nil)
		// A maintenance cannot start while that version is still to be taken.
		code, v, _ = p.do(a, "POST", gm, map[string]any{"device_id": dev})
		refused("maintenance while a publish is queued", code, v, "")
		p.ready(pub, &models.GroupVersion{})

		// A volume: a group create from it is refused the same way, naming volume_id.
		vm := fmt.Sprintf("/api/v0.9.2/volumes/%d/maintenance.json", vol)
		p.must(200, a, "POST", vm, map[string]any{"device_id": dev})
		code, v, _ = p.do(a, "POST", "/api/v0.9.2/groups.json", map[string]any{"network": n, "Name": "g2", "VolumeID": vol})
		refused("group create from a volume in maintenance", code, v, "volume_id")
		// Deleting the device ends it through an operation too.
		if code, v, _ := p.do(a, "DELETE", fmt.Sprintf("/api/v0.9.2/devices/%d.json", dev), nil); code >= 300 {
			t.Fatalf("delete device: %d %v", code, v)
		}
		code, v, _ = p.do(a, "POST", "/api/v0.9.2/groups.json", map[string]any{"network": n, "Name": "g2", "VolumeID": vol})
		refused("group create while the volume's maintenance ends", code, v, "volume_id")
		var end models.Operation
		if err := p.DB.Where("kind = ? AND object_id = ?", models.OpVolumeMaintenanceEnd, vol).Take(&end).Error; err != nil {
			t.Fatalf("no maintenance-end operation after the device's delete: %v", err)
		}
		p.DB.Model(&end).Update("state", models.OpSucceeded)
		p.must(202, a, "POST", "/api/v0.9.2/groups.json", map[string]any{"network": n, "Name": "g2", "VolumeID": vol})
	})
}
