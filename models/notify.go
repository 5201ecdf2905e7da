package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// LoadSettings returns the panel settings for internal callers (the mailer).
func LoadSettings(ctx context.Context, db *gorm.DB) (*Settings, error) {
	return loadSettings(db.WithContext(ctx))
}

// SMTPReady reports whether the panel can send mail now; it is read before starting a
// notification so that a panel without SMTP starts no work per login.
func SMTPReady(ctx context.Context, db *gorm.DB) bool {
	st, err := LoadSettings(ctx, db)
	return err == nil && st.SMTPConfigured()
}

// AccessNotice is the e-mail telling a user that its account was accessed (the guide:
// "the panel will send an email notification whenever your account is accessed").
func AccessNotice(u *User, how, ip string, at time.Time, panel string) (subject, body string) {
	if panel == "" {
		panel = "the clusterducks panel"
	}
	subject = "clusterducks: your account was accessed"
	body = fmt.Sprintf("Hello %s,\n\nyour account %s on %s was accessed:\n\n  how:  %s\n  from: %s\n  when: %s\n\n"+
		"If this was not you, change your password and regenerate your API token on the Account settings page.\n",
		displayName(u), u.Email, panel, how, ip, at.UTC().Format(time.RFC1123))
	return subject, body
}

func displayName(u *User) string {
	if u.Name != "" {
		return u.Name
	}
	return u.Email
}
