package netboot

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
)

// TestPanelBootEndpoints drives the panel's side of the boot path over HTTP with the
// server key: registration rules, menus, limits, concurrent first boots, maintenance and
// the exports an agent rebuilds.
func TestPanelBootEndpoints(t *testing.T) {
	p := StartHostPanel(t)
	ctx := context.Background()
	agent := wire.NewClient(p.URL, p.Key)
	q := func(i int) wire.Query {
		d := DeviceN(i)
		return wire.Query{ServerID: p.Server.ID, MAC: d.MAC, UUID: d.UUID}
	}

	// A wrong key is refused.
	if _, err := wire.NewClient(p.URL, "nope").Boot(ctx, q(1)); err == nil {
		t.Fatal("a wrong server key was accepted")
	}
	// No default group and no default menu: not registered, nothing stored.
	info, err := agent.Boot(ctx, q(1))
	if err != nil || info.Registered || info.Message == "" {
		t.Fatalf("unregistered device: %+v %v", info, err)
	}
	var n int64
	p.DB.Model(&models.Device{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d devices stored for an unregistered boot", n)
	}
	// A default menu only: registered without a group, shown the menu.
	g := &models.Group{NetworkID: p.Network.ID, Name: "lab", VolumeID: 1, State: models.StateReady}
	if err := p.DB.Create(g).Error; err != nil {
		t.Fatal(err)
	}
	m := &models.Menu{NetworkID: p.Network.ID, Name: "Boot menu", Items: fmt.Sprintf(`[{"type":"group","label":"Lab","group_id":%d},{"type":"local","label":"Disk"}]`, g.ID)}
	if err := p.DB.Create(m).Error; err != nil {
		t.Fatal(err)
	}
	p.DB.Model(&models.Network{}).Where("id = ?", p.Network.ID).Update("default_menu_id", m.ID)
	agentFresh := func() *wire.Client { return wire.NewClient(p.URL, p.Key) }
	waitState := func() { // the panel reuses a network's boot state for up to 1 s
		<-timeAfter(1100)
	}
	waitState()
	info, err = agentFresh().Boot(ctx, q(2))
	if err != nil || !info.Registered || info.Group != nil || info.Menu == nil || len(info.Menu.Entries) != 2 {
		t.Fatalf("menu device: %+v %v", info, err)
	}
	// Choosing the group in the menu joins it.
	qc := q(2)
	qc.GroupID = g.ID
	info, err = agent.Boot(ctx, qc)
	if err != nil || info.Group == nil || info.Group.ID != g.ID || info.Menu != nil {
		t.Fatalf("menu choice: %+v %v", info, err)
	}
	// A default group: concurrent first boots of one MAC register it once.
	p.DB.Model(&models.Network{}).Where("id = ?", p.Network.ID).Update("default_group_id", g.ID)
	waitState()
	var wg sync.WaitGroup
	ids := make([]uint, 8)
	for i := range ids {
		wg.Go(func() {
			if info, err := agent.Boot(ctx, q(3)); err == nil && info.Registered {
				ids[i] = info.Device.ID
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == 0 || id != ids[0] {
			t.Fatalf("concurrent first boots: device ids %v", ids)
		}
	}
	// MaxDevices: the network is full.
	p.DB.Model(&models.Network{}).Where("id = ?", p.Network.ID).Update("max_devices", 2)
	waitState()
	if info, err := agent.Boot(ctx, q(4)); err != nil || info.Registered {
		t.Fatalf("a device beyond max_devices: %+v %v", info, err)
	}
	// Maintenance: the device boots the head; the master exports it.
	dev := p.Device(DeviceN(3).MAC)
	p.API("POST", fmt.Sprintf("/groups/%d/maintenance.json", g.ID), map[string]any{"device_id": dev.ID})
	exports, err := agent.Exports(ctx)
	if err != nil || len(exports) != 1 || exports[0].Kind != "group" || exports[0].UUID != DeviceN(3).UUID {
		t.Fatalf("exports in maintenance: %+v %v", exports, err)
	}
	waitState()
	if info, err := agent.Boot(ctx, q(3)); err != nil || !info.Group.Maintenance || info.Group.MaintenanceDevice != dev.ID {
		t.Fatalf("maintenance boot info: %+v %v", info, err)
	}
	p.API("DELETE", fmt.Sprintf("/groups/%d/maintenance.json", g.ID), nil)
	if exports, _ := agent.Exports(ctx); len(exports) != 0 {
		t.Fatalf("exports after maintenance: %+v", exports)
	}
	// Booted reports record the last boot.
	if err := agent.Booted(ctx, []wire.Report{{ServerID: p.Server.ID, DeviceID: dev.ID, GroupID: g.ID, Action: wire.Wait}}); err != nil {
		t.Fatal(err)
	}
	if d := p.Device(DeviceN(3).MAC); d.LastBootAt == nil {
		t.Fatalf("last boot not recorded: %+v", d)
	}
}

func timeAfter(ms int) <-chan time.Time { return time.After(time.Duration(ms) * time.Millisecond) }
