package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// The panel's side of the boot path (DESIGN.md §5): what an agent needs to answer a
// netbooting device, device registration on an unknown MAC, the record of each boot and
// the desired exports an agent rebuilds after a restart. Agents are not users: these
// functions are scoped by the server a key was issued for, never by an Actor.

// BootState is what the panel knows about a booting device.
type BootState struct {
	Network Network
	// Registered is false for an unknown MAC the network cannot take (no default group or
	// menu, or its MaxDevices is reached); Message says why.
	Registered bool
	New        bool // this request registered the device
	Message    string
	Device     Device
	// Group is the group the device boots (nil: none), with its ready versions, which
	// servers hold each (master included), and the assigned version.
	Group    *Group
	Versions []GroupVersion
	Holders  map[uint][]uint // version id -> server ids
	Assigned *GroupVersion
	// Canary: the device is a canary of a rollout of its group: Assigned is the version
	// rolled out (served to it alone), which it takes even under lazy locks.
	Canary bool
	// Clone is the version of the device's clone (nil: none).
	Clone *GroupVersion
	Menu  *Menu
	// Volume is the volume this device maintains (boots read-write), nil when none: it
	// comes before the device's menu and group.
	Volume *Volume
	// Servers of the network.
	Servers []Server
}

// NetworkBoot is the part of a boot answer that is the same for every device of a
// network: its servers, groups with their ready versions and holders, and menus. The
// panel loads it once for many boots (a boot storm asks the same thing hundreds of times).
type NetworkBoot struct {
	Network  Network
	Servers  []Server
	Groups   map[uint]*GroupBoot
	Versions map[uint]GroupVersion // every version of the network's groups, by id
	Menus    map[uint]Menu
	// Maintained are the network's volumes in maintenance, by maintenance device id.
	Maintained map[uint]Volume
	// Canaries are the canaries of the network's rollouts in their canary wave, by device
	// id: the version each is served instead of its group's assignment.
	Canaries map[uint]GroupVersion
}

// GroupBoot is a group with its ready versions, who holds each, and the assigned one.
type GroupBoot struct {
	Group    Group
	Versions []GroupVersion  // ready, by number
	Holders  map[uint][]uint // version id -> server ids (the master first)
	Assigned *GroupVersion
}

// LoadNetworkBoot reads a network's boot-wide state in a fixed number of queries.
func LoadNetworkBoot(ctx context.Context, db *gorm.DB, networkID uint) (*NetworkBoot, error) {
	db = db.WithContext(ctx)
	nb := &NetworkBoot{Groups: map[uint]*GroupBoot{}, Versions: map[uint]GroupVersion{}, Menus: map[uint]Menu{}, Maintained: map[uint]Volume{},
		Canaries: map[uint]GroupVersion{}}
	if err := db.Take(&nb.Network, networkID).Error; err != nil {
		return nil, notFoundOr(err, "network")
	}
	n := &nb.Network
	if err := db.Where("network_id = ?", n.ID).Order("id").Find(&nb.Servers).Error; err != nil {
		return nil, err
	}
	var groups []Group
	if err := db.Where("network_id = ?", n.ID).Order("id").Find(&groups).Error; err != nil {
		return nil, err
	}
	for _, g := range groups {
		nb.Groups[g.ID] = &GroupBoot{Group: g, Holders: map[uint][]uint{}}
	}
	var versions []GroupVersion
	if err := db.Where("group_id IN (?)", db.Model(&Group{}).Select("id").Where("network_id = ?", n.ID)).
		Order("group_id, number").Find(&versions).Error; err != nil {
		return nil, err
	}
	var ready []uint
	for _, v := range versions {
		nb.Versions[v.ID] = v
		gb := nb.Groups[v.GroupID]
		if gb == nil || v.State != StateReady {
			continue
		}
		gb.Versions = append(gb.Versions, v)
		ready = append(ready, v.ID)
		if n.MasterServerID != nil {
			// The master published the version: it holds it.
			gb.Holders[v.ID] = append(gb.Holders[v.ID], *n.MasterServerID)
		}
	}
	if len(ready) > 0 {
		var copies []VersionCopy
		if err := db.Where("version_id IN ?", ready).Order("server_id").Find(&copies).Error; err != nil {
			return nil, err
		}
		for _, c := range copies {
			if v, ok := nb.Versions[c.VersionID]; ok && (n.MasterServerID == nil || c.ServerID != *n.MasterServerID) {
				gb := nb.Groups[v.GroupID]
				gb.Holders[c.VersionID] = append(gb.Holders[c.VersionID], c.ServerID)
			}
		}
	}
	for _, gb := range nb.Groups {
		gb.Assigned = AssignedVersion(&gb.Group, Assignable(&gb.Group, gb.Versions, gb.Holders, len(nb.Servers)))
	}
	var menus []Menu
	if err := db.Where("network_id = ?", n.ID).Find(&menus).Error; err != nil {
		return nil, err
	}
	for _, m := range menus {
		nb.Menus[m.ID] = m
	}
	var vols []Volume
	if err := db.Scopes(inMaintenance(n.ID)).Find(&vols).Error; err != nil {
		return nil, err
	}
	for _, v := range vols {
		nb.Maintained[*v.MaintenanceDeviceID] = v
	}
	var rollouts []Rollout
	if err := db.Where("network_id = ? AND state = ?", n.ID, RolloutCanary).Order("id").Find(&rollouts).Error; err != nil {
		return nil, err
	}
	for _, r := range rollouts {
		if v, ok := nb.Versions[r.VersionID]; ok && v.State == StateReady {
			for _, d := range idList(r.Canaries) {
				nb.Canaries[d] = v
			}
		}
	}
	return nb, nil
}

