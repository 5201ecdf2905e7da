package panel

import (
	"context"
	"errors"
	"fmt"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workflows"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
)

// deleteUnmade ends a delete whose object's create never reached the server: the
// create's workflow is still running and its storage activity was never picked up (the
// agent went away before it). Nothing exists on the server, so the create is terminated
// and both operations end here, without the agent the delete workflow would wait for. It
// reports false when the create ran (or may have), and the delete workflow then runs.
//
// The window between Describe and Terminate is a few milliseconds: an agent that picks
// the create up inside it makes a zvol whose completion Temporal refuses, left under
// the object's dataset name (a later purge of the pool's datasets finds it).
func (e *Engine) deleteUnmade(ctx context.Context, op *models.Operation) (bool, error) {
	wid, activity, ok := workflows.CreateBefore(op.Kind, op.ObjectID)
	if !ok {
		return false, nil
	}
	desc, err := e.Client.DescribeWorkflowExecution(ctx, wid, "")
	var gone *serviceerror.NotFound
	if errors.As(err, &gone) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("describe %s: %w", wid, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return false, nil
	}
	unmade := false
	for _, pa := range desc.GetPendingActivities() {
		if pa.GetActivityType().GetName() != activity {
			continue
		}
		unmade = pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_SCHEDULED && pa.GetAttempt() <= 1 && pa.GetLastStartedTime() == nil
	}
	if !unmade {
		return false, nil
	}
	rid := info.GetExecution().GetRunId()
	reason := fmt.Sprintf("%s %d was deleted before its create ran on the server", op.ObjectType, op.ObjectID)
	if err := e.Client.TerminateWorkflow(ctx, wid, rid, reason); err != nil && !errors.As(err, &gone) {
		return false, fmt.Errorf("terminate %s: %w", wid, err)
	}
	return true, models.SettleUnmade(ctx, e.DB, op.ID, wid, rid, reason)
}
