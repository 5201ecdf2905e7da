package models

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// The boot revision (DESIGN.md §5, the agent's own view): every agent keeps its network's
// devices in memory and follows a watch from the panel. A network's revision counts the
// changes to its devices: it is bumped in the transaction of the change, with one log row
// per changed device, so a watch resumed from revision N gets the devices changed since N.
// The network-wide part of the view (servers, groups, versions, copies, menus) is small
// and is versioned by its digest instead (api/boot.go), so its many write paths need no
// bump.

// BootRevision is a network's boot revision. Its row is locked by every bump: bumps of
// one network commit in revision order, so a watcher that has seen revision N never
// misses a change numbered below it.
type BootRevision struct {
	NetworkID uint   `gorm:"primaryKey;autoIncrement:false"`
	Revision  uint64 `gorm:"not null;default:0"`
	// Floor: the log holds no change at or below it (pruned); a watch from before it
	// gets a full snapshot.
	Floor uint64 `gorm:"not null;default:0"`
}

// BootChange is one logged change: a device (DeviceID), or every device of the network
// (DeviceID 0: references cleared in bulk).
type BootChange struct {
	ID        uint64 `gorm:"primaryKey"`
	NetworkID uint   `gorm:"not null;index:idx_boot_change,priority:1"`
	Revision  uint64 `gorm:"not null;index:idx_boot_change,priority:2"`
	DeviceID  uint   `gorm:"not null;default:0"`
	CreatedAt time.Time
}

// AllDevices as a changed device id says that every device of the network may have changed.
const AllDevices uint = 0

// bumpBoot records, inside tx, that devices of a network changed (AllDevices: any of
// them), and returns the new revision.
func bumpBoot(tx *gorm.DB, networkID uint, deviceIDs ...uint) (uint64, error) {
	if len(deviceIDs) == 0 {
		deviceIDs = []uint{AllDevices}
	}
	if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&BootRevision{NetworkID: networkID}).Error; err != nil {
		return 0, fmt.Errorf("boot revision: %w", err)
	}
	if err := tx.Model(&BootRevision{}).Where("network_id = ?", networkID).
		Update("revision", gorm.Expr("revision + 1")).Error; err != nil {
		return 0, fmt.Errorf("boot revision: %w", err)
	}
	var rev BootRevision
	if err := tx.Take(&rev, "network_id = ?", networkID).Error; err != nil {
		return 0, fmt.Errorf("boot revision: %w", err)
	}
	rows := make([]BootChange, len(deviceIDs))
	for i, id := range deviceIDs {
		rows[i] = BootChange{NetworkID: networkID, Revision: rev.Revision, DeviceID: id}
	}
	if err := tx.Create(&rows).Error; err != nil {
		return 0, fmt.Errorf("boot revision: %w", err)
	}
	return rev.Revision, nil
}

// bumpBootDevices is bumpBoot for devices named by id only (their network read here).
func bumpBootDevices(tx *gorm.DB, deviceIDs ...uint) error {
	var nets []struct {
		ID        uint
		NetworkID uint
	}
	if err := tx.Model(&Device{}).Select("id, network_id").Where("id IN ?", deviceIDs).Find(&nets).Error; err != nil {
		return err
	}
	by := map[uint][]uint{}
	var order []uint
	for _, n := range nets {
		if _, ok := by[n.NetworkID]; !ok {
			order = append(order, n.NetworkID)
		}
		by[n.NetworkID] = append(by[n.NetworkID], n.ID)
	}
	for _, nid := range order {
		if _, err := bumpBoot(tx, nid, by[nid]...); err != nil {
			return err
		}
	}
	return nil
}

// BootRevisionOf returns a network's revision and floor. A network never bumped starts
// at revision 1: revision 0 is the agent's "I have nothing", always answered in full.
func BootRevisionOf(ctx context.Context, db *gorm.DB, networkID uint) (rev, floor uint64, err error) {
	db = db.WithContext(ctx)
	var r BootRevision
	if err = db.Where("network_id = ?", networkID).Limit(1).Find(&r).Error; err != nil || r.Revision > 0 {
		return r.Revision, r.Floor, err
	}
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&BootRevision{NetworkID: networkID, Revision: 1}).Error; err != nil {
		return 0, 0, fmt.Errorf("boot revision: %w", err)
	}
	err = db.Where("network_id = ?", networkID).Take(&r).Error
	return r.Revision, r.Floor, err
}

// DeviceBootRevision is the boot revision of a device's last change: its newest logged
// change (or one of every device), else the log's floor (its change was pruned, or it never
// changed since it was made). A provisioning request carries it (wire.ProvisionUpdateID).
func DeviceBootRevision(ctx context.Context, db *gorm.DB, networkID, deviceID uint) (uint64, error) {
	_, floor, err := BootRevisionOf(ctx, db, networkID)
	if err != nil {
		return 0, err
	}
	revOf, err := DeviceBootRevisions(ctx, db, networkID, floor, []uint{deviceID})
	if err != nil {
		return 0, err
	}
	return revOf(deviceID), nil
}

