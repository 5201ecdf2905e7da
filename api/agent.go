package api

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel/pki"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// Agents serves the endpoints storage-server agents call with their server key (from
// install.sh -k), not with a user's token; the messages are the wire contract's:
//
//	POST /api/v0.9.2/agent/register.json     wire.RegisterRequest -> wire.RegisterResponse
//	POST /api/v0.9.2/agent/certificate.json  wire.CertificateRequest -> wire.CertificateResponse
//	POST /api/v0.9.2/agent/stats.json        wire.StatsReport -> 204
//
// The key goes in `Authorization: Bearer <key>` (or `Key key="<key>"`). Agent
// certificates are signed by the panel CA, made the first time an agent registers.
type Agents struct {
	Store    *models.Store
	Temporal wire.Temporal
	// StatsEvery is how often agents report their pool's stats (default 15 s).
	StatsEvery time.Duration
	// TaskQueue builds a server's task queue name (workflows.ServerQueue).
	TaskQueue func(serverID uint) string

	caMu sync.Mutex
	ca   *pki.CA // loaded once; the row never changes
}

// Mount registers the agent endpoints; it must run before the API's authenticated group
// (a panel "early" mount), because agents carry no user credentials.
func (g *Agents) Mount(app *fiber.App, _ *models.Store) {
	app.Post(Prefix+wire.PathRegister, g.register)
	app.Post(Prefix+wire.PathCertificate, g.certificate)
	app.Post(Prefix+wire.PathStats, g.stats)
	app.Post(Prefix+wire.PathTunnelRegister, g.registerTunnel)
}

// registerTunnel answers a tunnel process presenting its tunnel key with a CSR: its
// identity, its certificate (for its agent listener and tunnel ports), the Temporal
// settings and the tunnel ports to open. A bad CSR is refused before anything is recorded.
func (g *Agents) registerTunnel(c *fiber.Ctx) error {
	ctx := c.UserContext()
	t, err := keyed(c, "tunnel", func(key string) (*models.Tunnel, error) { return models.TunnelByKey(ctx, g.Store.DB, key) })
	if err != nil {
		return err
	}
	in, err := agentBody[wire.TunnelRegisterRequest](c, "a tunnel registration")
	if err != nil {
		return err
	}
	csr, err := requiredCSR(in.CSRPEM)
	if err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(in.AgentAddr); err != nil {
		return models.Invalid("agent_addr", "must be host:port")
	}
	ca, err := g.authority(ctx)
	if err != nil {
		return err
	}
	_, certPEM, err := ca.SignTunnel(csr, wire.TunnelIdentity{NetworkID: t.NetworkID, TunnelID: t.ID}, time.Now())
	if err != nil {
		return err
	}
	ports, err := models.TunnelPorts(ctx, g.Store.DB, t)
	if err != nil {
		return err
	}
	if err := models.RegisterTunnel(ctx, g.Store.DB, t, in.AgentAddr); err != nil {
		return err
	}
	return c.JSON(wire.TunnelRegisterResponse{TunnelID: t.ID, NetworkID: t.NetworkID, Alias: t.Alias,
		TaskQueue: wire.TunnelQueue(t.ID), Temporal: g.Temporal, PanelCAPEM: ca.CertPEM, CertPEM: certPEM, Ports: ports})
}

// server authenticates an agent by its server key or, once it holds its certificate
// (the key file may then be deleted), by a request signed for that certificate.
func (g *Agents) server(c *fiber.Ctx) (*models.Server, error) {
	if h := c.Get(fiber.HeaderAuthorization); wire.IsCertAuthorization(h) {
		return g.serverByCert(c, h)
	}
	return keyed(c, "server", func(key string) (*models.Server, error) { return models.ServerByKey(c.UserContext(), g.Store.DB, key) })
}

