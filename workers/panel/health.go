package panel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workflows"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// HealthConfig is how often the panel checks its servers and tunnels, and when a run of
// results changes their state.
type HealthConfig struct {
	// Every is the interval between rounds (default 40 s: 3 checks over 2 minutes).
	Every time.Duration
	Rules models.HealthRules
	// TunnelTimeout: see workflows.HealthCheckInput.
	TunnelTimeout time.Duration
	// AgentTimeout: see workflows.HealthCheckInput.
	AgentTimeout time.Duration
}

// HealthFromEnv reads HEALTH_EVERY (a duration), HEALTH_FAILURES, HEALTH_FLAP_CHANGES and
// HEALTH_FLAP_WINDOW, with their defaults.
func HealthFromEnv() (HealthConfig, error) {
	var c HealthConfig
	var err error
	if c.Every, err = time.ParseDuration(cmp.Or(os.Getenv("HEALTH_EVERY"), "40s")); err != nil || c.Every < time.Second {
		return c, fmt.Errorf("HEALTH_EVERY=%q: want a duration of at least 1s", os.Getenv("HEALTH_EVERY"))
	}
	if c.Rules.Failures, err = strconv.Atoi(cmp.Or(os.Getenv("HEALTH_FAILURES"), "3")); err != nil || c.Rules.Failures < 1 {
		return c, fmt.Errorf("HEALTH_FAILURES=%q: want a number of at least 1", os.Getenv("HEALTH_FAILURES"))
	}
	if c.Rules.FlapChanges, err = strconv.Atoi(cmp.Or(os.Getenv("HEALTH_FLAP_CHANGES"), "4")); err != nil || c.Rules.FlapChanges < 2 {
		return c, fmt.Errorf("HEALTH_FLAP_CHANGES=%q: want a number of at least 2", os.Getenv("HEALTH_FLAP_CHANGES"))
	}
	if c.Rules.FlapWindow, err = time.ParseDuration(cmp.Or(os.Getenv("HEALTH_FLAP_WINDOW"), "10m")); err != nil {
		return c, fmt.Errorf("HEALTH_FLAP_WINDOW=%q: want a duration", os.Getenv("HEALTH_FLAP_WINDOW"))
	}
	return c, nil
}

// StartHealth creates the panel's health-check schedule, or brings an existing one to cfg:
// every panel does it at start, and one schedule results.
func (t *Temporal) StartHealth(ctx context.Context, cfg HealthConfig) error {
	if cfg.Every <= 0 {
		cfg.Every = 40 * time.Second
	}
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: cfg.Every}}}
	action := &client.ScheduleWorkflowAction{
		ID:        workflows.HealthCheckID,
		Workflow:  workflows.HealthCheck,
		Args:      []any{workflows.HealthCheckInput{Rules: cfg.Rules, TunnelTimeout: cfg.TunnelTimeout, AgentTimeout: cfg.AgentTimeout}},
		TaskQueue: workflows.PanelQueue,
		// A round that hangs must not stop the next ones.
		WorkflowRunTimeout: 10 * time.Minute,
	}
	sc := t.Client.ScheduleClient()
	_, err := sc.Create(ctx, client.ScheduleOptions{ID: workflows.HealthScheduleID, Spec: spec, Action: action,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP})
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		if err != nil {
			return fmt.Errorf("health schedule: %w", err)
		}
		return nil
	}
	// The schedule exists: bring it to this panel's settings. Right after a Temporal
	// restart the schedule's own workflow may take a while to answer an update, so the
	// update is retried in the background (the existing schedule keeps checking meanwhile)
	// rather than holding up the panel's start.
	update := func(ctx context.Context) error {
		uctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return sc.GetHandle(uctx, workflows.HealthScheduleID).Update(uctx, client.ScheduleUpdateOptions{
			DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				s := in.Description.Schedule
				s.Spec, s.Action = &spec, action
				s.Policy.Overlap = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
				return &client.ScheduleUpdate{Schedule: &s}, nil
			},
		})
	}
	if err := update(ctx); err != nil {
		slog.Warn("health schedule: update deferred", "err", err)
		go func() {
			for i := 0; i < 30 && ctx.Err() == nil; i++ {
				select {
				case <-ctx.Done():
					return
				case <-time.After(10 * time.Second):
				}
				if err := update(ctx); err == nil {
					slog.Info("health schedule updated")
					return
				}
			}
		}()
	}
	return nil
}

// StopHealth deletes the health-check schedule (a test's panel, before its database goes).
func (t *Temporal) StopHealth(ctx context.Context) error {
	return t.Client.ScheduleClient().GetHandle(ctx, workflows.HealthScheduleID).Delete(ctx)
}
