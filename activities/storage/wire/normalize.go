package wire

import (
	"fmt"
	"strings"
)

// NormalizeMAC returns a MAC address as lower-case colon-separated hex, accepting colons,
// dashes, dots or none as separators (iPXE sends hyphens, operators type colons). The
// error says what was expected; the caller names the field.
func NormalizeMAC(v string) (string, error) {
	h := strings.NewReplacer(":", "", "-", "", ".", "").Replace(strings.ToLower(strings.TrimSpace(v)))
	ok := len(h) == 12
	var b strings.Builder
	for i := 0; ok && i < 12; i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			ok = false
			break
		}
		if i > 0 && i%2 == 0 {
			b.WriteByte(':')
		}
		b.WriteByte(c)
	}
	if !ok {
		return "", fmt.Errorf("must be a MAC address like 52:54:00:12:34:56, got %q", v)
	}
	return b.String(), nil
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
