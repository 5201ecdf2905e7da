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
	ID        uint   `gorm:"primaryKey" json:"id"`
	DeviceID  uint   `gorm:"not null;index:idx_boot_history_device" json:"device_id"`
	NetworkID uint   `gorm:"not null" json:"network_id"`
	ServerID  uint   `gorm:"not null" json:"server_id"`
	GroupID   uint   `gorm:"not null;default:0" json:"group_id"`
	Version   int    `gorm:"not null;default:0" json:"version"` // 0: no version booted
	Outcome   string `gorm:"size:40;not null" json:"outcome"`   // booted, non-compliant, not booted
	Reason    string `gorm:"size:500;not null;default:''" json:"reason"`
	Result    string `gorm:"size:10;not null;default:''" json:"result"` // up, failed, unknown; "" while observed
	UpMS      int64  `gorm:"not null;default:0" json:"up_ms"`           // boot script served → up
	// ResultReason is what the agent saw that decided Result; BootID the agent's name of
	// the boot, which its result report carries ("" from agents that do not watch boots).
	ResultReason string    `gorm:"size:300;not null;default:''" json:"result_reason"`
	BootID       string    `gorm:"size:40;not null;default:''" json:"boot_id,omitempty"`
	CreatedAt    time.Time `gorm:"index:idx_boot_history_device" json:"created_at"`
}

// Boot outcomes as the history shows them.
const (
	BootOutcomeBooted       = "booted"
	BootOutcomeNonCompliant = "booted, non-compliant"
	BootOutcomeNotBooted    = "not booted"
)

// recordBootHistory adds one boot of a device of the server's network to its history
// (with its result when the record is a result whose first report never arrived).
func recordBootHistory(db *gorm.DB, srv *Server, r BootRecord, at time.Time) error {
	outcome := BootOutcomeNotBooted
	switch {
	case r.Booted && r.Compliant:
		outcome = BootOutcomeBooted
	case r.Booted:
		outcome = BootOutcomeNonCompliant
	}
	reason := trunc(r.Reason, 500)
	err := db.Create(&BootHistory{DeviceID: r.DeviceID, NetworkID: srv.NetworkID, ServerID: srv.ID, GroupID: r.GroupID,
		Version: r.Version, Outcome: outcome, Reason: reason, BootID: trunc(r.BootID, 40), Result: r.Result,
		UpMS: max(r.UpMS, 0), ResultReason: trunc(r.Why, 300), CreatedAt: at}).Error
	if err != nil {
		return fmt.Errorf("boot history: %w", err)
	}
	return nil
}

// bootResults are the results an agent may report (models.BootResult*, but not pending).
var bootResults = map[string]bool{BootResultUp: true, BootResultFailed: true, BootResultUnknown: true}

// recordBootResult sets the result of the boot r names (the server's row of the device
// with r's boot id). A result whose boot was never recorded (its report lost) adds the
// row, dated when the agent served it; repeating it sets the same values again.
func recordBootResult(db *gorm.DB, srv *Server, r BootRecord, now time.Time) error {
	if !bootResults[r.Result] || r.BootID == "" {
		return nil // nothing to match, or a result this panel does not know: dropped
	}
	res := db.Model(&BootHistory{}).Where("device_id = ? AND server_id = ? AND boot_id = ?", r.DeviceID, srv.ID, trunc(r.BootID, 40)).
		Updates(map[string]any{"result": r.Result, "up_ms": max(r.UpMS, 0), "result_reason": trunc(r.Why, 300)})
	if res.Error != nil {
		return fmt.Errorf("boot result: %w", res.Error)
	}
	if res.RowsAffected > 0 {
		return nil
	}
	var n int64
	if err := db.Model(&Device{}).Where("id = ? AND network_id = ?", r.DeviceID, srv.NetworkID).Count(&n).Error; err != nil || n == 0 {
		return err
	}
	at := now
	if !r.At.IsZero() && r.At.Before(now) {
		at = r.At
	}
	return recordBootHistory(db, srv, r, at)
}

// Boot history retention, applied per server when its samples are thinned (once per
// SampleThin slot): rows older than BootHistoryKeep go, a device keeps its newest
// BootHistoryPerDevice (a device in a reboot loop asks every few seconds), and a boot still
// pending after BootPendingMax gets the result unknown (its agent stopped watching without
// a word: killed, or older than the watch).
const (
	BootHistoryKeep      = 90 * 24 * time.Hour
	BootHistoryPerDevice = 1000
	BootPendingMax       = 6 * time.Hour
)

