package workflows

import (
	"time"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/tunnel"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ta names the tunnel activities; only its methods are used, as references.
var ta *tunnel.Activities

// HealthCheckInput is one round of the health check, as the panel's schedule starts it.
type HealthCheckInput struct {
	Rules models.HealthRules
	// TunnelTimeout is how long a tunnel may take to pick up its check before it counts
	// as failed (default 10 s).
	TunnelTimeout time.Duration
	// AgentTimeout bounds one agent's answer through its tunnel (default 10 s).
	AgentTimeout time.Duration
}

// HealthCheckResult says what the round did.
type HealthCheckResult struct {
	Tunnels int
	Mails   int
}

// HealthCheck is one round of the health check (the panel's schedule starts one every
// interval, skipping a round while the previous one runs): every tunnel syncs its tunnel
// ports and reports its agents (SyncPorts on tunnel-<id>, which is also its liveness
// check), then the panel asks every server through its tunnel and records the round;
// each change that calls for mail is mailed once per user by a Notify child whose id
// names the event and the user.
func HealthCheck(ctx workflow.Context, in HealthCheckInput) (HealthCheckResult, error) {
	pctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           PanelQueue,
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var targets panel.HealthTargetsResult
	if err := workflow.ExecuteActivity(pctx, pa.HealthTargets, panel.HealthTargetsInput{}).Get(ctx, &targets); err != nil {
		return HealthCheckResult{}, err
	}
	wait := in.TunnelTimeout
	if wait <= 0 {
		wait = 10 * time.Second
	}
	futures := make([]workflow.Future, len(targets.Tunnels))
	for i, t := range targets.Tunnels {
		tctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:              TunnelQueue(t.TunnelID),
			ScheduleToStartTimeout: wait,
			StartToCloseTimeout:    30 * time.Second,
			// One try: a tunnel that does not answer this round has failed this round.
			RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
		})
		futures[i] = workflow.ExecuteActivity(tctx, ta.SyncPorts, tunnel.SyncPortsInput{Ports: t.Ports})
	}
	checks := make([]panel.TunnelCheck, len(futures))
	for i, f := range futures {
		var res tunnel.SyncPortsResult
		err := f.Get(ctx, &res)
		checks[i] = panel.TunnelCheck{TunnelID: targets.Tunnels[i].TunnelID, OK: err == nil, Agents: res.Agents}
		if err != nil {
			checks[i].Error = "the tunnel process does not answer"
		}
	}
	var round panel.CheckHealthResult
	if err := workflow.ExecuteActivity(pctx, pa.CheckHealth, panel.CheckHealthInput{Tunnels: checks, Rules: in.Rules, AgentTimeout: in.AgentTimeout}).Get(ctx, &round); err != nil {
		return HealthCheckResult{}, err
	}
	for _, m := range round.Mails {
		if err := notifyOnce(ctx, AlertNotifyID(m.EventID, m.UserID), NotifyInput{UserID: m.UserID, Subject: m.Subject, Body: m.Body}); err != nil {
			return HealthCheckResult{}, err
		}
	}
	return HealthCheckResult{Tunnels: len(checks), Mails: len(round.Mails)}, nil
}
