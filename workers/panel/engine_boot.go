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

// planDeviceRestore runs a device restore on the server that holds the device's disk.
func (e *Engine) planDeviceRestore(ctx context.Context, op *models.Operation) (*start, error) {
	var req models.DeviceRestoreRequest
	if err := json.Unmarshal([]byte(op.Input), &req); err != nil || req.ServerID == 0 {
		return nil, fmt.Errorf("device restore input %q: %v", op.Input, err)
	}
	var s models.Server
	if err := e.DB.WithContext(ctx).Take(&s, req.ServerID).Error; err != nil {
		return nil, fmt.Errorf("server %d: %w", req.ServerID, err)
	}
	return &start{id: workflows.DeviceRestoreID(op.ObjectID), fn: workflows.DeviceRestore, again: true,
		input: workflows.DeviceRestoreInput{OperationID: op.ID, DeviceID: op.ObjectID, ServerID: s.ID, Pool: s.Pool, From: req.From}}, nil
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
