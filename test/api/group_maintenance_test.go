package api_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/clusterducks/clusterducks/models"
)

// TestGroupMaintenanceDevice: the maintenance device of a group boots the group head
// whatever its own group or menu (an installer registered through the API has neither,
// and the network's default menu would otherwise be shown); out of maintenance it is
// back to its own.
func TestGroupMaintenanceDevice(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		ctx := context.Background()
		a := p.Admin
		n, srv := p.networkWithMaster()
		grp := p.readyGroup(n, "g", p.readyVolume(n, "base"))
		menu := id(p.must(201, a, "POST", "/api/v0.9.2/menus.json", map[string]any{"network": n, "Name": "boot", "items": []map[string]any{{"type": "local", "label": "Local disk"}}}))
		p.must(200, a, "PUT", fmt.Sprintf("/api/v0.9.2/networks/%d.json", n), map[string]any{"default_menu_id": menu})
		const mac = "52:54:00:00:02:01"
		dev := id(p.must(201, a, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": n, "mac": mac}))

		lookup := func() *models.BootState {
			t.Helper()
			st, err := models.BootLookup(ctx, p.DB, uint(srv), nil, mac, "c1d0c1d0-0000-4000-8000-000000000201", 0)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
		if st := lookup(); st.Group != nil || st.Menu == nil {
			t.Fatalf("before maintenance: group %v, menu %v (want the default menu)", st.Group, st.Menu)
		}
		p.must(200, a, "POST", fmt.Sprintf("/api/v0.9.2/groups/%d/maintenance.json", grp), map[string]any{"device_id": dev})
		if st := lookup(); st.Group == nil || st.Group.ID != uint(grp) || !st.Group.Maintenance || st.Menu != nil {
			t.Fatalf("in maintenance: group %+v, menu %v (want the group, no menu)", st.Group, st.Menu)
		}
		p.endMaintenance(fmt.Sprintf("/api/v0.9.2/groups/%d/maintenance.json", grp))
		if st := lookup(); st.Group != nil || st.Menu == nil {
			t.Fatalf("after maintenance: group %v, menu %v", st.Group, st.Menu)
		}
		// Deleting the maintenance device takes the group out of maintenance.
		p.must(200, a, "POST", fmt.Sprintf("/api/v0.9.2/groups/%d/maintenance.json", grp), map[string]any{"device_id": dev})
		if code, v, _ := p.do(a, "DELETE", fmt.Sprintf("/api/v0.9.2/devices/%d.json", dev), nil); code >= 300 {
			t.Fatalf("delete device: %d %v", code, v)
		}
		g := p.must(200, a, "GET", fmt.Sprintf("/api/v0.9.2/groups/%d.json", grp), nil)
		if g["maintenance"] != false || g["maintenance_device_id"] != nil {
			t.Fatalf("group after its maintenance device was deleted: %v", g)
		}
	})
}
