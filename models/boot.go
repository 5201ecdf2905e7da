package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// The panel's side of the boot path (DESIGN.md §5): what an agent needs to answer a
// netbooting device, device registration on an unknown MAC, the record of each boot and
// of each device clone, the desired exports an agent rebuilds after a restart, and group
// and volume maintenance. Agents are not users: these functions are scoped by the server a key was
// issued for, never by an Actor.

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
	nb := &NetworkBoot{Groups: map[uint]*GroupBoot{}, Versions: map[uint]GroupVersion{}, Menus: map[uint]Menu{}, Maintained: map[uint]Volume{}}
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
		gb.Assigned = AssignedVersion(&gb.Group, gb.Versions)
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
	return nb, nil
}

// inMaintenance selects a network's groups or volumes in maintenance with their device.
func inMaintenance(networkID uint) func(*gorm.DB) *gorm.DB {
	return func(q *gorm.DB) *gorm.DB {
		return q.Where("network_id = ? AND maintenance = ? AND maintenance_device_id IS NOT NULL", networkID, true)
	}
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
		if err := db.Model(&Device{}).Where("id = ? AND uuid = ''", d.ID).Update("uuid", uuid).Error; err != nil {
			return nil, err
		}
	}
	if groupChoice != 0 && (d.GroupID == nil || *d.GroupID != groupChoice) {
		if _, ok := nb.Groups[groupChoice]; !ok {
			return nil, NotFound("group")
		}
		d.GroupID = &groupChoice
		if err := db.Model(&Device{}).Where("id = ?", d.ID).Update("group_id", groupChoice).Error; err != nil {
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
	return st, nil
}

// AssignedVersion is the version a group assigns: the one pinned by AssignedVersionID, or,
// when none is pinned, the newest ready version (so a publish assigns its version).
func AssignedVersion(g *Group, ready []GroupVersion) *GroupVersion {
	var newest *GroupVersion
	for i := range ready {
		v := &ready[i]
		if g.AssignedVersionID != nil && v.ID == *g.AssignedVersionID {
			return v
		}
		if newest == nil || v.Number > newest.Number {
			newest = v
		}
	}
	if g.AssignedVersionID != nil {
		// The pinned version is not ready (pending, failed): nothing is assigned yet.
		return nil
	}
	return newest
}

// registerDevice inserts a device on its first netboot, within MaxDevices. Two servers
// seeing the same new MAC at once end with one row: the loser reads the winner's.
func registerDevice(db *gorm.DB, n *Network, mac, uuid string, d *Device) (bool, error) {
	err := db.Transaction(func(tx *gorm.DB) error {
		if err := checkLimit(tx, &Device{}, n.ID, n.MaxDevices, "devices", "max_devices"); err != nil {
			return err
		}
		*d = Device{NetworkID: n.ID, MAC: mac, UUID: uuid, GroupID: n.DefaultGroupID}
		if err := tx.Create(d).Error; err != nil {
			return err
		}
		return audit(tx, nil, &n.ID, "register", "device", d.ID, mac)
	})
	if err != nil && IsDuplicate(err) {
		return false, db.Where("network_id = ? AND mac = ?", n.ID, mac).Take(d).Error
	}
	return err == nil, err
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
}

// RecordBoots stores each device's last boot: when, from which server, which version.
// Records of devices outside the server's network are ignored.
func RecordBoots(ctx context.Context, db *gorm.DB, serverID uint, recs []BootRecord) error {
	db = db.WithContext(ctx)
	var srv Server
	if err := db.Take(&srv, serverID).Error; err != nil {
		return notFoundOr(err, "server")
	}
	now := time.Now()
	for _, r := range recs {
		upd := map[string]any{"last_boot_at": now}
		if r.Booted && r.Version > 0 {
			var v GroupVersion
			if err := db.Where("group_id = ? AND number = ?", r.GroupID, r.Version).Take(&v).Error; err == nil {
				upd["booted_version_id"] = v.ID
			}
		}
		if err := db.Model(&Device{}).Where("id = ? AND network_id = ?", r.DeviceID, srv.NetworkID).Updates(upd).Error; err != nil {
			return err
		}
	}
	return nil
}

// RecordClone stores that a device of a network now has a clone of a version on a server
// (the device workflow calls it once the clone exists). Repeating it changes nothing.
func RecordClone(ctx context.Context, db *gorm.DB, networkID, deviceID, versionID, serverID uint) error {
	res := db.WithContext(ctx).Model(&Device{}).Where("id = ? AND network_id = ?", deviceID, networkID).
		Updates(map[string]any{"clone_version_id": versionID, "server_id": serverID})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return NotFound("device")
	}
	return nil
}

