package models

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"gorm.io/gorm"
)

// ListOwned lists one page of a network-owned kind the actor sees, optionally in one network.
func ListOwned[T any](ctx context.Context, s *Store, a *Actor, p Page, networkID uint) ([]T, int64, error) {
	if networkID != 0 {
		return listScoped[T](ctx, s.DB, a.scopeNetworkOwned, p, "network_id = ?", networkID)
	}
	return listScoped[T](ctx, s.DB, a.scopeNetworkOwned, p)
}

// GetOwned loads one visible network-owned object.
func GetOwned[T any](ctx context.Context, s *Store, a *Actor, id uint, what string) (*T, error) {
	return getScoped[T](ctx, s.DB, a.scopeNetworkOwned, id, what)
}

// updateOwned is the frame of an update of a network-owned object (what names it): in one
// transaction it loads the object the actor sees, refuses a move to another network
// (moveTo, the input's network), lets change apply the rest of the input, saves the
// object and audits the update.
func updateOwned[T any](ctx context.Context, s *Store, a *Actor, id uint, what string, moveTo *uint, networkOf func(*T) uint, change func(tx *gorm.DB, obj *T) error) (*T, error) {
	var obj *T
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if obj, err = getScoped[T](ctx, tx, a.scopeNetworkOwned, id, what); err != nil {
			return err
		}
		nid := networkOf(obj)
		if moveTo != nil && *moveTo != nid {
			return Invalid("network_id", "a %s cannot move to another network", what)
		}
		if err := change(tx, obj); err != nil {
			return err
		}
		if err := tx.Save(obj).Error; err != nil {
			return err
		}
		return audit(tx, a, &nid, "update", what, id, "")
	})
	return obj, err
}

// deleteOwned is the frame of a delete of a network-owned object (what names it): in one
// transaction it loads the object the actor sees, runs before (checks, references to
// clear), deletes it and audits the delete with the object's network and name.
func deleteOwned[T any](ctx context.Context, s *Store, a *Actor, id uint, what string, named func(*T) (networkID uint, name string), before func(tx *gorm.DB, obj *T) error) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		obj, err := getScoped[T](ctx, tx, a.scopeNetworkOwned, id, what)
		if err != nil {
			return err
		}
		if err := before(tx, obj); err != nil {
			return err
		}
		if err := tx.Delete(obj).Error; err != nil {
			return err
		}
		nid, name := named(obj)
		return audit(tx, a, &nid, "delete", what, id, name)
	})
}

// ref is a column of another table that points at an object.
type ref struct {
	model  any
	column string
}

// clearRefs sets the columns that point at object id to NULL (nothing points at it after).
func clearRefs(tx *gorm.DB, id uint, refs ...ref) error {
	for _, r := range refs {
		if err := tx.Model(r.model).Where(r.column+" = ?", id).Update(r.column, nil).Error; err != nil {
			return err
		}
	}
	return nil
}

// keyed is how CreateTunnel and CreateServer insert their object: a network's object whose
// agent authenticates with a key (shown once), the network's selected one while it has none.
type keyed struct {
	what     string                              // the object's type in the audit
	obj      any                                 // the *Tunnel or *Server to insert
	id       *uint                               // its ID, set by the insert
	name     *string                             // its name, for the audit
	keyHash  *string                             // where the key's hash goes
	selected func(n *Network) *uint              // the network's selected one…
	column   string                              // …and its column
	check    func(tx *gorm.DB, n *Network) error // before the insert, the network locked; may be nil
	inserted func(err error) error               // maps an insert's error (a name taken); may be nil
}

// createKeyed inserts k.obj into network nid, locked, with a new key, and returns the key
// once in Created.Secret.
func (s *Store) createKeyed(ctx context.Context, a *Actor, nid uint, k keyed) (*Created, error) {
	secret := NewSecret("cdk_")
	*k.keyHash = HashSecret(secret)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		n, err := a.lockNetwork(tx, nid, "network_id")
		if err != nil {
			return err
		}
		if k.check != nil {
			if err := k.check(tx, n); err != nil {
				return err
			}
		}
		if err := tx.Create(k.obj).Error; err != nil {
			if k.inserted != nil {
				return k.inserted(err)
			}
			return err
		}
		if k.selected(n) == nil {
			if err := tx.Model(n).Update(k.column, *k.id).Error; err != nil {
				return err
			}
		}
		return audit(tx, a, &nid, "create", k.what, *k.id, *k.name)
	})
	if err != nil {
		return nil, err
	}
	return &Created{Object: k.obj, Secret: secret}, nil
}

func requireNetwork(v *uint) (uint, error) {
	if v == nil || *v == 0 {
		return 0, Invalid("network_id", "is required (the id of the network)")
	}
	return *v, nil
}

// Engine starts the workflow behind an Operation. The panel wires Temporal here; with no
// engine the operation stays queued and says so.
type Engine interface {
	// Start starts (or finds, for a repeated call) the operation's workflow; it is safe to repeat.
	Start(ctx context.Context, op *Operation) error
	// Cancel asks the operation's workflow to cancel (its undo runs); safe to repeat.
	Cancel(ctx context.Context, op *Operation) error
	// Inspect tells what the engine knows of the operation's run (nil when nothing).
	Inspect(ctx context.Context, op *Operation) (*WorkflowView, error)
}

