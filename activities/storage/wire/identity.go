package wire

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
)

// AgentIdentity is whom an agent certificate speaks for: a storage server of a network.
// The panel writes it into every certificate it signs (whatever the CSR asked for: an
// agent may be only itself); peers read it back with IdentityOf.
type AgentIdentity struct {
	NetworkID uint
	ServerID  uint
}

// agentScheme is the scheme of the URI SAN naming an agent.
const agentScheme = "clusterducks"

// CommonName is the certificate's subject CN, server-<id>, for people reading it.
func (id AgentIdentity) CommonName() string { return fmt.Sprintf("server-%d", id.ServerID) }

// URI is the certificate's URI SAN, clusterducks:network/<n>/server/<s>: the identity
// peers check.
func (id AgentIdentity) URI() *url.URL {
	return &url.URL{Scheme: agentScheme, Opaque: fmt.Sprintf("network/%d/server/%d", id.NetworkID, id.ServerID)}
}

// DNSName is the certificate's DNS SAN, a TLS server name peers can verify when they dial
// the agent (replication, tunnels); it resolves nowhere.
func (id AgentIdentity) DNSName() string {
	return fmt.Sprintf("server-%d.network-%d.clusterducks.internal", id.ServerID, id.NetworkID)
}

// IdentityOf reads the agent identity from a certificate's URI SAN.
func IdentityOf(cert *x509.Certificate) (AgentIdentity, error) {
	for _, u := range cert.URIs {
		if u.Scheme != agentScheme {
			continue
		}
		var id AgentIdentity
		var rest string
		n, _ := fmt.Sscanf(u.Opaque, "network/%d/server/%d%s", &id.NetworkID, &id.ServerID, &rest)
		if n == 2 && id.ServerID != 0 && id.URI().String() == u.String() {
			return id, nil
		}
		return AgentIdentity{}, fmt.Errorf("certificate URI %q is not clusterducks:network/<id>/server/<id>", u)
	}
	return AgentIdentity{}, errors.New("certificate names no clusterducks agent (no clusterducks: URI)")
}

// ParseCertificate reads the first certificate of a PEM text.
func ParseCertificate(certPEM string) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(certPEM))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM CERTIFICATE")
	}
	return x509.ParseCertificate(b.Bytes)
}

// NewKey makes an ECDSA P-256 private key, the kind agents and the panel CA keep, and
// its PEM (PKCS #8 "PRIVATE KEY").
func NewKey() (crypto.Signer, []byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("make a key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, fmt.Errorf("make a key: %w", err)
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey reads a PEM PKCS #8 private key that can sign (as NewKey writes it).
func ParseKey(keyPEM []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM PRIVATE KEY")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", k)
	}
	return signer, nil
}