// VersionByNumber finds version n of a group.
func VersionByNumber(ctx context.Context, db *gorm.DB, groupID uint, n int) (*GroupVersion, error) {
	var v GroupVersion
	if err := db.WithContext(ctx).Where("group_id = ? AND number = ?", groupID, n).Take(&v).Error; err != nil {
		return nil, notFoundOr(err, "version")
	}
	return &v, nil
}

// ExportRow is a target an agent should export: a device's clone on that server, or a group
// head or a volume on the master while it is in maintenance.
type ExportRow struct {
	Kind      string // device, group, volume
	ID        uint
	NetworkID uint
	UUID      string
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
	out := make([]ExportRow, 0, len(devs))
	for _, d := range devs {
		out = append(out, ExportRow{Kind: "device", ID: d.ID, NetworkID: d.NetworkID, UUID: d.UUID})
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

// MaintenanceInput puts a group in maintenance (a device boots its head read-write), or a
// volume (a device boots the volume read-write), or takes it out.
type MaintenanceInput struct {
	DeviceID *uint `field:"device_id,device"`
}

// SetMaintenance turns a group's maintenance on for a device of its network (on), or off.
// While on, that device boots the group head read-write instead of its clone.
func (s *Store) SetMaintenance(ctx context.Context, a *Actor, groupID uint, on bool, in *MaintenanceInput) (*Group, error) {
	var g *Group
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if g, err = getScoped[Group](ctx, tx, a.scopeNetworkOwned, groupID, "group"); err != nil {
			return err
		}
		if _, err := a.lockNetwork(tx, g.NetworkID, "network_id"); err != nil {
			return err
		}
		if !on {
			g.Maintenance, g.MaintenanceDeviceID = false, nil
		} else {
			if in == nil || in.DeviceID == nil || *in.DeviceID == 0 {
				return Invalid("device_id", "is required: the device that boots the group head")
			}
			if g.State != StateReady {
				return Conflict("", "group %d is %s: maintenance needs a ready group", g.ID, g.State)
			}
			if err := refInNetwork(tx, &Device{}, in.DeviceID, g.NetworkID, "device_id", "device"); err != nil {
				return err
			}
			if err := maintainsOther(tx, *in.DeviceID, "group", g.ID); err != nil {
				return err
			}
			g.Maintenance, g.MaintenanceDeviceID = true, in.DeviceID
		}
		if err := tx.Model(&Group{}).Where("id = ?", g.ID).Updates(map[string]any{
			"maintenance": g.Maintenance, "maintenance_device_id": g.MaintenanceDeviceID,
		}).Error; err != nil {
			return err
		}
		action := "maintenance-off"
		if on {
			action = "maintenance-on"
		}
		return audit(tx, a, &g.NetworkID, action, "group", g.ID, "")
	})
	return g, err
}

