package wire

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"
)

// TestCertAuthorization: a signed request verifies only for its own method, path, body
// and time window, and only with the key of its certificate.
func TestCertAuthorization(t *testing.T) {
	key, _, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agent"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	now := time.Now()
	h, err := CertAuthorization(cert, key, "POST", Prefix+PathStats, []byte(`{"a":1}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if !IsCertAuthorization(h) || IsCertAuthorization("Bearer cdk_x") {
		t.Fatal("IsCertAuthorization")
	}
	if got, err := VerifyCertAuthorization(h, "POST", Prefix+PathStats, []byte(`{"a":1}`), now.Add(time.Minute)); err != nil || !got.Equal(cert) {
		t.Fatalf("verify: %v", err)
	}
	forged, err := CertAuthorization(cert, other, "POST", Prefix+PathStats, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, h, method, path, body string
		at                          time.Time
		want                        string
	}{
		{"another method", h, "GET", Prefix + PathStats, `{"a":1}`, now, "signature"},
		{"another path", h, "POST", Prefix + PathBoot, `{"a":1}`, now, "signature"},
		{"another body", h, "POST", Prefix + PathStats, `{"a":2}`, now, "signature"},
		{"too late", h, "POST", Prefix + PathStats, `{"a":1}`, now.Add(CertAuthSkew + time.Minute), "clock"},
		{"another key", forged, "POST", Prefix + PathStats, "", now, "signature"},
		{"garbage", "Cert cert=%%%, ts=1, sig=x", "POST", Prefix + PathStats, "", now, "cert"},
		{"no fields", "Cert nothing", "POST", Prefix + PathStats, "", now, "malformed"},
	} {
		if _, err := VerifyCertAuthorization(c.h, c.method, c.path, []byte(c.body), c.at); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %q", c.name, err, c.want)
		}
	}
}
