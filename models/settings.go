package models

import (
	"context"
	"fmt"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Settings holds the panel-wide settings; there is one row, id 1.
type Settings struct {
	ID            uint      `gorm:"primaryKey" json:"-"`
	PanelHostname string    `gorm:"size:253;not null;default:''" json:"panel_hostname"`
	SMTPHost      string    `gorm:"column:smtp_host;size:253;not null;default:''" json:"smtp_host"`
	SMTPPort      int       `gorm:"column:smtp_port;not null;default:587" json:"smtp_port"`
	SMTPUser      string    `gorm:"column:smtp_user;size:253;not null;default:''" json:"smtp_user"`
	SMTPPassword  string    `gorm:"column:smtp_password;size:253;not null;default:''" json:"-"`
	SMTPFrom      string    `gorm:"column:smtp_from;size:254;not null;default:''" json:"smtp_from"`
	SMTPTLS       string    `gorm:"column:smtp_tls;size:20;not null;default:'starttls'" json:"smtp_tls"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// SMTPConfigured reports whether the panel can send mail.
func (s *Settings) SMTPConfigured() bool { return s.SMTPHost != "" && s.SMTPFrom != "" }

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
