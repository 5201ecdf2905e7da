package bootview

import (
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// Lookup answers a boot query for a device by MAC from the view, as the panel would: its
// Info, and whether the view is within its lease (a strict group boots from it only then).
// ok is false when only the panel can answer: no view yet, an unknown MAC (registration),
// a device without a recorded UUID (its first boot records it), a menu's choice of
// another group (the panel moves the device), a group the view does not hold.
func (v *View) Lookup(mac string, groupChoice uint) (info *wire.Info, fresh, ok bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	info, ok = v.lookup(mac, groupChoice)
	if !ok {
		v.passed.Add(1)
		return nil, false, false
	}
	v.answered.Add(1)
	return info, !v.st.Confirmed.IsZero() && time.Since(v.st.Confirmed) < v.lease(), true
}

// lookup is models.BootLookup followed by api.BootInfo, over the view. Callers hold mu.
func (v *View) lookup(mac string, groupChoice uint) (*wire.Info, bool) {
	n := v.st.Network
	d, known := v.byMAC[mac]
	if n == nil || !known || d.UUID == "" || (groupChoice != 0 && groupChoice != d.GroupID) {
		return nil, false
	}
	info := &wire.Info{Registered: true, Servers: n.Servers, MasterServerID: n.MasterServerID,
		Device: wire.DeviceInfo{ID: d.ID, NetworkID: d.NetworkID, MAC: d.MAC, UUID: d.UUID, Locked: d.Locked, Revision: d.Revision}}
	if d.CloneVersionID != 0 {
		if ref, ok := v.versions[d.CloneVersionID]; ok {
			info.Device.CloneGroupID, info.Device.CloneVersion, info.Device.CloneVersionID = ref.GroupID, ref.Number, ref.ID
			info.Device.CloneServerID = d.ServerID
		}
	}
	if vol, ok := v.maintained[d.ID]; ok {
		info.Volume = &wire.VolumeInfo{ID: vol}
	}
	// A device's own menu at every boot; the network's default menu only to a device
	// without a group; none after a menu's choice.
	menuID := d.MenuID
	if menuID == 0 && d.GroupID == 0 {
		menuID = n.DefaultMenuID
	}
	if menuID != 0 && groupChoice == 0 {
		if m, ok := v.menus[menuID]; ok {
			info.Menu = m
		}
	}
	groupID := d.GroupID
	for i := range n.Groups {
		if g := &n.Groups[i]; g.Maintenance && g.MaintenanceDevice == d.ID {
			// The maintenance device of a group boots its head, whatever its own group or menu.
			groupID, info.Menu = g.ID, nil
		}
	}
	if groupID == 0 {
		return info, true
	}
	g, ok := v.groups[groupID]
	if !ok {
		return nil, false
	}
	info.Group = g
	if c, ok := v.canaries[d.ID]; ok && c.GroupID == g.ID && !d.Locked {
		// A rollout's canary: its own copy of the group, assigning the version rolled out.
		cg := *g
		cg.Assigned, cg.Canary = c.Version, true
		info.Group = &cg
	}
	return info, true
}