// maintainsOther refuses a device that already maintains something other than the group
// or volume (kind, id) being put in maintenance: a device boots one disk read-write.
func maintainsOther(tx *gorm.DB, deviceID uint, kind string, id uint) error {
	var groups, vols []uint
	q := tx.Model(&Group{}).Where("maintenance_device_id = ?", deviceID)
	if kind == "group" {
		q = q.Where("id <> ?", id)
	}
	if err := q.Pluck("id", &groups).Error; err != nil {
		return err
	}
	q = tx.Model(&Volume{}).Where("maintenance_device_id = ?", deviceID)
	if kind == "volume" {
		q = q.Where("id <> ?", id)
	}
	if err := q.Pluck("id", &vols).Error; err != nil {
		return err
	}
	switch {
	case len(groups) > 0:
		return Conflict("device_id", "device %d already maintains group %d: end that maintenance first", deviceID, groups[0])
	case len(vols) > 0:
		return Conflict("device_id", "device %d already maintains volume %d: end that maintenance first", deviceID, vols[0])
	}
	return nil
}

// SetVolumeMaintenance turns a volume's maintenance on for a device of its network (on), or
// off. While on, that device boots the volume itself read-write from the master, to install
// the first OS; ending it removes the export (the master's agent drops targets the panel no
// longer lists). Repeating either changes nothing.
func (s *Store) SetVolumeMaintenance(ctx context.Context, a *Actor, volumeID uint, on bool, in *MaintenanceInput) (*Volume, error) {
	var v *Volume
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if v, err = getScoped[Volume](ctx, tx, a.scopeNetworkOwned, volumeID, "volume"); err != nil {
			return err
		}
		if _, err := a.lockNetwork(tx, v.NetworkID, "network_id"); err != nil {
			return err
		}
		if !on {
			v.Maintenance, v.MaintenanceDeviceID = false, nil
		} else {
			if in == nil || in.DeviceID == nil || *in.DeviceID == 0 {
				return Invalid("device_id", "is required: the device that boots the volume")
			}
			if v.State != StateReady {
				return Conflict("", "volume %d is %s: maintenance needs a ready volume", v.ID, v.State)
			}
			if err := refInNetwork(tx, &Device{}, in.DeviceID, v.NetworkID, "device_id", "device"); err != nil {
				return err
			}
			if err := maintainsOther(tx, *in.DeviceID, "volume", v.ID); err != nil {
				return err
			}
			v.Maintenance, v.MaintenanceDeviceID = true, in.DeviceID
		}
		if err := tx.Model(&Volume{}).Where("id = ?", v.ID).Updates(map[string]any{
			"maintenance": v.Maintenance, "maintenance_device_id": v.MaintenanceDeviceID,
		}).Error; err != nil {
			return err
		}
		action := "maintenance-off"
		if on {
			action = "maintenance-on"
		}
		return audit(tx, a, &v.NetworkID, action, "volume", v.ID, "")
	})
	return v, err
}

// AssignInput pins a group's assigned version (0 follows the newest ready version).
type AssignInput struct {
	Version *int `field:"version,number"`
}

// AssignVersion pins the version devices of a strict group boot, or (0) returns the group
// to following its newest version.
func (s *Store) AssignVersion(ctx context.Context, a *Actor, groupID uint, in *AssignInput) (*Group, error) {
	if in == nil || in.Version == nil {
		return nil, Invalid("version", "is required (0 follows the newest version)")
	}
	var g *Group
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if g, err = getScoped[Group](ctx, tx, a.scopeNetworkOwned, groupID, "group"); err != nil {
			return err
		}
		g.AssignedVersionID = nil
		if *in.Version != 0 {
			var v GroupVersion
			if err := tx.Where("group_id = ? AND number = ?", g.ID, *in.Version).Take(&v).Error; err != nil {
				if errors.Is(err, gorm.ErrRecordNotFound) {
					return Invalid("version", "group %d has no v%d", g.ID, *in.Version)
				}
				return err
			}
			if v.State != StateReady {
				return Conflict("version", "v%d is %s: only a ready version can be assigned", v.Number, v.State)
			}
			g.AssignedVersionID = &v.ID
		}
		if err := tx.Model(&Group{}).Where("id = ?", g.ID).Update("assigned_version_id", g.AssignedVersionID).Error; err != nil {
			return err
		}
		return audit(tx, a, &g.NetworkID, "assign", "group", g.ID, fmt.Sprintf("v%d", *in.Version))
	})
	return g, err
}

