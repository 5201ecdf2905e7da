package models

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckIP: servers and tunnels are other machines: never unspecified, broadcast or
// multicast, and loopback only on a store that allows it (dev and lab panels).
func TestCheckIP(t *testing.T) {
	for _, c := range []struct {
		in       string
		want     string // "" for refused
		loopback string // the answer with AllowLoopback, when it differs
	}{
		{"192.168.1.10", "192.168.1.10", ""},
		{" 4.2.2.1 ", "4.2.2.1", ""},
		{"2001:db8::1", "2001:db8::1", ""},
		{"::ffff:10.0.0.1", "10.0.0.1", ""},
		{"127.0.0.1", "", "127.0.0.1"},
		{"127.0.0.3", "", "127.0.0.3"},
		{"::1", "", "::1"},
		{"::ffff:127.0.0.1", "", "127.0.0.1"},
		{"0.0.0.0", "", ""},
		{"::", "", ""},
		{"255.255.255.255", "", ""},
		{"224.0.0.1", "", ""},
		{"239.255.255.250", "", ""},
		{"ff02::1", "", ""},
		{"4.2.2", "", ""},
		{"fe80::1%eth0", "", ""},
	} {
		for _, allow := range []bool{false, true} {
			want := c.want
			if allow && c.loopback != "" {
				want = c.loopback
			}
			got, err := (&Store{AllowLoopback: allow}).checkIP("ip", c.in, true)
			var ve *ValidationError
			if want == "" && (!errors.As(err, &ve) || ve.Field != "ip") || want != "" && (err != nil || got != want) {
				t.Errorf("checkIP(%q), loopback allowed %v: %q %v, want %q", c.in, allow, got, err, want)
			}
		}
	}
}

// TestCheckName: a name is visible text: no C0 or C1 controls, no bidirectional
// overrides or isolates, and at least one visible character.
func TestCheckName(t *testing.T) {
	for _, ok := range []string{"New Network", "réseau 1", "网络", "a\u200bb", "Ω-2", " x "} {
		if _, err := checkName("name", ok, 200); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "   ", "a\x00b", "a\x1bb", "a\x7fb", "a\u0085b", "a\u009bb", "\u202egnp.exe", "a\u2066b\u2069", "a\u200fb",
		"\u200b", "\u200b\u200c\ufeff", "\u3164", "\u2800\u2800", "\u0301", "\u00a0\u3000", "a\xffb", strings.Repeat("x", 201)} {
		if _, err := checkName("name", bad, 200); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
