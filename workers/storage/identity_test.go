package storage

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// testCA signs certificates as the panel CA does, for the agent's side of the checks.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * 365 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

func (ca *testCA) sign(t *testing.T, id *identity, who wire.AgentIdentity, until time.Time) string {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: who.CommonName()},
		URIs: []*url.URL{who.URI()}, NotBefore: time.Now().Add(-time.Hour), NotAfter: until,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, id.key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// The key is made once (mode 0600) and found again after a restart with the certificate
// kept for it; what makes a certificate due or unfit is checked on the agent's side.
func TestIdentity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	id, err := loadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, keyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	now := time.Now()
	if !id.due(now) {
		t.Fatal("an agent without a certificate is not due for one")
	}
	csr, err := id.csr()
	if err != nil {
		t.Fatal(err)
	}
	if blk, _ := pem.Decode([]byte(csr)); blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("csr: %q", csr)
	}

	ca, other := newTestCA(t), newTestCA(t)
	me := wire.AgentIdentity{NetworkID: 1, ServerID: 4}
	if err := id.keep(ca.sign(t, id, me, now.Add(300*24*time.Hour)), ca.pem); err != nil {
		t.Fatal(err)
	}
	again, err := loadIdentity(dir)
	if err != nil || again.cert == nil || !again.cert.Equal(id.cert) || again.due(now) {
		t.Fatalf("after a restart: %+v, %v", again, err)
	}
	if err := again.check(ca.pem, me, now); err != nil {
		t.Errorf("a good certificate: %v", err)
	}
	for name, err := range map[string]error{
		"another CA":     again.check(other.pem, me, now),
		"another server": again.check(ca.pem, wire.AgentIdentity{NetworkID: 1, ServerID: 5}, now),
		"in 20 days":     again.check(ca.pem, me, now.Add(280*24*time.Hour)),
	} {
		if err == nil {
			t.Errorf("%s: the certificate is kept", name)
		}
	}

	// A certificate for another key (the key file lost and made again) is none.
	stranger, err := loadIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := stranger.keep(ca.sign(t, id, me, now.Add(time.Hour)), ca.pem); err == nil {
		t.Error("kept a certificate for another key")
	}
	if err := os.Remove(filepath.Join(dir, keyFile)); err != nil {
		t.Fatal(err)
	}
	if fresh, err := loadIdentity(dir); err != nil || fresh.cert != nil {
		t.Errorf("a new key kept the old key's certificate: %v", err)
	}
}

// TestCHAPSeedOutlivesTheKey: the CHAP seed derived from the server key is kept, so the
// targets' secrets stay the same once the key file is gone; a new key makes a new seed.
func TestCHAPSeedOutlivesTheKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := chapSeed(dir, ""); err == nil {
		t.Fatal("a seed without a key or a kept seed")
	}
	first, err := chapSeed(dir, "cdk_one")
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != "iscsi-chap:cdk_one" {
		t.Fatalf("seed %q: the secrets of agents that had the key change", first)
	}
	if fi, err := os.Stat(filepath.Join(dir, chapSeedFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kept seed: %v %v", fi, err)
	}
	without, err := chapSeed(dir, "")
	if err != nil || string(without) != string(first) {
		t.Fatalf("without the key: %q %v", without, err)
	}
	if again, err := chapSeed(dir, "cdk_two"); err != nil || string(again) == string(first) {
		t.Fatalf("a new key: %q %v", again, err)
	}
	if kept, _ := chapSeed(dir, ""); string(kept) != "iscsi-chap:cdk_two" {
		t.Fatalf("kept after a new key: %q", kept)
	}
}
