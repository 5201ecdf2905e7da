package storage

import (
	"context"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
)

// activityTimes logs each activity the agent runs with how long it ran here and how long
// after Temporal handed it out it began (--log-zfs, beside each zfs command's duration):
// what an operation spends around its commands, on the way to the agent and back, shows
// as the difference between the operation's own timeline and these lines. The second
// figure compares the engine's clock with this server's, so it is only as good as their
// agreement.
type activityTimes struct {
	interceptor.WorkerInterceptorBase
	log *slog.Logger
}

func (t *activityTimes) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &activityTimer{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, log: t.log}
}

type activityTimer struct {
	interceptor.ActivityInboundInterceptorBase
	log *slog.Logger
}

func (a *activityTimer) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	start := time.Now()
	info := activity.GetInfo(ctx)
	res, err := a.Next.ExecuteActivity(ctx, in)
	a.log.Debug("activity", "type", info.ActivityType.Name, "took", time.Since(start),
		"began_after_handed_out", start.Sub(info.StartedTime), "failed", err != nil)
	return res, err
}
