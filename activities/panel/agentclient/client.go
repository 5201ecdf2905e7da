// Package agentclient is the panel's one client of the agents' API: it reaches an agent
// only through its network's tunnel, dialing <tunnel IP>:<the server's Tunnel Port> with
// the panel's client certificate (from the panel CA), and checks that the tunnel's
// certificate names that tunnel.
package agentclient

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel/pki"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"gorm.io/gorm"
)

// Client asks agents through their tunnels. Safe for concurrent use; it makes the panel's
// client certificate at first use and again before it ends.
type Client struct {
	DB *gorm.DB
	// Timeout bounds one request, dial included (default 10 s).
	Timeout time.Duration

	mu    sync.Mutex
	cert  *tls.Certificate
	roots *x509.CertPool
}

// New returns a client of the agents of the panel whose database is db.
func New(db *gorm.DB) *Client { return &Client{DB: db} }

// credentials returns the panel's client certificate and the panel CA.
func (c *Client) credentials(ctx context.Context) (*tls.Certificate, *x509.CertPool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.cert != nil && now.Add(24*time.Hour).Before(c.cert.Leaf.NotAfter) {
		return c.cert, c.roots, nil
	}
	row, err := models.LoadPanelCA(ctx, c.DB, func() (string, string, error) { return pki.New(now) })
	if err != nil {
		return nil, nil, err
	}
	ca, err := pki.Load(row.CertPEM, row.KeyPEM)
	if err != nil {
		return nil, nil, err
	}
	cert, err := ca.PanelClient(now)
	if err != nil {
		return nil, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	c.cert, c.roots = &cert, roots
	return c.cert, c.roots, nil
}

// Get asks the agent of the server with tunnel port port, behind tunnel t, for path (a
// wire.AgentPath*) and decodes the JSON answer into out.
func (c *Client) Get(ctx context.Context, t *models.Tunnel, port int, path string, out any) error {
	b, err := c.Fetch(ctx, t, port, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("agent %s: %w", path, err)
	}
	return nil
}

// Fetch asks the agent of the server with tunnel port port, behind tunnel t, for path and
// returns the body of its 200 answer as is (e.g. /metrics, in the Prometheus text format).
func (c *Client) Fetch(ctx context.Context, t *models.Tunnel, port int, path string) ([]byte, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	resp, err := c.do(ctx, t, port, http.MethodGet, path, nil, 0, timeout)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return readAnswer(resp, t, port, path)
}

// Stream sends body (size bytes, -1 unknown) to the agent with method at path and decodes
// its JSON answer into out. The body is copied as it is read, never held whole; only ctx
// bounds the request (an upload of gigabytes takes its time). An answer other than 200 is
// a *wire.AgentError.
func (c *Client) Stream(ctx context.Context, t *models.Tunnel, port int, method, path string, body io.Reader, size int64, out any) error {
	resp, err := c.do(ctx, t, port, method, path, body, size, 0)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := readAnswer(resp, t, port, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("agent %s: %w", path, err)
	}
	return nil
}

// do sends one request through the tunnel port; timeout 0 leaves the bound to ctx.
func (c *Client) do(ctx context.Context, t *models.Tunnel, port int, method, path string, body io.Reader, size int64, timeout time.Duration) (*http.Response, error) {
	cert, roots, err := c.credentials(ctx)
	if err != nil {
		return nil, err
	}
	dial := cmp.Or(timeout, c.Timeout, 10*time.Second)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{*cert}, RootCAs: roots, MinVersion: tls.VersionTLS13,
			ServerName: wire.TunnelIdentity{NetworkID: t.NetworkID, TunnelID: t.ID}.DNSName()},
		DialContext:       (&net.Dialer{Timeout: dial}).DialContext,
		DisableKeepAlives: true, // a tunnel port connection is a stream of the agent's session: hold none
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: timeout}
	url := "https://" + net.JoinHostPort(t.IP, strconv.Itoa(port)) + path
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("through tunnel %q port %d: %w", t.Alias, port, err)
	}
	return resp, nil
}

// readAnswer reads an agent's answer (at most 4 MiB); other than 200 it is a *wire.AgentError.
func readAnswer(resp *http.Response, t *models.Tunnel, port int, path string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("through tunnel %q port %d: %w", t.Alias, port, err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &wire.AgentError{Status: resp.StatusCode, Path: path}
		json.Unmarshal(b, &e.Body) //nolint:errcheck
		return nil, e
	}
	return b, nil
}
