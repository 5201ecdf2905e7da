package panel

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/clusterducks/clusterducks/models"
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
