package workflows

import (
	"time"

	"github.com/clusterducks/clusterducks/activities/panel"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// NotifyInput is one e-mail notification to a user.
type NotifyInput struct {
	UserID  uint
	Subject string
	Body    string
}

// NotifyResult says whether the mail went out.
type NotifyResult struct {
	Sent   bool
	Reason string
}

// Notify sends one e-mail through the panel worker, retrying a failing SMTP server with
// backoff for up to a day, so a mail server outage delays notifications instead of
// losing them.
func Notify(ctx workflow.Context, in NotifyInput) (NotifyResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              PanelQueue,
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    5 * time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Minute,
		},
	})
	var res panel.SendMailResult
	err := workflow.ExecuteActivity(ctx, pa.SendMail, panel.SendMailInput{UserID: in.UserID, Subject: in.Subject, Body: in.Body}).Get(ctx, &res)
	if err != nil {
		return NotifyResult{}, err
	}
	return NotifyResult{Sent: res.Sent, Reason: res.Reason}, nil
}

// notifyOnce starts mail in as a child workflow named id and returns once it started:
// Notify retries the SMTP server for a day by itself, and a mail whose id was started
// before (a repeated round or step) is not sent twice.
func notifyOnce(ctx workflow.Context, id string, in NotifyInput) error {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            id,
		TaskQueue:             PanelQueue,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	})
	child := workflow.ExecuteChildWorkflow(cctx, Notify, in)
	if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil && !temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		return err
	}
	return nil
}
