package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel/pki"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workers/storage"
	"github.com/gofiber/fiber/v2"
)

// agentPanel is a panel on SQLite with the agent endpoints, one network and one server.
type agentPanel struct {
	t     *testing.T
	store *models.Store
	app   *fiber.App
	user  string // the super-admin's Authorization
	srv   struct {
		ID  uint   `json:"id"`
		Key string `json:"key"`
	}
}

func newAgentPanel(t *testing.T) *agentPanel {
	ctx := context.Background()
	db, err := models.Open("sqlite:" + filepath.Join(t.TempDir(), "panel.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := models.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	first, err := models.Bootstrap(ctx, db, "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	p := &agentPanel{t: t, store: &models.Store{DB: db}, app: api.NewApp(), user: `Token token="` + first.Token + `"`}
	agents := &api.Agents{Store: p.store, TaskQueue: func(id uint) string { return fmt.Sprintf("server-%d", id) },
		Temporal: wire.Temporal{Address: "127.0.0.1:7233", Namespace: "default"}}
	agents.Mount(p.app, p.store)
	(&api.Handler{Store: p.store}).Mount(p.app)
	if s, b := p.call(api.Prefix+"/networks.json", p.user, map[string]any{"Name": "n", "Client": 1}); s != fiber.StatusCreated {
		t.Fatalf("network: %d %s", s, b)
	}
	s, b := p.call(api.Prefix+"/servers.json", p.user, map[string]any{"Name": "masterServer", "network": 1, "IP": "192.168.1.10", "Pool": "tank"})
	if s != fiber.StatusCreated {
		t.Fatalf("server: %d %s", s, b)
	}
	json.Unmarshal(b, &p.srv) //nolint:errcheck
	return p
}

// call POSTs body as JSON through the app.
func (p *agentPanel) call(path, auth string, body any) (int, []byte) {
	b, _ := json.Marshal(body)
	req := httptest.NewRequest("POST", path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := p.app.Test(req, -1)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// TestAgentEndpoints: an agent registers with its server key (not a user token), gets
// its server id, task queue and Temporal settings and a queued bootstrap; its stats make
// the server "Panel to server OK". A wrong key is 401 and changes nothing.
func TestAgentEndpoints(t *testing.T) {
	ctx := context.Background()
	p := newAgentPanel(t)
	store, call, user, srv := p.store, p.call, p.user, p.srv
	var s int
	var b []byte

	for _, auth := range []string{"", "Bearer cdk_WRONG", user} {
		if s, b := call(api.Prefix+"/agent/register.json", auth, nil); s != http.StatusUnauthorized {
			t.Errorf("register with %q: %d %s", auth, s, b)
		}
	}
	s, b = call(api.Prefix+"/agent/register.json", "Bearer "+srv.Key, map[string]string{"addr": "10.0.2.15:8081"})
	if s != http.StatusOK {
		t.Fatalf("register: %d %s", s, b)
	}
	var reg wire.RegisterResponse
	if err := json.Unmarshal(b, &reg); err != nil {
		t.Fatal(err)
	}
	if reg.ServerID != srv.ID || reg.Pool != "tank" || reg.TaskQueue != "server-1" || reg.Temporal.Address != "127.0.0.1:7233" ||
		reg.Operation == nil || reg.Operation.URL != fmt.Sprintf("%s/operations/%d.json", api.Prefix, reg.Operation.ID) ||
		reg.PanelCAPEM == "" || reg.CertPEM != "" {
		t.Errorf("registration = %+v", reg)
	}
	// The agent is handed a reference to its bootstrap, not the panel's operation row.
	if bytes.Contains(b, []byte(`"kind"`)) || bytes.Contains(b, []byte(`"workflow_id"`)) {
		t.Errorf("registration carries the operation row: %s", b)
	}
	admin := &models.Actor{User: models.User{Role: models.RoleSuperAdmin}}
	if op, err := store.Operation(ctx, admin, reg.Operation.ID); err != nil || op.Kind != models.OpServerBootstrap {
		t.Errorf("registration's operation = %+v, %v", op, err)
	}
	// A CSR that is not one is refused, naming the field, before anything is recorded.
	if s, b := call(api.Prefix+"/agent/register.json", "Bearer "+srv.Key, map[string]string{"csr_pem": "garbage"}); s != http.StatusUnprocessableEntity ||
		!bytes.Contains(b, []byte(`"field":"csr_pem"`)) {
		t.Errorf("register with a bad CSR: %d %s", s, b)
	}
	if s, b := call(api.Prefix+"/agent/certificate.json", "Bearer "+srv.Key, map[string]string{}); s != http.StatusUnprocessableEntity ||
		!bytes.Contains(b, []byte(`"field":"csr_pem"`)) {
		t.Errorf("certificate without a CSR: %d %s", s, b)
	}

	if s, b := call(api.Prefix+"/agent/stats.json", `Key key="`+srv.Key+`"`, models.StatsReport{PoolHealth: "ONLINE", PoolSize: 100, PoolFree: 90,
		Detail: json.RawMessage(`{"erator":[{"name":"tank/erator/volume-3-5","kind":"volume","id":3,"unix":5,"used":4096}]}`)}); s != http.StatusNoContent {
		t.Fatalf("stats: %d %s", s, b)
	}
	got, err := store.FindServer(ctx, admin, "masterServer")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != models.StatusPanelOK || got.PoolHealth != "ONLINE" || got.PoolSize != 100 || got.AgentAddr != "10.0.2.15:8081" {
		t.Errorf("server after stats = %+v", got)
	}
	req := httptest.NewRequest("GET", api.Prefix+"/servers/masterServer/erator.json", nil)
	req.Header.Set("Authorization", user)
	resp, err := p.app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	var items []models.EratorItem
	json.NewDecoder(resp.Body).Decode(&items) //nolint:errcheck
	resp.Body.Close()
	if len(items) != 1 || items[0].Kind != "volume" || items[0].ID != 3 {
		t.Errorf("erator = %+v", items)
	}
}

// TestAgentCertificate: an agent registering through its own code gets a certificate from
// the panel CA that names its server and network; restarted, it keeps it (no new one is
// issued); one near its end, from another CA or naming another server is replaced.
func TestAgentCertificate(t *testing.T) {
	ctx := context.Background()
	p := newAgentPanel(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.app.Listener(ln)                  //nolint:errcheck
	t.Cleanup(func() { p.app.Shutdown() }) //nolint:errcheck
	dir := t.TempDir()
	cfg := storage.Config{Panel: "http://" + ln.Addr().String(), Key: p.srv.Key, StateDir: dir,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	want := wire.AgentIdentity{NetworkID: 1, ServerID: p.srv.ID}

	// register is the agent (re)starting; it returns the certificate the agent holds,
	// checked against the CA the panel answered.
	register := func(what string) *x509.Certificate {
		t.Helper()
		reg, cert, err := storage.Register(ctx, cfg)
		if err != nil || cert == nil {
			t.Fatalf("%s: registration %v, certificate %v", what, err, cert)
		}
		ca, err := wire.ParseCertificate(reg.PanelCAPEM)
		if err != nil {
			t.Fatalf("%s: the panel's CA: %v", what, err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("%s: the certificate does not verify against the panel CA: %v", what, err)
		}
		if id, err := wire.IdentityOf(cert); err != nil || id != want || cert.Subject.CommonName != fmt.Sprintf("server-%d", p.srv.ID) ||
			len(cert.DNSNames) != 1 || cert.DNSNames[0] != want.DNSName() {
			t.Fatalf("%s: the certificate names %+v (%v), CN %q, DNS %v; want %+v", what, id, err, cert.Subject.CommonName, cert.DNSNames, want)
		}
		if left := time.Until(cert.NotAfter); left < pki.AgentValidity-time.Hour || left > pki.AgentValidity {
			t.Fatalf("%s: the certificate ends in %v", what, left)
		}
		return cert
	}
	issued := func() int {
		t.Helper()
		certs, err := models.AgentCerts(ctx, p.store.DB, p.srv.ID)
		if err != nil {
			t.Fatal(err)
		}
		return len(certs)
	}

	first := register("first start")
	if fi, err := os.Stat(filepath.Join(dir, "agent.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("agent.key: %v, %v; want mode 0600", fi, err)
	}
	if n := issued(); n != 1 {
		t.Fatalf("%d certificates issued at first start", n)
	}
	if again := register("restart"); !bytes.Equal(again.Raw, first.Raw) || issued() != 1 {
		t.Fatalf("a restarted agent got a new certificate (%d issued)", issued())
	}

	// Certificates the agent may find in its state directory, for its own key.
	row, err := models.LoadPanelCA(ctx, p.store.DB, func() (string, string, error) { return "", "", errors.New("the CA exists") })
	if err != nil {
		t.Fatal(err)
	}
	panelCA, err := pki.Load(row.CertPEM, row.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	otherPEM, otherKey, err := pki.New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := pki.Load(otherPEM, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	csr := agentCSR(t, filepath.Join(dir, "agent.key"))
	nearEnd := time.Now().Add(20*24*time.Hour - pki.AgentValidity)
	for i, c := range []struct {
		name string
		ca   *pki.CA
		id   wire.AgentIdentity
		at   time.Time
	}{
		{"within 30 days of its end", panelCA, want, nearEnd},
		{"from another CA", otherCA, want, time.Now()},
		{"naming another server", panelCA, wire.AgentIdentity{NetworkID: 1, ServerID: 99}, time.Now()},
	} {
		_, certPEM, err := c.ca.SignAgent(csr, c.id, c.at)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "agent.crt"), []byte(certPEM), 0o644); err != nil {
			t.Fatal(err)
		}
		got := register(c.name)
		if bytes.Equal(got.Raw, first.Raw) || issued() != 2+i {
			t.Fatalf("%s: not replaced by a new certificate (%d issued)", c.name, issued())
		}
	}
}

// agentCSR is a certificate request for the agent key in keyFile.
func agentCSR(t *testing.T, keyFile string) *x509.CertificateRequest {
	t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}
