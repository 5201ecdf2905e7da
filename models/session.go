package models

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Session is a dashboard login; its id is stored hashed, the cookie holds the secret.
type Session struct {
	ID        string    `gorm:"primaryKey;size:64" json:"-"`
	UserID    uint      `gorm:"not null;index" json:"user_id"`
	CSRF      string    `gorm:"size:64;not null" json:"-"`
	IP        string    `gorm:"size:64;not null;default:''" json:"ip"`
	ExpiresAt time.Time `gorm:"index" json:"expires_at"`
	CreatedAt time.Time `json:"created_at"`
}

// SessionTTL is how long a dashboard login lasts without activity.
const SessionTTL = 12 * time.Hour

// CreateSession starts a dashboard session and returns the cookie secret and the CSRF token.
// Only the secret's hash is stored.
func CreateSession(ctx context.Context, db *gorm.DB, userID uint, ip string) (secret, csrf string, err error) {
	secret, csrf = NewSecret("cds_"), NewSecret("")
	s := Session{ID: HashSecret(secret), UserID: userID, CSRF: csrf, IP: ip, ExpiresAt: time.Now().Add(SessionTTL)}
	if err := db.WithContext(ctx).Create(&s).Error; err != nil {
		return "", "", fmt.Errorf("create session: %w", err)
	}
	// Expired sessions are swept on login, so the table does not grow without bound.
	db.WithContext(ctx).Where("expires_at < ?", time.Now()).Delete(&Session{})
	return secret, csrf, nil
}

// AuthenticateSession resolves a session cookie to its actor and session.
func AuthenticateSession(ctx context.Context, db *gorm.DB, secret string) (*Actor, *Session, error) {
	if secret == "" {
		return nil, nil, ErrBadCredentials
	}
	var s Session
	err := db.WithContext(ctx).Where("id = ? AND expires_at > ?", HashSecret(secret), time.Now()).Take(&s).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, ErrBadCredentials
	}
	if err != nil {
		return nil, nil, fmt.Errorf("session lookup: %w", err)
	}
	if time.Until(s.ExpiresAt) < SessionTTL-10*time.Minute {
		db.WithContext(ctx).Model(&Session{}).Where("id = ?", s.ID).Update("expires_at", time.Now().Add(SessionTTL))
	}
	a, err := LoadActor(ctx, db, s.UserID)
	if err != nil {
		return nil, nil, err
	}
	a.SessionID = s.ID
	return a, &s, nil
}

// CheckCSRF compares a submitted CSRF token with the session's in constant time.
func (s *Session) CheckCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) == 1
}

// DeleteSession ends a session (logout).
func DeleteSession(ctx context.Context, db *gorm.DB, secret string) error {
	return db.WithContext(ctx).Where("id = ?", HashSecret(secret)).Delete(&Session{}).Error
}
