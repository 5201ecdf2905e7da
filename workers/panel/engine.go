package panel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workflows"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"gorm.io/gorm"
)

// Engine starts the workflow behind each Operation the store records (models.Engine).
type Engine struct {
	Client client.Client
	DB     *gorm.DB
	Log    *slog.Logger
	// LockWait bounds how long a lock change waits for a provisioning under way (default LockWait).
	LockWait time.Duration
}

// Start starts the operation's workflow (workflows.Plan, from the input recorded with the
// operation), or joins the run already under way for the same object (the id comes from
// the object): a retried request or a double click never starts a second one. A device's
// operation is an update of the device's workflow instead (update). Safe to repeat.
func (e *Engine) Start(ctx context.Context, op *models.Operation) error {
	in, err := models.StartInput(ctx, e.DB, op)
	if err != nil {
		return err
	}
	p, err := workflows.Plan(op, in)
	if err != nil {
		return err
	}
	if p.Update != "" {
		return e.update(ctx, op, p)
	}
	opts := client.StartWorkflowOptions{
		ID:                       p.WorkflowID,
		TaskQueue:                p.Queue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		// A running run is joined (conflict policy); a finished one that may not run again
		// comes back as an error, so the repeat can be answered with its outcome.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		Memo: map[string]any{
			"operation": op.ID, "kind": op.Kind, "object": op.ObjectType + " " + strconv.FormatUint(uint64(op.ObjectID), 10),
			"network": op.NetworkID,
		},
	}
	if p.Again {
		opts.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	}
	run, err := e.Client.ExecuteWorkflow(ctx, opts, p.Workflow, p.Input)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &started):
		// The id ran before and may not run again: this request is a repeat of it.
		return e.adopt(ctx, op, p.WorkflowID, started.RunId)
	case err != nil:
		return fmt.Errorf("start %s: %w", p.WorkflowID, err)
	}
	return models.AttachWorkflow(ctx, e.DB, op.ID, run.GetID(), run.GetRunID())
}

// adopt points a repeated operation at the run that already did the work and, when that
// run has ended, copies its outcome.
func (e *Engine) adopt(ctx context.Context, op *models.Operation, wid, rid string) error {
	desc, err := e.Client.DescribeWorkflowExecution(ctx, wid, rid)
	if err != nil {
		return fmt.Errorf("describe %s: %w", wid, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	rid = info.GetExecution().GetRunId()
	if err := models.AttachWorkflow(ctx, e.DB, op.ID, wid, rid); err != nil {
		return err
	}
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return models.SettleRepeat(ctx, e.DB, op.ID, "the same request already ran as workflow "+wid, "")
	default:
		return models.SettleRepeat(ctx, e.DB, op.ID, "the same request already ran as workflow "+wid,
			"workflow "+wid+" ended "+info.GetStatus().String())
	}
}

// ResumeQueued starts the operations that were recorded while no engine could take
// them (Temporal down, or a panel without one); it runs once at the panel's start.
func (e *Engine) ResumeQueued(ctx context.Context) {
	ops, err := models.QueuedOperations(ctx, e.DB, 1000)
	if err != nil {
		e.Log.Warn("list queued operations", "err", err)
		return
	}
	for i := range ops {
		if err := e.Start(ctx, &ops[i]); err != nil {
			e.Log.Warn("start queued operation", "operation", ops[i].ID, "kind", ops[i].Kind, "err", err)
		}
	}
	if len(ops) > 0 {
		e.Log.Info("started queued operations", "count", len(ops))
	}
}
