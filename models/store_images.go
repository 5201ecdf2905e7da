package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"
)

// Operation kinds; the workflow engine maps each to its workflow.
const (
	OpVolumeCreate = "volume-create"
	OpVolumeResize = "volume-resize"
	OpVolumeDelete = "volume-delete"
	OpGroupCreate  = "group-create"
	OpGroupDelete  = "group-delete"
	OpGroupPublish = "group-publish"
	OpDeviceDelete = "device-delete"
)

// MaxVolumeGiB bounds vol_size; the real bound is the master's pool, checked by the workflow.
const MaxVolumeGiB = 1 << 20

// VolumeInput is the body of a volume create or update.
type VolumeInput struct {
	NetworkID *uint   `field:"network_id,network"`
	Alias     *string `field:"alias,name"`
	SizeGiB   *int64  `field:"vol_size,size"`
}

func checkSize(v *int64) error {
	if v != nil && (*v < 1 || *v > MaxVolumeGiB) {
		return Invalid("vol_size", "must be a size in GiB between 1 and %d", MaxVolumeGiB)
	}
	return nil
}

// preflight refuses work on a network whose master cannot take it: no master, or a master
// whose last stats say its pool is missing or unhealthy. A master whose agent has not
// reported yet is accepted: the operation waits for it.
func preflight(tx *gorm.DB, n *Network) error {
	if n.MasterServerID == nil {
		return Conflict("network_id", "network %d has no master server: add a server and select it as the master on the network's page", n.ID)
	}
	var m Server
	if err := tx.Take(&m, *n.MasterServerID).Error; err != nil {
		return Conflict("network_id", "network %d has no master server: select one on the network's page", n.ID)
	}
	if m.StatsAt != nil && m.PoolHealth != "" && m.PoolHealth != "ONLINE" {
		return Conflict("network_id", "the master server %q reports pool %q as %s: check the server's stats and make the pool healthy before trying again", m.Name, m.Pool, m.PoolHealth)
	}
	return nil
}

// queued describes a row whose creation is long work: the network limit it counts
// against, and the operation that does the work.
type queued struct {
	row           any
	id            func() uint
	label, object string
	kind          string
	max           int
	what, limit   string
}

// insertQueued inserts a row of network n within its limit and after the master's
// preflight, with its operation and audit event, inside the caller's transaction.
func insertQueued(tx *gorm.DB, a *Actor, n *Network, q queued) (*Operation, error) {
	if err := checkLimit(tx, q.row, n.ID, q.max, q.what, q.limit); err != nil {
		return nil, err
	}
	if err := preflight(tx, n); err != nil {
		return nil, err
	}
	if err := tx.Create(q.row).Error; err != nil {
		return nil, err
	}
	op, err := newOperation(tx, n.ID, q.kind, q.object, q.id(), nil)
	if err != nil {
		return nil, err
	}
	return op, audit(tx, a, &n.ID, "create", q.object, q.id(), q.label)
}

// queueDelete marks a row deleting and records its delete operation; a row already being
// deleted returns the operation under way, so a repeated DELETE starts nothing new.
func queueDelete(tx *gorm.DB, a *Actor, row any, state *string, networkID, id uint, object, kind, label string) (*Operation, error) {
	var op Operation
	if *state == StateDeleting {
		err := tx.Where("object_type = ? AND object_id = ? AND kind = ?", object, id, kind).Order("id DESC").Take(&op).Error
		return &op, err
	}
	*state = StateDeleting
	if err := tx.Model(row).Update("state", StateDeleting).Error; err != nil {
		return nil, err
	}
	created, err := newOperation(tx, networkID, kind, object, id, nil)
	if err != nil {
		return nil, err
	}
	return created, audit(tx, a, &networkID, "delete", object, id, label)
}

