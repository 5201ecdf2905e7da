package workflows

import (
	"errors"
	"fmt"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Activity receivers for type-safe ExecuteActivity calls; never called directly.
var (
	pa *panel.Activities
	sa *storage.Activities
)

// Timeouts of the storage activities. The agent heartbeats every few seconds while a
// zfs command runs, so a killed agent's activity is retried within storageHeartbeat; an
// agent that is not running yet is waited for up to storageWait (the operation shows it).
const (
	storageHeartbeat = 20 * time.Second
	storageRun       = 10 * time.Minute
	storageWait      = 24 * time.Hour
	panelRun         = 30 * time.Second
)

// serverCtx runs activities in the agent of a server.
func serverCtx(ctx workflow.Context, serverID uint) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              ServerQueue(serverID),
		ScheduleToCloseTimeout: storageWait,
		StartToCloseTimeout:    storageRun,
		HeartbeatTimeout:       storageHeartbeat,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: activities.NonRetryableTypes(),
		},
	})
}

// panelCtx runs database activities in the panel worker; they retry until the database
// answers.
func panelCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              PanelQueue,
		ScheduleToCloseTimeout: storageWait,
		StartToCloseTimeout:    panelRun,
		RetryPolicy:            panelRetry,
	})
}

// panelRetry retries a database activity until the database answers.
var panelRetry = &temporal.RetryPolicy{
	InitialInterval:    500 * time.Millisecond,
	BackoffCoefficient: 2,
	MaximumInterval:    10 * time.Second,
}

// Step is a workflow's current step, as the progress query answers it.
type Step struct {
	Step    string
	Percent int
	Message string
}

// tracker writes a workflow's progress to its Operation row and answers the progress query.
type tracker struct {
	ctx  workflow.Context
	opID uint
	wid  string
	rid  string
	cur  Step
}

func newTracker(ctx workflow.Context, opID uint) (*tracker, error) {
	info := workflow.GetInfo(ctx)
	t := &tracker{ctx: ctx, opID: opID, wid: info.WorkflowExecution.ID, rid: info.WorkflowExecution.RunID}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Step, error) { return t.cur, nil }); err != nil {
		return nil, err
	}
	return t, nil
}

// newUpdateTracker tracks an operation carried by one update of an entity workflow (a
// device's restore in device-<id>). Its writes name the workflow but not the run, so the
// panel matches the operation's row by its id alone: one run carries many operations, and
// the step or end of one must not land on another of the same run. It answers no query
// (the entity workflow answers for the update under way).
func newUpdateTracker(ctx workflow.Context, opID uint) *tracker {
	return &tracker{ctx: ctx, opID: opID, wid: workflow.GetInfo(ctx).WorkflowExecution.ID}
}

func (t *tracker) progress() models.WorkflowProgress {
	return models.WorkflowProgress{OperationID: t.opID, WorkflowID: t.wid, RunID: t.rid,
		Step: t.cur.Step, Percent: t.cur.Percent, Message: t.cur.Message}
}

// step records the next step (a panel activity).
func (t *tracker) step(name string, percent int, format string, args ...any) error {
	t.cur = Step{Step: name, Percent: percent, Message: fmt.Sprintf(format, args...)}
	if t.opID == 0 {
		return nil
	}
	return record(t.ctx, pa.Progress, t.progress())
}

// begin is the run's first step. Since VersionFirstStepAtStart the panel's engine has
// recorded it on the operation as it attached the run (Start.First: the same text), so
// the run only answers it in the progress query, and its first activity is scheduled
// without a database write before it. Runs recorded before write it themselves.
func (t *tracker) begin(s Step) error {
	if since(t.ctx, VersionFirstStepAtStart) {
		t.cur = s
		return nil
	}
	return t.step(s.Step, s.Percent, "%s", s.Message)
}

