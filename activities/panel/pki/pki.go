// Package pki is the panel's certificate authority: it creates the CA (once; the panel
// keeps it in its database) and signs the client certificates agents ask for when they
// register. Standard library crypto only. The agent does not link it: it only makes its
// key and a certificate request.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// Validity of what the CA makes. An agent renews its certificate within its last 30 days.
const (
	CAValidity    = 10 * 365 * 24 * time.Hour
	AgentValidity = 365 * 24 * time.Hour
	// clockSkew backdates certificates so that a peer whose clock is a little behind
	// accepts a certificate signed a moment ago.
	clockSkew = 5 * time.Minute
)

// CA is the panel's certificate authority, loaded from its PEM.
type CA struct {
	Cert    *x509.Certificate
	CertPEM string
	key     crypto.Signer
}

// New creates a CA: an ECDSA P-256 key (wire.NewKey) and a self-signed certificate valid for
// CAValidity from now. It returns both as PEM for the panel to keep.
func New(now time.Time) (certPEM, keyPEM string, err error) {
	key, keyPEMb, err := wire.NewKey()
	if err != nil {
		return "", "", fmt.Errorf("CA: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"clusterducks"}, CommonName: "clusterducks panel CA"},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// It signs leaf certificates only.
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", "", fmt.Errorf("CA certificate: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(keyPEMb), nil
}

// Load parses a CA that New made.
func Load(certPEM, keyPEM string) (*CA, error) {
	cert, err := wire.ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("panel CA: %w", err)
	}
	key, err := wire.ParseKey([]byte(keyPEM))
	if err != nil {
		return nil, fmt.Errorf("panel CA key: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("panel CA: the certificate is not a CA")
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: key}, nil
}

// ParseCSR reads a PEM certificate request and checks that its signature proves the key:
// only the key is used from it (the CA writes the identity itself). ECDSA P-256 and P-384
// and Ed25519 keys are accepted.
func ParseCSR(csrPEM string) (*x509.CertificateRequest, error) {
	b, _ := pem.Decode([]byte(csrPEM))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("must be a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("is not a certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("is not signed by its own key: %w", err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("has an ECDSA key on %s: use P-256 or P-384", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("has a %T key: use ECDSA P-256", csr.PublicKey)
	}
	return csr, nil
}

// SignAgent issues agent id's certificate for the CSR's key: CN server-<id>, the identity
// as URI SAN and a DNS SAN, for client and server authentication (agents dial the panel,
// tunnels and each other, and answer peers), valid AgentValidity from now (never beyond
// the CA). Each call signs a new certificate with a new serial.
func (ca *CA) SignAgent(csr *x509.CertificateRequest, id wire.AgentIdentity, now time.Time) (*x509.Certificate, string, error) {
	return ca.sign(csr.PublicKey, id.CommonName(), id.URI(), id.DNSName(), now)
}

// newSerial is a random 128-bit serial number, as RFC 5280 allows (at most 20 octets).
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	// Serial numbers are positive.
	return n.Add(n, big.NewInt(1)), nil
}

// SignTunnel issues tunnel id's certificate for the CSR's key: CN tunnel-<id>, the identity
// as URI SAN and its DNS SAN, for server authentication (agents and the panel dial the
// tunnel) and client authentication. Each call signs a new certificate.
func (ca *CA) SignTunnel(csr *x509.CertificateRequest, id wire.TunnelIdentity, now time.Time) (*x509.Certificate, string, error) {
	return ca.sign(csr.PublicKey, id.CommonName(), id.URI(), id.DNSName(), now)
}

// PanelClient makes a fresh key and a certificate naming the panel (wire.PanelURI), the
// only client certificate a tunnel port accepts. A panel makes one when it starts and
// keeps it in memory: every panel behind the load balancer has its own.
func (ca *CA) PanelClient(now time.Time) (tls.Certificate, error) {
	key, _, err := wire.NewKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	u, _ := url.Parse(wire.PanelURI)
	cert, _, err := ca.sign(key.Public(), "clusterducks panel", u, wire.PanelDNSName, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// sign issues a leaf certificate for pub, valid AgentValidity from now (never beyond the CA).
func (ca *CA) sign(pub any, cn string, uri *url.URL, dns string, now time.Time) (*x509.Certificate, string, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, "", err
	}
	notAfter := now.Add(AgentValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"clusterducks"}, CommonName: cn},
		URIs:         []*url.URL{uri},
		DNSNames:     []string{dns},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, "", fmt.Errorf("sign the certificate of %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, "", err
	}
	return cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}
