package models

import (
	"context"
	"fmt"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// BootHistory is one boot an agent answered for a device: when, from which server, which
// version, and how it ended. The device row keeps only the last boot; this keeps them all.
type BootHistory struct {
	ID        uint      `gorm:"primaryKey" json:"id"`
	DeviceID  uint      `gorm:"not null;index:idx_boot_history_device" json:"device_id"`
	NetworkID uint      `gorm:"not null" json:"network_id"`
	ServerID  uint      `gorm:"not null" json:"server_id"`
	GroupID   uint      `gorm:"not null;default:0" json:"group_id"`
	Version   int       `gorm:"not null;default:0" json:"version"` // 0: no version booted
	Outcome   string    `gorm:"size:40;not null" json:"outcome"`   // booted, non-compliant, not booted
	Reason    string    `gorm:"size:500;not null;default:''" json:"reason"`
	Result    string    `gorm:"size:10;not null;default:''" json:"result"` // up, failed, unknown; "" while observed
	UpMS      int64     `gorm:"not null;default:0" json:"up_ms"`           // boot script served → up
	CreatedAt time.Time `gorm:"index:idx_boot_history_device" json:"created_at"`
}

// Boot outcomes as the history shows them.
const (
	BootOutcomeBooted       = "booted"
	BootOutcomeNonCompliant = "booted, non-compliant"
	BootOutcomeNotBooted    = "not booted"
)

// recordBootHistory adds one boot of a device of the server's network to its history.
func recordBootHistory(db *gorm.DB, srv *Server, r BootRecord, at time.Time) error {
	outcome := BootOutcomeNotBooted
	switch {
	case r.Booted && r.Compliant:
		outcome = BootOutcomeBooted
	case r.Booted:
		outcome = BootOutcomeNonCompliant
	}
	reason := r.Reason
	if len(reason) > 500 {
		reason = reason[:500]
	}
	err := db.Create(&BootHistory{DeviceID: r.DeviceID, NetworkID: srv.NetworkID, ServerID: srv.ID, GroupID: r.GroupID,
		Version: r.Version, Outcome: outcome, Reason: reason, CreatedAt: at}).Error
	if err != nil {
		return fmt.Errorf("boot history: %w", err)
	}
	return nil
}

// DeviceBootHistory lists a visible device's latest boots, newest first (at most limit).
func (s *Store) DeviceBootHistory(ctx context.Context, a *Actor, deviceID uint, limit int) ([]BootHistory, error) {
	if _, err := GetOwned[Device](ctx, s, a, deviceID, "device"); err != nil {
		return nil, err
	}
	if limit < 1 || limit > 500 {
		limit = 50
	}
	out := []BootHistory{}
	err := s.DB.WithContext(ctx).Where("device_id = ?", deviceID).Order("id DESC").Limit(limit).Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("boot history: %w", err)
	}
	return out, nil
}

// bootHistoryMigration creates the boot history table (frozen as this migration knows it).
func bootHistoryMigration() *gormigrate.Migration {
	return createTableMigration("202611300501_boot_history", &bootHistoryTable{})
}

type bootHistoryTable struct {
	ID        uint      `gorm:"primaryKey"`
	DeviceID  uint      `gorm:"not null;index:idx_boot_history_device"`
	NetworkID uint      `gorm:"not null"`
	ServerID  uint      `gorm:"not null"`
	GroupID   uint      `gorm:"not null;default:0"`
	Version   int       `gorm:"not null;default:0"`
	Outcome   string    `gorm:"size:40;not null"`
	Reason    string    `gorm:"size:500;not null;default:''"`
	CreatedAt time.Time `gorm:"index:idx_boot_history_device"`
}

func (bootHistoryTable) TableName() string { return "boot_histories" }
