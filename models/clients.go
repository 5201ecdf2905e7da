package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// Client is the highest level of ownership: it owns users and networks.
type Client struct {
	ID          uint      `gorm:"primaryKey" json:"id"`
	Name        string    `gorm:"size:200;not null" json:"name"`
	MaxNetworks int       `gorm:"not null;default:0" json:"max_networks"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ClientInput is the body of a client create or update.
type ClientInput struct {
	Name        *string `field:"name"`
	MaxNetworks *int    `field:"max_networks"`
}

func (a *Actor) allClients(db *gorm.DB) *gorm.DB { return a.scopeClients(db) }

// ListClients lists the clients the actor sees.
func (s *Store) ListClients(ctx context.Context, a *Actor, p Page) ([]Client, int64, error) {
	return listScoped[Client](ctx, s.DB, a.allClients, p)
}

// GetClient loads a visible client.
func (s *Store) GetClient(ctx context.Context, a *Actor, id uint) (*Client, error) {
	return getScoped[Client](ctx, s.DB, a.allClients, id, "client")
}

// CreateClient creates a client; only a super-admin may.
func (s *Store) CreateClient(ctx context.Context, a *Actor, in *ClientInput) (*Created, error) {
	if !a.SuperAdmin() {
		return nil, Forbidden("only a super-admin can create clients")
	}
	name, err := requiredName("name", in.Name, 200)
	if err != nil {
		return nil, err
	}
	if err := checkLimitValue("max_networks", in.MaxNetworks); err != nil {
		return nil, err
	}
	c := &Client{Name: name, MaxNetworks: ptrOr(in.MaxNetworks, 0)}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if err := uniqueClientName(tx, name, 0); err != nil {
			return err
		}
		if err := tx.Create(c).Error; err != nil {
			return err
		}
		return audit(tx, a, nil, "create", "client", c.ID, name)
	})
	if err != nil {
		return nil, err
	}
	return &Created{Object: c}, nil
}

// UpdateClient renames a client or changes its limit; only a super-admin may.
func (s *Store) UpdateClient(ctx context.Context, a *Actor, id uint, in *ClientInput) (*Client, error) {
	var c *Client
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if c, err = getScoped[Client](ctx, tx, a.allClients, id, "client"); err != nil {
			return err
		}
		if !a.SuperAdmin() {
			return Forbidden("only a super-admin can change clients")
		}
		if in.Name != nil {
			if c.Name, err = checkName("name", *in.Name, 200); err != nil {
				return err
			}
			if err := uniqueClientName(tx, c.Name, c.ID); err != nil {
				return err
			}
		}
		if err := checkLimitValue("max_networks", in.MaxNetworks); err != nil {
			return err
		}
		c.MaxNetworks = ptrOr(in.MaxNetworks, c.MaxNetworks)
		if err := tx.Save(c).Error; err != nil {
			return err
		}
		return audit(tx, a, nil, "update", "client", c.ID, "")
	})
	return c, err
}

// DeleteClient deletes a client that has no networks and no users left.
func (s *Store) DeleteClient(ctx context.Context, a *Actor, id uint) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		c, err := getScoped[Client](ctx, tx, a.allClients, id, "client")
		if err != nil {
			return err
		}
		if !a.SuperAdmin() {
			return Forbidden("only a super-admin can delete clients")
		}
		for _, dep := range []struct {
			model any
			what  string
		}{{&Network{}, "networks"}, {&User{}, "users"}} {
			var n int64
			if err := tx.Model(dep.model).Where("client_id = ?", c.ID).Count(&n).Error; err != nil {
				return err
			}
			if n > 0 {
				return Conflict("", "client %d still has %d %s: delete or move them first", c.ID, n, dep.what)
			}
		}
		if err := tx.Delete(c).Error; err != nil {
			return err
		}
		return audit(tx, a, nil, "delete", "client", c.ID, c.Name)
	})
}

// uniqueClientName refuses a client name another client (not self) already has, ignoring
// case, as duplicate server names are refused: two clients named alike cannot be told
// apart in the panel's lists and forms.
func uniqueClientName(tx *gorm.DB, name string, self uint) error {
	var n int64
	if err := tx.Model(&Client{}).Where("LOWER(name) = LOWER(?) AND id <> ?", name, self).Count(&n).Error; err != nil {
		return err
	}
	if n > 0 {
		return Conflict("name", "a client named %q already exists: choose another name", name)
	}
	return nil
}
