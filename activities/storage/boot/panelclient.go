package boot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// HTTPPanel is the panel's agent endpoints (api.BootAgents) seen from an agent,
// authenticated with the server's key.
type HTTPPanel struct {
	URL    string // the panel's base URL, e.g. https://panel.example.com
	Key    string // the server key
	Client *http.Client
}

// NewHTTPPanel returns a client with a connection pool sized for boot storms.
func NewHTTPPanel(url, key string) *HTTPPanel {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &HTTPPanel{URL: strings.TrimRight(url, "/"), Key: strings.TrimSpace(key), Client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (p *HTTPPanel) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.URL+"/api/v0.9.2/agent/"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.Key)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return fmt.Errorf("panel %s: %w: %v", path, ErrUnreachable, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	switch {
	case resp.StatusCode >= 500:
		return fmt.Errorf("panel %s: %w: %s", path, ErrUnreachable, resp.Status)
	case resp.StatusCode >= 300:
		return fmt.Errorf("panel %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("panel %s: %w", path, err)
	}
	return nil
}

// Boot asks the panel about a booting device.
func (p *HTTPPanel) Boot(ctx context.Context, q Query) (*Info, error) {
	var info Info
	if err := p.do(ctx, http.MethodPost, "boot.json", q, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// Booted reports what devices were told to boot.
func (p *HTTPPanel) Booted(ctx context.Context, r []Report) error {
	return p.do(ctx, http.MethodPost, "booted.json", r, nil)
}

// Exports lists the targets this server should export.
func (p *HTTPPanel) Exports(ctx context.Context, _ uint) ([]Export, error) {
	var out []Export
	err := p.do(ctx, http.MethodGet, "exports.json", nil, &out)
	return out, err
}

// RecordClone tells the panel a device has a new clone (LocalProvisioner's Record, when
// no device workflow runs).
func (p *HTTPPanel) RecordClone(ctx context.Context, r ProvisionRequest) error {
	return p.do(ctx, http.MethodPost, "clone.json", r, nil)
}

// Self returns this server as the panel knows it (its iSCSI IP).
func (p *HTTPPanel) Self(ctx context.Context) (*ServerInfo, error) {
	var s ServerInfo
	if err := p.do(ctx, http.MethodGet, "server.json", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}
