package wire

import "encoding/json"

// Prefix is the path prefix of the panel's API v0.9.2; the agent endpoints live under it.
const Prefix = "/api/v0.9.2"

// The agent endpoints, under Prefix, authenticated with the server key
// (Authorization: Bearer <key>).
const (
	PathRegister    = "/agent/register.json"    // POST RegisterRequest -> RegisterResponse
	PathCertificate = "/agent/certificate.json" // POST CertificateRequest -> CertificateResponse
	PathStats       = "/agent/stats.json"       // POST StatsReport -> 204
	PathBoot        = "/agent/boot.json"        // POST Query -> Info
	PathBooted      = "/agent/booted.json"      // POST []Report -> 204
	PathExports     = "/agent/exports.json"     // GET -> []Export
	PathClone       = "/agent/clone.json"       // POST ProvisionRequest -> 204
	PathServer      = "/agent/server.json"      // GET -> ServerInfo
)

// ErrorBody is every error the panel sends: a message and, when one is to blame, the field.
type ErrorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// RegisterRequest is what an agent presents with its server key when it starts.
type RegisterRequest struct {
	Addr    string `json:"addr"`    // where the agent's endpoints are, as the panel should know it
	Version string `json:"version"` // the agent's build
	// ReplicationAddr is host:port where slaves reach this agent's replication endpoint;
	// "" means the server's Replication IP (or iSCSI IP), port DefaultReplicationPort.
	ReplicationAddr string `json:"replication_addr,omitempty"`
	// CSRPEM, when set, asks for a client certificate (a PEM "CERTIFICATE REQUEST" for
	// the agent's own key): at first start, and when the one it has nears its end.
	CSRPEM string `json:"csr_pem,omitempty"`
}

// RegisterResponse tells an agent who it is and where its work comes from.
type RegisterResponse struct {
	ServerID     uint          `json:"server_id"`
	Name         string        `json:"name"`
	NetworkID    uint          `json:"network_id"`
	Pool         string        `json:"pool"`
	TaskQueue    string        `json:"task_queue"`
	Temporal     Temporal      `json:"temporal"`
	StatsSeconds int           `json:"stats_seconds"`
	Operation    *OperationRef `json:"operation,omitempty"` // the server's bootstrap
	// PanelCAPEM is the panel's CA, which signs every agent certificate: an agent whose
	// certificate does not chain to it asks for a new one.
	PanelCAPEM string `json:"panel_ca_pem"`
	// CertPEM is the agent's new certificate, when the request carried a CSR.
	CertPEM string `json:"cert_pem,omitempty"`
	// Tunnel is where the agent dials its network's selected tunnel (host:port), "" while
	// there is none; the agent re-reads it (PathServer) to follow a change.
	Tunnel string `json:"tunnel,omitempty"`
}

// Temporal is the workflow engine's endpoint the panel hands its agents.
type Temporal struct {
	Address    string `json:"address"`
	Namespace  string `json:"namespace"`
	TLS        bool   `json:"tls"`
	ServerName string `json:"server_name,omitempty"`
	CAPEM      string `json:"ca_pem,omitempty"` // the CA of the frontend's certificate
}

// OperationRef names a long operation and how far it is, as every 202 answer does; its
// URL has the full record.
type OperationRef struct {
	ID      uint   `json:"id"`
	URL     string `json:"url"`
	State   string `json:"state"`
	Step    string `json:"step"`
	Percent int    `json:"percent"`
}

// CertificateRequest asks for a (new) agent certificate outside registration: a running
// agent renewing the one it has, or one whose certificate the panel's CA did not sign.
type CertificateRequest struct {
	CSRPEM string `json:"csr_pem"`
}

// CertificateResponse is a signed agent certificate and the CA that signed it.
type CertificateResponse struct {
	CertPEM    string `json:"cert_pem"`
	PanelCAPEM string `json:"panel_ca_pem"`
}

// PoolMissing is the pool health reported when the agent finds no pool of the server's name.
const PoolMissing = "MISSING"

// StatsReport is what an agent reports about its pool (the heartbeat, and the bootstrap's
// outcome).
type StatsReport struct {
	PoolHealth string          `json:"pool_health"` // ONLINE, DEGRADED, ..., or PoolMissing
	PoolSize   int64           `json:"pool_size"`   // bytes usable by datasets
	PoolFree   int64           `json:"pool_free"`   // bytes
	Detail     json.RawMessage `json:"detail"`      // the agent's full report, shown as stats
	// What the agent served, from its own metrics; absent (nil) in older agents' reports.
	ISCSISessions    *int64 `json:"iscsi_sessions,omitempty"`    // logged-in iSCSI sessions now
	BootRequests     *int64 `json:"boot_requests,omitempty"`     // boot requests answered since the agent started
	ReplicationBytes *int64 `json:"replication_bytes,omitempty"` // replication stream bytes sent to slaves since the agent started
	// Containers are the server's container units as systemd sees them now, one per unit
	// file the agent wrote. Absent (nil) when the agent cannot ask systemd (no systemd,
	// an older agent; null in JSON): the panel then judges no container; [] is "no
	// container units".
	Containers []ContainerUnit `json:"containers"`
}

// GiB is the unit of vol_size and of the pool figures the panel shows: one definition for
// the panel's checks, its pages and the agent's zvols.
const GiB = 1 << 30
