package panel

import (
	"context"
	"errors"
	"fmt"

	"github.com/clusterducks/clusterducks/workflows"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// EnsureSchedules creates the panel's Temporal schedules if they do not exist yet (every
// panel calls it at start; the first one creates them, the others find them): the
// replication reconcile every workflows.ReconcileEvery. A run still going when the next
// is due is not doubled (overlap: skip).
func EnsureSchedules(ctx context.Context, c client.Client) error {
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      workflows.ReconcileScheduleID,
		Spec:    client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: workflows.ReconcileEvery}}},
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Action: &client.ScheduleWorkflowAction{
			ID: workflows.ReconcileID, Workflow: workflows.Reconcile, Args: []any{workflows.ReconcileInput{}},
			TaskQueue: workflows.PanelQueue,
		},
	})
	if err != nil && !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("reconcile schedule: %w", err)
	}
	return nil
}
