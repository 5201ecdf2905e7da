package models

import (
	"time"

	"gorm.io/gorm"
)

// AuditEvent records who changed what.
type AuditEvent struct {
	ID        uint      `gorm:"primaryKey" json:"id"`
	UserID    *uint     `gorm:"index" json:"user_id"`
	NetworkID *uint     `gorm:"index" json:"network_id"`
	Action    string    `gorm:"size:40;not null" json:"action"`
	Object    string    `gorm:"size:40;not null" json:"object"`
	ObjectID  uint      `gorm:"not null;default:0" json:"object_id"`
	IP        string    `gorm:"size:64;not null;default:''" json:"ip"`
	Detail    string    `gorm:"size:1000;not null;default:''" json:"detail"`
	CreatedAt time.Time `gorm:"index" json:"created_at"`
}

func audit(tx *gorm.DB, a *Actor, networkID *uint, action, object string, id uint, detail string) error {
	var uid *uint
	if a != nil {
		uid = &a.ID
	}
	return tx.Create(&AuditEvent{UserID: uid, NetworkID: networkID, Action: action, Object: object, ObjectID: id, Detail: detail}).Error
}
