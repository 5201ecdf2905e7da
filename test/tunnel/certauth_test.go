package tunnel_test

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel/agentclient"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
)

// TestAgentWithoutKey: the server key is exchanged once for the agent's certificate. With
// its key file deleted, a restarted agent registers with its certificate, dials its
// tunnel and answers the panel; it renews its certificate the same way. A certificate
// the panel did not issue, or no credential at all, is refused.
func TestAgentWithoutKey(t *testing.T) {
	e := startEnv(t, nil)
	n := e.network("N", e.Admin.ClientID)
	tid, tkey := e.tunnel(n, "t")
	s1, k1, p1 := e.server(n, "s1")
	e.startTunnel(tkey)
	kf, state := keyFile(t, k1), t.TempDir()
	agent := e.start("agent", "--panel", e.URL, "--key", kf, "--state", state,
		"--iscsi-listen", "127.0.0.1:0", "--boot-listen", "127.0.0.1:0", "--replication-listen", "127.0.0.1:0")
	ac := agentclient.New(e.DB)
	eventually(t, 90*time.Second, "s1 through its tunnel", func() error { return agentVia(e, ac, tid, p1, s1) })
	before := registrations(t, e, s1)

	agent.kill()
	if err := os.Remove(kf); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	agent.run()
	took := eventually(t, 90*time.Second, "s1 through its tunnel without its key file", func() error {
		if registrations(t, e, s1) <= before {
			return errors.New("the agent has not registered again")
		}
		return agentVia(e, ac, tid, p1, s1)
	})
	t.Logf("agent without its key file registered and reachable %v after its restart (%v polling)", time.Since(restarted).Round(time.Millisecond), took.Round(time.Millisecond))

	// The agent's own certificate speaks for it, and renews itself.
	pair := agentCert(t, state)
	signer := pair.PrivateKey.(crypto.Signer)
	byCert := wire.NewClient(e.URL, "")
	byCert.Cert = func() (*x509.Certificate, crypto.Signer) { return pair.Leaf, signer }
	info, err := byCert.Server(e.ctx)
	if err != nil || info.ID != s1 {
		t.Fatalf("server.json with the agent's certificate: %+v %v", info, err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "renewal"}}, signer)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := byCert.Certificate(e.ctx, wire.CertificateRequest{CSRPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
	if err != nil {
		t.Fatalf("renewal with the agent's certificate: %v", err)
	}
	if c, err := wire.ParseCertificate(renewed.CertPEM); err != nil || c.NotAfter.Before(pair.Leaf.NotAfter) {
		t.Fatalf("renewed certificate: %v %v", c, err)
	}

	// Refused: a certificate of another CA naming the same server, and no credential.
	forged := selfSigned(t, pair.Leaf, signer)
	byForged := wire.NewClient(e.URL, "")
	byForged.Cert = func() (*x509.Certificate, crypto.Signer) { return forged, signer }
	if _, err := byForged.Server(e.ctx); !wire.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("a certificate the panel did not issue: %v", err)
	}
	if _, err := wire.NewClient(e.URL, "").Server(e.ctx); !wire.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("no credential: %v", err)
	}
}

// registrations counts the server's registrations (each queues its bootstrap).
func registrations(t *testing.T, e *env, serverID uint) int64 {
	t.Helper()
	var n int64
	if err := e.DB.Model(&models.Operation{}).Where("kind = ? AND object_id = ?", models.OpServerBootstrap, serverID).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// selfSigned copies leaf's subject and identity into a certificate signed by key itself.
func selfSigned(t *testing.T, leaf *x509.Certificate, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: leaf.Subject, URIs: leaf.URIs,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
