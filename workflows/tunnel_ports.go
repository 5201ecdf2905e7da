package workflows

import (
	"slices"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/tunnel"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// TunnelPortsInput names the network whose tunnel ports changed.
type TunnelPortsInput struct {
	NetworkID uint
	// Closed are tunnels of the network deleted since: no row names them any more, so
	// they are told to close every port here.
	Closed []uint
}

// TunnelPortsSignal is the TunnelPortsChanged signal's argument: a later change, with the
// tunnels it deleted.
type TunnelPortsSignal struct {
	Closed []uint
}

// TunnelSync is how one tunnel took its ports.
type TunnelSync struct {
	TunnelID uint
	Ports    int // the ports it should have open (0: it is not the selected tunnel)
	Agents   []uint
	// Error says why the tunnel did not take them (its process is down: it gets them
	// when it registers again, or from the next health round).
	Error string
}

// TunnelPortsResult is every tunnel of the network after the last pass.
type TunnelPortsResult struct {
	Passes  int
	Tunnels []TunnelSync
}

// tunnelPortsWait is how long a tunnel process may take to pick up its sync: one that is
// down takes its ports from the panel when it registers again, so a change signalled
// meanwhile waits no longer than this for its pass.
const tunnelPortsWait = 15 * time.Second

// TunnelPorts opens, moves and closes the tunnel ports of a network's servers right after
// a change commits (a server added, deleted or given another port; the network's tunnel
// changed): the selected tunnel opens its servers' ports, every other tunnel of the
// network closes them (and drops those agents, which then dial the selected one). It
// reads the ports when it runs, not from its input, so a change signalled
// (TunnelPortsChanged) while it runs makes it pass again, and the last pass sees the last
// change. The health round's SyncPorts is the backstop for a tunnel that was down.
func TunnelPorts(ctx workflow.Context, in TunnelPortsInput) (TunnelPortsResult, error) {
	changed := workflow.GetSignalChannel(ctx, TunnelPortsChanged)
	pctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           PanelQueue,
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	var res TunnelPortsResult
	closed := append([]uint(nil), in.Closed...)
	drain := func() bool {
		got := false
		var sig TunnelPortsSignal
		for changed.ReceiveAsync(&sig) {
			got = true
			closed = append(closed, sig.Closed...)
			sig = TunnelPortsSignal{}
		}
		return got
	}
	for {
		drain()
		var targets panel.HealthTargetsResult
		if err := workflow.ExecuteActivity(pctx, pa.HealthTargets, panel.HealthTargetsInput{NetworkID: in.NetworkID}).Get(ctx, &targets); err != nil {
			return res, err
		}
		for _, id := range closed {
			if !slices.ContainsFunc(targets.Tunnels, func(t panel.TunnelTarget) bool { return t.TunnelID == id }) {
				targets.Tunnels = append(targets.Tunnels, panel.TunnelTarget{TunnelID: id, NetworkID: in.NetworkID})
			}
		}
		closed = nil
		res.Passes++
		res.Tunnels = make([]TunnelSync, len(targets.Tunnels))
		// The tunnels that close ports go first: a port moving to another tunnel on the
		// same machine is free before the new one opens it.
		for _, opening := range []bool{false, true} {
			futures := make([]workflow.Future, len(targets.Tunnels))
			for i, t := range targets.Tunnels {
				if (len(t.Ports) > 0) != opening {
					continue
				}
				tctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
					TaskQueue:              TunnelQueue(t.TunnelID),
					ScheduleToStartTimeout: tunnelPortsWait,
					StartToCloseTimeout:    30 * time.Second,
					RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 3},
				})
				futures[i] = workflow.ExecuteActivity(tctx, ta.SyncPorts, tunnel.SyncPortsInput{Ports: t.Ports})
			}
			for i, f := range futures {
				if f == nil {
					continue
				}
				var sr tunnel.SyncPortsResult
				err := f.Get(ctx, &sr)
				res.Tunnels[i] = TunnelSync{TunnelID: targets.Tunnels[i].TunnelID, Ports: len(targets.Tunnels[i].Ports), Agents: sr.Agents, Error: sr.Error}
				if err != nil {
					res.Tunnels[i].Error = "the tunnel process did not answer: " + err.Error()
				}
			}
		}
		if !drain() {
			return res, nil
		}
	}
}
