package wire

import "fmt"

// Replication between agents: a slave pulls datasets from its network's master over
// HTTPS with mutual TLS, both sides presenting the certificates the panel signed (their
// AgentIdentity). The master only sends; datasets are named relative to the pool, since
// the master's and the slave's pools may have different names.

// DefaultReplicationPort is the port of the master's replication endpoint.
const DefaultReplicationPort = 8082

// The replication endpoints, served by every agent on its replication address.
const (
	PathReplicationSend = "/replication/v1/send" // POST SendRequest -> the zfs send stream (application/octet-stream)
	PathReplicationAck  = "/replication/v1/ack"  // POST AckRequest -> 204: the slave holds the snapshot, verified
)

// ReplicatedRoots are the file systems (relative to the pool) whose datasets a master
// sends: nothing outside them ever leaves a server.
// vdisks/ moves a device's data disk to the server it boots from next, and backs it up
// on the other servers; iscsi/ctemplates/ brings container root file systems to every
// server of the network.
var ReplicatedRoots = []string{"iscsi/volumes/", "iscsi/groups/", "vdisks/", "iscsi/ctemplates/"}

// SendRequest asks the master for one dataset's stream: the rest of a cut stream
// (Token), or Snapshot incremental from the newest of the master's snapshots whose guid
// the slave holds (Have; the group's origin snapshot counts), or in full when none.
type SendRequest struct {
	Dataset  string   `json:"dataset"`  // relative to the pool: iscsi/groups/7
	Snapshot string   `json:"snapshot"` // v3
	Have     []string `json:"have"`     // guids of the slave's snapshots of it (or of its origin)
	Token    string   `json:"token,omitempty"`
	// BytesPerSecond is the slave's bandwidth limit (0: none). Over ProtoKernelStream the
	// master paces the connection to it (the slave's agent does not read the stream).
	BytesPerSecond int64 `json:"bytes_per_second,omitempty"`
}

// ProtoKernelStream is the ALPN protocol of a replication connection whose answers come
// through kernel TLS: the slave sends its requests (HTTP/1.1) through TLS as usual; the
// master answers each with a 4-byte big-endian length and an HTTP/1.1 response head, both
// sealed by its kernel. A 200's stream follows its head (zfs send's pipe spliced into the
// socket) and ends where zfs receive, reading the socket opened by the slave's kernel,
// finds its end; any other answer carries its Content-Length. After a stream that ended
// well the connection carries the acknowledgement (PathReplicationAck); after a failed
// one it is closed. A master without kernel TLS does not offer the protocol, and the
// slave then uses plain HTTPS.
const ProtoKernelStream = "clusterducks-ktls/1"

// HeaderDataset names, on a send request, the dataset its body asks for. It comes with the
// request's headers, before the body: the master lists the dataset while the slave still
// lists its own copy (the body's Have), so the two listings overlap. The body decides;
// a master that does not know the header reads the body alone.
const HeaderDataset = "X-Clusterducks-Dataset"

// HeaderSnapshot names, beside HeaderDataset, the snapshot the request asks for. A master
// that remembers the slave's last acknowledged snapshot of the dataset starts the
// incremental from it (its hold and zfs send) while the body is on its way; the body
// still decides, and a stream it does not ask for is dropped unsent.
const HeaderSnapshot = "X-Clusterducks-Snapshot"

// Headers of a send's answer: what the stream holds, so the slave can check it and show
// progress.
const (
	HeaderFrom = "X-Clusterducks-From" // the base snapshot (full name relative to the pool), "" for a full stream
	HeaderGUID = "X-Clusterducks-Guid" // the guid of the snapshot the stream ends at
	HeaderSize = "X-Clusterducks-Size" // the estimated stream size in bytes
)

// AckRequest is a slave's report that it holds Dataset's snapshot GUID, verified: the
// master moves the slave's hold to it (its next incremental base).
type AckRequest struct {
	Dataset string `json:"dataset"`
	GUID    string `json:"guid"`
}

// Error codes of the replication endpoints (ReplicationError.Code).
const (
	CodeBusy       = "busy"        // 503: the master sends to as many slaves as it may; ask again later
	CodeStaleToken = "stale_token" // 410: the token's snapshot is gone: abort the partial receive, start again from a common snapshot
	CodeNotFound   = "not_found"   // 404: no such dataset or snapshot on the master
	CodeForbidden  = "forbidden"   // 403: not a peer of this network, or not a replicated dataset
	CodeBadRequest = "bad_request" // 400
	CodeFailed     = "failed"      // 500
	// 421, over ProtoKernelStream only: this stream is longer than kernel TLS may seal with
	// one key (the kernel does not update keys); ask for it over HTTPS.
	CodeUseHTTPS = "use_https"
)

// ReplicationError is every error the replication endpoints answer.
type ReplicationError struct {
	Code    string `json:"code"`
	Message string `json:"error"`
}

func (e *ReplicationError) Error() string { return fmt.Sprintf("master: %s: %s", e.Code, e.Message) }

// HoldTag is the tag of the master's hold on slave slaveID's incremental base.
func HoldTag(slaveID uint) string { return fmt.Sprintf("clusterducks-slave-%d", slaveID) }