// Compliance is one device's standing against its strict group's assigned version.
type Compliance struct {
	DeviceID  uint `json:"device_id"`
	GroupID   uint `json:"group_id"`
	Locked    bool `json:"locked"`
	Assigned  int  `json:"assigned"`
	Clone     int  `json:"clone"`
	Booted    int  `json:"booted"`
	Compliant bool `json:"compliant"`
}

// GroupCompliance lists, for a visible group, each device's clone and booted version
// against the assigned one (non-compliant: a strict group's device on another version).
func (s *Store) GroupCompliance(ctx context.Context, a *Actor, groupID uint) ([]Compliance, error) {
	g, err := getScoped[Group](ctx, s.DB, a.scopeNetworkOwned, groupID, "group")
	if err != nil {
		return nil, err
	}
	var versions []GroupVersion
	if err := s.DB.WithContext(ctx).Where("group_id = ?", g.ID).Find(&versions).Error; err != nil {
		return nil, err
	}
	num := map[uint]int{}
	var ready []GroupVersion
	for _, v := range versions {
		num[v.ID] = v.Number
		if v.State == StateReady {
			ready = append(ready, v)
		}
	}
	assigned := 0
	if v := AssignedVersion(g, ready); v != nil {
		assigned = v.Number
	}
	var devs []Device
	if err := s.DB.WithContext(ctx).Where("group_id = ?", g.ID).Order("id").Find(&devs).Error; err != nil {
		return nil, err
	}
	out := make([]Compliance, 0, len(devs))
	for _, d := range devs {
		c := Compliance{DeviceID: d.ID, GroupID: g.ID, Locked: d.Locked, Assigned: assigned}
		if d.CloneVersionID != nil {
			c.Clone = num[*d.CloneVersionID]
		}
		if d.BootedVersionID != nil {
			c.Booted = num[*d.BootedVersionID]
		}
		c.Compliant = !g.StrictVersioning || assigned == 0 || c.Clone == assigned
		out = append(out, c)
	}
	return out, nil
}

// OpDeviceRestore is the operation that puts a device's replaced disk back from the erator.
const OpDeviceRestore = "device-restore"

// DeviceRestoreInput is the body of a device restore: an erator entry (as the server's
// erator lists it), or none for the newest of the device's.
type DeviceRestoreInput struct {
	From *string `field:"from,name"`
}

// DeviceRestoreRequest is the input an engine reads from a device restore operation.
type DeviceRestoreRequest struct {
	ServerID uint   `json:"server_id"`
	From     string `json:"from"`
}

// RestoreDevice queues putting a device's replaced disk back from its server's erator
// (the disk it has now goes to the erator in exchange).
func (s *Store) RestoreDevice(ctx context.Context, a *Actor, id uint, in *DeviceRestoreInput) (*Created, error) {
	var d *Device
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if d, err = getScoped[Device](ctx, tx, a.scopeNetworkOwned, id, "device"); err != nil {
			return err
		}
		if d.ServerID == nil {
			return Conflict("", "device %d has no disk on any server: there is nothing to restore", d.ID)
		}
		from := ""
		if in != nil && in.From != nil {
			from = strings.TrimSpace(*in.From)
			if from != "" && !strings.Contains(from, fmt.Sprintf("/erator/device-%d-", d.ID)) {
				return Invalid("from", "must be an erator entry of device %d (…/erator/device-%d-<time>)", d.ID, d.ID)
			}
		}
		if op, err = newOperation(tx, d.NetworkID, OpDeviceRestore, "device", d.ID, DeviceRestoreRequest{ServerID: *d.ServerID, From: from}); err != nil {
			return err
		}
		return audit(tx, a, &d.NetworkID, "restore", "device", d.ID, from)
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: d, Operation: op}, nil
}
