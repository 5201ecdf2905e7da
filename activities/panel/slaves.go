package panel

import (
	"context"
	"errors"

	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/temporal"
)

// QueueReplicationInput asks for a volume or group (Kind "" : everything the network
// holds) to be brought to one slave (SlaveID) or every slave (0).
type QueueReplicationInput = models.ReplicationRequest

// QueueReplicationResult lists the operations recorded (pairs already under way get none).
type QueueReplicationResult struct {
	OperationIDs []uint
}

// QueueReplication records a replicate operation per (slave, dataset) missing one and
// starts its workflow (replicate-<slave>-<kind>-<id>; a run under way is joined). Safe
// to repeat: a pair whose operation is queued or running is skipped.
func (a *Activities) QueueReplication(ctx context.Context, in QueueReplicationInput) (*QueueReplicationResult, error) {
	if a.Store == nil {
		return nil, errors.New("the panel activities have no store to launch operations with")
	}
	ops, err := a.Store.QueueReplication(ctx, in)
	if err != nil {
		return nil, err
	}
	res := &QueueReplicationResult{}
	for _, op := range ops {
		res.OperationIDs = append(res.OperationIDs, op.ID)
	}
	return res, nil
}

// SwitchMasterInput names the server that becomes its network's master.
type SwitchMasterInput struct {
	ServerID uint
}

// SwitchMasterResult lists the network's other servers (now its slaves).
type SwitchMasterResult struct {
	Slaves []Slave
}

// TypePromoteRefused: the server lacks a verified copy of something its network uses.
const TypePromoteRefused = "PromoteRefused"

// SwitchMaster switches the network's master to the server, without touching a dataset.
// A server lacking a copy is refused (non-retryable TypePromoteRefused, with what is
// missing). Safe to repeat.
func (a *Activities) SwitchMaster(ctx context.Context, in SwitchMasterInput) (*SwitchMasterResult, error) {
	err := models.SwitchMaster(ctx, a.DB, in.ServerID)
	var conflict *models.ConflictError
	if errors.As(err, &conflict) {
		return nil, temporal.NewNonRetryableApplicationError(conflict.Msg, TypePromoteRefused, err)
	}
	if err != nil {
		return nil, err
	}
	peers, err := models.PeersOf(ctx, a.DB, in.ServerID)
	if err != nil {
		return nil, err
	}
	res := &SwitchMasterResult{Slaves: []Slave{}}
	for _, p := range peers {
		res.Slaves = append(res.Slaves, Slave{ID: p.ID, Pool: p.Pool})
	}
	return res, nil
}

// ReplicaTargetsInput is empty: the reconcile looks at every network.
type ReplicaTargetsInput struct{}

// ReplicaTargetsResult lists each (slave, dataset) pair slaves should hold.
type ReplicaTargetsResult struct {
	Targets []models.ReplicaTarget
}

// ReplicaTargets lists, per network with a master and slaves, what each slave should hold.
func (a *Activities) ReplicaTargets(ctx context.Context, _ ReplicaTargetsInput) (*ReplicaTargetsResult, error) {
	ts, err := models.ReplicaTargets(ctx, a.DB)
	if err != nil {
		return nil, err
	}
	return &ReplicaTargetsResult{Targets: ts}, nil
}

// SlavesOfInput names a volume, group or vdisk (Kind "volume", "group" or "vdisk").
type SlavesOfInput struct {
	Kind     string
	ObjectID uint
}

// Slave is a slave server and its pool.
type Slave struct {
	ID   uint
	Pool string
}

// SlavesOfResult lists the slaves of the object's network.
type SlavesOfResult struct {
	Slaves []Slave
}

// SlavesOf lists the slaves of the network a volume or group belongs to, or the servers
// holding a vdisk's backups (where their copies are).
func (a *Activities) SlavesOf(ctx context.Context, in SlavesOfInput) (*SlavesOfResult, error) {
	srvs, err := models.SlavesOf(ctx, a.DB, in.Kind, in.ObjectID)
	if err != nil {
		return nil, err
	}
	res := &SlavesOfResult{}
	for _, s := range srvs {
		res.Slaves = append(res.Slaves, Slave{ID: s.ID, Pool: s.Pool})
	}
	return res, nil
}

// RecordVerifiedInput is what a comparison by guid found slave ServerID to hold of a
// volume or group: the snapshots it shares with the master (same guid).
type RecordVerifiedInput struct {
	ServerID uint
	Kind     string
	ObjectID uint
	Both     []models.SnapshotGUID
}

// RecordVerifiedResult is empty.
type RecordVerifiedResult struct{}

// RecordVerified records the verified copies a reconcile found (models.RecordVerified).
// Safe to repeat.
func (a *Activities) RecordVerified(ctx context.Context, in RecordVerifiedInput) (*RecordVerifiedResult, error) {
	return &RecordVerifiedResult{}, models.RecordVerified(ctx, a.DB, in.ServerID, in.Kind, in.ObjectID, in.Both)
}
