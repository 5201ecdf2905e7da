package workflows

import (
	"errors"

	"go.temporal.io/sdk/workflow"
)

// ReplicateInput asks for one dataset of the network's master (a volume or a group, with
// its snapshots up to Snapshot) to be present, verified by guid, on slave SlaveID. One
// workflow per (slave, dataset): ReplicateID(SlaveID, Kind, ObjectID). Publish fans out
// one per slave; a new volume, a slave joining and the reconcile schedule start the
// missing ones. The workflow reads everything else (the master, pools, the origin chain,
// the bandwidth limit) from the panel when it runs, so a start needs only this.
type ReplicateInput struct {
	NetworkID uint
	SlaveID   uint
	Kind      string // ReplicateVolume or ReplicateGroup
	ObjectID  uint
	// Snapshot is the newest snapshot wanted ("v3" for a group version); "" means the
	// newest the master holds.
	Snapshot string
	// OperationID is the operation that shows the transfer's progress, 0 when none.
	OperationID uint
}

// Kinds of replicated datasets.
const (
	ReplicateVolume = "volume"
	ReplicateGroup  = "group"
)

// ReplicateResult is what the slave holds at the end, verified against the master.
type ReplicateResult struct {
	Snapshot string
	GUID     string
	Bytes    int64 // bytes received over the wire in this run, all attempts together
}

// Replicate brings one dataset of the master to a slave (see ReplicateInput).
// (The transfer is being built: this placeholder fails so nothing claims a copy.)
func Replicate(ctx workflow.Context, in ReplicateInput) (*ReplicateResult, error) {
	return nil, errors.New("replication is not built yet")
}
