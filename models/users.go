package models

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Roles a user can hold. A super-admin sees everything; an admin manages its client's
// users and networks; a user works inside the networks it can see.
const (
	RoleSuperAdmin = "superadmin"
	RoleAdmin      = "admin"
	RoleUser       = "user"
)

// User is a person who logs in to the panel or calls the API.
type User struct {
	ID           uint      `gorm:"primaryKey" json:"id"`
	ClientID     uint      `gorm:"not null;index" json:"client_id"`
	Email        string    `gorm:"size:254;not null;uniqueIndex" json:"email"`
	Name         string    `gorm:"size:200;not null;default:''" json:"name"`
	Role         string    `gorm:"size:20;not null;default:'user'" json:"role"`
	PasswordHash string    `gorm:"size:200;not null" json:"-"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// SuperAdmin reports whether the user sees every object of the panel.
func (u *User) SuperAdmin() bool { return u.Role == RoleSuperAdmin }

// UserInput is the body of a user create or update.
type UserInput struct {
	Email    *string `field:"email"`
	Name     *string `field:"name"`
	Password *string `field:"password"`
	// CurrentPassword is required when users change their own password.
	CurrentPassword *string `field:"current_password"`
	Role            *string `field:"role"`
	ClientID        *uint   `field:"client_id,client"`
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

// CanChangeUser reports whether the actor may change or delete u: u itself, or an admin of
// u's client — but a super-admin only by a super-admin, since a client admin of the first
// client (where super-admins live) would otherwise take over the whole panel.
func (a *Actor) CanChangeUser(u *User) bool {
	if u.ID == a.ID {
		return true
	}
	return a.CanAdminClient(u.ClientID) && (a.SuperAdmin() || !u.SuperAdmin())
}

// keepSuperAdmin refuses to delete or demote u when it is the panel's last super-admin.
// On PostgreSQL the super-admins' rows are locked first, so two super-admins demoting each
// other at once cannot leave none (SQLite transactions are serialised already).
func keepSuperAdmin(tx *gorm.DB, u *User) error {
	if !u.SuperAdmin() {
		return nil
	}
	var ids []uint
	if err := forUpdate(tx.Model(&User{})).Where("role = ?", RoleSuperAdmin).Pluck("id", &ids).Error; err != nil {
		return fmt.Errorf("count super-admins: %w", err)
	}
	if !slices.Contains(ids, u.ID) || len(ids) > 1 {
		return nil
	}
	return Conflict("role", "user %d is the last super-admin: make another user super-admin first", u.ID)
}

// EmailConflictsPerWindow bounds how many "e-mail already taken" answers (a user create,
// or a change of e-mail) anyone but a super-admin gets within LoginWindow. E-mails are
// unique across clients, so that 409 tells that an address has an account somewhere; the
// bound keeps it from becoming a way to list other clients' users.
const EmailConflictsPerWindow = 10

const actionEmailTaken = "user-email-taken"

// checkEmailProbes refuses a create or change of e-mail once the actor had too many
// "e-mail already taken" answers.
func (s *Store) checkEmailProbes(ctx context.Context, a *Actor) error {
	if a.SuperAdmin() {
		return nil
	}
	now := time.Now()
	taken, err := countFailures(ctx, s.DB, actionEmailTaken, now.Add(-LoginWindow), "user_id = ?", a.ID)
	if err != nil {
		return fmt.Errorf("count e-mail conflicts: %w", err)
	}
	if taken.n >= EmailConflictsPerWindow {
		return &RateLimitedError{RetryAfter: max(taken.first.Add(LoginWindow).Sub(now), time.Second), What: "e-mails already taken"}
	}
	return nil
}

// recordEmailProbe counts err against the actor when it is an "e-mail already taken";
// outside the failed transaction, which rolled its own records back.
func (s *Store) recordEmailProbe(ctx context.Context, a *Actor, email string, err error) {
	var taken *ConflictError
	if errors.As(err, &taken) && taken.Field == "email" && !a.SuperAdmin() {
		s.DB.WithContext(ctx).Create(&AuditEvent{UserID: &a.ID, Action: actionEmailTaken, Object: "user", Detail: email})
	}
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
	if err := s.checkEmailProbes(ctx, a); err != nil {
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
	s.recordEmailProbe(ctx, a, u.Email, err)
	if err != nil {
		return nil, err
	}
	return &Created{Object: u}, nil
}

// UpdateUser changes a user: the user itself may change its name, e-mail and password;
// an admin of its client may also change its role.
func (s *Store) UpdateUser(ctx context.Context, a *Actor, id uint, in *UserInput) (*User, error) {
	if in.Email != nil {
		if err := s.checkEmailProbes(ctx, a); err != nil {
			return nil, err
		}
	}
	var u *User
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if u, err = getScoped[User](ctx, tx, a.scopeUsers, id, "user"); err != nil {
			return err
		}
		self := u.ID == a.ID
		if !a.CanChangeUser(u) {
			return Forbidden("only the user or an admin of its client can change it, and a super-admin only a super-admin")
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
			if err := keepSuperAdmin(tx, u); err != nil {
				return err
			}
			if u.Role, err = a.checkRole(*in.Role); err != nil {
				return err
			}
		}
		if in.Password != nil {
			// Users changing their own password prove they know the current one (a stolen
			// session or token must not lock the holder out); an admin resets without.
			if self && (in.CurrentPassword == nil || !CheckPassword(u.PasswordHash, *in.CurrentPassword)) {
				if in.CurrentPassword == nil {
					return Invalid("current_password", "is required to change your own password")
				}
				return Invalid("current_password", "is not your current password")
			}
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
		if in.Password != nil {
			// A new password ends the user's dashboard sessions, but the one that set it.
			if err := tx.Where("user_id = ? AND id <> ?", u.ID, a.SessionID).Delete(&Session{}).Error; err != nil {
				return err
			}
		}
		return audit(tx, a, nil, "update", "user", u.ID, "")
	})
	if in.Email != nil {
		s.recordEmailProbe(ctx, a, *in.Email, err)
	}
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
		if !a.CanChangeUser(u) {
			return Forbidden("only a super-admin can delete a super-admin")
		}
		if err := keepSuperAdmin(tx, u); err != nil {
			return err
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