// DeviceBootRevisions is DeviceBootRevision for many devices of a network at once (ids
// nil: every device), given the log's floor (BootRevisionOf), in one query: the boot
// view's watch sends each device with it, so the agent's view and the panel's boot answer
// name a provisioning alike. A network's first revision is 1, so it never answers 0 (which
// the view would stamp with its own).
func DeviceBootRevisions(ctx context.Context, db *gorm.DB, networkID uint, floor uint64, ids []uint) (func(deviceID uint) uint64, error) {
	var rows []struct {
		DeviceID uint
		Newest   uint64
	}
	q := db.WithContext(ctx).Model(&BootChange{}).Select("device_id, MAX(revision) AS newest").Where("network_id = ?", networkID)
	if ids != nil {
		q = q.Where("device_id IN ?", append(slices.Clone(ids), AllDevices))
	}
	if err := q.Group("device_id").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("boot revisions: %w", err)
	}
	newest := make(map[uint]uint64, len(rows))
	for _, r := range rows {
		newest[r.DeviceID] = r.Newest
	}
	every := newest[AllDevices]
	return func(id uint) uint64 {
		if r := max(newest[id], every); r > 0 {
			return r
		}
		return max(floor, 1)
	}, nil
}

// BootDevicesChanged lists the devices of a network changed after revision since, up to
// and including rev; all is true when the log cannot say (a bulk change, or since is
// before the log's floor or after rev): then every device must be sent.
func BootDevicesChanged(ctx context.Context, db *gorm.DB, networkID uint, since, rev, floor uint64) (ids []uint, all bool, err error) {
	if since == 0 || since < floor || since > rev {
		return nil, true, nil
	}
	if since == rev {
		return nil, false, nil
	}
	var rows []uint
	if err := db.WithContext(ctx).Model(&BootChange{}).Distinct("device_id").
		Where("network_id = ? AND revision > ? AND revision <= ?", networkID, since, rev).
		Order("device_id").Pluck("device_id", &rows).Error; err != nil {
		return nil, false, err
	}
	for _, id := range rows {
		if id == AllDevices {
			return nil, true, nil
		}
	}
	return rows, false, nil
}

// BootDevices loads devices of a network: the ids given, or every one when ids is nil.
func BootDevices(ctx context.Context, db *gorm.DB, networkID uint, ids []uint) ([]Device, error) {
	q := db.WithContext(ctx).Where("network_id = ?", networkID)
	if ids != nil {
		if len(ids) == 0 {
			return nil, nil
		}
		q = q.Where("id IN ?", ids)
	}
	var out []Device
	err := q.Order("id").Find(&out).Error
	return out, err
}

// PruneBootChanges drops log rows older than keep and raises each network's floor to the
// newest revision dropped: watchers further behind get a full snapshot.
func PruneBootChanges(ctx context.Context, db *gorm.DB, keep time.Duration) error {
	cut := time.Now().Add(-keep)
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var floors []struct {
			NetworkID uint
			Top       uint64
		}
		if err := tx.Model(&BootChange{}).Select("network_id, MAX(revision) AS top").Where("created_at < ?", cut).
			Group("network_id").Find(&floors).Error; err != nil {
			return err
		}
		for _, f := range floors {
			if err := tx.Model(&BootRevision{}).Where("network_id = ? AND floor < ?", f.NetworkID, f.Top).
				Update("floor", f.Top).Error; err != nil {
				return err
			}
			if err := tx.Where("network_id = ? AND revision <= ?", f.NetworkID, f.Top).Delete(&BootChange{}).Error; err != nil {
				return err
			}
		}
		return nil
	})
}

// bootRevisionMigration adds the boot revision and its change log.
func bootRevisionMigration() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202611300401_boot_revision",
		Migrate: func(tx *gorm.DB) error {
			return tx.Migrator().CreateTable(&bootRevisionV1{}, &bootChangeV1{})
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropTable(&bootChangeV1{}, &bootRevisionV1{})
		},
	}
}

// bootRevisionV1 and bootChangeV1 are the tables as migration 202611300401 creates them
// (frozen: the structs above may change later, this migration must not).
type bootRevisionV1 struct {
	NetworkID uint   `gorm:"primaryKey;autoIncrement:false"`
	Revision  uint64 `gorm:"not null;default:0"`
	Floor     uint64 `gorm:"not null;default:0"`
}

func (bootRevisionV1) TableName() string { return "boot_revisions" }

type bootChangeV1 struct {
	ID        uint64 `gorm:"primaryKey"`
	NetworkID uint   `gorm:"not null;index:idx_boot_change,priority:1"`
	Revision  uint64 `gorm:"not null;index:idx_boot_change,priority:2"`
	DeviceID  uint   `gorm:"not null;default:0"`
	CreatedAt time.Time
}

func (bootChangeV1) TableName() string { return "boot_changes" }