// BootLookup identifies a device by MAC in the network of the server it boots from,
// registering an unknown MAC into the network's default group (or with no group when the
// network has only a default menu). groupChoice, when not 0, is a menu's choice: the
// device joins that group of its network. nb is the network's boot state (nil: loaded
// here); the device itself is always read fresh.
func BootLookup(ctx context.Context, db *gorm.DB, serverID uint, nb *NetworkBoot, mac, uuid string, groupChoice uint) (*BootState, error) {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return nil, err
	}
	db = db.WithContext(ctx)
	if nb == nil {
		var srv Server
		if err := db.Take(&srv, serverID).Error; err != nil {
			return nil, notFoundOr(err, "server")
		}
		if nb, err = LoadNetworkBoot(ctx, db, srv.NetworkID); err != nil {
			return nil, err
		}
	}
	st := &BootState{Network: nb.Network, Servers: nb.Servers}
	n := &st.Network
	err = db.Where("network_id = ? AND mac = ?", n.ID, mac).Take(&st.Device).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		if n.DefaultGroupID == nil && n.DefaultMenuID == nil {
			st.Message = "this device is not registered and the network has no default group"
			return st, nil
		}
		created, err := registerDevice(db, n, mac, uuid, &st.Device)
		if err != nil {
			var ce *ConflictError
			if errors.As(err, &ce) {
				st.Message = "this device is not registered: " + ce.Msg
				return st, nil
			}
			return nil, err
		}
		st.New = created
	case err != nil:
		return nil, fmt.Errorf("load device: %w", err)
	}
	st.Registered = true
	d := &st.Device
	if d.UUID == "" && uuid != "" {
		// First boot of a device registered through the API: its UUID protects its disk from now on.
		d.UUID = uuid
		if err := setBootColumn(db, d, "uuid = ''", "uuid", uuid); err != nil {
			return nil, err
		}
	}
	if groupChoice != 0 && (d.GroupID == nil || *d.GroupID != groupChoice) {
		if _, ok := nb.Groups[groupChoice]; !ok {
			return nil, NotFound("group")
		}
		d.GroupID = &groupChoice
		if err := setBootColumn(db, d, "", "group_id", groupChoice); err != nil {
			return nil, err
		}
	}
	if d.CloneVersionID != nil {
		if v, ok := nb.Versions[*d.CloneVersionID]; ok {
			st.Clone = &v
		}
	}
	if v, ok := nb.Maintained[d.ID]; ok {
		st.Volume = &v
	}
	// A device's own menu is shown at every boot; the network's default menu only to a
	// device without a group. A menu choice (groupChoice) boots without the menu.
	menuID := d.MenuID
	if menuID == nil && d.GroupID == nil {
		menuID = n.DefaultMenuID
	}
	if menuID != nil && groupChoice == 0 {
		if m, ok := nb.Menus[*menuID]; ok {
			st.Menu = &m
		}
	}
	groupID := d.GroupID
	for id, gb := range nb.Groups {
		if gb.Group.Maintenance && gb.Group.MaintenanceDeviceID != nil && *gb.Group.MaintenanceDeviceID == d.ID {
			// The maintenance device of a group boots its head, whatever its own group or menu.
			groupID, st.Menu = &id, nil
		}
	}
	if groupID == nil {
		return st, nil
	}
	gb, ok := nb.Groups[*groupID]
	if !ok {
		return nil, NotFound("group")
	}
	g := gb.Group
	st.Group, st.Versions, st.Holders, st.Assigned = &g, gb.Versions, gb.Holders, gb.Assigned
	if v, ok := nb.Canaries[d.ID]; ok && v.GroupID == g.ID && !d.Locked {
		st.Assigned, st.Canary = &v, true
	}
	return st, nil
}

