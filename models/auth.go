package models

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
)

// APIToken authenticates API calls; only its SHA-256 is stored.
type APIToken struct {
	ID         uint       `gorm:"primaryKey" json:"id"`
	UserID     uint       `gorm:"not null;index" json:"user_id"`
	Hash       string     `gorm:"size:64;not null;uniqueIndex" json:"-"`
	Label      string     `gorm:"size:100;not null;default:''" json:"label"`
	LastUsedAt *time.Time `json:"last_used_at"`
	LastIP     string     `gorm:"size:64;not null;default:''" json:"last_ip"`
	CreatedAt  time.Time  `json:"created_at"`
}

// Actor is the authenticated caller with what it may see: its user, and the networks
// delegated to it. Every query the API or the dashboard makes is scoped by an Actor.
type Actor struct {
	User
	// SessionID is the stored id of the dashboard session the actor came with ("" for an
	// API token): a password change keeps that session and ends the others.
	SessionID string
}

// NewSecret returns a random secret (160 bits, base32) with a readable prefix, e.g. "cdt_" for tokens.
func NewSecret(prefix string) string {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Errorf("crypto/rand: %w", err)) // the kernel's random source never fails on Linux
	}
	return prefix + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
}

// HashSecret returns the SHA-256 (hex) under which a high-entropy secret is stored.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// HashPassword hashes a password with bcrypt.
func HashPassword(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CheckPassword reports whether pw matches the stored hash.
func CheckPassword(hash, pw string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// ErrBadCredentials is returned for an unknown token, session or password.
var ErrBadCredentials = errors.New("invalid credentials")

// TokenUse is what AuthenticateToken learned about a token's use.
type TokenUse struct {
	TokenID uint
	NewIP   bool // first use of this token from this address
}

// AuthenticateToken resolves an API token to its actor. It records the token's last use
// at most once a minute (or when the address changes), to keep the hot path read-only.
func AuthenticateToken(ctx context.Context, db *gorm.DB, token, ip string) (*Actor, TokenUse, error) {
	if token == "" {
		return nil, TokenUse{}, ErrBadCredentials
	}
	var t APIToken
	if err := db.WithContext(ctx).Where("hash = ?", HashSecret(token)).Take(&t).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, TokenUse{}, ErrBadCredentials
		}
		return nil, TokenUse{}, fmt.Errorf("token lookup: %w", err)
	}
	use := TokenUse{TokenID: t.ID, NewIP: t.LastIP != ip}
	now := time.Now()
	if use.NewIP || t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > time.Minute {
		db.WithContext(ctx).Model(&APIToken{}).Where("id = ?", t.ID).
			Updates(map[string]any{"last_used_at": now, "last_ip": ip})
	}
	a, err := LoadActor(ctx, db, t.UserID)
	return a, use, err
}

// LoadActor loads a user as an Actor.
func LoadActor(ctx context.Context, db *gorm.DB, userID uint) (*Actor, error) {
	var u User
	if err := db.WithContext(ctx).Take(&u, userID).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrBadCredentials
		}
		return nil, fmt.Errorf("user lookup: %w", err)
	}
	return &Actor{User: u}, nil
}

// IssueToken creates a new API token for a user and returns its secret, which is shown once.
// Tokens with the same label are replaced, so "regenerate" revokes the old one.
func IssueToken(ctx context.Context, db *gorm.DB, userID uint, label string) (string, error) {
	secret := NewSecret("cdt_")
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("user_id = ? AND label = ?", userID, label).Delete(&APIToken{}).Error; err != nil {
			return err
		}
		return tx.Create(&APIToken{UserID: userID, Hash: HashSecret(secret), Label: label}).Error
	})
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	return secret, nil
}

// FirstStart is what Bootstrap created on an empty database; the secrets are shown once.
type FirstStart struct {
	Created  bool
	Email    string
	Password string
	Token    string
}

