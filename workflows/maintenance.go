package workflows

import (
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/workflow"
)

// MaintenanceEndInput ends the maintenance of a group head or a volume (Kind "group" or
// "volume", ID) of network NetworkID on its master ServerID.
type MaintenanceEndInput struct {
	OperationID uint
	Kind        string
	ID          uint
	NetworkID   uint
	ServerID    uint
	Pool        string
}

// MaintenanceEndResult names the removed target.
type MaintenanceEndResult struct {
	IQN string
}

// MaintenanceEnd removes the maintenance target of a group head or a volume on the master,
// closing its sessions (the maintenance device's writes stop there), before the operation
// succeeds: a publish or a group create waits for that (models: maintenanceEnding), so a
// version never snapshots a disk somebody can still write. Removing a target that is gone
// is success.
func MaintenanceEnd(ctx workflow.Context, in MaintenanceEndInput) (*MaintenanceEndResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	if err := t.step("unexport", 10, "removing the %s %d's maintenance target and closing its sessions", in.Kind, in.ID); err != nil {
		return nil, err
	}
	var res storage.ExportResult
	err = workflow.ExecuteActivity(serverCtx(ctx, in.ServerID), da.UnexportTarget,
		storage.ExportInput{Kind: in.Kind, ID: in.ID, NetworkID: in.NetworkID, Pool: in.Pool}).Get(ctx, &res)
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	if err := t.succeed(models.Outcome{}, "maintenance ended: target %s removed, its sessions closed", res.IQN); err != nil {
		return nil, err
	}
	return &MaintenanceEndResult{IQN: res.IQN}, nil
}
