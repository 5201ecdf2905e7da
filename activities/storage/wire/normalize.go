package wire

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// macForms are the ways a MAC address is written: 12 hex digits, six pairs separated
// all by colons or all by dashes (iPXE sends dashes, operators type colons), or three
// groups of four separated by dots.
var macForms = regexp.MustCompile(`^(?:[0-9a-f]{12}|[0-9a-f]{2}(?::[0-9a-f]{2}){5}|[0-9a-f]{2}(?:-[0-9a-f]{2}){5}|[0-9a-f]{4}(?:\.[0-9a-f]{4}){2})$`)

// macSeparators strips a MAC's separators (built once: a boot storm normalizes every
// request's MAC).
var macSeparators = strings.NewReplacer(":", "", "-", "", ".", "")

// NormalizeMAC returns a MAC address as lower-case colon-separated hex. It accepts only
// the usual forms (macForms), and only a unicast address a network card can have: not all
// zeros, not broadcast or multicast (the low bit of the first octet). The error says what
// was expected; the caller names the field.
func NormalizeMAC(v string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	if !macForms.MatchString(s) {
		return "", fmt.Errorf("must be a MAC address like 52:54:00:12:34:56, got %q", v)
	}
	hex := macSeparators.Replace(s)
	if hex == "000000000000" {
		return "", fmt.Errorf("%s is the all-zero address, which no network card has", v)
	}
	if first, _ := strconv.ParseUint(hex[:2], 16, 8); first&1 == 1 {
		return "", fmt.Errorf("%s is a broadcast or multicast address: a device's MAC is unicast (the first octet is even)", v)
	}
	parts := make([]string, 6)
	for i := range parts {
		parts[i] = hex[2*i : 2*i+2]
	}
	return strings.Join(parts, ":"), nil
}

// NormalizeUUID returns a UUID in the lower-case 8-4-4-4-12 form iPXE prints, or "" when
// v is not a UUID (a device without one boots by MAC alone).
func NormalizeUUID(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	if len(v) != 36 {
		return ""
	}
	for i, r := range v {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return ""
			}
		default:
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
				return ""
			}
		}
	}
	return v
}
