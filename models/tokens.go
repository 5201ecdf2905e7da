package models

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// TokenInput names a new API token.
type TokenInput struct {
	Name *string `field:"name,label"`
}

// CreateToken makes a named API token for the actor and returns its secret, shown once
// (only its hash is stored). A user may hold several; a name already used by another of
// the user's tokens is a conflict, so each can be told apart and revoked on its own.
func (s *Store) CreateToken(ctx context.Context, a *Actor, in *TokenInput) (*APIToken, string, error) {
	name, err := requiredName("name", in.Name, 100)
	if err != nil {
		return nil, "", err
	}
	secret := NewSecret("cdt_")
	t := &APIToken{UserID: a.ID, Hash: HashSecret(secret), Label: name}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&APIToken{}).Where("user_id = ? AND label = ?", a.ID, name).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return Conflict("name", "you already have a token named %q: revoke it or choose another name", name)
		}
		if err := tx.Create(t).Error; err != nil {
			return err
		}
		return audit(tx, a, nil, "create", "token", t.ID, name)
	})
	if err != nil {
		return nil, "", err
	}
	return t, secret, nil
}

// RevokeToken deletes one of the actor's own tokens; another user's token is not found.
func (s *Store) RevokeToken(ctx context.Context, a *Actor, id uint) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var t APIToken
		err := tx.Where("id = ? AND user_id = ?", id, a.ID).Take(&t).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return NotFound("token")
		}
		if err != nil {
			return fmt.Errorf("load token: %w", err)
		}
		if err := tx.Delete(&APIToken{}, t.ID).Error; err != nil {
			return err
		}
		return audit(tx, a, nil, "revoke", "token", t.ID, t.Label)
	})
}
