package temporalclient

import (
	"context"

	"github.com/clusterducks/clusterducks/workflows"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// UpdateDevice sends an update to the device's entity workflow (device-<id>), starting it
// when no run is under way, and returns once the workflow has accepted it. A repeated
// call with the same update id joins the first one. The agent's boot path (provision)
// and the panel (lock) both go through here.
func UpdateDevice(ctx context.Context, c client.Client, deviceID uint, name, updateID string, arg any) (client.WorkflowUpdateHandle, error) {
	start := c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       workflows.DeviceWorkflowID(deviceID),
		TaskQueue:                workflows.PanelQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, workflows.Device, workflows.DeviceInput{DeviceID: deviceID})
	return c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateID:     updateID,
			UpdateName:   name,
			Args:         []any{arg},
			WaitForStage: client.WorkflowUpdateStageAccepted,
		},
	})
}
