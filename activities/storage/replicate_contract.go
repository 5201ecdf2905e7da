package storage

import (
	"context"
	"errors"
)

// The part of the replication contract the triggers and the reconcile use before the
// transfer (built beside this file) lands: the lead reconciles this file with it.

// SnapshotsInput names a dataset whose snapshots are asked for.
type SnapshotsInput struct {
	Dataset string
}

// SnapshotInfo is one snapshot of a dataset with its guid (what replication compares).
type SnapshotInfo struct {
	Name string // the part after "@"
	GUID string
}

// SnapshotsResult lists a dataset's snapshots, oldest first; Missing when the dataset
// does not exist.
type SnapshotsResult struct {
	Snapshots []SnapshotInfo
	Missing   bool
}

// errSnapshotsNotBuilt: the agent of this build cannot list snapshots yet.
var errSnapshotsNotBuilt = errors.New("listing snapshots is not built in this agent yet")

// Snapshots lists a dataset's snapshots with their guids. (Contract stub: the transfer's
// branch implements it; until then it fails and the reconcile skips the comparison.)
func (a *Activities) Snapshots(ctx context.Context, in SnapshotsInput) (*SnapshotsResult, error) {
	return nil, errSnapshotsNotBuilt
}
