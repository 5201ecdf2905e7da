package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ReconcileEvery is how often the reconcile schedule compares masters and slaves.
const ReconcileEvery = 10 * time.Minute

// queueWait bounds queueing replication from a workflow: a panel that cannot record it
// now leaves it to the next reconcile rather than holding the workflow.
const queueWait = 5 * time.Minute

// replicateTo queues the replication req asks for (panel.QueueReplication: one operation
// and workflow per slave and dataset, a transfer under way joined) and returns the
// operations recorded. A failure is logged, never returned: the change on the master is
// done, and the reconcile schedule starts what this missed.
func replicateTo(ctx workflow.Context, req panel.QueueReplicationInput) []uint {
	qctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              PanelQueue,
		ScheduleToCloseTimeout: queueWait,
		StartToCloseTimeout:    panelRun,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
	})
	var res panel.QueueReplicationResult
	if err := workflow.ExecuteActivity(qctx, pa.QueueReplication, req).Get(ctx, &res); err != nil {
		workflow.GetLogger(ctx).Warn("replication not queued; the reconcile will", "kind", req.Kind, "object", req.ObjectID, "error", err)
		return nil
	}
	return res.OperationIDs
}

// snapshotsCtx lists snapshots on a server's agent: an agent that does not answer within
// a few minutes is skipped this round (its alert says it is unreachable).
func snapshotsCtx(ctx workflow.Context, serverID uint) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              ServerQueue(serverID),
		ScheduleToCloseTimeout: 3 * time.Minute,
		StartToCloseTimeout:    time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 20 * time.Second},
	})
}

// ReconcileInput is empty: the reconcile looks at every network.
type ReconcileInput struct{}

// ReconcileResult counts the (slave, dataset) pairs compared, queued and skipped (an
// agent that did not answer).
type ReconcileResult struct {
	Compared int
	Queued   int
	Skipped  int
	// Pruned counts the vdisk backup snapshots destroyed (pruneVDiskBackups).
	Pruned int
}

// Reconcile compares, for every network, each dataset of the master with each slave's
// copy by guid (the agents' Snapshots) and queues a replication for each slave that lacks
// the master's newest snapshot. Vdisks are snapshotted first on the servers they live
// on, and compared with their backups on the network's other servers the same way. Started by the reconcile schedule every ReconcileEvery;
// it changes nothing itself but the vdisks' old backup snapshots it prunes (each keeps its
// newest ones and every backup's base), so an overlapping or repeated run is harmless.
func Reconcile(ctx workflow.Context, _ ReconcileInput) (*ReconcileResult, error) {
	var targets panel.ReplicaTargetsResult
	if err := workflow.ExecuteActivity(panelCtx(ctx), pa.ReplicaTargets, panel.ReplicaTargetsInput{}).Get(ctx, &targets); err != nil {
		return nil, err
	}
	if hasVDisks(targets.Targets) && since(ctx, VersionReconcileVDisks) {
		snapshotVDisks(ctx, targets.Targets)
	}
	// Each dataset is listed once, all at once: masters and slaves answer in parallel.
	listed := map[string]workflow.Future{}
	list := func(serverID uint, pool, ds string) workflow.Future {
		key := ServerQueue(serverID) + ":" + pool + "/" + ds
		if f, ok := listed[key]; ok {
			return f
		}
		f := workflow.ExecuteActivity(snapshotsCtx(ctx, serverID), sa.Snapshots, storage.SnapshotsInput{Pool: pool, Dataset: ds})
		listed[key] = f
		return f
	}
	type pair struct {
		t             models.ReplicaTarget
		master, slave workflow.Future
	}
	pairs := make([]pair, 0, len(targets.Targets))
	for _, tg := range targets.Targets {
		ds := relDataset(tg.Kind, tg.ObjectID)
		pairs = append(pairs, pair{tg, list(tg.MasterID, tg.MasterPool, ds), list(tg.SlaveID, tg.SlavePool, ds)})
	}
	res := &ReconcileResult{}
	for _, p := range pairs {
		var m, s storage.SnapshotsResult
		if err := p.master.Get(ctx, &m); err != nil || !m.Exists || len(m.Snapshots) == 0 {
			// Nothing to compare against (the master's agent is away, or it holds no snapshot yet).
			res.Skipped++
			continue
		}
		if err := p.slave.Get(ctx, &s); err != nil {
			res.Skipped++
			continue
		}
		res.Compared++
		both := shared(&m, &s)
		if len(both) > 0 && p.t.Kind != ReplicateVDisk {
			// What the slave verifiably holds counts, whoever sent it (a promote needs it).
			if err := workflow.ExecuteActivity(panelCtx(ctx), pa.RecordVerified, panel.RecordVerifiedInput{ServerID: p.t.SlaveID,
				Kind: p.t.Kind, ObjectID: p.t.ObjectID, Both: both}).Get(ctx, nil); err != nil {
				workflow.GetLogger(ctx).Warn("verified copies not recorded", "slave", p.t.SlaveID, "error", err)
			}
		}
		if !s.Partial && len(both) > 0 && both[len(both)-1].GUID == m.Snapshots[len(m.Snapshots)-1].GUID {
			continue
		}
		res.Queued += len(replicateTo(ctx, panel.QueueReplicationInput{Kind: p.t.Kind, ObjectID: p.t.ObjectID, SlaveID: p.t.SlaveID}))
	}
	if hasVDisks(targets.Targets) && since(ctx, VersionReconcilePruneVDisks) {
		res.Pruned = pruneVDiskBackups(ctx, targets.Targets, list)
	}
	return res, nil
}