// CreateVolume records a thin volume of vol_size GiB on the network's master and queues
// its creation.
func (s *Store) CreateVolume(ctx context.Context, a *Actor, in *VolumeInput) (*Created, error) {
	nid, err := requireNetwork(in.NetworkID)
	if err != nil {
		return nil, err
	}
	v := &Volume{NetworkID: nid, State: StatePending}
	if v.Alias, err = requiredName("alias", in.Alias, 200); err != nil {
		return nil, err
	}
	if in.SizeGiB == nil {
		return nil, Invalid("vol_size", "is required (the size in GiB)")
	}
	if err := checkSize(in.SizeGiB); err != nil {
		return nil, err
	}
	v.SizeGiB = *in.SizeGiB
	var op *Operation
	var warn string
	err = s.tx(ctx, func(tx *gorm.DB) error {
		n, err := a.lockNetwork(tx, nid, "network_id")
		if err != nil {
			return err
		}
		if warn, err = volumeRoom(tx, n, v.SizeGiB, 0); err != nil {
			return err
		}
		op, err = insertQueued(tx, a, n, queued{row: v, id: func() uint { return v.ID }, label: v.Alias, object: "volume",
			kind: OpVolumeCreate, max: n.MaxVolumes, what: "volumes", limit: "max_volumes"})
		return err
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: v, Operation: op, Warning: warn}, nil
}

// UpdateVolume renames a volume or grows it (a resize operation); shrinking is refused
// because it would cut off the file systems inside.
func (s *Store) UpdateVolume(ctx context.Context, a *Actor, id uint, in *VolumeInput) (*Created, error) {
	var v *Volume
	var op *Operation
	var warn string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if v, err = getScoped[Volume](ctx, tx, a.scopeNetworkOwned, id, "volume"); err != nil {
			return err
		}
		if in.NetworkID != nil && *in.NetworkID != v.NetworkID {
			return Invalid("network_id", "a volume cannot move to another network")
		}
		if v.State == StateDeleting || v.State == StateDeleted {
			return Conflict("", "volume %d is being deleted", v.ID)
		}
		if in.Alias != nil {
			if v.Alias, err = checkName("alias", *in.Alias, 200); err != nil {
				return err
			}
		}
		if in.SizeGiB != nil && *in.SizeGiB != v.SizeGiB {
			if err := checkSize(in.SizeGiB); err != nil {
				return err
			}
			if *in.SizeGiB < v.SizeGiB {
				return Invalid("vol_size", "cannot shrink a volume (from %d to %d GiB): it would cut off the file systems inside", v.SizeGiB, *in.SizeGiB)
			}
			var n Network
			if err := tx.Take(&n, v.NetworkID).Error; err != nil {
				return err
			}
			if warn, err = volumeRoom(tx, &n, *in.SizeGiB, v.SizeGiB); err != nil {
				return err
			}
			if op, err = newOperation(tx, v.NetworkID, OpVolumeResize, "volume", v.ID, map[string]int64{"vol_size": *in.SizeGiB}); err != nil {
				return err
			}
		}
		if err := tx.Model(v).Update("alias", v.Alias).Error; err != nil {
			return err
		}
		return audit(tx, a, &v.NetworkID, "update", "volume", v.ID, "")
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: v, Operation: op, Warning: warn}, nil
}

// DeleteVolume queues a volume's deletion (its zvol is renamed into the erator); volumes
// that groups were cloned from stay until those groups are deleted, and a volume in
// maintenance until its maintenance ends (a device may be installing on it right now).
func (s *Store) DeleteVolume(ctx context.Context, a *Actor, id uint) (*Created, error) {
	var v *Volume
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if v, err = getScoped[Volume](ctx, tx, a.scopeNetworkOwned, id, "volume"); err != nil {
			return err
		}
		var groups int64
		if err := tx.Model(&Group{}).Where("volume_id = ? AND state <> ?", v.ID, StateDeleted).Count(&groups).Error; err != nil {
			return err
		}
		if groups > 0 {
			return Conflict("", "volume %d has %d groups cloned from it: delete them first", v.ID, groups)
		}
		if v.Maintenance && v.MaintenanceDeviceID != nil {
			return Conflict("", "volume %d is in maintenance (device %d boots it): end the maintenance first", v.ID, *v.MaintenanceDeviceID)
		}
		op, err = queueDelete(tx, a, v, &v.State, v.NetworkID, v.ID, "volume", OpVolumeDelete, v.Alias)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: v, Operation: op}, nil
}

