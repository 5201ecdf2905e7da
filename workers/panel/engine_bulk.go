package panel

import (
	"context"
	"fmt"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"github.com/clusterducks/clusterducks/workflows"
)

// BulkUpdate sends one device's part of a bulk operation to the device's workflow as an
// update (panel.DeviceUpdater), started if no run is under way, and waits for its end: a
// lock change, a restore of the newest erator entry, a deleted device's disk to the
// erator. The update carries no operation of its own (the bulk operation records the
// outcome). Its id comes from the bulk operation and the device, so a repeat joins it.
func (e *Engine) BulkUpdate(ctx context.Context, in panel.BulkDeviceInput) (string, error) {
	d := in.Device
	var s workflows.Start
	switch in.Action {
	case models.BulkLock, models.BulkUnlock:
		s = workflows.DeviceUpdate(d.ID, workflows.UpdateLock, in.UpdateID, workflows.DeviceLockRequest{Locked: in.Action == models.BulkLock})
	case models.BulkRestore:
		s = workflows.DeviceUpdate(d.ID, workflows.UpdateRestore, in.UpdateID,
			workflows.DeviceRestoreRequest{DeviceID: d.ID, ServerID: d.ServerID, Pool: d.Pool})
	case models.BulkDelete:
		s = workflows.DeviceUpdate(d.ID, workflows.UpdateDelete, in.UpdateID,
			workflows.DeviceDeleteRequest{DeviceID: d.ID, NetworkID: in.NetworkID, ServerID: d.ServerID, Pool: d.Pool})
	default:
		return fmt.Sprintf("unknown bulk action %q", in.Action), nil
	}
	h, err := temporalclient.Update(ctx, e.Client, temporalclient.UpdateWithStart{WorkflowID: s.WorkflowID, Queue: s.Queue,
		Workflow: s.Workflow, Input: s.Input, Update: s.Update, UpdateID: s.UpdateID, UpdateArg: s.UpdateArg})
	if err != nil {
		return "", fmt.Errorf("device %d's workflow: %w", d.ID, err)
	}
	if err := h.Get(ctx, nil); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		// The device's workflow refused or failed the change: final for this device.
		return activities.Message(err), nil
	}
	return "", nil
}
