package models

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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

// AuditFilter narrows the audit log; zero values filter nothing.
type AuditFilter struct {
	NetworkID uint
	UserID    uint
	Object    string // "device", "volume", ...
	ObjectID  uint
	Action    string // "create", "update", "delete", ...
	Since     time.Time
	Until     time.Time
}

// AuditFilterFrom reads a filter from query values (the API's and the audit page's): a
// value that does not parse is a 422 naming its key.
func AuditFilterFrom(get func(key string) string) (AuditFilter, error) {
	var f AuditFilter
	ids := []struct {
		key string
		dst *uint
	}{{"network_id", &f.NetworkID}, {"user_id", &f.UserID}, {"object_id", &f.ObjectID}}
	for _, k := range ids {
		if v := strings.TrimSpace(get(k.key)); v != "" {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return f, Invalid(k.key, "must be an id")
			}
			*k.dst = uint(n)
		}
	}
	f.Object, f.Action = strings.TrimSpace(get("object")), strings.TrimSpace(get("action"))
	for _, k := range []struct {
		key string
		dst *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := strings.TrimSpace(get(k.key))
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			if t, err = time.Parse("2006-01-02", v); err != nil {
				return f, Invalid(k.key, "must be a date (2026-11-30) or a time (2026-11-30T12:00:00Z)")
			}
		}
		*k.dst = t
	}
	return f, nil
}

// AuditEntry is an audit event with its author's e-mail.
type AuditEntry struct {
	AuditEvent
	UserEmail string `json:"user_email"`
}

// ListAudit lists the audit log, newest first, as the actor may see it: a super-admin
// everything; anyone else the events of its networks and the client-wide events (users,
// networks being made) of its own client's users.
func (s *Store) ListAudit(ctx context.Context, a *Actor, p Page, f AuditFilter) ([]AuditEntry, int64, error) {
	scope := func(db *gorm.DB) *gorm.DB {
		q := db.Order("id DESC")
		if !a.SuperAdmin() {
			clientUsers := db.Session(&gorm.Session{NewDB: true}).Model(&User{}).Select("id").Where("client_id = ?", a.ClientID)
			q = q.Where("network_id IN (?) OR (network_id IS NULL AND user_id IN (?))", a.VisibleNetworkIDs(db), clientUsers)
		}
		if f.NetworkID != 0 {
			q = q.Where("network_id = ?", f.NetworkID)
		}
		if f.UserID != 0 {
			q = q.Where("user_id = ?", f.UserID)
		}
		if f.Object != "" {
			q = q.Where("object = ?", f.Object)
		}
		if f.ObjectID != 0 {
			q = q.Where("object_id = ?", f.ObjectID)
		}
		if f.Action != "" {
			q = q.Where("action = ?", f.Action)
		}
		if !f.Since.IsZero() {
			q = q.Where("created_at >= ?", f.Since)
		}
		if !f.Until.IsZero() {
			q = q.Where("created_at < ?", f.Until)
		}
		return q
	}
	events, total, err := listScoped[AuditEvent](ctx, s.DB, scope, p)
	if err != nil {
		return nil, 0, err
	}
	emails := map[uint]string{}
	var uids []uint
	for _, e := range events {
		if e.UserID != nil {
			uids = append(uids, *e.UserID)
		}
	}
	if len(uids) > 0 {
		var users []User
		if err := s.DB.WithContext(ctx).Select("id", "email").Where("id IN ?", uids).Find(&users).Error; err != nil {
			return nil, 0, fmt.Errorf("audit users: %w", err)
		}
		for _, u := range users {
			emails[u.ID] = u.Email
		}
	}
	out := make([]AuditEntry, len(events))
	for i, e := range events {
		out[i] = AuditEntry{AuditEvent: e}
		if e.UserID != nil {
			out[i].UserEmail = emails[*e.UserID]
		}
	}
	return out, total, nil
}
