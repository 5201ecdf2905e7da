package models

import (
	"context"
	"errors"

	"gorm.io/gorm"
)

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
	res := db.WithContext(ctx).Model(&Device{}).Where("id = ?", deviceID).Update("locked", locked)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		// PostgreSQL and SQLite count matched rows, changed or not: none matched.
		return NotFound("device")
	}
	return nil
}