// Bootstrap creates, on an empty database, the first client and its super-admin user with a
// random password and API token (the guide: "a client is automatically created and
// associated with the admin user. No networks are created"). On later starts it does nothing.
func Bootstrap(ctx context.Context, db *gorm.DB, email string) (FirstStart, error) {
	var fs FirstStart
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&User{}).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		client := Client{Name: "Default Client"}
		if err := tx.Create(&client).Error; err != nil {
			return err
		}
		pw := NewSecret("")[:20]
		hash, err := HashPassword(pw)
		if err != nil {
			return err
		}
		admin := User{ClientID: client.ID, Email: email, Name: "Administrator", Role: RoleSuperAdmin, PasswordHash: hash}
		if err := tx.Create(&admin).Error; err != nil {
			return err
		}
		token := NewSecret("cdt_")
		if err := tx.Create(&APIToken{UserID: admin.ID, Hash: HashSecret(token), Label: "account"}).Error; err != nil {
			return err
		}
		if err := tx.FirstOrCreate(&Settings{ID: 1}).Error; err != nil {
			return err
		}
		fs = FirstStart{Created: true, Email: email, Password: pw, Token: token}
		return nil
	})
	if err != nil {
		return FirstStart{}, fmt.Errorf("first start: %w", err)
	}
	return fs, nil
}

// Login rate limits: failed logins are counted from the audit log, so every panel behind a
// load balancer enforces the same limits without shared memory. An address that fails
// LoginMaxFailuresPerIP times in the window is refused for the rest of it. An account that
// fails LoginMaxFailuresPerUser times (from anywhere) backs off: each further attempt from
// an address new to it waits twice as long as the one before (1 s, 2 s, 4 s … at most the
// window), while addresses its holder logged in from are never held back — knowing an
// e-mail is not enough to lock its holder out.
const (
	LoginWindow             = 15 * time.Minute
	LoginMaxFailuresPerIP   = 10
	LoginMaxFailuresPerUser = 20
	// LoginKnownFor is how long an address its holder logged in from stays known to an account.
	LoginKnownFor = 90 * 24 * time.Hour
)

// RateLimitedError is a request refused because of too many recent failures (HTTP 429).
type RateLimitedError struct {
	RetryAfter time.Duration
	// Account: the account failed from many addresses and backs off for addresses new to
	// it; those its holder logged in from before are not held back.
	Account bool
	// What failed too often: "failed logins" when empty.
	What string
}

func (e *RateLimitedError) Error() string {
	wait := fmt.Sprintf("%d minutes", int(e.RetryAfter.Minutes()+0.999))
	if e.RetryAfter < 2*time.Minute {
		wait = fmt.Sprintf("%d seconds", int(e.RetryAfter.Seconds()+0.999))
	}
	if e.Account {
		return "too many failed logins to this account: from an address new to it, try again in " + wait + " (addresses you logged in from before are not held back)"
	}
	what := e.What
	if what == "" {
		what = "failed logins"
	}
	return "too many " + what + ": try again in " + wait
}

// LoginBackoffError is the wrong password that made the account back off: the account's
// holder is to be told (the panel mails it when SMTP is set).
type LoginBackoffError struct{ User User }

func (e *LoginBackoffError) Error() string { return ErrBadCredentials.Error() }

func (e *LoginBackoffError) Unwrap() error { return ErrBadCredentials }

const actionLoginFailed = "login-failed"

// dummyHash makes a login for an unknown e-mail cost as much as one for a known e-mail.
var dummyHash, _ = HashPassword("not a password of anyone's")

// failures is the audit events of one action (failed logins) since a time that match a
// condition: how many, the first and the last.
type failures struct {
	n           int64
	first, last time.Time
}

func countFailures(ctx context.Context, db *gorm.DB, action string, since time.Time, cond string, args ...any) (failures, error) {
	q := func() *gorm.DB {
		return db.WithContext(ctx).Model(&AuditEvent{}).Where("action = ? AND created_at > ?", action, since).Where(cond, args...)
	}
	var f failures
	if err := q().Count(&f.n).Error; err != nil || f.n == 0 {
		return f, err
	}
	var first, last AuditEvent
	if err := q().Order("created_at").Limit(1).Take(&first).Error; err != nil {
		return f, err
	}
	if err := q().Order("created_at DESC").Limit(1).Take(&last).Error; err != nil {
		return f, err
	}
	f.first, f.last = first.CreatedAt, last.CreatedAt
	return f, nil
}