// setBootColumn writes one column of a booting device (where, when not "", narrows the
// update) and bumps its network's boot revision in the same transaction.
func setBootColumn(db *gorm.DB, d *Device, where, column string, value any) error {
	return db.Transaction(func(tx *gorm.DB) error {
		q := tx.Model(&Device{}).Where("id = ?", d.ID)
		if where != "" {
			q = q.Where(where)
		}
		if err := q.Update(column, value).Error; err != nil {
			return err
		}
		_, err := bumpBoot(tx, d.NetworkID, d.ID)
		return err
	})
}

func notFoundOr(err error, what string) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return NotFound(what)
	}
	return fmt.Errorf("load %s: %w", what, err)
}

// BootRecord is what an agent told a device to boot.
type BootRecord struct {
	DeviceID  uint
	GroupID   uint
	Version   int // 0: nothing booted (reboot loop, redirect)
	Booted    bool
	ServerID  uint
	Reason    string
	Compliant bool
	// A watched boot (issue 18): BootID names it, At is when the agent served it; a record
	// with a Result is that boot's end (UpMS its time to up, Why what decided it).
	BootID string
	At     time.Time
	Result string
	UpMS   int64
	Why    string
}

// RecordBoots stores each device's last boot: when, from which server, which version.
// Records of devices outside the server's network are ignored. A delivery is one
// transaction: a storm's reports cost one commit per batch, not several per report, and a
// delivery that fails leaves nothing half recorded for the agent's retry to repeat.
func RecordBoots(ctx context.Context, db *gorm.DB, serverID uint, recs []BootRecord) error {
	return db.WithContext(ctx).Transaction(func(db *gorm.DB) error {
		var srv Server
		if err := db.Take(&srv, serverID).Error; err != nil {
			return notFoundOr(err, "server")
		}
		now := time.Now()
		type groupVersion struct {
			group uint
			n     int
		}
		versions := map[groupVersion]uint{} // 0: no such version
		for _, r := range recs {
			if r.Result != "" {
				if err := recordBootResult(db, &srv, r, now); err != nil {
					return err
				}
				continue
			}
			upd := map[string]any{"last_boot_at": now}
			if r.Booted && r.Version > 0 {
				k := groupVersion{r.GroupID, r.Version}
				id, ok := versions[k]
				if !ok {
					var v GroupVersion
					if err := db.Where("group_id = ? AND number = ?", r.GroupID, r.Version).Take(&v).Error; err == nil {
						id = v.ID
					} else if !errors.Is(err, gorm.ErrRecordNotFound) {
						return err
					}
					versions[k] = id
				}
				if id != 0 {
					upd["booted_version_id"] = id
				}
			}
			res := db.Model(&Device{}).Where("id = ? AND network_id = ?", r.DeviceID, srv.NetworkID).Updates(upd)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 1 {
				if err := recordBootHistory(db, &srv, r, now); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ExportRow is a target an agent should export: a device's clone on that server, or a group
// head or a volume on the master while it is in maintenance.
type ExportRow struct {
	Kind      string // device, group, volume
	ID        uint
	NetworkID uint
	UUID      string
	VDiskID   uint // a device's vdisk, its target's LUN 1 (0: none)
}

// DesiredExports lists the targets server serverID should export.
func DesiredExports(ctx context.Context, db *gorm.DB, serverID uint) ([]ExportRow, error) {
	db = db.WithContext(ctx)
	var srv Server
	if err := db.Take(&srv, serverID).Error; err != nil {
		return nil, notFoundOr(err, "server")
	}
	var devs []Device
	if err := db.Where("server_id = ? AND clone_version_id IS NOT NULL", serverID).Order("id").Find(&devs).Error; err != nil {
		return nil, err
	}
	vdisks, err := deviceVDisks(db, srv.NetworkID, srv.ID)
	if err != nil {
		return nil, err
	}
	out := make([]ExportRow, 0, len(devs))
	for _, d := range devs {
		out = append(out, ExportRow{Kind: "device", ID: d.ID, NetworkID: d.NetworkID, UUID: d.UUID, VDiskID: vdisks[d.ID]})
	}
	var n Network
	if err := db.Take(&n, srv.NetworkID).Error; err != nil {
		return nil, err
	}
	if n.MasterServerID != nil && *n.MasterServerID == serverID {
		// Group heads, then volumes, each by id: exported to their maintenance device.
		for _, k := range []struct {
			kind  string
			model any
		}{{"group", &Group{}}, {"volume", &Volume{}}} {
			var rows []struct{ ID, MaintenanceDeviceID uint }
			if err := db.Model(k.model).Scopes(inMaintenance(n.ID)).Order("id").Find(&rows).Error; err != nil {
				return nil, err
			}
			for _, r := range rows {
				var d Device
				if err := db.Take(&d, r.MaintenanceDeviceID).Error; err == nil {
					out = append(out, ExportRow{Kind: k.kind, ID: r.ID, NetworkID: n.ID, UUID: d.UUID})
				}
			}
		}
	}
	return out, nil
}
