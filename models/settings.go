package models

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"gorm.io/gorm"
)

// SettingsInput is the body of a Panel Settings update. An empty smtp_password clears it
// (the dashboard leaves the field out when the operator types nothing, which keeps it).
type SettingsInput struct {
	PanelHostname *string `field:"panel_hostname"`
	SMTPHost      *string `field:"smtp_host"`
	SMTPPort      *int    `field:"smtp_port"`
	SMTPUser      *string `field:"smtp_user"`
	SMTPPassword  *string `field:"smtp_password"`
	SMTPFrom      *string `field:"smtp_from"`
	SMTPTLS       *string `field:"smtp_tls"`
}

// SMTP TLS modes.
var SMTPTLSModes = []string{"starttls", "tls", "none"}

var hostnameRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

func checkHost(field, v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	if net.ParseIP(v) != nil {
		return v, nil
	}
	if len(v) > 253 || !hostnameRe.MatchString(v) {
		return "", Invalid(field, "must be a host name like mail.example.com or an IP address")
	}
	return strings.ToLower(v), nil
}

// loadSettings returns the one settings row, creating it when a database predates it.
func loadSettings(tx *gorm.DB) (*Settings, error) {
	st := &Settings{ID: 1}
	if err := tx.Where(Settings{ID: 1}).FirstOrCreate(st).Error; err != nil {
		return nil, fmt.Errorf("load settings: %w", err)
	}
	return st, nil
}

// GetSettings returns the Panel Settings; they are panel-wide, so only a super-admin sees them.
func (s *Store) GetSettings(ctx context.Context, a *Actor) (*Settings, error) {
	if !a.SuperAdmin() {
		return nil, Forbidden("only a super-admin can see the panel settings")
	}
	return loadSettings(s.DB.WithContext(ctx))
}

// UpdateSettings changes the Panel Settings (SMTP); only a super-admin may. Repeating it is harmless.
func (s *Store) UpdateSettings(ctx context.Context, a *Actor, in *SettingsInput) (*Settings, error) {
	if !a.SuperAdmin() {
		return nil, Forbidden("only a super-admin can change the panel settings")
	}
	var st *Settings
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if st, err = loadSettings(tx); err != nil {
			return err
		}
		if in.PanelHostname != nil {
			if st.PanelHostname, err = checkHost("panel_hostname", *in.PanelHostname); err != nil {
				return err
			}
		}
		if in.SMTPHost != nil {
			if st.SMTPHost, err = checkHost("smtp_host", *in.SMTPHost); err != nil {
				return err
			}
		}
		if in.SMTPPort != nil {
			if *in.SMTPPort < 1 || *in.SMTPPort > 65535 {
				return Invalid("smtp_port", "must be a TCP port between 1 and 65535 (587 for STARTTLS, 465 for TLS)")
			}
			st.SMTPPort = *in.SMTPPort
		}
		if in.SMTPUser != nil {
			u := strings.TrimSpace(*in.SMTPUser)
			if len(u) > 253 {
				return Invalid("smtp_user", "must be at most 253 characters")
			}
			st.SMTPUser = u
		}
		if in.SMTPPassword != nil {
			if len(*in.SMTPPassword) > 253 {
				return Invalid("smtp_password", "must be at most 253 characters")
			}
			st.SMTPPassword = *in.SMTPPassword
		}
		if in.SMTPFrom != nil {
			from := strings.TrimSpace(*in.SMTPFrom)
			if from != "" {
				addr, err := mail.ParseAddress(from)
				if err != nil || len(from) > 254 {
					return Invalid("smtp_from", "must be an e-mail address like panel@example.com")
				}
				from = addr.String()
			}
			st.SMTPFrom = from
		}
		if in.SMTPTLS != nil {
			mode := strings.ToLower(strings.TrimSpace(*in.SMTPTLS))
			ok := false
			for _, m := range SMTPTLSModes {
				ok = ok || m == mode
			}
			if !ok {
				return Invalid("smtp_tls", "must be one of starttls, tls, none")
			}
			st.SMTPTLS = mode
		}
		if err := tx.Save(st).Error; err != nil {
			return err
		}
		return audit(tx, a, nil, "update", "settings", st.ID, "")
	})
	return st, err
}

