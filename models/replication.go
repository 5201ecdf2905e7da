package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ErrGUIDMismatch: a slave reported a snapshot whose guid is not the master's; the copy is
// not recorded (the transfer must be redone from the last common snapshot).
var ErrGUIDMismatch = errors.New("received snapshot's guid differs from the master's")

// VersionCopyInput is a slave's report that it received group version VersionID, with the
// received snapshot's guid.
type VersionCopyInput struct {
	ServerID  uint
	VersionID uint
	GUID      string
	At        time.Time // when it was verified; zero: now
}

// RecordVersionCopy records that a server holds a group version, only when the guid it
// received equals the master's (ErrGUIDMismatch otherwise). Repeating it changes nothing.
func RecordVersionCopy(ctx context.Context, db *gorm.DB, in VersionCopyInput) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var v GroupVersion
		if err := tx.First(&v, in.VersionID).Error; err != nil {
			return fmt.Errorf("version %d: %w", in.VersionID, err)
		}
		if v.GUID == "" || v.GUID != in.GUID {
			return fmt.Errorf("version %d on server %d: got guid %q, master has %q: %w", in.VersionID, in.ServerID, in.GUID, v.GUID, ErrGUIDMismatch)
		}
		at := in.At
		if at.IsZero() {
			at = time.Now()
		}
		return tx.Clauses(clause.OnConflict{DoNothing: true}).
			Create(&VersionCopy{VersionID: v.ID, ServerID: in.ServerID, GUID: in.GUID, ReceivedAt: at}).Error
	})
}