// progressOf is a first step as the engine records it (Start.First).
func progressOf(s Step) *models.WorkflowProgress {
	return &models.WorkflowProgress{Step: s.Step, Percent: s.Percent, Message: s.Message}
}

// record runs a database step of an operation (its progress, its end) in the panel
// worker. Since VersionLocalProgress it is a local activity: it runs in the workflow task
// that asked for it, saving Temporal a round trip through the task queue per step; the
// database write is short and retried the same way.
func record(ctx workflow.Context, activity, input any) error {
	if since(ctx, VersionLocalProgress) {
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			ScheduleToCloseTimeout: storageWait,
			StartToCloseTimeout:    panelRun,
			RetryPolicy:            panelRetry,
		})
		return workflow.ExecuteLocalActivity(lctx, activity, input).Get(ctx, nil)
	}
	return workflow.ExecuteActivity(panelCtx(ctx), activity, input).Get(ctx, nil)
}

// succeed ends the operation at 100 % with its results.
func (t *tracker) succeed(o models.Outcome, format string, args ...any) error {
	t.cur = Step{Step: "done", Percent: 100, Message: fmt.Sprintf(format, args...)}
	if t.opID == 0 {
		return nil
	}
	o.WorkflowProgress = t.progress()
	return record(t.ctx, pa.Finish, o)
}

// fail ends the operation as failed at the current step and returns cause, so the
// workflow itself ends failed too (what operators see in the Web UI). It runs even when
// the workflow was cancelled.
func (t *tracker) fail(o models.Outcome, cause error) error {
	ctx, _ := workflow.NewDisconnectedContext(t.ctx)
	o.WorkflowProgress = t.progress()
	o.Failed = true
	// A cancelled run (by the panel's cancel or Temporal's UI) ends its operation
	// cancelled rather than failed, after the undo the caller ran first.
	o.Cancelled = isCancel(cause)
	o.Error = failureText(cause)
	if t.opID != 0 {
		if err := record(ctx, pa.Finish, o); err != nil {
			return errors.Join(cause, err)
		}
	}
	if isCancel(cause) {
		return cause
	}
	return temporal.NewNonRetryableApplicationError(o.Error, "OperationFailed", cause)
}

func isCancel(err error) bool {
	var c *temporal.CanceledError
	return errors.As(err, &c)
}

// failureText is the error people read on the operation: the typed message of the
// activity, without Temporal's wrapping.
func failureText(err error) string {
	if isCancel(err) {
		return "cancelled"
	}
	return activities.Message(err)
}

// cancellable makes a cancelled workflow wait for its activity to acknowledge the
// cancellation, so the undo that follows never races the activity's command.
func cancellable(ctx workflow.Context) workflow.Context {
	o := workflow.GetActivityOptions(ctx)
	o.WaitForCancellation = true
	return workflow.WithActivityOptions(ctx, o)
}

// create runs a create activity on a server. Cancelled (the object was deleted while
// pending), it moves whatever the activity made into the erator before returning.
func create(ctx workflow.Context, serverID uint, activity, input, result any, made storage.TrashInput) error {
	err := workflow.ExecuteActivity(cancellable(serverCtx(ctx, serverID)), activity, input).Get(ctx, result)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil && (isCancel(err) || ctx.Err() != nil) {
		made.Unix = workflow.Now(ctx).Unix()
		err = undo(ctx, serverID, made, err)
	}
	return err
}

// undo moves what a cancelled create made into the erator, with a context that survives
// the cancellation, and returns the cause (joined with the undo's own failure, if any).
func undo(ctx workflow.Context, serverID uint, in storage.TrashInput, cause error) error {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if err := workflow.ExecuteActivity(serverCtx(dctx, serverID), sa.Trash, in).Get(dctx, nil); err != nil {
		return errors.Join(cause, fmt.Errorf("undo: %w", err))
	}
	return cause
}

func gib(n int64) uint64 { return uint64(n) * storage.GiB }
