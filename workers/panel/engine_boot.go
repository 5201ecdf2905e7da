package panel

import (
	"context"
	"fmt"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"github.com/clusterducks/clusterducks/workflows"
)

// UpdateAccept bounds how long handing an operation to an entity workflow waits for the
// workflow to accept it (the panel worker takes it in a workflow task); past it the
// operation stays queued and ResumeQueued sends it again at the next panel start.
const UpdateAccept = 15 * time.Second

// update hands an operation to the device's workflow as one of its updates
// (update-with-start: a device restore or delete), so it runs in order with the device's
// provisionings and lock changes; the update's handler reports on the operation's row and
// ends it.
//
// Why the engine sends the update, rather than a workflow of the operation's own
// delegating to the device workflow through an activity: a workflow cannot update
// another, so that activity would need its own Temporal client (and activities/panel
// cannot import the workflows that import it) and would sit heartbeating for as long as a
// provisioning ahead of it waits for its agent, in a second workflow whose only work is
// to wait. Here the device workflow's run carries the operation (its WorkflowID is
// device-<id>), which models.AttachUpdate and the update's tracker account for (one run,
// many operations).
//
// The update id is the operation's: a repeat of the same operation (a retried start, a
// panel resuming it) joins the first instead of doing the work again. Safe to repeat.
func (e *Engine) update(ctx context.Context, op *models.Operation, p *workflows.Start) error {
	actx, cancel := context.WithTimeout(ctx, UpdateAccept)
	defer cancel()
	h, err := temporalclient.Update(actx, e.Client, temporalclient.UpdateWithStart{WorkflowID: p.WorkflowID, Queue: p.Queue,
		Workflow: p.Workflow, Input: p.Input, Update: p.Update, UpdateID: p.UpdateID, UpdateArg: p.UpdateArg})
	if err != nil {
		return fmt.Errorf("%s: %w", p.WorkflowID, err)
	}
	return models.AttachUpdate(ctx, e.DB, op.ID, h.WorkflowID(), h.RunID())
}

// LockWait is how long a lock change waits for the device's provisioning under way
// before the API answers that it is queued (models.ErrLockPending).
const LockWait = 20 * time.Second

// LockDevice sends a lock change to the device's workflow (models.DeviceLocker): it is
// made after any provisioning under way and before the next. The update id is fresh, so
// lock, unlock, lock are three changes.
func (e *Engine) LockDevice(ctx context.Context, deviceID uint, locked bool) error {
	id := fmt.Sprintf("lock-%d-%t-%d", deviceID, locked, time.Now().UnixNano())
	h, err := temporalclient.UpdateDevice(ctx, e.Client, deviceID, workflows.UpdateLock, id, workflows.DeviceLockRequest{Locked: locked})
	if err != nil {
		return fmt.Errorf("device %d's workflow: %w", deviceID, err)
	}
	wait := e.LockWait
	if wait <= 0 {
		wait = LockWait
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var out workflows.DeviceLockResult
	switch err := h.Get(wctx, &out); {
	case err == nil:
		return nil
	case wctx.Err() != nil && ctx.Err() == nil:
		return models.ErrLockPending
	default:
		return fmt.Errorf("device %d's workflow: %w", deviceID, err)
	}
}
