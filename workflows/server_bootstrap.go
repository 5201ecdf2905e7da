package workflows

import (
	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/workflow"
)

// ServerBootstrapInput names the server whose agent just registered and its pool.
type ServerBootstrapInput struct {
	OperationID uint
	ServerID    uint
	Pool        string
}

// ServerBootstrapResult is the pool's state after bootstrap.
type ServerBootstrapResult struct {
	Health  string
	Created []string
}

// ServerBootstrap checks that the server's pool exists and is healthy, creates the
// guide's layout on it and records "Panel to server OK" with the pool's stats. A missing
// or unhealthy pool is recorded in the stats too (so creates on that network get a 409
// saying so) and fails the operation.
func ServerBootstrap(ctx workflow.Context, in ServerBootstrapInput) (*ServerBootstrapResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	if err := t.step("bootstrap", 10, "checking pool %s and creating its file systems", in.Pool); err != nil {
		return nil, err
	}
	var res storage.BootstrapResult
	err = workflow.ExecuteActivity(serverCtx(ctx, in.ServerID), sa.Bootstrap, storage.PoolInput{Pool: in.Pool}).Get(ctx, &res)
	if err != nil {
		o := models.Outcome{}
		switch {
		case activities.IsType(err, activities.TypePoolNotFound):
			o.Stats = &models.StatsReport{PoolHealth: models.PoolMissing}
		case activities.IsType(err, activities.TypePoolUnhealthy):
			// The agent's heartbeat reports the exact health; here it is only known to be bad.
			o.Stats = &models.StatsReport{PoolHealth: "UNHEALTHY"}
		}
		return nil, t.fail(o, err)
	}
	stats := res.Status.Stats()
	if err := t.succeed(models.Outcome{Stats: stats}, "pool %s is %s; created %d file systems", in.Pool, res.Status.Pool.Health, len(res.Created)); err != nil {
		return nil, err
	}
	if since(ctx, VersionBootstrapCatchUp) {
		// A slave that joined (or came back) catches up everything its network holds; for
		// the master this queues nothing.
		replicateTo(ctx, panel.QueueReplicationInput{SlaveID: in.ServerID})
	}
	return &ServerBootstrapResult{Health: res.Status.Pool.Health, Created: res.Created}, nil
}
