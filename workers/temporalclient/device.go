package temporalclient

import (
	"context"
	"errors"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// UpdateDevice sends an update to the device's entity workflow (device-<id>), starting it
// when no run is under way, and returns once the workflow has accepted it. A repeated
// call with the same update id joins the first one. The agent's boot path (provision)
// and the panel (lock, restore) all go through here; the workflow is named by its type
// (wire.DeviceWorkflow), so the agent does not link the workflows.
//
// A call the server cuts short is made again with the same update id while ctx lasts,
// for the send and for the handle's Get: the caller sees the update's outcome, or ctx's
// end, never the transport's hiccup. (The server cancels a poll at the deadline it was
// sent, a moment before ctx itself ends: without this, a caller that tells "ctx ended"
// from "failed", as the lock's queued answer does, could see a failure.)
func UpdateDevice(ctx context.Context, c client.Client, deviceID uint, name, updateID string, arg any) (client.WorkflowUpdateHandle, error) {
	return Update(ctx, c, UpdateWithStart{WorkflowID: wire.DeviceWorkflowID(deviceID), Queue: wire.PanelQueue,
		Workflow: wire.DeviceWorkflow, Input: wire.DeviceInput{DeviceID: deviceID}, Update: name, UpdateID: updateID, UpdateArg: arg})
}

// UpdateWithStart is an update and the workflow that receives it, started when no run is
// under way (the fields of workflows.Start that Update needs; this package does not
// import the workflows, since the agent links it).
type UpdateWithStart struct {
	WorkflowID, Queue string
	Workflow, Input   any
	Update, UpdateID  string
	UpdateArg         any
}

// Update sends s's update to its workflow, starting the workflow when no run is under
// way, as UpdateDevice does for a device's (the panel's engine sends an operation's).
func Update(ctx context.Context, c client.Client, s UpdateWithStart) (client.WorkflowUpdateHandle, error) {
	var h client.WorkflowUpdateHandle
	err := retryCut(ctx, func() error {
		// A start operation can be used once: each attempt gets its own.
		start := c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
			ID:                       s.WorkflowID,
			TaskQueue:                s.Queue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		}, s.Workflow, s.Input)
		var err error
		h, err = c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
			StartWorkflowOperation: start,
			UpdateOptions: client.UpdateWorkflowOptions{
				UpdateID:     s.UpdateID,
				UpdateName:   s.Update,
				Args:         []any{s.UpdateArg},
				WaitForStage: client.WorkflowUpdateStageAccepted,
			},
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return retryingHandle{h}, nil
}

// retryingHandle is an update handle whose Get asks again when the server cuts the
// poll short.
type retryingHandle struct{ client.WorkflowUpdateHandle }

func (h retryingHandle) Get(ctx context.Context, valuePtr any) error {
	return retryCut(ctx, func() error { return h.WorkflowUpdateHandle.Get(ctx, valuePtr) })
}

// retryCut runs f again, after a short pause, while it fails because the server cut the
// call short and ctx is still alive.
func retryCut(ctx context.Context, f func() error) error {
	pause := 50 * time.Millisecond
	for {
		err := f()
		var cut *client.WorkflowUpdateServiceTimeoutOrCanceledError
		if err == nil || !errors.As(err, &cut) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		pause = min(2*pause, time.Second)
	}
}
