package models

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
)

// Actor is the authenticated caller with what it may see: its user, and the networks
// delegated to it. Every query the API or the dashboard makes is scoped by an Actor.
type Actor struct {
	User
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