// Login rate limits: failed logins are counted from the audit log, so every panel behind a
// load balancer enforces the same limit without shared memory.
const (
	LoginWindow             = 15 * time.Minute
	LoginMaxFailuresPerIP   = 10
	LoginMaxFailuresPerUser = 20
)

// RateLimitedError is a login refused because of too many recent failures (HTTP 429).
type RateLimitedError struct{ RetryAfter time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many failed logins: try again in %d minutes", int(e.RetryAfter.Minutes()+0.999))
}

const actionLoginFailed = "login-failed"

// dummyHash makes a login for an unknown e-mail cost as much as one for a known e-mail.
var dummyHash, _ = HashPassword("not a password of anyone's")

// Login checks an e-mail and password for a dashboard login from ip, within the rate
// limits, and records the attempt in the audit log. It returns ErrBadCredentials for a
// wrong e-mail or password and a *RateLimitedError once too many attempts failed.
func Login(ctx context.Context, db *gorm.DB, email, password, ip string) (*Actor, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if len(email) > 254 {
		email = email[:254]
	}
	since := time.Now().Add(-LoginWindow)
	for _, lim := range []struct {
		col, val string
		max      int
	}{{"ip", ip, LoginMaxFailuresPerIP}, {"detail", email, LoginMaxFailuresPerUser}} {
		var n int64
		var oldest AuditEvent
		q := db.WithContext(ctx).Model(&AuditEvent{}).Where("action = ? AND created_at > ? AND "+lim.col+" = ?", actionLoginFailed, since, lim.val)
		if err := q.Count(&n).Error; err != nil {
			return nil, fmt.Errorf("count failed logins: %w", err)
		}
		if n >= int64(lim.max) {
			retry := LoginWindow
			if err := q.Order("created_at").Limit(1).Take(&oldest).Error; err == nil {
				retry = time.Until(oldest.CreatedAt.Add(LoginWindow))
			}
			return nil, &RateLimitedError{RetryAfter: max(retry, time.Second)}
		}
	}
	var u User
	err := db.WithContext(ctx).Where("email = ?", email).Take(&u).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("user lookup: %w", err)
	}
	hash := u.PasswordHash
	if err != nil {
		hash = dummyHash
	}
	if !CheckPassword(hash, password) || u.ID == 0 {
		db.WithContext(ctx).Create(&AuditEvent{Action: actionLoginFailed, Object: "user", ObjectID: u.ID, IP: ip, Detail: email})
		return nil, ErrBadCredentials
	}
	uid := u.ID
	db.WithContext(ctx).Create(&AuditEvent{UserID: &uid, Action: "login", Object: "user", ObjectID: u.ID, IP: ip})
	return &Actor{User: u}, nil
}

// ChangePassword changes the actor's own password after checking the current one, and ends
// the actor's other dashboard sessions (keepSession is the hash-less cookie secret of the
// session that made the change).
func (s *Store) ChangePassword(ctx context.Context, a *Actor, current, next, keepSession string) error {
	var u User
	if err := s.DB.WithContext(ctx).Take(&u, a.ID).Error; err != nil {
		return fmt.Errorf("user lookup: %w", err)
	}
	if !CheckPassword(u.PasswordHash, current) {
		return Invalid("current_password", "is not your current password")
	}
	if _, err := s.UpdateUser(ctx, a, a.ID, &UserInput{Password: &next}); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) && ve.Field == "password" {
			return Invalid("new_password", "%s", ve.Msg)
		}
		return err
	}
	return s.DB.WithContext(ctx).Where("user_id = ? AND id <> ?", a.ID, HashSecret(keepSession)).Delete(&Session{}).Error
}

// AccountTokens lists the actor's API tokens (their secrets are stored hashed and cannot be shown again).
func (s *Store) AccountTokens(ctx context.Context, a *Actor) ([]APIToken, error) {
	var ts []APIToken
	err := s.DB.WithContext(ctx).Where("user_id = ?", a.ID).Order("id").Find(&ts).Error
	return ts, err
}