// pruneBootHistory applies the boot history retention to server serverID's rows and
// the devices they belong to.
func pruneBootHistory(tx *gorm.DB, serverID uint, now time.Time) error {
	if err := tx.Where("server_id = ? AND created_at < ?", serverID, now.Add(-BootHistoryKeep)).Delete(&BootHistory{}).Error; err != nil {
		return fmt.Errorf("prune boot history: %w", err)
	}
	err := tx.Model(&BootHistory{}).Where("server_id = ? AND result = ? AND outcome <> ? AND created_at < ?",
		serverID, BootResultPending, BootOutcomeNotBooted, now.Add(-BootPendingMax)).
		Updates(map[string]any{"result": BootResultUnknown, "result_reason": "no result came from the agent"}).Error
	if err != nil {
		return fmt.Errorf("prune boot history: %w", err)
	}
	var devices []uint
	err = tx.Model(&BootHistory{}).Where("device_id IN (?)", tx.Model(&BootHistory{}).Select("device_id").Where("server_id = ?", serverID)).
		Group("device_id").Having("COUNT(*) > ?", BootHistoryPerDevice).Pluck("device_id", &devices).Error
	if err != nil {
		return fmt.Errorf("prune boot history: %w", err)
	}
	for _, d := range devices {
		var keep []uint
		if err := tx.Model(&BootHistory{}).Where("device_id = ?", d).Order("id DESC").Offset(BootHistoryPerDevice-1).Limit(1).Pluck("id", &keep).Error; err != nil {
			return fmt.Errorf("prune boot history: %w", err)
		}
		if len(keep) == 1 {
			if err := tx.Where("device_id = ? AND id < ?", d, keep[0]).Delete(&BootHistory{}).Error; err != nil {
				return fmt.Errorf("prune boot history: %w", err)
			}
		}
	}
	return nil
}

// VersionBoots sums up how devices came up on one group version: the latest boot of each
// device that booted it at or after Since (zero: ever).
type VersionBoots struct {
	VersionID uint       `json:"version_id"`
	GroupID   uint       `json:"group_id"`
	Number    int        `json:"number"`
	Since     *time.Time `json:"since"`
	BootStats
	SuccessRate float64 `json:"success_rate"` // up / decided (up, failed, unknown); 0 when none is decided
	P50MS       int64   `json:"p50_ms"`       // time to up of the boots that came up
	P95MS       int64   `json:"p95_ms"`
}

// VersionBootsOf is VersionBoots of version v.
func VersionBootsOf(ctx context.Context, db *gorm.DB, v *GroupVersion, since time.Time) (*VersionBoots, error) {
	st, err := VersionBootStats(ctx, db, v.GroupID, v.Number, nil, since)
	if err != nil {
		return nil, err
	}
	out := &VersionBoots{VersionID: v.ID, GroupID: v.GroupID, Number: v.Number, BootStats: st,
		SuccessRate: st.SuccessRate(), P50MS: st.P50.Milliseconds(), P95MS: st.P95.Milliseconds()}
	if !since.IsZero() {
		out.Since = &since
	}
	return out, nil
}

// VersionBoots is VersionBootsOf a version of a visible group.
func (s *Store) VersionBoots(ctx context.Context, a *Actor, versionID uint, since time.Time) (*VersionBoots, error) {
	var v GroupVersion
	if err := s.DB.WithContext(ctx).Take(&v, versionID).Error; err != nil {
		return nil, notFoundOr(err, "version")
	}
	if _, err := GetOwned[Group](ctx, s, a, v.GroupID, "version"); err != nil {
		return nil, err
	}
	return VersionBootsOf(ctx, s.DB, &v, since)
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

// bootResultsMigration adds what matches a boot's result to its row, and why it ended so.
func bootResultsMigration() *gormigrate.Migration {
	return addColumnsMigration("202612010410_boot_results", &bootResultsTable{}, "ResultReason", "BootID")
}

// bootResultsTable is the boot history as migration 202612010410 knows it (frozen).
type bootResultsTable struct {
	ResultReason string `gorm:"size:300;not null;default:''"`
	BootID       string `gorm:"size:40;not null;default:''"`
}

func (bootResultsTable) TableName() string { return "boot_histories" }

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
