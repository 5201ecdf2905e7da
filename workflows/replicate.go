package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/temporal"
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
	Kind      string // ReplicateVolume, ReplicateGroup, ReplicateVDisk or ReplicateCTemplate
	ObjectID  uint
	// Snapshot is the newest snapshot wanted ("v3" for a group version); "" means the
	// newest the master holds.
	Snapshot string
	// OperationID is the operation that shows the transfer's progress, 0 when none.
	OperationID uint
}

// Kinds of replicated datasets.
const (
	ReplicateVolume = models.ReplicateVolume
	ReplicateGroup  = models.ReplicateGroup
	// ReplicateVDisk backs a vdisk up from the server it lives on (the plan's master).
	ReplicateVDisk = models.ReplicateVDisk
	// ReplicateCTemplate copies a ctemplate's versions from its server (the plan's master)
	// to another server of its network.
	ReplicateCTemplate = models.ReplicateCTemplate
)

// ReplicateResult is what the slave holds at the end, verified against the master.
type ReplicateResult struct {
	Snapshot string
	GUID     string
	Bytes    int64 // bytes received over the wire in this run, all attempts together
	// Versions are the group versions recorded as copies on the slave (their ids).
	Versions []uint
}

// Timeouts of a transfer: it may run for hours at a satellite's bandwidth; the agent
// heartbeats every few seconds, and cuts a stream stalled for replicateStall itself.
const (
	replicateRun       = 24 * time.Hour
	replicateHeartbeat = 30 * time.Second
	replicateStall     = 60 // seconds
	// watchHeartbeat bounds the progress watcher's silence (it beats every 2 s).
	watchHeartbeat = 20 * time.Second
)

// replicateCtx runs a transfer on the slave: retried without end (from its resume token)
// while the master is busy, unreachable or the stream is cut; a refusal, a guid mismatch
// or a full pool stop it.
func replicateCtx(ctx workflow.Context, slaveID uint) workflow.Context {
	o := workflow.GetActivityOptions(serverCtx(ctx, slaveID))
	o.StartToCloseTimeout = replicateRun
	o.HeartbeatTimeout = replicateHeartbeat
	o.ScheduleToCloseTimeout = 0
	o.RetryPolicy.NonRetryableErrorTypes = append(o.RetryPolicy.NonRetryableErrorTypes,
		storage.TypeGUIDMismatch, storage.TypeReplicationRefused, storage.TypeBadInput)
	return workflow.WithActivityOptions(ctx, o)
}

// Replicate brings one dataset of the master to a slave (see ReplicateInput): a group's
// origin volume snapshot first (so the slave's group is a clone of it), then the dataset,
// then it records each group version the slave holds with the master's guid.
func Replicate(ctx workflow.Context, in ReplicateInput) (*ReplicateResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	res, err := replicate(ctx, t, in)
	if err == nil && (in.Kind == ReplicateGroup || in.Kind == ReplicateCTemplate) && since(ctx, VersionReplicateCatchUp) {
		// A publish that came while this run was busy joined it (one run per slave and
		// dataset): before ending, catch up with the newest version the master has now.
		for range 5 {
			var plan panel.ReplicationPlanResult
			if err = workflow.ExecuteActivity(panelCtx(ctx), pa.ReplicationPlan, panel.ReplicationPlanInput{NetworkID: in.NetworkID,
				SlaveID: in.SlaveID, Kind: in.Kind, ObjectID: in.ObjectID}).Get(ctx, &plan); err != nil || len(plan.Datasets) == 0 {
				break
			}
			newest := plan.Datasets[len(plan.Datasets)-1].Snapshot
			if newest == "" || newest == res.Snapshot {
				break
			}
			next := in
			next.Snapshot = newest
			more, err2 := replicate(ctx, t, next)
			if err2 != nil {
				err = err2
				break
			}
			more.Bytes += res.Bytes
			// Each run lists every version up to its snapshot: keep each once.
			for _, v := range res.Versions {
				if !slices.Contains(more.Versions, v) {
					more.Versions = append(more.Versions, v)
				}
			}
			slices.Sort(more.Versions)
			res = more
		}
	}
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	return res, t.succeed(models.Outcome{Bytes: res.Bytes}, "%s %d is on server %d up to %s (%d bytes received)", in.Kind, in.ObjectID, in.SlaveID, res.Snapshot, res.Bytes)
}