// serverByCert checks a signed request (wire.VerifyCertAuthorization): a certificate of
// the panel CA for client authentication, issued to the server it names. Anything else
// is a 401 that says why, never which server exists.
func (g *Agents) serverByCert(c *fiber.Ctx, h string) (*models.Server, error) {
	ctx := c.UserContext()
	refuse := func(why string) error {
		c.Set(fiber.HeaderWWWAuthenticate, `Cert realm="clusterducks-server"`)
		return fiber.NewError(fiber.StatusUnauthorized, "agent certificate refused: "+why)
	}
	now := time.Now()
	cert, err := wire.VerifyCertAuthorization(h, c.Method(), c.Path(), c.Body(), now)
	if err != nil {
		return nil, refuse(err.Error())
	}
	ca, err := g.authority(ctx)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, refuse("not a certificate of this panel")
	}
	id, err := wire.IdentityOf(cert)
	if err != nil {
		return nil, refuse("not an agent's certificate")
	}
	sum := sha256.Sum256(cert.Raw)
	srv, err := models.ServerByCert(ctx, g.Store.DB, id.NetworkID, id.ServerID, hex.EncodeToString(sum[:]))
	if errors.Is(err, models.ErrBadKey) {
		return nil, refuse("the panel issued it to no server it knows")
	}
	return srv, err
}

