// Package tunnel wires `clusterducks tunnel`, the tunnel server: it presents its tunnel key
// to the panel, receives its identity, certificate, Temporal settings and the tunnel
// ports to open, accepts its network's agents and runs the tunnel worker on tunnel-<id>.
// The logic is activities/tunnel's.
package tunnel

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	tunnelacts "github.com/clusterducks/clusterducks/activities/tunnel"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"go.temporal.io/sdk/worker"
)

// Config is the tunnel's configuration, read once from its flags.
type Config struct {
	Panel   string // the panel's base URL
	Key     string // the tunnel key
	Listen  string // where agents dial in (host:port)
	Version string
	// PortsHost is the address tunnel ports bind to ("" for every address).
	PortsHost string
	StateDir  string // holds the tunnel's private key
	Log       *slog.Logger
}

// Run is `clusterducks tunnel --panel URL --key FILE`.
func Run(ctx context.Context, args []string, version string) error {
	fs := flag.NewFlagSet("tunnel", flag.ContinueOnError)
	panelURL := fs.String("panel", os.Getenv("CLUSTERDUCKS_PANEL"), "panel base URL (https://panel.example.com)")
	keyFile := fs.String("key", os.Getenv("CLUSTERDUCKS_KEY_FILE"), "file holding the tunnel key")
	listen := fs.String("listen", cmp.Or(os.Getenv("CLUSTERDUCKS_TUNNEL_LISTEN"), ":7443"), "address agents dial (host:port)")
	portsHost := fs.String("ports-host", os.Getenv("CLUSTERDUCKS_TUNNEL_PORTS_HOST"), "address the tunnel ports bind to (empty: every address)")
	state := fs.String("state", cmp.Or(os.Getenv("CLUSTERDUCKS_STATE"), "/var/lib/clusterducks-tunnel"), "directory of the tunnel's key")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *panelURL == "" || *keyFile == "" {
		return errors.New("tunnel: --panel URL and --key FILE are required")
	}
	if u, err := url.Parse(*panelURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("tunnel: --panel must be an http(s) URL, got %q", *panelURL)
	}
	key, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("tunnel: read key: %w", err)
	}
	cfg := Config{Panel: strings.TrimRight(*panelURL, "/"), Key: strings.TrimSpace(string(key)), Listen: *listen,
		Version: version, PortsHost: *portsHost, StateDir: *state, Log: slog.Default()}
	if cfg.Key == "" {
		return errors.New("tunnel: the key file is empty")
	}
	return Serve(ctx, cfg)
}

// Serve listens for agents, registers with the panel (retrying a panel that is not up
// yet), opens the tunnel ports it was given and runs the tunnel worker until ctx ends.
func Serve(ctx context.Context, cfg Config) error {
	log := cmp.Or(cfg.Log, slog.Default())
	signer, err := tunnelKey(cfg.StateDir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("tunnel: listen for agents on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	panel := wire.NewClient(cfg.Panel, cfg.Key)
	reg, err := register(ctx, panel, signer, ln.Addr().String(), cfg, log)
	if err != nil {
		return err
	}
	cert, err := wire.ParseCertificate(reg.CertPEM)
	if err != nil {
		return fmt.Errorf("tunnel: the panel's certificate: %w", err)
	}
	ca, err := wire.ParseCertificate(reg.PanelCAPEM)
	if err != nil {
		return fmt.Errorf("tunnel: the panel's CA: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	relay := &tunnelacts.Relay{Identity: wire.TunnelIdentity{NetworkID: reg.NetworkID, TunnelID: reg.TunnelID},
		Cert: tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: signer, Leaf: cert}, CA: roots,
		PortsHost: cfg.PortsHost, Panel: panelHostPort(cfg.Panel), Log: log}
	defer relay.Close()
	if err := relay.Sync(ctx, reg.Ports); err != nil {
		log.Warn("tunnel ports", "err", err)
	}
	tc := temporalclient.FromWire(reg.Temporal)
	if tc.Address == "" {
		return errors.New("tunnel: the panel has no workflow engine (TEMPORAL_ADDRESS is not set on the panel)")
	}
	tc.Address = temporalclient.Reachable(tc.Address, cfg.Panel)
	log.Info("tunnel registered", "tunnel", reg.TunnelID, "network", reg.NetworkID, "agents", ln.Addr().String(), "ports", len(reg.Ports), "temporal", tc.Address)
	c, err := tc.Dial(log, 10*time.Minute)
	if err != nil {
		return err
	}
	defer c.Close()
	w := worker.New(c, wire.TunnelQueue(reg.TunnelID), worker.Options{})
	w.RegisterActivity(&tunnelacts.Activities{Relay: relay})
	if err := w.Start(); err != nil {
		return fmt.Errorf("tunnel worker: %w", err)
	}
	defer w.Stop()
	return relay.ServeAgents(ctx, ln)
}

// register presents the tunnel key with a CSR until the panel answers; a key the panel
// does not know is fatal.
func register(ctx context.Context, panel *wire.Client, key crypto.Signer, agentAddr string, cfg Config, log *slog.Logger) (*wire.TunnelRegisterResponse, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "clusterducks tunnel"}}, key)
	if err != nil {
		return nil, fmt.Errorf("tunnel: certificate request: %w", err)
	}
	req := wire.TunnelRegisterRequest{AgentAddr: agentAddr, Version: cfg.Version,
		CSRPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))}
	wait := time.Second
	for {
		reg, err := panel.RegisterTunnel(ctx, req)
		if err == nil {
			return reg, nil
		}
		if wire.IsStatus(err, http.StatusUnauthorized) {
			return nil, fmt.Errorf("tunnel: the panel does not know this tunnel key: %w", err)
		}
		log.Warn("register with the panel", "panel", cfg.Panel, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// tunnelKey reads the tunnel's private key from dir, making it (mode 0600) at first start.
func tunnelKey(dir string) (crypto.Signer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tunnel: state directory: %w", err)
	}
	p := filepath.Join(dir, "tunnel.key")
	if b, err := os.ReadFile(p); err == nil {
		return wire.ParseKey(b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tunnel: read the key: %w", err)
	}
	k, keyPEM, err := wire.NewKey()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("tunnel: keep the key: %w", err)
	}
	return k, nil
}

// panelHostPort is the host:port of the panel's URL (its scheme's port when it names
// none), where agents' streams go; "" when the URL has no host.
func panelHostPort(panelURL string) string {
	u, err := url.Parse(panelURL)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}
