package wire

import (
	"net/http"
	"regexp"
)

// The agent API's container endpoints (served on the tunnel session, like AgentPathStats).
const (
	// PUT, body a root file system tarball (optionally gzip-compressed), query
	// pool, id, version, sha256 (hex) and limit (bytes) -> RootFSResult. The agent
	// verifies the checksum before it takes the version's snapshot; on a mismatch it
	// leaves nothing (409 with ErrorBody.Field "sha256").
	AgentPathCTemplateRootFS = "/ctemplates/rootfs"
	// GET, query id and lines -> ContainerStatus.
	AgentPathContainerStatus = "/containers/status"
)

// RootFSResult is a ctemplate version the agent made from an upload.
type RootFSResult struct {
	Dataset  string `json:"dataset"`
	Snapshot string `json:"snapshot"`
	Bytes    int64  `json:"bytes"`
	SHA256   string `json:"sha256"`
}

// ContainerStatus is a container's systemd unit as systemd reports it, with the last
// lines of its journal.
type ContainerStatus struct {
	Unit        string   `json:"unit"`
	LoadState   string   `json:"load_state"`
	ActiveState string   `json:"active_state"`
	SubState    string   `json:"sub_state"`
	Since       string   `json:"since,omitempty"` // RFC 3339, when it entered its active state
	MainPID     uint32   `json:"main_pid,omitempty"`
	Enabled     string   `json:"enabled,omitempty"` // the unit file's state: enabled, disabled
	MemoryBytes uint64   `json:"memory_bytes"`
	MemoryMax   uint64   `json:"memory_max"` // 0: no limit
	CPUNanos    uint64   `json:"cpu_nanos"`
	CPUQuotaUS  uint64   `json:"cpu_quota_us_per_s"` // 0: no quota
	Tasks       uint64   `json:"tasks"`
	TasksMax    uint64   `json:"tasks_max"` // 0: no limit
	Journal     []string `json:"journal"`
}

// ContainerUnit is one container's unit in a stats report: enough for the panel's health
// check to tell a container that failed or ended from one that runs.
type ContainerUnit struct {
	ID          uint   `json:"id"`
	ActiveState string `json:"active_state"` // active, inactive, failed, activating, ...
	SubState    string `json:"sub_state"`
	// Result is the service's result when it last ended: success, exit-code, signal, ...
	Result string `json:"result,omitempty"`
}

// suiteName is what a debootstrap suite may be called: debootstrap also takes it as the
// name of a script of its own.
var suiteName = regexp.MustCompile(`^[a-z][a-z0-9.-]{0,39}$`)

// ValidSuite reports whether s can name the suite a ctemplate is debootstrapped from
// (bookworm, trixie, noble, ...): the panel checks it before it asks, the agent again.
func ValidSuite(s string) bool { return suiteName.MatchString(s) }

// AgentError is an agent's answer other than 200, as the panel's client reports it.
type AgentError struct {
	Status int
	Path   string
	Body   ErrorBody
}

func (e *AgentError) Error() string {
	return "agent " + e.Path + ": " + http.StatusText(e.Status) + ": " + e.Body.Error
}
