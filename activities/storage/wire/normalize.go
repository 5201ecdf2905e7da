package wire

import (
	"fmt"
	"strconv"
	"strings"
)

// macForms are the ways a MAC address is written (macHex reads them): 12 hex digits, six
// pairs separated all by colons or all by dashes (iPXE sends dashes, operators type
// colons), or three groups of four separated by dots.
const macForms = `^(?:[0-9a-f]{12}|[0-9a-f]{2}(?::[0-9a-f]{2}){5}|[0-9a-f]{2}(?:-[0-9a-f]{2}){5}|[0-9a-f]{4}(?:\.[0-9a-f]{4}){2})$`

// NormalizeMAC returns a MAC address as lower-case colon-separated hex. It accepts only
// the usual forms (macForms), and only a unicast address a network card can have: not all
// zeros, not broadcast or multicast (the low bit of the first octet). The error says what
// was expected; the caller names the field.
func NormalizeMAC(v string) (string, error) {
	hex, ok := macHex(strings.ToLower(strings.TrimSpace(v)))
	if !ok {
		return "", fmt.Errorf("must be a MAC address like 52:54:00:12:34:56, got %q", v)
	}
	if hex == [12]byte{'0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0'} {
		return "", fmt.Errorf("%s is the all-zero address, which no network card has", v)
	}
	if first, _ := strconv.ParseUint(string(hex[:2]), 16, 8); first&1 == 1 {
		return "", fmt.Errorf("%s is a broadcast or multicast address: a device's MAC is unicast (the first octet is even)", v)
	}
	var out [17]byte
	for i := range 6 {
		out[3*i], out[3*i+1] = hex[2*i], hex[2*i+1]
		if i < 5 {
			out[3*i+2] = ':'
		}
	}
	return string(out[:]), nil
}

// macHex returns the 12 hex digits of s when s is one of macForms (lower case). It is the
// regular expression written out: a boot storm normalizes every request's MAC.
func macHex(s string) (hex [12]byte, ok bool) {
	isHex := func(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }
	var group, sep int // digits between separators; 0 sep: none allowed
	switch len(s) {
	case 12:
	case 17:
		group, sep = 2, int(s[2])
	case 14:
		group, sep = 4, '.'
	default:
		return hex, false
	}
	if len(s) == 17 && sep != ':' && sep != '-' {
		return hex, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if group > 0 && i%(group+1) == group {
			if int(s[i]) != sep {
				return hex, false
			}
			continue
		}
		if !isHex(s[i]) {
			return hex, false
		}
		hex[n] = s[i]
		n++
	}
	return hex, n == 12
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