// masterGUID asks the master for the guid of dataset@snap ("" its newest snapshot, whose
// name it returns too).
func masterGUID(ctx workflow.Context, plan *panel.ReplicationPlanResult, dataset, snap string) (string, string, error) {
	var ms storage.SnapshotsResult
	if err := workflow.ExecuteActivity(serverCtx(ctx, plan.MasterID), sa.Snapshots,
		storage.SnapshotsInput{Pool: plan.MasterPool, Dataset: dataset}).Get(ctx, &ms); err != nil {
		return "", "", err
	}
	guid := ""
	for _, s := range ms.Snapshots {
		if snap == "" || s.Name == snap {
			guid = s.GUID
			if snap != "" {
				break
			}
		}
	}
	if snap == "" && len(ms.Snapshots) > 0 {
		snap = ms.Snapshots[len(ms.Snapshots)-1].Name
	}
	if guid == "" {
		return "", "", temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("the master has no snapshot %q of %s", snap, dataset), "NotFound", nil)
	}
	return guid, snap, nil
}

func replicate(ctx workflow.Context, t *tracker, in ReplicateInput) (*ReplicateResult, error) {
	if err := t.step("plan", 0, "reading the replication plan"); err != nil {
		return nil, err
	}
	var plan panel.ReplicationPlanResult
	if err := workflow.ExecuteActivity(panelCtx(ctx), pa.ReplicationPlan, panel.ReplicationPlanInput{NetworkID: in.NetworkID,
		SlaveID: in.SlaveID, Kind: in.Kind, ObjectID: in.ObjectID, Snapshot: in.Snapshot}).Get(ctx, &plan); err != nil {
		return nil, err
	}
	master := wire.AgentIdentity{NetworkID: in.NetworkID, ServerID: plan.MasterID}
	res := &ReplicateResult{Versions: []uint{}}
	start := workflow.Now(ctx)
	skipOrigin := false
	var last storage.ReplicateResult // the dataset's own (the plan's last) transfer
	if len(plan.Datasets) > 1 && since(ctx, VersionReplicateSkipOrigin) {
		// A slave that holds the group (a clone, so its origin too) needs only the group's
		// increment: the origin's turn would cost a listing on the master, a TLS handshake
		// and an acknowledgement for nothing, at every publish.
		var ss storage.SnapshotsResult
		if err := workflow.ExecuteActivity(serverCtx(ctx, in.SlaveID), sa.Snapshots,
			storage.SnapshotsInput{Pool: plan.SlavePool, Dataset: plan.Datasets[len(plan.Datasets)-1].Dataset}).Get(ctx, &ss); err != nil {
			return nil, err
		}
		skipOrigin = ss.Exists
	}
	for i, d := range plan.Datasets {
		if skipOrigin && i < len(plan.Datasets)-1 {
			continue
		}
		guid, snap := d.GUID, d.Snapshot
		// The panel does not record volume snapshots' guids. A named snapshot's comes with
		// the master's answer to the slave (one zfs listing and one activity fewer per
		// transfer); the newest is asked of the master first.
		fromAnswer := guid == "" && snap != "" && since(ctx, VersionReplicateMasterGUID)
		if guid == "" && !fromAnswer {
			var err error
			if guid, snap, err = masterGUID(ctx, &plan, d.Dataset, snap); err != nil {
				return nil, err
			}
		}
		pct := 5 + 90*i/len(plan.Datasets)
		if err := t.step("transfer", pct, "receiving %s@%s from server %d", d.Dataset, snap, plan.MasterID); err != nil {
			return nil, err
		}
		var r storage.ReplicateResult
		stop := watchTransfer(ctx, t, fmt.Sprintf("%s@%s from server %d", d.Dataset, snap, plan.MasterID), pct, 5+90*(i+1)/len(plan.Datasets))
		rin := storage.ReplicateInput{
			MasterAddr: plan.MasterAddr, Master: master, Pool: plan.SlavePool, Dataset: d.Dataset, Snapshot: snap,
			GUID: guid, Origin: d.Origin, BytesPerSecond: plan.BytesPerSecond, StallSeconds: replicateStall,
		}
		err := workflow.ExecuteActivity(replicateCtx(ctx, in.SlaveID), sa.Replicate, rin).Get(ctx, &r)
		var ae *temporal.ApplicationError
		if rin.GUID == "" && errors.As(err, &ae) && ae.Type() == storage.TypeBadInput {
			// An agent older than the panel wants the guid from the workflow.
			if rin.GUID, _, err = masterGUID(ctx, &plan, d.Dataset, snap); err == nil {
				err = workflow.ExecuteActivity(replicateCtx(ctx, in.SlaveID), sa.Replicate, rin).Get(ctx, &r)
			}
		}
		stop()
		if err != nil {
			return nil, err
		}
		last = r
		if d.Kind == ReplicateVolume && since(ctx, VersionReplicateVolumeCopy) {
			// The slave ended with the master's guid: its copy of the volume is verified.
			if err := workflow.ExecuteActivity(panelCtx(ctx), pa.RecordVerified, panel.RecordVerifiedInput{ServerID: in.SlaveID,
				Kind: ReplicateVolume, ObjectID: d.ObjectID, Both: []models.SnapshotGUID{{Name: r.Snapshot, GUID: r.GUID}}}).Get(ctx, nil); err != nil {
				return nil, err
			}
		}
		res.Bytes += r.Bytes
		res.Snapshot, res.GUID = r.Snapshot, r.GUID
		secs := workflow.Now(ctx).Sub(start).Seconds()
		rate := 0.0
		if secs > 0 {
			rate = float64(res.Bytes) / secs
		}
		if err := t.step("transfer", 5+90*(i+1)/len(plan.Datasets), "%s@%s verified (guid %s); %d bytes received, %.0f bytes/s",
			d.Dataset, snap, r.GUID, res.Bytes, rate); err != nil {
			return nil, err
		}
	}
	if in.Kind == ReplicateCTemplate {
		return res, recordCTemplateCopies(ctx, t, in, &plan)
	}
	if len(plan.Versions) == 0 {
		return res, nil
	}
	// A version is on the slave once its guid there is the master's: read them back.
	group := plan.Datasets[len(plan.Datasets)-1]
	var ss storage.SnapshotsResult
	if since(ctx, VersionReplicateListed) && last.Snapshots != nil {
		// The slave's listing after the transfer, which verified the guid, has them.
		ss.Snapshots = last.Snapshots
	} else if err := workflow.ExecuteActivity(serverCtx(ctx, in.SlaveID), sa.Snapshots,
		storage.SnapshotsInput{Pool: plan.SlavePool, Dataset: group.Dataset}).Get(ctx, &ss); err != nil {
		return nil, err
	}
	if err := t.step("verify", 97, "recording the versions server %d holds", in.SlaveID); err != nil {
		return nil, err
	}
	for _, v := range plan.Versions {
		for _, s := range ss.Snapshots {
			if s.Name != storage.VersionSnapshot(v.Number) || s.GUID != v.GUID {
				continue
			}
			if err := workflow.ExecuteActivity(panelCtx(ctx), pa.RecordVersionCopy, panel.RecordVersionCopyInput{
				ServerID: in.SlaveID, VersionID: v.ID, GUID: s.GUID}).Get(ctx, nil); err != nil {
				return nil, err
			}
			res.Versions = append(res.Versions, v.ID)
		}
	}
	return res, nil
}

