package models

import (
	"context"
	"net/mail"
	"strings"

	"gorm.io/gorm"
)

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

// UserInput is the body of a user create or update.
type UserInput struct {
	Email    *string `field:"email"`
	Name     *string `field:"name"`
	Password *string `field:"password"`
	Role     *string `field:"role"`
	ClientID *uint   `field:"client_id,client"`
}

// ListUsers lists the users the actor sees.
func (s *Store) ListUsers(ctx context.Context, a *Actor, p Page) ([]User, int64, error) {
	return listScoped[User](ctx, s.DB, a.scopeUsers, p)
}

// GetUser loads a visible user.
func (s *Store) GetUser(ctx context.Context, a *Actor, id uint) (*User, error) {
	return getScoped[User](ctx, s.DB, a.scopeUsers, id, "user")
}

func checkEmail(v string) (string, error) {
	v = strings.TrimSpace(v)
	addr, err := mail.ParseAddress(v)
	if err != nil || addr.Address != v || len(v) > 254 {
		return "", Invalid("email", "must be an e-mail address like ops@example.com")
	}
	return strings.ToLower(v), nil
}

func checkPassword(v string) error {
	if len(v) < 10 {
		return Invalid("password", "must be at least 10 characters")
	}
	if len(v) > 72 {
		return Invalid("password", "must be at most 72 bytes")
	}
	return nil
}

func (a *Actor) checkRole(v string) (string, error) {
	switch v {
	case RoleAdmin, RoleUser:
		return v, nil
	case RoleSuperAdmin:
		if a.SuperAdmin() {
			return v, nil
		}
		return "", Forbidden("only a super-admin can grant the superadmin role")
	}
	return "", Invalid("role", "must be one of user, admin, superadmin")
}

// CreateUser creates a user in a client the actor administers.
func (s *Store) CreateUser(ctx context.Context, a *Actor, in *UserInput) (*Created, error) {
	u := &User{ClientID: a.ClientID, Role: RoleUser}
	if in.ClientID != nil && *in.ClientID != 0 {
		u.ClientID = *in.ClientID
	}
	var err error
	if in.Email == nil {
		return nil, Invalid("email", "is required")
	}
	if u.Email, err = checkEmail(*in.Email); err != nil {
		return nil, err
	}
	if in.Password == nil {
		return nil, Invalid("password", "is required")
	}
	if err := checkPassword(*in.Password); err != nil {
		return nil, err
	}
	if in.Name != nil {
		if u.Name, err = checkName("name", *in.Name, 200); err != nil {
			return nil, err
		}
	}
	if in.Role != nil {
		if u.Role, err = a.checkRole(*in.Role); err != nil {
			return nil, err
		}
	}
	if u.PasswordHash, err = HashPassword(*in.Password); err != nil {
		return nil, err
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if _, err := getScoped[Client](ctx, tx, a.allClients, u.ClientID, "client"); err != nil {
			return &NotFoundFieldError{Field: "client_id", What: "client"}
		}
		if !a.CanAdminClient(u.ClientID) {
			return Forbidden("only an admin of the client can create its users")
		}
		if err := tx.Create(u).Error; err != nil {
			if IsDuplicate(err) {
				return Conflict("email", "a user with this e-mail already exists")
			}
			return err
		}
		return audit(tx, a, nil, "create", "user", u.ID, u.Email)
	})
	if err != nil {
		return nil, err
	}
	return &Created{Object: u}, nil
}

// UpdateUser changes a user: the user itself may change its name, e-mail and password;
// an admin of its client may also change its role.
func (s *Store) UpdateUser(ctx context.Context, a *Actor, id uint, in *UserInput) (*User, error) {
	var u *User
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if u, err = getScoped[User](ctx, tx, a.scopeUsers, id, "user"); err != nil {
			return err
		}
		self := u.ID == a.ID
		if !self && !a.CanAdminClient(u.ClientID) {
			return Forbidden("only the user or an admin of its client can change it")
		}
		if in.ClientID != nil && *in.ClientID != u.ClientID {
			return Invalid("client_id", "a user cannot move to another client")
		}
		if in.Email != nil {
			if u.Email, err = checkEmail(*in.Email); err != nil {
				return err
			}
		}
		if in.Name != nil {
			if u.Name, err = checkName("name", *in.Name, 200); err != nil {
				return err
			}
		}
		if in.Role != nil && *in.Role != u.Role {
			if !a.CanAdminClient(u.ClientID) || self {
				return Forbidden("a user cannot change its own role")
			}
			if u.Role, err = a.checkRole(*in.Role); err != nil {
				return err
			}
		}
		if in.Password != nil {
			if err := checkPassword(*in.Password); err != nil {
				return err
			}
			if u.PasswordHash, err = HashPassword(*in.Password); err != nil {
				return err
			}
		}
		if err := tx.Save(u).Error; err != nil {
			if IsDuplicate(err) {
				return Conflict("email", "a user with this e-mail already exists")
			}
			return err
		}
		return audit(tx, a, nil, "update", "user", u.ID, "")
	})
	return u, err
}

// DeleteUser deletes a user, its tokens, sessions and delegations; nobody deletes itself.
func (s *Store) DeleteUser(ctx context.Context, a *Actor, id uint) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		u, err := getScoped[User](ctx, tx, a.scopeUsers, id, "user")
		if err != nil {
			return err
		}
		if !a.CanAdminClient(u.ClientID) {
			return Forbidden("only an admin of the client can delete its users")
		}
		if u.ID == a.ID {
			return Conflict("", "you cannot delete your own account")
		}
		for _, m := range []any{&APIToken{}, &Session{}, &Delegation{}} {
			if err := tx.Where("user_id = ?", u.ID).Delete(m).Error; err != nil {
				return err
			}
		}
		if err := tx.Delete(u).Error; err != nil {
			return err
		}
		return audit(tx, a, nil, "delete", "user", u.ID, u.Email)
	})
}
