package panel

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"github.com/clusterducks/clusterducks/workflows"
)

// RestoreAccept bounds how long recording a device restore waits for the device workflow
// to accept it (the panel worker takes it in a workflow task); past it the operation
// stays queued and ResumeQueued sends it again at the next panel start.
const RestoreAccept = 15 * time.Second

// restoreDevice hands a device restore to the device's workflow as its "restore" update
// (update-with-start), so the swap runs in order with the device's provisionings and
// lock changes; the update's handler reports on the operation's row and ends it.
//
// Why the engine sends the update, rather than a DeviceRestore workflow delegating to the
// device workflow through an activity: a workflow cannot update another, so that activity
// would need its own Temporal client (and activities/panel cannot import the workflows that
// import it) and would sit heartbeating for as long as a provisioning ahead of it waits
// for its agent, in a second workflow whose only work is to wait. Here the device
// workflow's run carries the operation (its WorkflowID is device-<id>), which
// models.AttachUpdate and the update's tracker account for (one run, many operations).
//
// The update id is the operation's: a repeat of the same operation (a retried start, a
// panel resuming it) joins the first instead of swapping the disks back. Safe to repeat.
func (e *Engine) restoreDevice(ctx context.Context, op *models.Operation) error {
	var req models.DeviceRestoreRequest
	if err := json.Unmarshal([]byte(op.Input), &req); err != nil || req.ServerID == 0 {
		return fmt.Errorf("device restore input %q: %v", op.Input, err)
	}
	var s models.Server
	if err := e.DB.WithContext(ctx).Take(&s, req.ServerID).Error; err != nil {
		return fmt.Errorf("server %d: %w", req.ServerID, err)
	}
	r := workflows.DeviceRestoreRequest{OperationID: op.ID, DeviceID: op.ObjectID, ServerID: s.ID, Pool: s.Pool, From: req.From}
	actx, cancel := context.WithTimeout(ctx, RestoreAccept)
	defer cancel()
	h, err := temporalclient.UpdateDevice(actx, e.Client, op.ObjectID, workflows.UpdateRestore, workflows.RestoreUpdateID(op.ID), r)
	if err != nil {
		return fmt.Errorf("device %d's workflow: %w", op.ObjectID, err)
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
