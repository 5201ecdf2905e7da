package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Group is a clone of a volume where the OS is installed; devices boot its versions.
type Group struct {
	ID                  uint   `gorm:"primaryKey" json:"id"`
	NetworkID           uint   `gorm:"not null;index" json:"network_id"`
	Name                string `gorm:"size:200;not null" json:"name"`
	VolumeID            uint   `gorm:"not null;index" json:"volume_id"`
	StrictVersioning    bool   `gorm:"not null;default:false" json:"strict_versioning"`
	LazyLocks           bool   `gorm:"not null;default:false" json:"lazy_locks"`
	AssignedVersionID   *uint  `json:"assigned_version_id"`
	Maintenance         bool   `gorm:"not null;default:false" json:"maintenance"`
	MaintenanceDeviceID *uint  `json:"maintenance_device_id"`
	State               string `gorm:"size:20;not null;default:'pending'" json:"state"`
	// AssignWhenReplicated holds an assignment back until every server of the network
	// holds the version (Citrix PVS's pending state): PendingVersionID is the version
	// waiting, and a group that follows its newest version follows the newest every
	// server holds.
	AssignWhenReplicated bool      `gorm:"not null;default:false" json:"assign_when_replicated"`
	PendingVersionID     *uint     `json:"pending_version_id"`
	CreatedAt            time.Time `json:"created_at"`
	UpdatedAt            time.Time `json:"updated_at"`
}

// GroupInput is the body of a group create or update.
type GroupInput struct {
	NetworkID            *uint   `field:"network_id,network"`
	Name                 *string `field:"name"`
	VolumeID             *uint   `field:"volume_id,volume"`
	StrictVersioning     *bool   `field:"strict_versioning,strict"`
	LazyLocks            *bool   `field:"lazy_locks"`
	AssignedVersion      *int    `field:"assigned_version,version"`
	AssignWhenReplicated *bool   `field:"assign_when_replicated"`
}