// Store is the panel's business layer: every create, read, update and delete that the API
// and the dashboard perform goes through it, scoped by the caller.
type Store struct {
	DB     *gorm.DB
	Engine Engine
	// AllowLoopback accepts loopback addresses (127.0.0.0/8, ::1) for servers and tunnels,
	// for a dev panel or a lab whose agents run on the panel's machine. Otherwise they are
	// refused: in production a server or tunnel is always another machine.
	AllowLoopback bool
}

// Created is the result of a create or an update that starts long work.
type Created struct {
	Object    any
	Operation *Operation
	Secret    string // shown once (a server's key)
	Warning   string
}

func (s *Store) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.DB.WithContext(ctx).Transaction(fn)
}

func requiredName(field string, v *string, max int) (string, error) {
	if v == nil || strings.TrimSpace(*v) == "" {
		return "", Invalid(field, "is required")
	}
	return checkName(field, *v, max)
}

func checkName(field, v string, max int) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", Invalid(field, "must not be empty")
	}
	if len(v) > max {
		return "", Invalid(field, "must be at most %d characters", max)
	}
	visible := false
	for _, r := range v {
		switch {
		case r == utf8.RuneError:
			return "", Invalid(field, "must be valid UTF-8")
		case unicode.IsControl(r): // C0, DEL and C1
			return "", Invalid(field, "must not contain control characters")
		case unicode.Is(unicode.Bidi_Control, r):
			// Overrides and isolates make a name show in another order than it reads.
			return "", Invalid(field, "must not contain bidirectional text controls (U+%04X)", r)
		case unicode.In(r, unicode.L, unicode.N, unicode.P, unicode.S) && !blank(r):
			visible = true
		}
	}
	if !visible {
		return "", Invalid(field, "must have a visible character (letters, digits, punctuation or symbols)")
	}
	return v, nil
}

// blank reports the letters and symbols that fonts draw as nothing (Hangul fillers, the
// Braille blank): a name of only these, spaces, marks and format characters shows empty.
func blank(r rune) bool {
	switch r {
	case 0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800:
		return true
	}
	return false
}

// checkIP checks the address of another machine (a server or a tunnel): an IP address
// the panel and devices can reach, so not unspecified, broadcast or multicast, and not
// loopback unless the store allows it (dev and lab panels).
func (s *Store) checkIP(field, v string, required bool) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		if required {
			return "", Invalid(field, "is required")
		}
		return "", nil
	}
	ip := net.ParseIP(v)
	switch {
	case ip == nil:
		return "", Invalid(field, "must be an IP address, got %q", v)
	case ip.IsUnspecified():
		return "", Invalid(field, "%s is the unspecified address: give the machine's own address", ip)
	case ip.Equal(net.IPv4bcast) || ip.IsMulticast():
		return "", Invalid(field, "%s is a broadcast or multicast address: give the machine's own address", ip)
	case ip.IsLoopback() && !s.AllowLoopback:
		return "", Invalid(field, "%s is a loopback address, which is this panel itself: give an address the panel and devices reach the machine at (a dev or lab panel, or CLUSTERDUCKS_ALLOW_LOOPBACK=1, accepts loopback)", ip)
	}
	return ip.String(), nil
}

func checkLimitValue(field string, v *int) error {
	if v != nil && (*v < 0 || *v > 1_000_000) {
		return Invalid(field, "must be between 0 (unlimited) and 1000000")
	}
	return nil
}

var poolName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:-]{0,254}$`)

func checkPool(v *string) (string, error) {
	if v == nil || strings.TrimSpace(*v) == "" {
		return "", Invalid("pool", "is required (the name of the ZFS pool created on the server)")
	}
	p := strings.TrimSpace(*v)
	if !poolName.MatchString(p) {
		return "", Invalid("pool", "%q is not a valid ZFS pool name (a letter, then letters, digits, _ . : -)", p)
	}
	switch p {
	case "mirror", "raidz", "raidz1", "raidz2", "raidz3", "draid", "spare", "log", "cache", "special", "dedup":
		return "", Invalid("pool", "%q is a reserved ZFS word", p)
	}
	return p, nil
}

// NormalizeMAC is wire.NormalizeMAC (agents spell MACs the same way), its error naming
// the field "mac".
func NormalizeMAC(v string) (string, error) {
	mac, err := wire.NormalizeMAC(v)
	if err != nil {
		return "", Invalid("mac", "%s", err.Error())
	}
	return mac, nil
}

// IsDuplicate reports whether err is a unique-constraint violation, from PostgreSQL (which
// GORM translates) or from the pure-Go SQLite driver (extended codes 2067 and 1555).
func IsDuplicate(err error) bool {
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	var coded interface{ Code() int }
	if errors.As(err, &coded) {
		return coded.Code() == 2067 || coded.Code() == 1555
	}
	return false
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func nonZero(p *uint) *uint {
	if p == nil || *p == 0 {
		return nil
	}
	v := *p
	return &v
}
