package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Delegation gives a non-superadmin user of another client access to a network (the guide's "pilot" icon).
type Delegation struct {
	NetworkID uint      `gorm:"primaryKey" json:"network_id"`
	UserID    uint      `gorm:"primaryKey;index" json:"user_id"`
	CreatedAt time.Time `json:"created_at"`
}

// DelegationInput is the body of a delegation: the user the network is delegated to.
type DelegationInput struct {
	UserID *uint `field:"user_id,user"`
}

// Delegate gives a user access to a network ("pilot"); only an admin of the network's client may.
func (s *Store) Delegate(ctx context.Context, a *Actor, networkID uint, in *DelegationInput) (*Delegation, error) {
	if in.UserID == nil || *in.UserID == 0 {
		return nil, Invalid("user_id", "is required")
	}
	userID := *in.UserID
	d := &Delegation{NetworkID: networkID, UserID: userID}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		n, err := a.lockNetwork(tx, networkID, "")
		if err != nil {
			return NotFound("network")
		}
		if !a.CanAdminClient(n.ClientID) {
			return Forbidden("only an admin of the network's client can delegate it")
		}
		// An absent user and a super-admin get the same answer: nobody but a super-admin
		// learns which ids are super-admins (the accounts worth taking over).
		var u User
		err = tx.Take(&u, userID).Error
		if errors.Is(err, gorm.ErrRecordNotFound) || err == nil && u.SuperAdmin() && !a.SuperAdmin() {
			return &NotFoundFieldError{Field: "user_id", What: "user"}
		}
		if err != nil {
			return fmt.Errorf("load user: %w", err)
		}
		if u.SuperAdmin() || u.ClientID == n.ClientID {
			return Conflict("user_id", "user %d already sees this network", userID)
		}
		if err := tx.Where(d).FirstOrCreate(d).Error; err != nil {
			return err
		}
		return audit(tx, a, &n.ID, "delegate", "network", n.ID, u.Email)
	})
	return d, err
}

// Undelegate removes a delegation.
func (s *Store) Undelegate(ctx context.Context, a *Actor, networkID, userID uint) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		n, err := a.lockNetwork(tx, networkID, "")
		if err != nil {
			return NotFound("network")
		}
		if !a.CanAdminClient(n.ClientID) {
			return Forbidden("only an admin of the network's client can change its delegations")
		}
		res := tx.Where("network_id = ? AND user_id = ?", networkID, userID).Delete(&Delegation{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return NotFound("delegation")
		}
		return audit(tx, a, &n.ID, "undelegate", "network", n.ID, "")
	})
}

// ListDelegations lists a visible network's delegations.
func (s *Store) ListDelegations(ctx context.Context, a *Actor, networkID uint) ([]Delegation, error) {
	if _, err := s.GetNetwork(ctx, a, networkID); err != nil {
		return nil, err
	}
	var ds []Delegation
	err := s.DB.WithContext(ctx).Where("network_id = ?", networkID).Order("user_id").Find(&ds).Error
	return ds, err
}