// CreateGroup records a group cloned from a volume of the same network and queues the clone.
func (s *Store) CreateGroup(ctx context.Context, a *Actor, in *GroupInput) (*Created, error) {
	nid, err := requireNetwork(in.NetworkID)
	if err != nil {
		return nil, err
	}
	g := &Group{NetworkID: nid, State: StatePending, StrictVersioning: ptrOr(in.StrictVersioning, false), LazyLocks: ptrOr(in.LazyLocks, false),
		AssignWhenReplicated: ptrOr(in.AssignWhenReplicated, false)}
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
		if err := checkNotMaintained(tx, "volume_id", "volume", vol.ID, vol.Maintenance, vol.MaintenanceDeviceID); err != nil {
			return err
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
	return updateOwned(ctx, s, a, id, "group", in.NetworkID, func(g *Group) uint { return g.NetworkID }, func(tx *gorm.DB, g *Group) error {
		if in.VolumeID != nil && *in.VolumeID != g.VolumeID {
			return Invalid("volume_id", "a group's volume is fixed when it is created")
		}
		if in.Name != nil {
			var err error
			if g.Name, err = checkName("name", *in.Name, 200); err != nil {
				return err
			}
		}
		g.StrictVersioning = ptrOr(in.StrictVersioning, g.StrictVersioning)
		g.LazyLocks = ptrOr(in.LazyLocks, g.LazyLocks)
		g.AssignWhenReplicated = ptrOr(in.AssignWhenReplicated, g.AssignWhenReplicated)
		if !g.AssignWhenReplicated {
			g.PendingVersionID = nil
		}
		if in.AssignedVersion != nil {
			var ver GroupVersion
			if err := tx.Where("group_id = ? AND number = ? AND state = ?", g.ID, *in.AssignedVersion, StateReady).Take(&ver).Error; err != nil {
				return Invalid("assigned_version", "group %d has no published version v%d", g.ID, *in.AssignedVersion)
			}
			return assign(tx, g, &ver)
		}
		return nil
	})
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

// inMaintenance selects a network's groups or volumes in maintenance with their device.
func inMaintenance(networkID uint) func(*gorm.DB) *gorm.DB {
	return func(q *gorm.DB) *gorm.DB {
		return q.Where("network_id = ? AND maintenance = ? AND maintenance_device_id IS NOT NULL", networkID, true)
	}
}

// MaintenanceInput puts a group in maintenance (a device boots its head read-write), or a
// volume (a device boots the volume read-write), or takes it out.
type MaintenanceInput struct {
	DeviceID *uint `field:"device_id,device"`
}

// SetMaintenance turns a group's maintenance on for a device of its network (on), or off.
// While on, that device boots the group head read-write instead of its clone. Turning it
// off answers with the operation that removes the head's target (see setMaintenance).
func (s *Store) SetMaintenance(ctx context.Context, a *Actor, groupID uint, on bool, in *MaintenanceInput) (*Created, error) {
	return setMaintenance(ctx, s, a, groupID, on, in, "group", "the group head", OpGroupMaintenanceEnd, func(g *Group) maintained {
		return maintained{g.ID, g.NetworkID, g.State, &g.Maintenance, &g.MaintenanceDeviceID}
	})
}

// maintained is what turning maintenance on or off reads of a group or a volume, and the
// two fields it sets.
type maintained struct {
	id, networkID uint
	state         string
	on            *bool
	deviceID      **uint
}

// setMaintenance is SetMaintenance for a group or a volume (what, its table's T; boots is
// what its device boots read-write). Repeating either changes nothing. Ending a maintenance
// records operation end (the row says "no maintenance" at once, so no boot exports the
// disk again) whose workflow removes the target and closes its sessions on the master:
// until it has succeeded, nothing may snapshot or clone the disk (maintenanceEnding), so
// no version holds a disk the installer was still writing.
func setMaintenance[T any](ctx context.Context, s *Store, a *Actor, id uint, on bool, in *MaintenanceInput, what, boots, end string, fields func(*T) maintained) (*Created, error) {
	var obj *T
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if obj, err = getScoped[T](ctx, tx, a.scopeNetworkOwned, id, what); err != nil {
			return err
		}
		m := fields(obj)
		if _, err := a.lockNetwork(tx, m.networkID, "network_id"); err != nil {
			return err
		}
		if !on {
			if *m.on {
				if op, err = newOperation(tx, m.networkID, end, m.id, OperationInput{}); err != nil {
					return err
				}
			}
			*m.on, *m.deviceID = false, nil
		} else {
			if err := maintenanceEnding(tx, what, m.id); err != nil {
				return err
			}
			if err := copying(tx, what, m.id); err != nil {
				return err
			}
			if in == nil || in.DeviceID == nil || *in.DeviceID == 0 {
				return Invalid("device_id", "is required: the device that boots %s", boots)
			}
			if m.state != StateReady {
				return Conflict("", "%s %d is %s: maintenance needs a ready %s", what, m.id, m.state, what)
			}
			if err := refInNetwork(tx, &Device{}, in.DeviceID, m.networkID, "device_id", "device"); err != nil {
				return err
			}
			if err := maintainsOther(tx, *in.DeviceID, what, m.id); err != nil {
				return err
			}
			*m.on, *m.deviceID = true, in.DeviceID
		}
		if err := tx.Model(new(T)).Where("id = ?", m.id).Updates(map[string]any{
			"maintenance": *m.on, "maintenance_device_id": *m.deviceID,
		}).Error; err != nil {
			return err
		}
		action := "maintenance-off"
		if on {
			action = "maintenance-on"
		}
		return audit(tx, a, &m.networkID, action, what, m.id, "")
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: obj, Operation: op}, nil
}

// maintenanceEnding refuses work on a group head or a volume (what, id) whose maintenance
// has ended but whose target may still be exported: its maintenance-end operation has not
// succeeded yet. A failed one keeps refusing until a new end succeeds (the target's state
// is unknown).
func maintenanceEnding(tx *gorm.DB, what string, id uint) error {
	var op Operation
	err := tx.Where("object_type = ? AND object_id = ? AND kind IN ?", what, id, []string{OpGroupMaintenanceEnd, OpVolumeMaintenanceEnd}).
		Order("id DESC").Limit(1).Find(&op).Error
	if err != nil {
		return err
	}
	if op.ID != 0 && op.State != OpSucceeded {
		return Conflict("", "%s %d's maintenance is ending: its target on the master is being removed (operation %d, %s); try again once it has succeeded", what, id, op.ID, op.State)
	}
	return nil
}

// copying refuses a maintenance of a group head or a volume (what, id) while a version
// snapshot of the head, or a group clone of the volume, is still to be taken: the copy
// must hold the disk as it was when it was asked for.
func copying(tx *gorm.DB, what string, id uint) error {
	var pending int64
	var err error
	if what == "group" {
		err = tx.Model(&GroupVersion{}).Where("group_id = ? AND state = ?", id, StatePending).Count(&pending).Error
	} else {
		err = tx.Model(&Group{}).Where("volume_id = ? AND state = ?", id, StatePending).Count(&pending).Error
	}
	if err != nil {
		return err
	}
	if pending > 0 {
		copy := "a version of it is being published"
		if what == "volume" {
			copy = "a group is being cloned from it"
		}
		return Conflict("", "%s %d: %s; start the maintenance once that has finished", what, id, copy)
	}
	return nil
}

// checkNotMaintained refuses a snapshot or a clone of a group head or a volume (what, id)
// that a device may still be writing: in maintenance, or its maintenance still ending.
func checkNotMaintained(tx *gorm.DB, field, what string, id uint, on bool, device *uint) error {
	if on {
		d := uint(0)
		if device != nil {
			d = *device
		}
		return Conflict(field, "%s %d is in maintenance (device %d writes it): end the maintenance first, so the %s is not copied while it is written", what, id, d, what)
	}
	if err := maintenanceEnding(tx, what, id); err != nil {
		var c *ConflictError
		if errors.As(err, &c) {
			c.Field = field
		}
		return err
	}
	return nil
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
		var ver *GroupVersion
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
			ver = &v
		}
		if err := assign(tx, g, ver); err != nil {
			return err
		}
		if err := tx.Model(&Group{}).Where("id = ?", g.ID).Updates(map[string]any{
			"assigned_version_id": g.AssignedVersionID, "pending_version_id": g.PendingVersionID,
		}).Error; err != nil {
			return err
		}
		return audit(tx, a, &g.NetworkID, "assign", "group", g.ID, fmt.Sprintf("v%d", *in.Version))
	})
	return g, err
}

