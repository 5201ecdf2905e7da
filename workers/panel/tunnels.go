package panel

import (
	"context"
	"time"

	"github.com/clusterducks/clusterducks/workflows"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// SyncTunnelPorts starts network networkID's TunnelPorts workflow, or signals the run
// under way so that it passes again (models.TunnelPortSyncer): one run per network at a
// time, and none misses a change; closed are tunnels just deleted. A failure is logged: the health round converges the
// ports anyway.
func (e *Engine) SyncTunnelPorts(ctx context.Context, networkID uint, closed ...uint) {
	// The change has committed: a client that hangs up does not cancel its sync.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err := e.Client.SignalWithStartWorkflow(ctx, workflows.TunnelPortsID(networkID), workflows.TunnelPortsChanged, workflows.TunnelPortsSignal{Closed: closed},
		client.StartWorkflowOptions{
			TaskQueue:             workflows.PanelQueue,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			// A sync stuck on a tunnel that is gone must not hold the id for long.
			WorkflowRunTimeout: 10 * time.Minute,
		},
		workflows.TunnelPorts, workflows.TunnelPortsInput{NetworkID: networkID, Closed: closed})
	if err != nil {
		e.Log.Warn("tunnel ports: the sync did not start; the next health round does it", "network", networkID, "err", err)
	}
}
