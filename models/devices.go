package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"gorm.io/gorm"
)

// Device is a diskless machine known by its MAC; it boots its own clone of a group version.
type Device struct {
	ID              uint       `gorm:"primaryKey" json:"id"`
	NetworkID       uint       `gorm:"not null;index;uniqueIndex:idx_device_mac" json:"network_id"`
	MAC             string     `gorm:"size:17;not null;uniqueIndex:idx_device_mac" json:"mac"`
	Name            string     `gorm:"size:200;not null;default:''" json:"name"`
	UUID            string     `gorm:"size:64;not null;default:''" json:"uuid"`
	GroupID         *uint      `gorm:"index" json:"group_id"`
	MenuID          *uint      `json:"menu_id"`
	Locked          bool       `gorm:"not null;default:false" json:"locked"`
	CloneVersionID  *uint      `json:"clone_version_id"`
	BootedVersionID *uint      `json:"booted_version_id"`
	ServerID        *uint      `json:"server_id"`
	LastBootAt      *time.Time `json:"last_boot_at"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

// DeviceInput is the body of a device create or update.
type DeviceInput struct {
	NetworkID *uint   `field:"network_id,network"`
	MAC       *string `field:"mac"`
	Name      *string `field:"name"`
	GroupID   *uint   `field:"group_id,group"`
	MenuID    *uint   `field:"menu_id,menu"`
	Locked    *bool   `field:"locked"`
	// UUID pre-registers the machine's SMBIOS UUID (its iSCSI initiator name is
	// iqn.2010-04.org.ipxe:<uuid>), so a maintenance target admits its installer before
	// its first boot; otherwise the first boot records it.
	UUID *string `field:"uuid"`
}

// inputUUID validates a UUID given in a device's input ("" clears nothing: absent).
func inputUUID(v *string) (string, error) {
	if v == nil || strings.TrimSpace(*v) == "" {
		return "", nil
	}
	u := wire.NormalizeUUID(*v)
	if u == "" {
		return "", Invalid("uuid", "must be an SMBIOS UUID such as 4c4c4544-0042-3510-8052-b4c04f4e3332")
	}
	return u, nil
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
	if d.UUID, err = inputUUID(in.UUID); err != nil {
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
		if _, err := bumpBoot(tx, nid, d.ID); err != nil {
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
		if u, err := inputUUID(in.UUID); err != nil {
			return err
		} else if u != "" && u != d.UUID {
			// The UUID guards the device's disk: set once (here or at its first boot), never moved to another machine.
			if d.UUID != "" {
				return Invalid("uuid", "a device's UUID cannot change once set: register a new device")
			}
			d.UUID = u
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
		if _, err := bumpBoot(tx, d.NetworkID, d.ID); err != nil {
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
	var ops []*Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if d, err = getScoped[Device](ctx, tx, a.scopeNetworkOwned, id, "device"); err != nil {
			return err
		}
		ops, err = deleteDeviceTx(tx, a, d, true)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, op := range ops {
		s.launch(ctx, op)
	}
	res := &Created{Object: d}
	if n := len(ops); n > 0 && ops[n-1].Kind == OpDeviceDelete {
		res.Operation = ops[n-1]
	}
	return res, nil
}

// deleteDeviceTx deletes device d in the caller's transaction and returns the operations
// to launch once it commits: the ends of the maintenances it held, then (last, with
// diskOp) the device-delete that moves its disk to the erator, when it has one. Without
// diskOp the caller moves the disk (a bulk delete's operation).
func deleteDeviceTx(tx *gorm.DB, a *Actor, d *Device, diskOp bool) ([]*Operation, error) {
	var ops []*Operation
	// Its vdisk outlives it, detached: persistent data is never deleted with a device (its
	// target, LUN 1 included, goes with the device's disk).
	if err := tx.Model(&VDisk{}).Where("device_id = ?", d.ID).Update("device_id", nil).Error; err != nil {
		return nil, err
	}
	// A group or volume it maintained leaves maintenance, its target removed by a
	// maintenance-end operation like any end of maintenance.
	for _, m := range []struct {
		model any
		kind  string
	}{{&Group{}, OpGroupMaintenanceEnd}, {&Volume{}, OpVolumeMaintenanceEnd}} {
		var ids []uint
		if err := tx.Model(m.model).Where("maintenance_device_id = ?", d.ID).Pluck("id", &ids).Error; err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			continue
		}
		if err := tx.Model(m.model).Where("id IN ?", ids).
			Updates(map[string]any{"maintenance": false, "maintenance_device_id": nil}).Error; err != nil {
			return nil, err
		}
		for _, oid := range ids {
			end, err := newOperation(tx, d.NetworkID, m.kind, oid, OperationInput{})
			if err != nil {
				return nil, err
			}
			ops = append(ops, end)
		}
	}
	if d.ServerID != nil && diskOp {
		op, err := newOperation(tx, d.NetworkID, OpDeviceDelete, d.ID, OperationInput{ServerID: *d.ServerID})
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	if err := tx.Delete(d).Error; err != nil {
		return nil, err
	}
	if _, err := bumpBoot(tx, d.NetworkID, d.ID); err != nil {
		return nil, err
	}
	return ops, audit(tx, a, &d.NetworkID, "delete", "device", d.ID, d.MAC)
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
		if _, err := bumpBoot(tx, n.ID, d.ID); err != nil {
			return err
		}
		return audit(tx, nil, &n.ID, "register", "device", d.ID, mac)
	})
	if err != nil && IsDuplicate(err) {
		return false, db.Where("network_id = ? AND mac = ?", n.ID, mac).Take(d).Error
	}
	return err == nil, err
}

// RecordClone stores that a device of a network now has a clone of a version on a server
// (the device workflow calls it once the clone exists). Repeating it changes nothing.
func RecordClone(ctx context.Context, db *gorm.DB, networkID, deviceID, versionID, serverID uint) error {
	return RecordMovedClone(ctx, db, networkID, deviceID, versionID, serverID, 0)
}

// RecordMovedClone is RecordClone for a device whose vdisk vdiskID (0: none) moved with
// its clone to serverID: the vdisk's server changes in the same transaction as the
// device's, so the panel never sends the vdisk's work to one server and the device's to
// another; the vdisk's move ends with it (MovingTo cleared). Repeating it changes nothing.
func RecordMovedClone(ctx context.Context, db *gorm.DB, networkID, deviceID, versionID, serverID, vdiskID uint) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := updateDevice(ctx, tx, map[string]any{"clone_version_id": versionID, "server_id": serverID},
			"id = ? AND network_id = ?", deviceID, networkID); err != nil {
			return err
		}
		if vdiskID == 0 {
			return nil
		}
		return tx.Model(&VDisk{}).Where("id = ? AND network_id = ? AND device_id = ?", vdiskID, networkID, deviceID).
			Updates(map[string]any{"server_id": serverID, "moving_to": nil}).Error
	})
}

// updateDevice writes fields of the device that where matches. PostgreSQL and SQLite
// count matched rows, changed or not, so none counted means no such device.
func updateDevice(ctx context.Context, db *gorm.DB, fields map[string]any, where string, args ...any) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&Device{}).Where(where, args...).Updates(fields)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return NotFound("device")
		}
		var ids []uint
		if err := tx.Model(&Device{}).Where(where, args...).Pluck("id", &ids).Error; err != nil {
			return err
		}
		return bumpBootDevices(tx, ids...)
	})
}

// DeviceRestoreInput is the body of a device restore: an erator entry (as the server's
// erator lists it), or none for the newest of the device's.
type DeviceRestoreInput struct {
	From *string `field:"from,name"`
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
		from := ""
		if in != nil && in.From != nil {
			from = strings.TrimSpace(*in.From)
		}
		op, err = restoreDeviceTx(tx, a, d, from)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: d, Operation: op}, nil
}

// restoreDeviceTx records, in the caller's transaction, the operation that puts device d's
// disk back from the erator entry from ("" its newest), with its audit event.
func restoreDeviceTx(tx *gorm.DB, a *Actor, d *Device, from string) (*Operation, error) {
	if d.ServerID == nil {
		return nil, Conflict("", "device %d has no disk on any server: there is nothing to restore", d.ID)
	}
	if from != "" && !strings.Contains(from, fmt.Sprintf("/erator/device-%d-", d.ID)) {
		return nil, Invalid("from", "must be an erator entry of device %d (…/erator/device-%d-<time>)", d.ID, d.ID)
	}
	op, err := newOperation(tx, d.NetworkID, OpDeviceRestore, d.ID, OperationInput{ServerID: *d.ServerID, From: from})
	if err != nil {
		return nil, err
	}
	return op, audit(tx, a, &d.NetworkID, "restore", "device", d.ID, from)
}

// DeviceLocker changes a device's lock in order with its provisionings: the panel's
// engine sends the change to the device's entity workflow, so a lock set while the device
// is being reprovisioned takes effect when that ends, and a reprovisioning decided before
// the lock is refused. An Engine that is also a DeviceLocker gets every lock change.
type DeviceLocker interface {
	// LockDevice returns once the lock is written; ErrLockPending when the device's
	// provisioning under way outlasts the wait (the change is queued and happens after it).
	LockDevice(ctx context.Context, deviceID uint, locked bool) error
}

// ErrLockPending: the lock change is queued behind the device's provisioning under way.
var ErrLockPending = errors.New("the lock change is queued behind the device's provisioning under way")

// SetDeviceLock writes a device's lock (the device workflow's step). Repeating it changes nothing.
func SetDeviceLock(ctx context.Context, db *gorm.DB, deviceID uint, locked bool) error {
	return updateDevice(ctx, db, map[string]any{"locked": locked}, "id = ?", deviceID)
}

// DevicePlan is what a device's workflow needs from the database before it touches a disk.
type DevicePlan struct {
	NetworkID uint
	UUID      string // the device's targets' ACL
	Locked    bool   // a locked device's disk is not replaced
	Pool      string // of the server the new clone goes to
	OldPool   string // of the server the old clone is on ("" for none, or a server gone)
	// VDisk is the device's vdisk (its target's LUN 1) when it lives on another server
	// than serverID: it moves before the device boots there. Nil: none, or already there.
	VDisk *VDiskPlace
}

// VDiskPlace is where a vdisk's zvol lives: its server, that server's pool and the
// replication endpoint another server pulls it from.
type VDiskPlace struct {
	ID       uint
	ServerID uint
	Pool     string
	Addr     string // host:port
}

// PlanDevice reads device deviceID and the pools of serverID and oldServerID (0: none),
// both of the device's network. A device that does not exist is ErrNotFound. Read-only.
func PlanDevice(ctx context.Context, db *gorm.DB, deviceID, serverID, oldServerID uint) (*DevicePlan, error) {
	db = db.WithContext(ctx)
	var d Device
	if err := db.Take(&d, deviceID).Error; err != nil {
		return nil, notFoundOr(err, fmt.Sprintf("device %d", deviceID))
	}
	p := &DevicePlan{NetworkID: d.NetworkID, UUID: d.UUID, Locked: d.Locked}
	var srv Server
	if err := db.Where("id = ? AND network_id = ?", serverID, d.NetworkID).Take(&srv).Error; err != nil {
		return nil, fmt.Errorf("server %d of device %d's network: %w", serverID, deviceID, err)
	}
	p.Pool = srv.Pool
	if oldServerID != 0 {
		var old Server
		if err := db.Where("id = ? AND network_id = ?", oldServerID, d.NetworkID).Take(&old).Error; err == nil {
			p.OldPool = old.Pool
		}
	}
	// Only a ready vdisk moves: one being created, resized or deleted is its own
	// operation's, on the server that operation names.
	var v VDisk
	err := db.Where("device_id = ? AND network_id = ? AND state = ? AND server_id IS NOT NULL AND server_id <> ?",
		d.ID, d.NetworkID, StateReady, serverID).Order("id").Take(&v).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vdisk of device %d: %w", deviceID, err)
	}
	var vs Server
	if err := db.Where("id = ? AND network_id = ?", *v.ServerID, d.NetworkID).Take(&vs).Error; err != nil {
		return nil, fmt.Errorf("server %d of vdisk %d: %w", *v.ServerID, v.ID, notFound(err))
	}
	p.VDisk = &VDiskPlace{ID: v.ID, ServerID: vs.ID, Pool: vs.Pool, Addr: vs.replicationEndpoint()}
	return p, nil
}