// RestoreGroup queues putting a deleted group back from the erator.
func (s *Store) RestoreGroup(ctx context.Context, a *Actor, id uint) (*Created, error) {
	return restore[Group](ctx, s, a, id, "group", OpGroupRestore)
}

// assign points group g at version v (nil: follow the newest), or, when the group assigns
// only what every server holds and some server lacks v, records v as the group's pending
// version: RecordVersionCopy moves the assignment when the last server verifies it.
func assign(tx *gorm.DB, g *Group, v *GroupVersion) error {
	g.PendingVersionID = nil
	if v == nil {
		g.AssignedVersionID = nil
		return nil
	}
	if g.AssignWhenReplicated {
		missing, err := serversLacking(tx, g.NetworkID, v.ID)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			g.PendingVersionID = &v.ID
			return nil
		}
	}
	g.AssignedVersionID = &v.ID
	return nil
}

// groupPendingMigration adds the groups' "assign only when every server holds it" setting
// and their pending version.
func groupPendingMigration() *gormigrate.Migration {
	return addColumnsMigration("202611300201_group_assign_when_replicated", &groupPending{}, "AssignWhenReplicated", "PendingVersionID")
}

// groupPending is the groups table as migration 202611300201 knows it (frozen).
type groupPending struct {
	AssignWhenReplicated bool `gorm:"not null;default:false"`
	PendingVersionID     *uint
}

func (groupPending) TableName() string { return "groups" }
