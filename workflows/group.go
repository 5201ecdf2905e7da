package workflows

import (
	"fmt"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/workflow"
)

// GroupCreateInput clones volume VolumeID into group GroupID on the network's master.
type GroupCreateInput struct {
	OperationID uint
	GroupID     uint
	VolumeID    uint
	ServerID    uint
	Pool        string
}

// firstStep is GroupCreate's first step (begin).
func (in GroupCreateInput) firstStep() Step {
	return Step{Step: "clone", Percent: 10, Message: fmt.Sprintf("cloning volume %d into %s", in.VolumeID, storage.GroupDataset(in.Pool, in.GroupID))}
}

// GroupCreateResult names the group's dataset and its origin.
type GroupCreateResult struct {
	Dataset string
	Origin  string
}

// GroupCreate snapshots the volume (@group-<gid>) and clones it into
// <pool>/iscsi/groups/<gid>, where the OS is then installed. Cancelled after the clone
// exists (the group was deleted while pending), it moves the clone into the erator.
func GroupCreate(ctx workflow.Context, in GroupCreateInput) (*GroupCreateResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	ds := storage.GroupDataset(in.Pool, in.GroupID)
	if err := t.begin(in.firstStep()); err != nil {
		return nil, err
	}
	var res storage.CloneResult
	err = create(ctx, in.ServerID, sa.CloneVolume, storage.CloneInput{Pool: in.Pool, VolumeID: in.VolumeID, GroupID: in.GroupID},
		&res, storage.TrashInput{Pool: in.Pool, Dataset: ds, Kind: "group", ID: in.GroupID})
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	if err := t.succeed(models.Outcome{}, "cloned %s into %s", res.Origin, res.Dataset); err != nil {
		return nil, err
	}
	return &GroupCreateResult{Dataset: res.Dataset, Origin: res.Origin}, nil
}

// GroupPublishInput publishes version Number (row VersionID) of group GroupID.
type GroupPublishInput struct {
	OperationID uint
	GroupID     uint
	VersionID   uint
	Number      int
	ServerID    uint
	Pool        string
}

// firstStep is GroupPublish's first step (begin).
func (in GroupPublishInput) firstStep() Step {
	return Step{Step: "snapshot", Percent: 10, Message: fmt.Sprintf("snapshotting %s@%s",
		storage.GroupDataset(in.Pool, in.GroupID), storage.VersionSnapshot(in.Number))}
}

// GroupPublishResult is the version's snapshot and its guid.
type GroupPublishResult struct {
	Snapshot string
	GUID     string
}

// GroupPublish snapshots the group head as @v<N> and records the version with the
// snapshot's guid (replication compares guids to know a server holds the version), then
// queues the version's replication to every slave.
func GroupPublish(ctx workflow.Context, in GroupPublishInput) (*GroupPublishResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	ds := storage.GroupDataset(in.Pool, in.GroupID)
	if since(ctx, VersionPublishStep) {
		if err := t.begin(in.firstStep()); err != nil {
			return nil, err
		}
	}
	var res storage.SnapshotResult
	err = workflow.ExecuteActivity(serverCtx(ctx, in.ServerID), sa.Snapshot,
		storage.SnapshotInput{Dataset: ds, Name: storage.VersionSnapshot(in.Number)}).Get(ctx, &res)
	if err != nil {
		return nil, t.fail(models.Outcome{VersionID: in.VersionID}, err)
	}
	if err := t.succeed(models.Outcome{VersionID: in.VersionID, GUID: res.GUID}, "published %s (guid %s)", res.Snapshot, res.GUID); err != nil {
		return nil, err
	}
	if since(ctx, VersionPublishReplicate) {
		// The version is recorded ready: every slave can now fetch it.
		replicateTo(ctx, panel.QueueReplicationInput{Kind: ReplicateGroup, ObjectID: in.GroupID, Snapshot: storage.VersionSnapshot(in.Number)})
	}
	return &GroupPublishResult{Snapshot: res.Snapshot, GUID: res.GUID}, nil
}