// keyed authenticates a process of kind ("server" for agents, "tunnel") by the key in
// `Authorization: Bearer <key>` (or `Key key="<key>"`): a key that names nothing is a 401.
func keyed[T any](c *fiber.Ctx, kind string, byKey func(key string) (*T, error)) (*T, error) {
	h := strings.TrimSpace(c.Get(fiber.HeaderAuthorization))
	key := ""
	switch {
	case strings.HasPrefix(h, "Bearer "):
		key = strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))
	case strings.HasPrefix(h, "Key "):
		key = strings.Trim(strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(h, "Key ")), "key="), `"`)
	}
	v, err := byKey(key)
	if errors.Is(err, models.ErrBadKey) {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="clusterducks-`+kind+`"`)
		return nil, fiber.NewError(fiber.StatusUnauthorized, "missing or unknown "+kind+" key: send Authorization: Bearer <the "+kind+"'s key>")
	}
	return v, err
}

func (g *Agents) register(c *fiber.Ctx) error {
	srv, err := g.server(c)
	if err != nil {
		return err
	}
	var in wire.RegisterRequest
	if len(c.Body()) > 0 {
		if in, err = agentBody[wire.RegisterRequest](c, "a registration"); err != nil {
			return err
		}
	}
	ca, err := g.authority(c.UserContext())
	if err != nil {
		return err
	}
	// A bad CSR is refused before anything is recorded.
	var csr *x509.CertificateRequest
	if in.CSRPEM != "" {
		if csr, err = parseCSR(in.CSRPEM); err != nil {
			return err
		}
	}
	if err := models.SetReplicationAddr(c.UserContext(), g.Store.DB, srv.ID, in.ReplicationAddr); err != nil {
		return err
	}
	op, err := g.Store.RegisterAgent(c.UserContext(), srv, in.Addr)
	if err != nil {
		return err
	}
	every := g.StatsEvery
	if every <= 0 {
		every = 15 * time.Second
	}
	v := viewOperation(op)
	out := wire.RegisterResponse{
		ServerID: srv.ID, Name: srv.Name, NetworkID: srv.NetworkID, Pool: srv.Pool,
		TaskQueue: g.TaskQueue(srv.ID), Temporal: g.Temporal, StatsSeconds: int(every / time.Second),
		Operation:  &wire.OperationRef{ID: op.ID, URL: v.URL, State: op.State, Step: op.Step, Percent: op.Percent},
		PanelCAPEM: ca.CertPEM,
	}
	if out.Tunnel, err = models.TunnelEndpointFor(c.UserContext(), g.Store.DB, srv.NetworkID); err != nil {
		return err
	}
	if csr != nil {
		if out.CertPEM, err = g.issue(c.UserContext(), ca, srv, csr); err != nil {
			return err
		}
	}
	return c.JSON(out)
}

// certificate signs a new agent certificate for a registered agent (renewal, or a
// certificate from another CA).
func (g *Agents) certificate(c *fiber.Ctx) error {
	srv, err := g.server(c)
	if err != nil {
		return err
	}
	in, err := agentBody[wire.CertificateRequest](c, "a certificate request")
	if err != nil {
		return err
	}
	csr, err := requiredCSR(in.CSRPEM)
	if err != nil {
		return err
	}
	ca, err := g.authority(c.UserContext())
	if err != nil {
		return err
	}
	cert, err := g.issue(c.UserContext(), ca, srv, csr)
	if err != nil {
		return err
	}
	return c.JSON(wire.CertificateResponse{CertPEM: cert, PanelCAPEM: ca.CertPEM})
}

// agentBody reads an agent's JSON message; what names it in the 400 a malformed one gets.
func agentBody[T any](c *fiber.Ctx, what string) (T, error) {
	var v T
	if err := json.Unmarshal(c.Body(), &v); err != nil {
		return v, &models.MalformedError{Msg: "body must be " + what + ": " + err.Error()}
	}
	return v, nil
}

// requiredCSR is parseCSR of a CSR that must be there.
func requiredCSR(csrPEM string) (*x509.CertificateRequest, error) {
	if csrPEM == "" {
		return nil, models.Invalid("csr_pem", "is required")
	}
	return parseCSR(csrPEM)
}

func parseCSR(s string) (*x509.CertificateRequest, error) {
	csr, err := pki.ParseCSR(s)
	if err != nil {
		return nil, models.Invalid("csr_pem", "%s", err.Error())
	}
	return csr, nil
}

// authority returns the panel CA, making it the first time any panel needs it.
func (g *Agents) authority(ctx context.Context) (*pki.CA, error) {
	g.caMu.Lock()
	defer g.caMu.Unlock()
	if g.ca != nil {
		return g.ca, nil
	}
	row, err := models.LoadPanelCA(ctx, g.Store.DB, func() (string, string, error) { return pki.New(time.Now()) })
	if err != nil {
		return nil, err
	}
	if g.ca, err = pki.Load(row.CertPEM, row.KeyPEM); err != nil {
		return nil, err
	}
	return g.ca, nil
}

// issue signs the server's certificate (its identity from the key it authenticated with,
// never from the CSR: an agent may be only itself) and records it.
func (g *Agents) issue(ctx context.Context, ca *pki.CA, srv *models.Server, csr *x509.CertificateRequest) (string, error) {
	cert, certPEM, err := ca.SignAgent(csr, wire.AgentIdentity{NetworkID: srv.NetworkID, ServerID: srv.ID}, time.Now())
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(cert.Raw)
	rec := &models.AgentCert{ServerID: srv.ID, Serial: cert.SerialNumber.Text(16), SHA256: hex.EncodeToString(sum[:]), NotAfter: cert.NotAfter}
	if err := models.RecordAgentCert(ctx, g.Store.DB, rec); err != nil {
		return "", err
	}
	return certPEM, nil
}

func (g *Agents) stats(c *fiber.Ctx) error {
	srv, err := g.server(c)
	if err != nil {
		return err
	}
	r, err := agentBody[wire.StatsReport](c, "a stats report")
	if err != nil {
		return err
	}
	if r.PoolHealth == "" {
		return models.Invalid("pool_health", "is required")
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{{"iscsi_sessions", r.ISCSISessions}, {"boot_requests", r.BootRequests}, {"replication_bytes", r.ReplicationBytes}} {
		if f.v != nil && *f.v < 0 {
			return models.Invalid(f.name, "must be a count, 0 or more")
		}
	}
	if err := models.RecordServerStats(c.UserContext(), g.Store.DB, srv.ID, &r); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
