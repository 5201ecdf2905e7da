package wire

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// ErrUnreachable marks a panel (or workflow engine) that cannot be reached: a network
// error, a timeout or a 5xx. Asking again later may succeed; the boot path falls back to
// its cache meanwhile.
var ErrUnreachable = errors.New("unreachable")

// StatusError is a 4xx answer of the panel: asking again the same way will not help.
type StatusError struct {
	Path   string
	Status int
	Body   ErrorBody
}

func (e *StatusError) Error() string {
	msg := e.Body.Error
	if e.Body.Field != "" {
		msg += " (field " + e.Body.Field + ")"
	}
	return fmt.Sprintf("panel %s: %d %s: %s", e.Path, e.Status, http.StatusText(e.Status), msg)
}

// IsStatus reports whether err is the panel's answer with this status.
func IsStatus(err error, status int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == status
}

// Client is the agent's one client of the panel's agent endpoints, authenticated with the
// server key. Safe for concurrent use.
type Client struct {
	URL  string // the panel's base URL, e.g. https://panel.example.com
	Key  string // the server key
	HTTP *http.Client
	// Cert, without a Key, returns the agent's certificate and key, which then sign each
	// request (CertAuthorization); it is asked at each request, so a renewal is used at
	// once. Nil, or a nil certificate: the request goes with the Key.
	Cert func() (*x509.Certificate, crypto.Signer)
}

// NewClient returns a client of the panel at url with a connection pool sized for boot
// storms (hundreds of devices asking at once) and a 30 s bound per call.
func NewClient(url, key string) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &Client{URL: strings.TrimRight(url, "/"), Key: strings.TrimSpace(key),
		HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// Register presents the server key: the panel answers who this server is, where its work
// comes from and, for a CSR, its certificate. Each call queues the server's bootstrap.
func (c *Client) Register(ctx context.Context, r RegisterRequest) (*RegisterResponse, error) {
	var out RegisterResponse
	if err := c.do(ctx, http.MethodPost, PathRegister, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Certificate asks for a certificate for the CSR's key. Safe to repeat (each call signs a
// new certificate).
func (c *Client) Certificate(ctx context.Context, r CertificateRequest) (*CertificateResponse, error) {
	var out CertificateResponse
	if err := c.do(ctx, http.MethodPost, PathCertificate, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Stats reports the pool's health and capacity.
func (c *Client) Stats(ctx context.Context, r *StatsReport) error {
	return c.do(ctx, http.MethodPost, PathStats, r, nil)
}

// Boot asks the panel about a booting device.
func (c *Client) Boot(ctx context.Context, q Query) (*Info, error) {
	var info Info
	if err := c.do(ctx, http.MethodPost, PathBoot, q, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// Booted reports what devices were told to boot.
func (c *Client) Booted(ctx context.Context, r []Report) error {
	return c.do(ctx, http.MethodPost, PathBooted, r, nil)
}

// Exports lists the targets this server should export.
func (c *Client) Exports(ctx context.Context) ([]Export, error) {
	var out []Export
	err := c.do(ctx, http.MethodGet, PathExports, nil, &out)
	return out, err
}

// RecordClone tells the panel a device has a new clone (when no device workflow runs).
func (c *Client) RecordClone(ctx context.Context, r ProvisionRequest) error {
	return c.do(ctx, http.MethodPost, PathClone, r, nil)
}

// Server returns this server as the panel knows it (its iSCSI IP).
func (c *Client) Server(ctx context.Context) (*ServerInfo, error) {
	var s ServerInfo
	if err := c.do(ctx, http.MethodGet, PathServer, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// do sends in as JSON (nil: no body) and decodes the answer into out (nil: ignored).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	var raw []byte
	if in != nil {
		var err error
		if raw, err = json.Marshal(in); err != nil {
			return fmt.Errorf("panel %s: %w", path, err)
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+Prefix+path, body)
	if err != nil {
		return fmt.Errorf("panel %s: %w", path, err)
	}
	auth := "Bearer " + c.Key
	if c.Key == "" && c.Cert != nil {
		if cert, key := c.Cert(); cert != nil && key != nil {
			if auth, err = CertAuthorization(cert, key, method, Prefix+path, raw, time.Now()); err != nil {
				return fmt.Errorf("panel %s: %w", path, err)
			}
		}
	}
	req.Header.Set("Authorization", auth)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("panel %s: %w: %v", path, ErrUnreachable, err)
	}
	defer resp.Body.Close()
	// Boot answers of a large network run to a few hundred KiB; a runaway body stops here.
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("panel %s: %w: %v", path, ErrUnreachable, err)
	}
	if resp.StatusCode/100 != 2 {
		se := &StatusError{Path: path, Status: resp.StatusCode}
		if json.Unmarshal(b, &se.Body) != nil || se.Body.Error == "" {
			se.Body.Error = strings.TrimSpace(string(b))
		}
		if resp.StatusCode >= 500 {
			return fmt.Errorf("%w: %w", ErrUnreachable, se)
		}
		return se
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("panel %s: the answer is not what the agent expects: %w", path, err)
	}
	return nil
}

// RegisterTunnel presents a tunnel key (the client's Key) with the tunnel's CSR: the
// panel answers who the tunnel is, its certificate and the tunnel ports to open.
func (c *Client) RegisterTunnel(ctx context.Context, r TunnelRegisterRequest) (*TunnelRegisterResponse, error) {
	var out TunnelRegisterResponse
	if err := c.do(ctx, http.MethodPost, PathTunnelRegister, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
