package storage

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// The agent's identity in its state directory: its private key (made once, never
// sent), the certificate the panel CA signed for it, and that CA.
const (
	keyFile  = "agent.key"
	certFile = "agent.crt"
	caFile   = "panel-ca.crt"
	// renewBefore is how long before its end a certificate is replaced.
	renewBefore = 30 * 24 * time.Hour
)

// identity is the agent's key and certificate (nil until the panel signed one).
type identity struct {
	dir  string
	key  crypto.Signer
	cert *x509.Certificate

	// mu guards cert for pair, which the panel client calls from other goroutines while
	// a renewal replaces the certificate.
	mu sync.Mutex
}

// pair is the certificate (nil: none yet) and the key, for the panel client to sign
// requests with once the server key is gone (wire.Client.Cert).
func (id *identity) pair() (*x509.Certificate, crypto.Signer) {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.cert, id.key
}

// loadIdentity reads the key and certificate from dir, making the key (ECDSA P-256,
// mode 0600) at first start. A certificate for another key (a key lost and made again)
// is no certificate.
func loadIdentity(dir string) (*identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	id := &identity{dir: dir}
	kp := filepath.Join(dir, keyFile)
	b, err := os.ReadFile(kp)
	switch {
	case errors.Is(err, os.ErrNotExist):
		k, keyPEM, err := wire.NewKey()
		if err != nil {
			return nil, err
		}
		if err := writeFile(kp, keyPEM, 0o600); err != nil {
			return nil, err
		}
		id.key = k
	case err != nil:
		return nil, fmt.Errorf("read the agent key: %w", err)
	default:
		if id.key, err = wire.ParseKey(b); err != nil {
			return nil, fmt.Errorf("%s: %w: remove it to make a new key", kp, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, certFile)); err == nil {
		if c, err := wire.ParseCertificate(string(b)); err == nil && id.holds(c) {
			id.cert = c
		}
	}
	return id, nil
}

// holds reports whether c certifies the agent's key.
func (id *identity) holds(c *x509.Certificate) bool {
	pub, err := x509.MarshalPKIXPublicKey(id.key.Public())
	return err == nil && bytes.Equal(pub, c.RawSubjectPublicKeyInfo)
}

// due reports whether the agent should ask for a certificate: it has none, or its one
// ends within renewBefore.
func (id *identity) due(now time.Time) bool {
	return id.cert == nil || now.Add(renewBefore).After(id.cert.NotAfter)
}

// check says why the certificate cannot stay: none, near its end, not signed by the
// panel's CA, or naming another server.
func (id *identity) check(caPEM string, want wire.AgentIdentity, now time.Time) error {
	if id.due(now) {
		return errors.New("no certificate, or it ends within 30 days")
	}
	ca, err := wire.ParseCertificate(caPEM)
	if err != nil {
		return fmt.Errorf("the panel's CA: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := id.cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("not signed by the panel's CA: %w", err)
	}
	got, err := wire.IdentityOf(id.cert)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("it names server %d of network %d, this agent is server %d of network %d",
			got.ServerID, got.NetworkID, want.ServerID, want.NetworkID)
	}
	return nil
}

// csr is a certificate request for the agent's key; the panel writes the identity itself.
func (id *identity) csr() (string, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "clusterducks agent"}}, id.key)
	if err != nil {
		return "", fmt.Errorf("certificate request: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// keep stores a certificate the panel signed for this key, and the panel's CA.
func (id *identity) keep(certPEM, caPEM string) error {
	c, err := wire.ParseCertificate(certPEM)
	if err != nil {
		return fmt.Errorf("the panel's certificate: %w", err)
	}
	if !id.holds(c) {
		return errors.New("the panel's certificate is for another key")
	}
	if err := writeFile(filepath.Join(id.dir, caFile), []byte(caPEM), 0o644); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(id.dir, certFile), []byte(certPEM), 0o644); err != nil {
		return err
	}
	id.mu.Lock()
	id.cert = c
	id.mu.Unlock()
	return nil
}

// enroll keeps the agent's certificate valid after a registration: the one the panel
// just signed (the request carried a CSR), or a new one when the kept one does not
// chain to the panel's CA or names another server.
func (id *identity) enroll(ctx context.Context, panel *wire.Client, reg *wire.RegisterResponse) error {
	if reg.PanelCAPEM == "" {
		return errors.New("the panel issues no certificates (it predates agent certificates)")
	}
	if reg.CertPEM != "" {
		return id.keep(reg.CertPEM, reg.PanelCAPEM)
	}
	if err := id.check(reg.PanelCAPEM, wire.AgentIdentity{NetworkID: reg.NetworkID, ServerID: reg.ServerID}, time.Now()); err == nil {
		// The CA file may be missing (a state directory restored from elsewhere).
		return writeFile(filepath.Join(id.dir, caFile), []byte(reg.PanelCAPEM), 0o644)
	}
	return id.renew(ctx, panel)
}

// renew asks the panel for a new certificate for the agent's key.
func (id *identity) renew(ctx context.Context, panel *wire.Client) error {
	csr, err := id.csr()
	if err != nil {
		return err
	}
	res, err := panel.Certificate(ctx, wire.CertificateRequest{CSRPEM: csr})
	if err != nil {
		return err
	}
	return id.keep(res.CertPEM, res.PanelCAPEM)
}

// chapSeedFile keeps what the targets' CHAP secrets derive from (boot.go).
const chapSeedFile = "iscsi-chap.seed"

// chapSeed is what the targets' CHAP secrets derive from: the server key's, kept under the
// state directory (mode 0600) so that deleting the key file, which is exchanged once for
// the certificate, changes no secret: a device's initiator logs in again with the secret
// of its boot script. A new key (a reinstall) makes a new seed.
func chapSeed(dir, key string) ([]byte, error) {
	p := filepath.Join(dir, chapSeedFile)
	if key != "" {
		seed := []byte("iscsi-chap:" + key)
		if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, seed) {
			if err := writeFile(p, seed, 0o600); err != nil {
				return nil, err
			}
		}
		return seed, nil
	}
	b, err := os.ReadFile(p)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("no server key and no CHAP seed under %s (run install.sh -k with the server's key again): %v", dir, err)
	}
	return b, nil
}

// writeFile replaces path atomically (a crash leaves the old file or the new one).
func writeFile(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
