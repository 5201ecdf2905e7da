package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

func csrPEM(t *testing.T, key any, tmpl *x509.CertificateRequest) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// The CA signs the identity it is given, not the one the CSR asks for; the certificate
// verifies against the CA for client and server authentication.
func TestSignAgent(t *testing.T) {
	now := time.Now()
	certPEM, keyPEM, err := New(now)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := Load(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || ca.Cert.NotAfter.Before(now.Add(CAValidity-time.Minute)) {
		t.Fatalf("CA: IsCA %v, until %v", ca.Cert.IsCA, ca.Cert.NotAfter)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	evil, _ := url.Parse("clusterducks:network/1/server/1")
	csr, err := ParseCSR(csrPEM(t, key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "server-1"}, URIs: []*url.URL{evil}, DNSNames: []string{"panel.example.com"}}))
	if err != nil {
		t.Fatal(err)
	}
	id := wire.AgentIdentity{NetworkID: 2, ServerID: 7}
	cert, leafPEM, err := ca.SignAgent(csr, id, now)
	if err != nil {
		t.Fatal(err)
	}
	if parsed, err := wire.ParseCertificate(leafPEM); err != nil || !parsed.Equal(cert) {
		t.Fatalf("the PEM is not the certificate: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, use := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{use}, DNSName: id.DNSName()}); err != nil {
			t.Errorf("verify for %v: %v", use, err)
		}
	}
	if got, err := wire.IdentityOf(cert); err != nil || got != id || cert.Subject.CommonName != "server-7" ||
		len(cert.URIs) != 1 || len(cert.DNSNames) != 1 || cert.DNSNames[0] != id.DNSName() {
		t.Errorf("identity %+v %v, CN %q, URIs %v, DNS %v", got, err, cert.Subject.CommonName, cert.URIs, cert.DNSNames)
	}
	if d := cert.NotAfter.Sub(now); d < AgentValidity-time.Second || d > AgentValidity {
		t.Errorf("valid for %v", d)
	}
	again, _, err := ca.SignAgent(csr, id, now)
	if err != nil || again.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Errorf("a second signature reuses the serial: %v", err)
	}
	// Never beyond the CA's own end.
	late, _, err := ca.SignAgent(csr, id, ca.Cert.NotAfter.Add(-24*time.Hour))
	if err != nil || late.NotAfter.After(ca.Cert.NotAfter) {
		t.Errorf("a certificate outlives its CA: %v, %v", late.NotAfter, err)
	}
}

func TestParseCSRRefuses(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	good, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tampered := csrPEM(t, good, &x509.CertificateRequest{})
	blk, _ := pem.Decode([]byte(tampered))
	blk.Bytes[len(blk.Bytes)-1] ^= 0xff
	for _, c := range []struct{ name, pem, want string }{
		{"not PEM", "hello", "must be a PEM CERTIFICATE REQUEST"},
		{"a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "must be a PEM CERTIFICATE REQUEST"},
		{"P-224", csrPEM(t, ec, &x509.CertificateRequest{}), "P-224"},
		{"RSA", csrPEM(t, rsaKey, &x509.CertificateRequest{}), "use ECDSA P-256"},
		{"bad signature", string(pem.EncodeToMemory(blk)), ""},
	} {
		_, err := ParseCSR(c.pem)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}
