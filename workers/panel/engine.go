package panel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"github.com/clusterducks/clusterducks/workflows"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
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
	if done, err := e.deleteUnmade(ctx, op); done || err != nil {
		return err
	}
	opts := client.StartWorkflowOptions{
		ID:                       p.WorkflowID,
		TaskQueue:                p.Queue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		// A running run is joined (conflict policy); a finished one that may not run again
		// comes back as an error, so the repeat can be answered with its outcome.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// The panel worker runs in this process on the same client: the start's answer
		// carries the first workflow task, which then skips a poll of the task queue.
		EnableEagerStart: true,
		Memo: map[string]any{
			"operation": op.ID, "kind": op.Kind, "object": op.ObjectType + " " + strconv.FormatUint(uint64(op.ObjectID), 10),
			"network": op.NetworkID,
		},
	}
	if op.NetworkID != nil {
		opts.TypedSearchAttributes = temporal.NewSearchAttributes(
			temporalclient.SearchNetwork.ValueSet(int64(*op.NetworkID)),
			temporalclient.SearchObjectType.ValueSet(op.ObjectType),
			temporalclient.SearchObjectID.ValueSet(int64(op.ObjectID)))
	}
	if p.Again || in.Retry > 0 {
		// An operator's retry runs the id once more after its failed or cancelled run.
		opts.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	}
	if in.Retry > 0 {
		// The run being retried records its operation's end just before it returns: let
		// it return, or the retry would join it (conflict policy) instead of running anew.
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = e.Client.GetWorkflow(wctx, p.WorkflowID, "").Get(wctx, nil) // how it ended is the old operation's
		waited := errors.Is(wctx.Err(), context.DeadlineExceeded)
		cancel()
		if waited {
			return fmt.Errorf("the previous run of %s has not ended yet", p.WorkflowID)
		}
	}
	run, err := e.Client.ExecuteWorkflow(ctx, opts, p.Workflow, p.Input)
	if err != nil && isUndefinedSearchAttribute(err) {
		// A production namespace without our search attributes (README says how to add
		// them) still runs the work; operators only lose the filters.
		e.Log.Warn("the Temporal namespace lacks clusterducks' search attributes; starting without them", "err", err)
		opts.TypedSearchAttributes = temporal.SearchAttributes{}
		run, err = e.Client.ExecuteWorkflow(ctx, opts, p.Workflow, p.Input)
	}
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &started):
		// The id ran before and may not run again: this request is a repeat of it.
		return e.adopt(ctx, op, p.WorkflowID, started.RunId)
	case err != nil:
		return fmt.Errorf("start %s: %w", p.WorkflowID, err)
	}
	return models.AttachWorkflow(ctx, e.DB, op.ID, run.GetID(), run.GetRunID(), p.First)
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
	if err := models.AttachWorkflow(ctx, e.DB, op.ID, wid, rid, nil); err != nil {
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

func isUndefinedSearchAttribute(err error) bool {
	var bad *serviceerror.InvalidArgument
	return errors.As(err, &bad) && strings.Contains(strings.ToLower(bad.Message), "search attribute")
}

// Cancel asks the operation's run to cancel; the workflow runs its undo and records the
// end. A run that has already ended is left as it is.
func (e *Engine) Cancel(ctx context.Context, op *models.Operation) error {
	err := e.Client.CancelWorkflow(ctx, op.WorkflowID, op.RunID)
	var gone *serviceerror.NotFound
	if errors.As(err, &gone) {
		return nil
	}
	return err
}

// Inspect is Temporal's own view of an operation's run: its status and, while it runs,
// the oldest activity no worker has started, with the pollers of the operation's server
// queue (an agent that is away has none, or only old ones).
func (e *Engine) Inspect(ctx context.Context, op *models.Operation) (*models.WorkflowView, error) {
	desc, err := e.Client.DescribeWorkflowExecution(ctx, op.WorkflowID, op.RunID)
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", op.WorkflowID, err)
	}
	v := &models.WorkflowView{Status: workflowStatus(desc.GetWorkflowExecutionInfo().GetStatus())}
	if v.Status == "terminated" {
		v.Reason = e.terminateReason(ctx, op)
	}
	for _, pa := range desc.GetPendingActivities() {
		if pa.GetState() != enumspb.PENDING_ACTIVITY_STATE_SCHEDULED {
			continue
		}
		since := pa.GetScheduledTime().AsTime()
		if v.Pending != "" && !since.Before(v.PendingSince) {
			continue
		}
		v.Pending, v.PendingSince, v.PendingAttempt = pa.GetActivityType().GetName(), since, pa.GetAttempt()
		v.PendingLastError = pa.GetLastFailure().GetMessage()
	}
	if v.Pending == "" {
		return v, nil
	}
	var in models.OperationInput
	if op.Input != "" {
		_ = json.Unmarshal([]byte(op.Input), &in)
	}
	if in.ServerID == 0 {
		return v, nil
	}
	tq, err := e.Client.DescribeTaskQueue(ctx, workflows.ServerQueue(in.ServerID), enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	if err != nil {
		return v, nil //nolint:nilerr // the pollers only sharpen the message
	}
	for _, p := range tq.GetPollers() {
		t := p.GetLastAccessTime().AsTime()
		v.Pollers++
		if v.LastPoll == nil || t.After(*v.LastPoll) {
			v.LastPoll = &t
		}
	}
	return v, nil
}

// terminateReason reads why a run was terminated from its last history event.
func (e *Engine) terminateReason(ctx context.Context, op *models.Operation) string {
	it := e.Client.GetWorkflowHistory(ctx, op.WorkflowID, op.RunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return ""
		}
		if a := ev.GetWorkflowExecutionTerminatedEventAttributes(); a != nil {
			return a.GetReason()
		}
	}
	return ""
}

func workflowStatus(s enumspb.WorkflowExecutionStatus) string {
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return "running"
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return "completed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		return "failed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return "cancelled"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return "terminated"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return "timed out"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return "continued"
	}
	return ""
}

// SignalRollout sends an operator's pause, resume or abort to the rollout workflow of op
// (models.RolloutSignaler). Safe to repeat: a second pause or resume changes nothing.
func (e *Engine) SignalRollout(ctx context.Context, op *models.Operation, signal string) error {
	return e.Client.SignalWorkflow(ctx, op.WorkflowID, op.RunID, signal, nil)
}