// GroupInput is the body of a group create or update.
type GroupInput struct {
	NetworkID        *uint   `field:"network_id,network"`
	Name             *string `field:"name"`
	VolumeID         *uint   `field:"volume_id,volume"`
	StrictVersioning *bool   `field:"strict_versioning,strict"`
	LazyLocks        *bool   `field:"lazy_locks"`
	AssignedVersion  *int    `field:"assigned_version,version"`
}

// CreateGroup records a group cloned from a volume of the same network and queues the clone.
func (s *Store) CreateGroup(ctx context.Context, a *Actor, in *GroupInput) (*Created, error) {
	nid, err := requireNetwork(in.NetworkID)
	if err != nil {
		return nil, err
	}
	g := &Group{NetworkID: nid, State: StatePending, StrictVersioning: ptrOr(in.StrictVersioning, false), LazyLocks: ptrOr(in.LazyLocks, false)}
	if g.Name, err = requiredName("name", in.Name, 200); err != nil {
		return nil, err
	}
	if in.VolumeID == nil || *in.VolumeID == 0 {
		return nil, Invalid("volume_id", "is required (the volume the group is cloned from)")
	}
	if in.AssignedVersion != nil {
		return nil, Invalid("assigned_version", "a new group has no versions yet: publish one first")
	}
	g.VolumeID = *in.VolumeID
	var op *Operation
	err = s.tx(ctx, func(tx *gorm.DB) error {
		n, err := a.lockNetwork(tx, nid, "network_id")
		if err != nil {
			return err
		}
		var vol Volume
		if err := tx.Where("id = ? AND network_id = ?", g.VolumeID, nid).Take(&vol).Error; err != nil {
			return Invalid("volume_id", "volume %d is not in network %d", g.VolumeID, nid)
		}
		if vol.State == StateDeleting || vol.State == StateDeleted || vol.State == StateFailed {
			return Conflict("volume_id", "volume %d is %s", vol.ID, vol.State)
		}
		op, err = insertQueued(tx, a, n, queued{row: g, id: func() uint { return g.ID }, label: g.Name, object: "group",
			kind: OpGroupCreate, max: n.MaxGroups, what: "groups", limit: "max_groups"})
		return err
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: g, Operation: op}, nil
}

// UpdateGroup changes a group's name, properties (Strict Versioning, Lazy Locks) or its
// assigned version (a published version number).
func (s *Store) UpdateGroup(ctx context.Context, a *Actor, id uint, in *GroupInput) (*Group, error) {
	var g *Group
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if g, err = getScoped[Group](ctx, tx, a.scopeNetworkOwned, id, "group"); err != nil {
			return err
		}
		if in.NetworkID != nil && *in.NetworkID != g.NetworkID {
			return Invalid("network_id", "a group cannot move to another network")
		}
		if in.VolumeID != nil && *in.VolumeID != g.VolumeID {
			return Invalid("volume_id", "a group's volume is fixed when it is created")
		}
		if in.Name != nil {
			if g.Name, err = checkName("name", *in.Name, 200); err != nil {
				return err
			}
		}
		g.StrictVersioning = ptrOr(in.StrictVersioning, g.StrictVersioning)
		g.LazyLocks = ptrOr(in.LazyLocks, g.LazyLocks)
		if in.AssignedVersion != nil {
			var ver GroupVersion
			if err := tx.Where("group_id = ? AND number = ? AND state = ?", g.ID, *in.AssignedVersion, StateReady).Take(&ver).Error; err != nil {
				return Invalid("assigned_version", "group %d has no published version v%d", g.ID, *in.AssignedVersion)
			}
			g.AssignedVersionID = &ver.ID
		}
		if err := tx.Save(g).Error; err != nil {
			return err
		}
		return audit(tx, a, &g.NetworkID, "update", "group", g.ID, "")
	})
	return g, err
}

