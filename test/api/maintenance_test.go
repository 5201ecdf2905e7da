package api_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
)

// TestVolumeMaintenance: a device of the volume's network boots a ready volume read-write
// (first install); a device maintains one group or one volume at a time; the boot path and
// the master's exports carry it; ending it, or deleting the device, takes it out.
func TestVolumeMaintenance(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		ctx := context.Background()
		a := p.Admin
		n, srv := p.networkWithMaster()
		other := id(p.must(201, a, "POST", "/api/v0.9.2/networks.json", map[string]any{"Name": "O", "Client": 1}))
		vol, vol2 := p.readyVolume(n, "base"), p.readyVolume(n, "other")
		pending := id(p.must(202, a, "POST", "/api/v0.9.2/volumes.json", map[string]any{"network": n, "Alias": "pending", "vol_size": 1}))
		grp := p.readyGroup(n, "g", vol2)
		dev := func(net int, mac string) int {
			return id(p.must(201, a, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": net, "mac": mac}))
		}
		d1, d2, d3 := dev(n, "52:54:00:00:01:01"), dev(n, "52:54:00:00:01:02"), dev(n, "52:54:00:00:01:03")
		foreign := dev(other, "52:54:00:00:01:09")
		path := func(v int) string { return fmt.Sprintf("/api/v0.9.2/volumes/%d/maintenance.json", v) }

		for _, c := range []struct {
			name   string
			path   string
			body   any
			status int
			field  string
		}{
			{"no device", path(vol), map[string]any{}, 422, "device_id"},
			{"no body", path(vol), nil, 422, "device_id"},
			{"device of another network", path(vol), map[string]any{"device_id": foreign}, 422, "device_id"},
			{"absent device", path(vol), map[string]any{"device_id": 99999}, 422, "device_id"},
			{"unknown field", path(vol), map[string]any{"device_id": d1, "colour": "red"}, 422, "colour"},
			{"pending volume", path(pending), map[string]any{"device_id": d1}, 409, ""},
			{"absent volume", path(99999), map[string]any{"device_id": d1}, 404, ""},
		} {
			code, v, _ := p.do(a, "POST", c.path, c.body)
			m, _ := v.(map[string]any)
			if code != c.status || m == nil || m["error"] == nil || (c.field != "" && m["field"] != c.field) {
				t.Errorf("%s: %d %v, want %d naming %q", c.name, code, v, c.status, c.field)
			}
		}

		on := p.must(200, a, "POST", path(vol), map[string]any{"device_id": d1})
		if on["maintenance"] != true || on["maintenance_device_id"] != float64(d1) {
			t.Fatalf("maintenance on: %v", on)
		}
		p.must(200, a, "POST", path(vol), map[string]any{"device_id": d1}) // repeating changes nothing
		got := p.must(200, a, "GET", fmt.Sprintf("/api/v0.9.2/volumes/%d.json", vol), nil)
		if got["maintenance"] != true || got["maintenance_device_id"] != float64(d1) {
			t.Fatalf("volume in maintenance: %v", got)
		}

		// One maintained disk per device: group or volume.
		p.must(200, a, "POST", fmt.Sprintf("/api/v0.9.2/groups/%d/maintenance.json", grp), map[string]any{"device_id": d2})
		for _, c := range []struct {
			name, path string
			dev        int
		}{
			{"second volume for d1", path(vol2), d1},
			{"group for d1", fmt.Sprintf("/api/v0.9.2/groups/%d/maintenance.json", grp), d1},
			{"volume for the group's device", path(vol), d2},
		} {
			code, v, _ := p.do(a, "POST", c.path, map[string]any{"device_id": c.dev})
			if m, _ := v.(map[string]any); code != 409 || m["field"] != "device_id" {
				t.Errorf("%s: %d %v, want 409 naming device_id", c.name, code, v)
			}
		}
		// A volume in maintenance is not deleted under its device.
		if code, v, _ := p.do(a, "DELETE", fmt.Sprintf("/api/v0.9.2/volumes/%d.json", vol), nil); code != 409 {
			t.Errorf("delete in maintenance: %d %v, want 409", code, v)
		}

		// The boot path: d1 boots the volume (a device without group or menu), d3 nothing.
		const uuid1 = "c1d0c1d0-0000-4000-8000-000000000101"
		st, err := models.BootLookup(ctx, p.DB, uint(srv), nil, "52:54:00:00:01:01", uuid1, 0)
		if err != nil || st.Volume == nil || st.Volume.ID != uint(vol) || st.Group != nil {
			t.Fatalf("boot lookup of d1: %+v %v", st, err)
		}
		if info := api.BootInfo(st); info.Volume == nil || info.Volume.ID != uint(vol) || info.Device.UUID != uuid1 {
			t.Fatalf("boot info of d1: %+v", info)
		}
		if st, err := models.BootLookup(ctx, p.DB, uint(srv), nil, "52:54:00:00:01:03", "", 0); err != nil || st.Volume != nil {
			t.Fatalf("boot lookup of d3: %+v %v", st, err)
		}
		if info := api.BootInfo(&models.BootState{Registered: true}); info.Volume != nil {
			t.Fatalf("boot info without maintenance: %+v", info.Volume)
		}
		// The master exports it, to d1's UUID.
		exports, err := models.DesiredExports(ctx, p.DB, uint(srv))
		if err != nil || !hasExport(exports, models.ExportRow{Kind: "volume", ID: uint(vol), NetworkID: uint(n), UUID: uuid1}) ||
			!hasExport(exports, models.ExportRow{Kind: "group", ID: uint(grp), NetworkID: uint(n)}) {
			t.Fatalf("exports: %+v %v", exports, err)
		}

		off := p.endMaintenance(path(vol))
		if off["maintenance"] != false || off["maintenance_device_id"] != nil {
			t.Fatalf("maintenance off: %v", off)
		}
		if exports, _ := models.DesiredExports(ctx, p.DB, uint(srv)); hasExport(exports, models.ExportRow{Kind: "volume", ID: uint(vol), NetworkID: uint(n), UUID: uuid1}) {
			t.Fatalf("exports after maintenance: %+v", exports)
		}
		var events []models.AuditEvent
		p.DB.Where("object = ? AND object_id = ?", "volume", vol).Order("id").Find(&events)
		var actions []string
		for _, e := range events {
			actions = append(actions, e.Action)
		}
		if fmt.Sprint(actions) != "[create maintenance-on maintenance-on maintenance-off]" {
			t.Errorf("audit of the volume: %v", actions)
		}

		// Deleting the device ends the maintenance it held.
		p.must(200, a, "POST", path(vol2), map[string]any{"device_id": d3})
		if code, v, _ := p.do(a, "DELETE", fmt.Sprintf("/api/v0.9.2/devices/%d.json", d3), nil); code >= 300 {
			t.Fatalf("delete device: %d %v", code, v)
		}
		var v2 models.Volume
		if err := p.DB.Take(&v2, vol2).Error; err != nil || v2.Maintenance || v2.MaintenanceDeviceID != nil {
			t.Fatalf("volume after its device was deleted: %+v %v", v2, err)
		}
		// Out of maintenance, the volume can be deleted.
		p.must(202, a, "DELETE", fmt.Sprintf("/api/v0.9.2/volumes/%d.json", vol), nil)
	})
}

