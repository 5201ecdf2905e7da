package workflows

import (
	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/workflow"
)

// ServerPromoteInput makes server ServerID the master of network NetworkID.
type ServerPromoteInput struct {
	OperationID uint
	NetworkID   uint
	ServerID    uint
}

// ServerPromoteResult lists the replication operations queued from the new master.
type ServerPromoteResult struct {
	Queued []uint
}

// ServerPromote switches the network's master to the server (the old master becomes a
// slave) without touching a dataset: the switch is one panel transaction that refuses
// while the server lacks a verified copy of a volume or version the network uses (the
// API refused already; a publish or a delete may have come between). Then every slave,
// the old master included, is caught up from the new master (the replication workflows
// read the master when they run).
func ServerPromote(ctx workflow.Context, in ServerPromoteInput) (*ServerPromoteResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	if err := t.step("switch", 20, "making server %d the master of network %d", in.ServerID, in.NetworkID); err != nil {
		return nil, err
	}
	var sw panel.SwitchMasterResult
	err = workflow.ExecuteActivity(panelCtx(ctx), pa.SwitchMaster, panel.SwitchMasterInput{ServerID: in.ServerID}).Get(ctx, &sw)
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	if since(ctx, VersionPromoteReleaseHolds) {
		// The old master kept holds for this server as its slave: nobody acknowledges
		// them now, and they would pin those snapshots for ever. A server that does not
		// answer within a few minutes keeps them (the promote is done all the same).
		fs := make([]workflow.Future, 0, len(sw.Slaves))
		for _, s := range sw.Slaves {
			fs = append(fs, workflow.ExecuteActivity(snapshotsCtx(ctx, s.ID), sa.ReleaseReplicationHolds,
				storage.ReleaseReplicationHoldsInput{Pool: s.Pool, SlaveID: in.ServerID}))
		}
		for i, f := range fs {
			if err := f.Get(ctx, nil); err != nil {
				workflow.GetLogger(ctx).Warn("holds for the new master not released", "server", sw.Slaves[i].ID, "error", err)
			}
		}
	}
	if err := t.step("catch-up", 80, "server %d is the master: queueing what its slaves lack", in.ServerID); err != nil {
		return nil, err
	}
	queued := replicateTo(ctx, panel.QueueReplicationInput{NetworkID: in.NetworkID})
	if err := t.succeed(models.Outcome{}, "server %d is the master of network %d; %d transfers queued", in.ServerID, in.NetworkID, len(queued)); err != nil {
		return nil, err
	}
	return &ServerPromoteResult{Queued: queued}, nil
}