// DeleteGroup queues a group's deletion (renamed into the erator). A group that devices
// belong to, or that is a network's default, stays.
func (s *Store) DeleteGroup(ctx context.Context, a *Actor, id uint) (*Created, error) {
	var g *Group
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if g, err = getScoped[Group](ctx, tx, a.scopeNetworkOwned, id, "group"); err != nil {
			return err
		}
		var devices int64
		if err := tx.Model(&Device{}).Where("group_id = ?", g.ID).Count(&devices).Error; err != nil {
			return err
		}
		if devices > 0 {
			return Conflict("", "group %d has %d devices: move them to another group first", g.ID, devices)
		}
		var defaults int64
		if err := tx.Model(&Network{}).Where("default_group_id = ?", g.ID).Count(&defaults).Error; err != nil {
			return err
		}
		if defaults > 0 {
			return Conflict("", "group %d is its network's default group: choose another default first", g.ID)
		}
		op, err = queueDelete(tx, a, g, &g.State, g.NetworkID, g.ID, "group", OpGroupDelete, g.Name)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: g, Operation: op}, nil
}

// ListVersions lists a visible group's versions.
func (s *Store) ListVersions(ctx context.Context, a *Actor, groupID uint) ([]GroupVersion, error) {
	if _, err := GetOwned[Group](ctx, s, a, groupID, "group"); err != nil {
		return nil, err
	}
	var vs []GroupVersion
	err := s.DB.WithContext(ctx).Where("group_id = ?", groupID).Order("number").Find(&vs).Error
	return vs, err
}

// DeviceInput is the body of a device create or update.
type DeviceInput struct {
	NetworkID *uint   `field:"network_id,network"`
	MAC       *string `field:"mac"`
	Name      *string `field:"name"`
	GroupID   *uint   `field:"group_id,group"`
	MenuID    *uint   `field:"menu_id,menu"`
	Locked    *bool   `field:"locked"`
}

// CreateDevice registers a device by MAC within the network's MaxDevices.
func (s *Store) CreateDevice(ctx context.Context, a *Actor, in *DeviceInput) (*Created, error) {
	nid, err := requireNetwork(in.NetworkID)
	if err != nil {
		return nil, err
	}
	d := &Device{NetworkID: nid, Locked: ptrOr(in.Locked, false), GroupID: nonZero(in.GroupID), MenuID: nonZero(in.MenuID)}
	if in.MAC == nil {
		return nil, Invalid("mac", "is required")
	}
	if d.MAC, err = NormalizeMAC(*in.MAC); err != nil {
		return nil, err
	}
	if in.Name != nil {
		if d.Name, err = checkName("name", *in.Name, 200); err != nil {
			return nil, err
		}
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		n, err := a.lockNetwork(tx, nid, "network_id")
		if err != nil {
			return err
		}
		if err := refInNetwork(tx, &Group{}, d.GroupID, nid, "group_id", "group"); err != nil {
			return err
		}
		if err := refInNetwork(tx, &Menu{}, d.MenuID, nid, "menu_id", "menu"); err != nil {
			return err
		}
		if err := checkLimit(tx, &Device{}, nid, n.MaxDevices, "devices", "max_devices"); err != nil {
			return err
		}
		if err := tx.Create(d).Error; err != nil {
			if IsDuplicate(err) {
				return Conflict("mac", "a device with MAC %s already exists in this network", d.MAC)
			}
			return err
		}
		return audit(tx, a, &nid, "create", "device", d.ID, d.MAC)
	})
	if err != nil {
		return nil, err
	}
	return &Created{Object: d}, nil
}