func hasExport(rows []models.ExportRow, want models.ExportRow) bool {
	for _, r := range rows {
		if r == want {
			return true
		}
	}
	return false
}

// TestVolumeMaintenanceMigration: a database migrated before volume maintenance existed
// gains its columns (the migration adds only what is missing).
func TestVolumeMaintenanceMigration(t *testing.T) {
	for _, driver := range harness.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := harness.NewDB(t, driver)
			for _, q := range []string{
				"ALTER TABLE volumes DROP COLUMN maintenance_device_id",
				"ALTER TABLE volumes DROP COLUMN maintenance",
				"DELETE FROM schema_migrations WHERE id = '202611250001_volume_maintenance'",
			} {
				if err := db.Exec(q).Error; err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if pending, err := models.PendingMigrations(ctx, db); err != nil || len(pending) != 1 {
				t.Fatalf("pending: %v %v", pending, err)
			}
			if err := models.Migrate(ctx, db); err != nil {
				t.Fatal(err)
			}
			for _, col := range []string{"maintenance", "maintenance_device_id"} {
				if !db.Migrator().HasColumn(&models.Volume{}, col) {
					t.Errorf("volumes lacks %s after the migration", col)
				}
			}
			if err := db.Create(&models.Volume{NetworkID: 1, Alias: "v", SizeGiB: 1}).Error; err != nil {
				t.Fatal(err)
			}
			var v models.Volume
			if err := db.Take(&v).Error; err != nil || v.Maintenance || v.MaintenanceDeviceID != nil {
				t.Fatalf("a volume after the migration: %+v %v", v, err)
			}
		})
	}
}
