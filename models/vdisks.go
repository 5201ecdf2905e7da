package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// VDisk is a persistent data disk under vdisks, attached to a device as a second LUN.
type VDisk struct {
	ID        uint   `gorm:"primaryKey" json:"id"`
	NetworkID uint   `gorm:"not null;index" json:"network_id"`
	Name      string `gorm:"size:200;not null" json:"name"`
	SizeGiB   int64  `gorm:"column:size_gib;not null" json:"size"`
	DeviceID  *uint  `json:"device_id"`
	// ServerID is where its zvol <pool>/vdisks/<id> lives: its device's server when it was
	// made, else the network's master.
	ServerID *uint `json:"server_id"`
	// MovingTo is the server its device's workflow is moving it to (null: not moving).
	// Set in the transaction that starts the move (MarkVDiskMoving), cleared when the move
	// ends either way; resize, attach, detach and delete are refused meanwhile.
	MovingTo  *uint     `json:"moving_to"`
	State     string    `gorm:"size:20;not null;default:'pending'" json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// MaxVDiskGiB bounds a vdisk's size; the real bound is its server's pool, checked by the workflow.
const MaxVDiskGiB = MaxVolumeGiB

// VDiskInput is the body of a vdisk create or update. A null device_id detaches it.
type VDiskInput struct {
	NetworkID *uint   `field:"network_id,network"`
	Name      *string `field:"name"`
	SizeGiB   *int64  `field:"size,size_gib"`
	DeviceID  *uint   `field:"device_id,device"`
}

func checkVDiskSize(v *int64) error {
	if v != nil && (*v < 1 || *v > MaxVDiskGiB) {
		return Invalid("size", "must be a size in GiB between 1 and %d", MaxVDiskGiB)
	}
	return nil
}

// vdiskDevice loads device id of network nid for a vdisk (field device_id) and refuses one
// that already has another vdisk: a device has one data disk, its target's LUN 1.
func vdiskDevice(tx *gorm.DB, id, nid, vdiskID uint) (*Device, error) {
	var d Device
	err := tx.Where("id = ? AND network_id = ?", id, nid).Take(&d).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, Invalid("device_id", "device %d is not in network %d", id, nid)
	}
	if err != nil {
		return nil, err
	}
	var other VDisk
	err = tx.Where("device_id = ? AND id <> ? AND state <> ?", id, vdiskID, StateDeleted).Take(&other).Error
	if err == nil {
		return nil, Conflict("device_id", "device %d has vdisk %d already: a device has one vdisk (LUN 1 of its target)", id, other.ID)
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, err
	}
	return &d, nil
}

// CreateVDisk records a vdisk of size GiB and queues the creation of its sparse zvol on the
// server its device boots from (the device's clone's server), or on the network's master
// when it has no device, within the network's MaxVDisks.
func (s *Store) CreateVDisk(ctx context.Context, a *Actor, in *VDiskInput) (*Created, error) {
	nid, err := requireNetwork(in.NetworkID)
	if err != nil {
		return nil, err
	}
	v := &VDisk{NetworkID: nid, State: StatePending}
	if v.Name, err = requiredName("name", in.Name, 200); err != nil {
		return nil, err
	}
	if in.SizeGiB == nil {
		return nil, Invalid("size", "is required (the size in GiB)")
	}
	if err := checkVDiskSize(in.SizeGiB); err != nil {
		return nil, err
	}
	v.SizeGiB = *in.SizeGiB
	var op *Operation
	err = s.tx(ctx, func(tx *gorm.DB) error {
		n, err := a.lockNetwork(tx, nid, "network_id")
		if err != nil {
			return err
		}
		v.ServerID = n.MasterServerID
		if in.DeviceID != nil && *in.DeviceID != 0 {
			d, err := vdiskDevice(tx, *in.DeviceID, nid, 0)
			if err != nil {
				return err
			}
			v.DeviceID = &d.ID
			if d.ServerID != nil {
				v.ServerID = d.ServerID
			}
		}
		op, err = insertQueued(tx, a, n, queued{row: v, id: func() uint { return v.ID }, label: v.Name, object: "vdisk",
			kind: OpVDiskCreate, max: n.MaxVDisks, what: "vdisks", limit: "max_vdisks"})
		return err
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: v, Operation: op}, nil
}

// vdiskBusy refuses a change while another resize, attachment or the delete of the vdisk
// is queued or running: one at a time, each seeing what the one before left.
func vdiskBusy(tx *gorm.DB, id uint, field string) error {
	var op Operation
	err := tx.Where("object_type = ? AND object_id = ? AND kind IN ? AND state IN ?", "vdisk", id,
		[]string{OpVDiskCreate, OpVDiskResize, OpVDiskAttach, OpVDiskDelete}, []string{OpQueued, OpRunning}).Order("id").Take(&op).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look for operations of vdisk %d: %w", id, err)
	}
	return Conflict(field, "vdisk %d has a %s under way (operation %d, %s): try again once it has ended", id, op.Kind, op.ID, op.State)
}

// vdiskMoving refuses a change of a vdisk its device's workflow is moving to another
// server: the change would be made on the server it is leaving.
func vdiskMoving(v *VDisk, field string) error {
	if v.MovingTo == nil {
		return nil
	}
	return Conflict(field, "vdisk %d is moving with device %d to server %d: try again once the move has ended",
		v.ID, ptrOr(v.DeviceID, 0), *v.MovingTo)
}

// MarkVDiskMoving starts the move of vdisk vdiskID with device deviceID to server serverID:
// in one transaction, under the vdisk's row lock, it checks that the vdisk is still the
// device's, ready and elsewhere, that no create, resize, attachment or delete of it is
// queued or running (Conflict naming it), and records the move (MovingTo). Marking the
// same move again (a retry) is success.
func MarkVDiskMoving(ctx context.Context, db *gorm.DB, vdiskID, deviceID, serverID uint) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var v VDisk
		if err := forUpdate(tx).Take(&v, vdiskID).Error; err != nil {
			return notFoundOr(err, fmt.Sprintf("vdisk %d", vdiskID))
		}
		if v.MovingTo != nil && *v.MovingTo == serverID {
			return nil
		}
		// The device's workflow provisions one request at a time, so a mark of this same
		// device is a move that ended without clearing it (a run terminated mid-move): the
		// new move replaces it, starting again from where the row places the vdisk.
		if ptrOr(v.DeviceID, 0) != deviceID {
			if err := vdiskMoving(&v, "vdisk"); err != nil {
				return err
			}
		}
		if ptrOr(v.DeviceID, 0) != deviceID || v.State != StateReady || v.ServerID == nil || *v.ServerID == serverID {
			return Conflict("vdisk", "vdisk %d changed since its move with device %d was planned (device %d, %s, on server %d)",
				v.ID, deviceID, ptrOr(v.DeviceID, 0), v.State, ptrOr(v.ServerID, 0))
		}
		if err := vdiskBusy(tx, v.ID, "vdisk"); err != nil {
			return err
		}
		return tx.Model(&VDisk{}).Where("id = ?", v.ID).Update("moving_to", serverID).Error
	})
}

// EndVDiskMove clears a vdisk's move (a move that failed: RecordMovedClone clears one that
// succeeded). Safe to repeat.
func EndVDiskMove(ctx context.Context, db *gorm.DB, vdiskID uint) error {
	return db.WithContext(ctx).Model(&VDisk{}).Where("id = ?", vdiskID).Update("moving_to", nil).Error
}

// UpdateVDisk renames a vdisk, grows it (shrinking is refused: it would cut off the file
// systems inside) or moves it to another device of its network (device_id; null detaches
// it). The move is an operation: it is refused there while the current device has an
// iSCSI session on its target (it is booted); the stored device changes once it succeeds.
func (s *Store) UpdateVDisk(ctx context.Context, a *Actor, id uint, in *VDiskInput) (*Created, error) {
	var v *VDisk
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if v, err = lockedVDisk(ctx, tx, a, id); err != nil {
			return err
		}
		if in.NetworkID != nil && *in.NetworkID != v.NetworkID {
			return Invalid("network_id", "a vdisk cannot move to another network")
		}
		resize := in.SizeGiB != nil && *in.SizeGiB != v.SizeGiB
		move := in.DeviceID != nil && ptrOr(nonZero(in.DeviceID), 0) != ptrOr(v.DeviceID, 0)
		if resize && move {
			return Invalid("device_id", "resize and attach are two changes: send them one at a time")
		}
		if in.Name != nil {
			if v.Name, err = checkName("name", *in.Name, 200); err != nil {
				return err
			}
		}
		if resize {
			if err := checkVDiskSize(in.SizeGiB); err != nil {
				return err
			}
			if *in.SizeGiB < v.SizeGiB {
				return Invalid("size", "cannot shrink a vdisk (from %d to %d GiB): it would cut off the file systems inside", v.SizeGiB, *in.SizeGiB)
			}
		}
		if resize || move {
			field := pick(resize, "size", "device_id")
			if err := vdiskMoving(v, field); err != nil {
				return err
			}
			if v.State != StateReady {
				return Conflict(field, "vdisk %d is %s: it can change once it is ready", v.ID, v.State)
			}
			if err := vdiskBusy(tx, v.ID, field); err != nil {
				return err
			}
		}
		switch {
		case resize:
			if op, err = newOperation(tx, v.NetworkID, OpVDiskResize, v.ID, OperationInput{SizeGiB: *in.SizeGiB}); err != nil {
				return err
			}
		case move:
			to := uint(0)
			if *in.DeviceID != 0 {
				d, err := vdiskDevice(tx, *in.DeviceID, v.NetworkID, v.ID)
				if err != nil {
					return err
				}
				if d.ServerID != nil && v.ServerID != nil && *d.ServerID != *v.ServerID {
					return Conflict("device_id", "device %d boots from server %d and vdisk %d is on server %d: moving a vdisk to another server is not supported yet",
						d.ID, *d.ServerID, v.ID, *v.ServerID)
				}
				to = d.ID
			}
			if op, err = newOperation(tx, v.NetworkID, OpVDiskAttach, v.ID, OperationInput{DeviceID: to, FromDeviceID: ptrOr(v.DeviceID, 0)}); err != nil {
				return err
			}
		}
		if err := tx.Model(v).Update("name", v.Name).Error; err != nil {
			return err
		}
		return audit(tx, a, &v.NetworkID, "update", "vdisk", v.ID, "")
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: v, Operation: op}, nil
}

// DeleteVDisk queues a vdisk's deletion: its zvol is renamed into the erator of its
// server. An attached vdisk is refused (a booted device would lose a disk under it):
// detach it first.
func (s *Store) DeleteVDisk(ctx context.Context, a *Actor, id uint) (*Created, error) {
	var v *VDisk
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if v, err = lockedVDisk(ctx, tx, a, id); err != nil {
			return err
		}
		if v.State == StateDeleted {
			return Conflict("", "vdisk %d is deleted already", v.ID)
		}
		if err := vdiskMoving(v, ""); err != nil {
			return err
		}
		if v.DeviceID != nil {
			return Conflict("device_id", "vdisk %d is attached to device %d: detach it first (device_id null)", v.ID, *v.DeviceID)
		}
		if v.State != StateDeleting {
			if err := vdiskBusy(tx, v.ID, ""); err != nil {
				return err
			}
		}
		op, err = queueDelete(tx, a, v, &v.State, v.NetworkID, v.ID, "vdisk", OpVDiskDelete, v.Name)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: v, Operation: op}, nil
}

// deviceVDisks maps the devices of a network to their vdisks that live on server serverID
// (each its target's LUN 1), in one query: an agent's export list asks for every device at
// once. A vdisk recorded on another server is left out: the copy this server may hold (a
// backup, or the base of a move) is never served.
func deviceVDisks(tx *gorm.DB, networkID, serverID uint) (map[uint]uint, error) {
	var rows []VDisk
	err := tx.Where("network_id = ? AND server_id = ? AND device_id IS NOT NULL AND state IN ?", networkID, serverID, []string{StateReady, StatePending}).
		Order("id DESC").Find(&rows).Error
	out := make(map[uint]uint, len(rows))
	for _, v := range rows {
		out[*v.DeviceID] = v.ID // the oldest wins, as vdiskDevice allows only one
	}
	return out, err
}

// applyVDiskAttach records where an attach operation moved its vdisk.
func applyVDiskAttach(tx *gorm.DB, op *Operation) error {
	var in OperationInput
	if err := json.Unmarshal([]byte(op.Input), &in); err != nil {
		return fmt.Errorf("operation %d's input: %w", op.ID, err)
	}
	return tx.Model(&VDisk{}).Where("id = ?", op.ObjectID).Update("device_id", nonZero(&in.DeviceID)).Error
}

// vdiskMovingMigration adds the server a vdisk is being moved to.
func vdiskMovingMigration() *gormigrate.Migration {
	return addColumnsMigration("202612010700_vdisk_moving", &vdiskMovingTo{}, "MovingTo")
}

// vdiskMovingTo is the table as migration 202612010700 knows it (frozen).
type vdiskMovingTo struct {
	MovingTo *uint
}

func (vdiskMovingTo) TableName() string { return "v_disks" }

// vdisksMigration adds the network's MaxVDisks and the server a vdisk lives on.
func vdisksMigration() *gormigrate.Migration {
	nets := addColumnsMigration("202612010125_vdisks", &networkVDisks{}, "MaxVDisks")
	disks := addColumnsMigration("202612010125_vdisks", &vdiskServer{}, "ServerID")
	return &gormigrate.Migration{
		ID: "202612010125_vdisks",
		Migrate: func(tx *gorm.DB) error {
			if err := nets.Migrate(tx); err != nil {
				return err
			}
			return disks.Migrate(tx)
		},
		Rollback: func(tx *gorm.DB) error {
			if err := disks.Rollback(tx); err != nil {
				return err
			}
			return nets.Rollback(tx)
		},
	}
}

// networkVDisks and vdiskServer are the tables as migration 202612010125 knows them (frozen).
type networkVDisks struct {
	MaxVDisks int `gorm:"column:max_vdisks;not null;default:0"`
}

func (networkVDisks) TableName() string { return "networks" }

type vdiskServer struct {
	ServerID *uint
}

func (vdiskServer) TableName() string { return "v_disks" }

// lockedVDisk reads a visible vdisk and locks its row for the rest of the transaction.
func lockedVDisk(ctx context.Context, tx *gorm.DB, a *Actor, id uint) (*VDisk, error) {
	v, err := getScoped[VDisk](ctx, tx, a.scopeNetworkOwned, id, "vdisk")
	if err != nil {
		return nil, err
	}
	if err := forUpdate(tx).Take(v, v.ID).Error; err != nil {
		return nil, err
	}
	return v, nil
}
