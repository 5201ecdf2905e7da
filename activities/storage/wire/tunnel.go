package wire

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
)

// The tunnel's endpoint on the panel, under Prefix, authenticated with the tunnel key
// (Authorization: Bearer <key>), as agents authenticate with their server key.
const PathTunnelRegister = "/tunnel/register.json" // POST TunnelRegisterRequest -> TunnelRegisterResponse

// TunnelRegisterRequest is what a tunnel process presents with its key when it starts.
type TunnelRegisterRequest struct {
	// AgentAddr is where the tunnel listens for agents (host:port); an unspecified host
	// means the tunnel's IP as the panel knows it.
	AgentAddr string `json:"agent_addr"`
	Version   string `json:"version"`
	// CSRPEM asks for the tunnel's certificate (a PEM "CERTIFICATE REQUEST" for its key):
	// it serves agents and the panel with it.
	CSRPEM string `json:"csr_pem"`
}

// TunnelRegisterResponse tells a tunnel who it is, where its work comes from and which
// tunnel ports to open.
type TunnelRegisterResponse struct {
	TunnelID   uint         `json:"tunnel_id"`
	NetworkID  uint         `json:"network_id"`
	Alias      string       `json:"alias"`
	TaskQueue  string       `json:"task_queue"`
	Temporal   Temporal     `json:"temporal"`
	PanelCAPEM string       `json:"panel_ca_pem"`
	CertPEM    string       `json:"cert_pem"`
	Ports      []TunnelPort `json:"ports"`
}

// TunnelPort is a server's Tunnel Port: the port the tunnel opens for the panel to reach
// that server's agent API.
type TunnelPort struct {
	ServerID uint `json:"server_id"`
	Port     int  `json:"port"`
}

// TunnelHello is the first line (JSON) an agent writes on its TLS connection to the
// tunnel, before the multiplexed session starts: the server it speaks for, which must be
// the one its certificate names.
type TunnelHello struct {
	ServerID uint `json:"server_id"`
}

// TunnelWelcome is the tunnel's one-line answer to a TunnelHello; Error set means refused
// (the connection then closes).
type TunnelWelcome struct {
	Error string `json:"error,omitempty"`
}

// The agent API, served by each agent on its tunnel session only (never on a port of its
// own): the panel reaches it through the server's Tunnel Port.
const (
	AgentPathStats  = "/stats.json"  // GET -> StatsReport (the pool's health and capacity)
	AgentPathHealth = "/health.json" // GET -> AgentHealth
)

// AgentHealth is the agent's answer to a health check.
type AgentHealth struct {
	ServerID uint   `json:"server_id"`
	Version  string `json:"version"`
}

// TunnelIdentity is whom a tunnel certificate speaks for: a tunnel server of a network.
type TunnelIdentity struct {
	NetworkID uint
	TunnelID  uint
}

// CommonName is the certificate's subject CN, tunnel-<id>.
func (id TunnelIdentity) CommonName() string { return fmt.Sprintf("tunnel-%d", id.TunnelID) }

// URI is the certificate's URI SAN, clusterducks:network/<n>/tunnel/<t>.
func (id TunnelIdentity) URI() *url.URL {
	return &url.URL{Scheme: agentScheme, Opaque: fmt.Sprintf("network/%d/tunnel/%d", id.NetworkID, id.TunnelID)}
}

// DNSName is the certificate's DNS SAN: the TLS server name agents and the panel verify
// when they dial the tunnel; it resolves nowhere.
func (id TunnelIdentity) DNSName() string {
	return fmt.Sprintf("tunnel-%d.network-%d.clusterducks.internal", id.TunnelID, id.NetworkID)
}

// TunnelIdentityOf reads the tunnel identity from a certificate's URI SAN.
func TunnelIdentityOf(cert *x509.Certificate) (TunnelIdentity, error) {
	for _, u := range cert.URIs {
		var id TunnelIdentity
		var rest string
		n, _ := fmt.Sscanf(u.Opaque, "network/%d/tunnel/%d%s", &id.NetworkID, &id.TunnelID, &rest)
		if u.Scheme == agentScheme && n == 2 && id.TunnelID != 0 && id.URI().String() == u.String() {
			return id, nil
		}
	}
	return TunnelIdentity{}, errors.New("certificate names no clusterducks tunnel")
}

// PanelURI is the URI SAN of the panel's client certificate, the only one a tunnel port
// accepts.
const PanelURI = agentScheme + ":panel"

// PanelDNSName is the panel client certificate's DNS SAN.
const PanelDNSName = "panel.clusterducks.internal"

// IsPanel reports whether a certificate names the panel.
func IsPanel(cert *x509.Certificate) bool {
	for _, u := range cert.URIs {
		if u.String() == PanelURI {
			return true
		}
	}
	return false
}

// ReadLine reads one line (the hello or the welcome) byte by byte, so that nothing of the
// session that follows is consumed; at most 1 KiB.
func ReadLine(r io.Reader) ([]byte, error) {
	var line []byte
	b := make([]byte, 1)
	for len(line) < 1024 {
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		if b[0] == '\n' {
			return line, nil
		}
		line = append(line, b[0])
	}
	return nil, errors.New("line longer than 1 KiB")
}
