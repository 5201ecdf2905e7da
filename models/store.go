package models

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

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

// macForms are the ways a MAC address is written: 12 hex digits, six pairs separated
// all by colons or all by dashes, or three groups of four separated by dots.
var macForms = regexp.MustCompile(`^(?:[0-9a-f]{12}|[0-9a-f]{2}(?::[0-9a-f]{2}){5}|[0-9a-f]{2}(?:-[0-9a-f]{2}){5}|[0-9a-f]{4}(?:\.[0-9a-f]{4}){2})$`)

// NormalizeMAC returns a device's MAC address as lower-case colon-separated hex. It
// accepts only the usual forms (see macForms), and only a unicast address a network card
// can have: not all zeros, not broadcast or multicast (the low bit of the first octet).
func NormalizeMAC(v string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	if !macForms.MatchString(s) {
		return "", Invalid("mac", "must be a MAC address like 52:54:00:12:34:56, got %q", v)
	}
	hex := strings.NewReplacer(":", "", "-", "", ".", "").Replace(s)
	if hex == "000000000000" {
		return "", Invalid("mac", "%s is the all-zero address, which no network card has", v)
	}
	if first, _ := strconv.ParseUint(hex[:2], 16, 8); first&1 == 1 {
		return "", Invalid("mac", "%s is a broadcast or multicast address: a device's MAC is unicast (the first octet is even)", v)
	}
	parts := make([]string, 6)
	for i := range parts {
		parts[i] = hex[2*i : 2*i+2]
	}
	return strings.Join(parts, ":"), nil
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