// UpdateDevice changes a device's name, group, menu or lock. With a workflow engine, a
// lock change goes through the device's workflow (DeviceLocker), in order with its
// provisionings; the other changes are saved first.
func (s *Store) UpdateDevice(ctx context.Context, a *Actor, id uint, in *DeviceInput) (*Created, error) {
	var d *Device
	locker, _ := s.Engine.(DeviceLocker)
	var lockTo *bool
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if d, err = getScoped[Device](ctx, tx, a.scopeNetworkOwned, id, "device"); err != nil {
			return err
		}
		if in.NetworkID != nil && *in.NetworkID != d.NetworkID {
			return Invalid("network_id", "a device cannot move to another network")
		}
		if in.MAC != nil {
			mac, err := NormalizeMAC(*in.MAC)
			if err != nil {
				return err
			}
			if mac != d.MAC {
				return Invalid("mac", "a device's MAC cannot change: register a new device")
			}
		}
		if in.Name != nil {
			if d.Name, err = checkName("name", *in.Name, 200); err != nil {
				return err
			}
		}
		if in.GroupID != nil {
			if err := refInNetwork(tx, &Group{}, in.GroupID, d.NetworkID, "group_id", "group"); err != nil {
				return err
			}
			d.GroupID = nonZero(in.GroupID)
		}
		if in.MenuID != nil {
			if err := refInNetwork(tx, &Menu{}, in.MenuID, d.NetworkID, "menu_id", "menu"); err != nil {
				return err
			}
			d.MenuID = nonZero(in.MenuID)
		}
		detail := ""
		if in.Locked != nil && *in.Locked != d.Locked {
			detail = map[bool]string{true: "lock", false: "unlock"}[*in.Locked]
			if locker != nil {
				lockTo = in.Locked
			} else {
				d.Locked = *in.Locked
			}
		}
		if err := tx.Save(d).Error; err != nil {
			return err
		}
		return audit(tx, a, &d.NetworkID, "update", "device", d.ID, detail)
	})
	if err != nil {
		return nil, err
	}
	res := &Created{Object: d}
	if lockTo == nil {
		return res, nil
	}
	switch err := locker.LockDevice(ctx, d.ID, *lockTo); {
	case errors.Is(err, ErrLockPending):
		res.Warning = fmt.Sprintf("device %d is being provisioned: the lock change is queued and takes effect when that ends", d.ID)
	case err != nil:
		return nil, Unavailable("locked", err, "the workflow engine did not take the lock change, so the lock is unchanged (other changes were saved); try again")
	default:
		d.Locked = *lockTo
	}
	return res, nil
}

// DeleteDevice forgets a device; its clone, if any, is queued for the erator.
func (s *Store) DeleteDevice(ctx context.Context, a *Actor, id uint) (*Created, error) {
	var d *Device
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if d, err = getScoped[Device](ctx, tx, a.scopeNetworkOwned, id, "device"); err != nil {
			return err
		}
		// A group or volume it maintained leaves maintenance (its export goes at the agent's next check).
		for _, m := range []any{&Group{}, &Volume{}} {
			if err := tx.Model(m).Where("maintenance_device_id = ?", d.ID).
				Updates(map[string]any{"maintenance": false, "maintenance_device_id": nil}).Error; err != nil {
				return err
			}
		}
		if d.ServerID != nil {
			if op, err = newOperation(tx, d.NetworkID, OpDeviceDelete, "device", d.ID, map[string]uint{"server_id": *d.ServerID}); err != nil {
				return err
			}
		}
		if err := tx.Delete(d).Error; err != nil {
			return err
		}
		return audit(tx, a, &d.NetworkID, "delete", "device", d.ID, d.MAC)
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: d, Operation: op}, nil
}

// MenuItem is one entry of an iPXE menu.
type MenuItem struct {
	Type    string `json:"type"` // group, local, chain
	Label   string `json:"label"`
	GroupID uint   `json:"group_id,omitempty"`
	URL     string `json:"url,omitempty"`
}

// MenuView is a menu with its items decoded, as the API shows it.
type MenuView struct {
	Menu
	Items []MenuItem `json:"items"`
}

// View decodes a menu's items.
func (m *Menu) View() MenuView {
	v := MenuView{Menu: *m, Items: []MenuItem{}}
	_ = json.Unmarshal([]byte(m.Items), &v.Items)
	return v
}

// MenuInput is the body of a menu create or update.
type MenuInput struct {
	NetworkID *uint       `field:"network_id,network"`
	Name      *string     `field:"name"`
	Items     *[]MenuItem `field:"items"`
}

