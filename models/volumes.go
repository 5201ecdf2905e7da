package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"gorm.io/gorm"
)

// Object states of volumes, groups and other datasets that a workflow creates.
const (
	StatePending  = "pending"
	StateReady    = "ready"
	StateFailed   = "failed"
	StateDeleting = "deleting"
	StateDeleted  = "deleted"
)

// Volume is a thin zvol on the network's master: the base disk groups are cloned from.
type Volume struct {
	ID        uint   `gorm:"primaryKey" json:"id"`
	NetworkID uint   `gorm:"not null;index" json:"network_id"`
	Alias     string `gorm:"size:200;not null" json:"alias"`
	SizeGiB   int64  `gorm:"column:size_gib;not null" json:"vol_size"`
	// Maintenance: MaintenanceDeviceID boots the volume itself read-write (to install the
	// first OS).
	Maintenance         bool      `gorm:"not null;default:false" json:"maintenance"`
	MaintenanceDeviceID *uint     `json:"maintenance_device_id"`
	State               string    `gorm:"size:20;not null;default:'pending'" json:"state"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
}

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
		// Read again under the row's lock: concurrent resizes and a delete of the volume
		// take their turns, and each sees what the one before it queued.
		if err := forUpdate(tx).Take(v, v.ID).Error; err != nil {
			return err
		}
		if in.NetworkID != nil && *in.NetworkID != v.NetworkID {
			return Invalid("network_id", "a volume cannot move to another network")
		}
		if in.SizeGiB != nil && *in.SizeGiB != v.SizeGiB {
			if err := resizeFree(tx, v.ID); err != nil {
				return err
			}
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
			if op, err = newOperation(tx, v.NetworkID, OpVolumeResize, v.ID, OperationInput{SizeGiB: *in.SizeGiB}); err != nil {
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

// resizeFree refuses a resize while another resize or the delete of the volume is queued
// or running: one resize at a time, each checked against the size the one before left
// (the stored size is only updated when a resize ends).
func resizeFree(tx *gorm.DB, volumeID uint) error {
	var op Operation
	err := tx.Where("object_type = ? AND object_id = ? AND kind IN ? AND state IN ?", "volume", volumeID,
		[]string{OpVolumeResize, OpVolumeDelete}, []string{OpQueued, OpRunning}).Order("id").Take(&op).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look for operations of volume %d: %w", volumeID, err)
	}
	return Conflict("vol_size", "volume %d has a %s under way (operation %d, %s): resize it once that has ended", volumeID, op.Kind, op.ID, op.State)
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

// SetVolumeMaintenance turns a volume's maintenance on for a device of its network (on), or
// off. While on, that device boots the volume itself read-write from the master, to install
// the first OS; ending it removes the export (the master's agent drops targets the panel no
// longer lists). Repeating either changes nothing.
func (s *Store) SetVolumeMaintenance(ctx context.Context, a *Actor, volumeID uint, on bool, in *MaintenanceInput) (*Created, error) {
	return setMaintenance(ctx, s, a, volumeID, on, in, "volume", "the volume", OpVolumeMaintenanceEnd, func(v *Volume) maintained {
		return maintained{v.ID, v.NetworkID, v.State, &v.Maintenance, &v.MaintenanceDeviceID}
	})
}

// volumeRoom checks a volume size against the master's last reported pool: a size the
// pool can never hold is refused (422); one that overcommits thin provisioning is
// accepted with a warning. Before the agent has reported, the workflow checks on the
// server itself (and fails the operation with the same words).
func volumeRoom(tx *gorm.DB, n *Network, sizeGiB, previousGiB int64) (string, error) {
	if n.MasterServerID == nil {
		return "", nil
	}
	var m Server
	if err := tx.Take(&m, *n.MasterServerID).Error; err != nil || m.StatsAt == nil || m.PoolSize <= 0 {
		return "", nil
	}
	size := sizeGiB * wire.GiB
	if size > m.PoolSize {
		return "", Invalid("vol_size", "%d GiB is more than the master's pool %s can ever hold (%.1f GiB usable)",
			sizeGiB, m.Pool, float64(m.PoolSize)/wire.GiB)
	}
	var st struct {
		Provisioned int64 `json:"provisioned"`
	}
	_ = json.Unmarshal([]byte(m.Stats), &st)
	if p := st.Provisioned - previousGiB*wire.GiB + size; p > m.PoolSize {
		return fmt.Sprintf("thin provisioning overcommits pool %s: its volumes may grow to %.1f GiB, it holds %.1f GiB",
			m.Pool, float64(p)/wire.GiB, float64(m.PoolSize)/wire.GiB), nil
	}
	return "", nil
}

// RestoreVolume queues putting a deleted volume back from the erator.
func (s *Store) RestoreVolume(ctx context.Context, a *Actor, id uint) (*Created, error) {
	return restore[Volume](ctx, s, a, id, "volume", OpVolumeRestore)
}
