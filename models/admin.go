package models

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"
)

// ResetPassword gives the user with that e-mail a new random password and ends its
// sessions, for an operator at the panel's host who lost it (`clusterducks admin
// reset-password`): the first admin's password is printed once, and a lost one must never
// lock everybody out. The reset is audited; it returns the new password.
func ResetPassword(ctx context.Context, db *gorm.DB, email string) (string, error) {
	email = strings.TrimSpace(email)
	pw := NewSecret("")[:20]
	hash, err := HashPassword(pw)
	if err != nil {
		return "", err
	}
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var u User
		if err := tx.Where("LOWER(email) = LOWER(?)", email).Take(&u).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			return NotFound("user " + email)
		} else if err != nil {
			return err
		}
		if err := tx.Model(&u).Update("password_hash", hash).Error; err != nil {
			return err
		}
		if err := tx.Where("user_id = ?", u.ID).Delete(&Session{}).Error; err != nil {
			return err
		}
		return tx.Create(&AuditEvent{UserID: &u.ID, Action: "reset-password", Object: "user", ObjectID: u.ID, Detail: "from the panel's host"}).Error
	})
	if err != nil {
		return "", fmt.Errorf("reset password: %w", err)
	}
	return pw, nil
}