// hasVDisks reports whether a vdisk's backup is among the targets.
func hasVDisks(targets []models.ReplicaTarget) bool {
	return slices.ContainsFunc(targets, func(t models.ReplicaTarget) bool { return t.Kind == ReplicateVDisk })
}

// snapshotVDisks takes a backup snapshot of each vdisk among targets on the server it
// lives on, when something was written since its newest snapshot (an unchanged vdisk, or
// the copy a move left behind, gets none): the backups replicate up to it. A server that
// does not answer is skipped this round.
func snapshotVDisks(ctx workflow.Context, targets []models.ReplicaTarget) {
	name := fmt.Sprintf("backup-%d", workflow.Now(ctx).Unix())
	type snap struct {
		t models.ReplicaTarget
		f workflow.Future
	}
	var snaps []snap
	seen := map[uint]bool{}
	for _, t := range targets {
		if t.Kind != ReplicateVDisk || seen[t.ObjectID] {
			continue
		}
		seen[t.ObjectID] = true
		snaps = append(snaps, snap{t, workflow.ExecuteActivity(snapshotsCtx(ctx, t.MasterID), sa.SnapshotWritten,
			storage.SnapshotInput{Dataset: storage.VDiskDataset(t.MasterPool, t.ObjectID), Name: name})})
	}
	for _, s := range snaps {
		if err := s.f.Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("vdisk not snapshotted for its backups", "vdisk", s.t.ObjectID, "server", s.t.MasterID, "error", err)
		}
	}
}

// dataset is the dataset of a replicated volume or group on a pool.
func dataset(kind, pool string, id uint) string {
	return pool + "/" + relDataset(kind, id)
}

// relDataset is the dataset of a replicated volume, group, vdisk or ctemplate relative to its pool.
func relDataset(kind string, id uint) string {
	if kind == ReplicateVolume {
		return strings.TrimPrefix(storage.VolumeDataset("", id), "/")
	}
	if kind == ReplicateVDisk {
		return vdiskRel(id)
	}
	if kind == ReplicateCTemplate {
		return strings.TrimPrefix(storage.CTemplateDataset("", id), "/")
	}
	return strings.TrimPrefix(storage.GroupDataset("", id), "/")
}

// shared lists the master's snapshots the slave holds, matched by guid (never by name),
// in the master's order.
func shared(m, s *storage.SnapshotsResult) []models.SnapshotGUID {
	have := map[string]bool{}
	for _, sn := range s.Snapshots {
		have[sn.GUID] = true
	}
	var out []models.SnapshotGUID
	for _, sn := range m.Snapshots {
		if have[sn.GUID] {
			out = append(out, models.SnapshotGUID{Name: sn.Name, GUID: sn.GUID})
		}
	}
	return out
}