// Login checks an e-mail and password for a dashboard login from ip, within the rate
// limits, and records the attempt in the audit log. It returns ErrBadCredentials for a
// wrong e-mail or password (a *LoginBackoffError when that failure made the account back off),
// and a *RateLimitedError while a limit holds. An unknown e-mail gets the same answers
// as a known one.
func Login(ctx context.Context, db *gorm.DB, email, password, ip string) (*Actor, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if len(email) > 254 {
		email = email[:254]
	}
	now := time.Now()
	since := now.Add(-LoginWindow)
	limited := func(until time.Time, account bool) error {
		return &RateLimitedError{RetryAfter: max(until.Sub(now), time.Second), Account: account}
	}
	// The address, on any account.
	fromIP, err := countFailures(ctx, db, actionLoginFailed, since, "ip = ?", ip)
	if err != nil {
		return nil, fmt.Errorf("count failed logins: %w", err)
	}
	if fromIP.n >= LoginMaxFailuresPerIP {
		return nil, limited(fromIP.first.Add(LoginWindow), false)
	}
	var u User
	err = db.WithContext(ctx).Where("email = ?", email).Take(&u).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("user lookup: %w", err)
	}
	hash := u.PasswordHash
	if err != nil {
		hash = dummyHash
	}
	// The account, from everywhere: addresses new to it back off.
	account, err := countFailures(ctx, db, actionLoginFailed, since, "detail = ?", email)
	if err != nil {
		return nil, fmt.Errorf("count failed logins: %w", err)
	}
	if account.n >= LoginMaxFailuresPerUser {
		wait := min(time.Second<<min(account.n-LoginMaxFailuresPerUser, 20), LoginWindow)
		if until := account.last.Add(wait); until.After(now) {
			known, err := knownAddress(ctx, db, u.ID, ip, now)
			if err != nil {
				return nil, err
			}
			if !known {
				return nil, limited(until, true)
			}
		}
	}
	if !CheckPassword(hash, password) || u.ID == 0 {
		db.WithContext(ctx).Create(&AuditEvent{Action: actionLoginFailed, Object: "user", ObjectID: u.ID, IP: ip, Detail: email})
		if u.ID != 0 && account.n+1 == LoginMaxFailuresPerUser {
			return nil, &LoginBackoffError{User: u}
		}
		return nil, ErrBadCredentials
	}
	uid := u.ID
	db.WithContext(ctx).Create(&AuditEvent{UserID: &uid, Action: "login", Object: "user", ObjectID: u.ID, IP: ip})
	return &Actor{User: u}, nil
}

// knownAddress reports whether the user logged in from ip within LoginKnownFor.
func knownAddress(ctx context.Context, db *gorm.DB, userID uint, ip string, now time.Time) (bool, error) {
	if userID == 0 {
		return false, nil
	}
	var n int64
	err := db.WithContext(ctx).Model(&AuditEvent{}).Where("action = ? AND user_id = ? AND ip = ? AND created_at > ?",
		"login", userID, ip, now.Add(-LoginKnownFor)).Count(&n).Error
	if err != nil {
		return false, fmt.Errorf("look up known addresses: %w", err)
	}
	return n > 0, nil
}

// ChangePassword changes the actor's own password after checking the current one, and ends
// the actor's other dashboard sessions: UpdateUser's rule, with the account form's field names.
func (s *Store) ChangePassword(ctx context.Context, a *Actor, current, next string) error {
	_, err := s.UpdateUser(ctx, a, a.ID, &UserInput{Password: &next, CurrentPassword: &current})
	var ve *ValidationError
	if errors.As(err, &ve) && ve.Field == "password" {
		return Invalid("new_password", "%s", ve.Msg)
	}
	return err
}

// AccountTokens lists the actor's API tokens (their secrets are stored hashed and cannot be shown again).
func (s *Store) AccountTokens(ctx context.Context, a *Actor) ([]APIToken, error) {
	var ts []APIToken
	err := s.DB.WithContext(ctx).Where("user_id = ?", a.ID).Order("id").Find(&ts).Error
	return ts, err
}
