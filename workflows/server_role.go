package workflows

import (
	"github.com/clusterducks/clusterducks/activities/panel"
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
	err = workflow.ExecuteActivity(panelCtx(ctx), pa.SwitchMaster, panel.SwitchMasterInput{ServerID: in.ServerID}).Get(ctx, nil)
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
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