func checkMenuItems(tx *gorm.DB, networkID uint, items []MenuItem) (string, error) {
	if len(items) > 100 {
		return "", Invalid("items", "a menu holds at most 100 items")
	}
	for i := range items {
		it := &items[i]
		label, err := checkName("items", it.Label, 100)
		if err != nil {
			return "", Invalid("items", "item %d needs a label of 1 to 100 characters", i+1)
		}
		it.Label = label
		switch it.Type {
		case "group":
			if err := refInNetwork(tx, &Group{}, &it.GroupID, networkID, "items", "group"); err != nil || it.GroupID == 0 {
				return "", Invalid("items", "item %d: group %d is not in network %d", i+1, it.GroupID, networkID)
			}
			it.URL = ""
		case "local":
			it.GroupID, it.URL = 0, ""
		case "chain":
			if !strings.HasPrefix(it.URL, "http://") && !strings.HasPrefix(it.URL, "https://") || strings.ContainsAny(it.URL, " \n\r\t") {
				return "", Invalid("items", "item %d: url must be an http:// or https:// address", i+1)
			}
			it.GroupID = 0
		default:
			return "", Invalid("items", "item %d: type must be group, local or chain", i+1)
		}
	}
	b, err := json.Marshal(items)
	return string(b), err
}

// CreateMenu creates an iPXE menu for a network.
func (s *Store) CreateMenu(ctx context.Context, a *Actor, in *MenuInput) (*Created, error) {
	nid, err := requireNetwork(in.NetworkID)
	if err != nil {
		return nil, err
	}
	m := &Menu{NetworkID: nid, Items: "[]"}
	if m.Name, err = requiredName("name", in.Name, 200); err != nil {
		return nil, err
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if _, err := a.lockNetwork(tx, nid, "network_id"); err != nil {
			return err
		}
		if in.Items != nil {
			if m.Items, err = checkMenuItems(tx, nid, *in.Items); err != nil {
				return err
			}
		}
		if err := tx.Create(m).Error; err != nil {
			return err
		}
		return audit(tx, a, &nid, "create", "menu", m.ID, m.Name)
	})
	if err != nil {
		return nil, err
	}
	v := m.View()
	return &Created{Object: &v}, nil
}

// UpdateMenu changes a menu's name or items.
func (s *Store) UpdateMenu(ctx context.Context, a *Actor, id uint, in *MenuInput) (*MenuView, error) {
	var m *Menu
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if m, err = getScoped[Menu](ctx, tx, a.scopeNetworkOwned, id, "menu"); err != nil {
			return err
		}
		if in.NetworkID != nil && *in.NetworkID != m.NetworkID {
			return Invalid("network_id", "a menu cannot move to another network")
		}
		if in.Name != nil {
			if m.Name, err = checkName("name", *in.Name, 200); err != nil {
				return err
			}
		}
		if in.Items != nil {
			if m.Items, err = checkMenuItems(tx, m.NetworkID, *in.Items); err != nil {
				return err
			}
		}
		if err := tx.Save(m).Error; err != nil {
			return err
		}
		return audit(tx, a, &m.NetworkID, "update", "menu", m.ID, "")
	})
	if err != nil {
		return nil, err
	}
	v := m.View()
	return &v, nil
}

// DeleteMenu deletes a menu; devices and networks that chose it fall back to none.
func (s *Store) DeleteMenu(ctx context.Context, a *Actor, id uint) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		m, err := getScoped[Menu](ctx, tx, a.scopeNetworkOwned, id, "menu")
		if err != nil {
			return err
		}
		if err := tx.Model(&Device{}).Where("menu_id = ?", m.ID).Update("menu_id", nil).Error; err != nil {
			return err
		}
		if err := tx.Model(&Network{}).Where("default_menu_id = ?", m.ID).Update("default_menu_id", nil).Error; err != nil {
			return err
		}
		if err := tx.Delete(m).Error; err != nil {
			return err
		}
		return audit(tx, a, &m.NetworkID, "delete", "menu", m.ID, m.Name)
	})
}
