package wire

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// macHex reads exactly the forms the macForms expression describes.
func TestMACHexIsMACForms(t *testing.T) {
	re := regexp.MustCompile(macForms)
	cases := []string{"52:54:00:12:34:56", "52-54-00-12-34-56", "525400123456", "5254.0012.3456",
		"52:54-00:12:34:56", "52:54:00:12:34", "52:54:00:12:34:567", "5254.0012-3456", "52540012345g",
		"", "52::54:00:12:34:5", "5254.00123.456", "5254:0012:3456", ":52:54:00:12:34:5"}
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789abcdefg:-."
	for range 200000 {
		b := make([]byte, 10+r.IntN(9))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = alphabet[16+r.IntN(4)]
			} else {
				b[i] = alphabet[r.IntN(16)]
			}
		}
		cases = append(cases, string(b))
	}
	// Addresses in each form, half of them with one character changed.
	for range 50000 {
		hex := make([]byte, 12)
		for i := range hex {
			hex[i] = alphabet[r.IntN(16)]
		}
		var b []byte
		switch r.IntN(4) {
		case 0:
			b = hex
		case 1, 2:
			sep := ":-"[r.IntN(2)]
			for i := 0; i < 12; i += 2 {
				if i > 0 {
					b = append(b, sep)
				}
				b = append(b, hex[i:i+2]...)
			}
		case 3:
			for i := 0; i < 12; i += 4 {
				if i > 0 {
					b = append(b, '.')
				}
				b = append(b, hex[i:i+4]...)
			}
		}
		if r.IntN(2) == 0 {
			b[r.IntN(len(b))] = alphabet[r.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	matched := 0
	for _, s := range cases {
		_, ok := macHex(s)
		if want := re.MatchString(s); ok != want {
			t.Fatalf("macHex(%q) ok %v, macForms says %v", s, ok, want)
		}
		if ok {
			matched++
		}
	}
	if matched < 20000 {
		t.Fatalf("only %d cases were MACs", matched)
	}
}