// recordCTemplateCopies records each ctemplate version the slave holds with the guid its
// server has (compared by guid, both listed at once): containers may clone it there. A
// ctemplate's history is new with this kind, so no version flag guards it.
func recordCTemplateCopies(ctx workflow.Context, t *tracker, in ReplicateInput, plan *panel.ReplicationPlanResult) error {
	ds := plan.Datasets[len(plan.Datasets)-1].Dataset
	mf := workflow.ExecuteActivity(serverCtx(ctx, plan.MasterID), sa.Snapshots, storage.SnapshotsInput{Pool: plan.MasterPool, Dataset: ds})
	sf := workflow.ExecuteActivity(serverCtx(ctx, in.SlaveID), sa.Snapshots, storage.SnapshotsInput{Pool: plan.SlavePool, Dataset: ds})
	var ms, ss storage.SnapshotsResult
	if err := mf.Get(ctx, &ms); err != nil {
		return err
	}
	if err := sf.Get(ctx, &ss); err != nil {
		return err
	}
	if err := t.step("verify", 97, "recording the versions of ctemplate %d server %d holds", in.ObjectID, in.SlaveID); err != nil {
		return err
	}
	return workflow.ExecuteActivity(panelCtx(ctx), pa.RecordVerified, panel.RecordVerifiedInput{ServerID: in.SlaveID,
		Kind: ReplicateCTemplate, ObjectID: in.ObjectID, Both: shared(&ms, &ss)}).Get(ctx, nil)
}

// watchTransfer starts, when the run has an operation, the panel's watcher that copies
// the transfer's heartbeats onto it between percents from and to; the returned stop
// cancels it without waiting for its end: the watcher never moves the percent back, so
// a late write cannot undo the next step.
func watchTransfer(ctx workflow.Context, t *tracker, label string, from, to int) (stop func()) {
	if t.opID == 0 || !since(ctx, VersionReplicateProgress) {
		return func() {}
	}
	wctx, cancel := workflow.WithCancel(ctx)
	wctx = workflow.WithActivityOptions(wctx, workflow.ActivityOptions{
		TaskQueue:           PanelQueue,
		StartToCloseTimeout: replicateRun,
		HeartbeatTimeout:    watchHeartbeat,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
	})
	workflow.ExecuteActivity(wctx, pa.WatchTransfer, panel.WatchTransferInput{OperationID: t.opID, WorkflowID: t.wid, RunID: t.rid,
		Activity: "Replicate", Label: label, From: from, To: to})
	return cancel
}
