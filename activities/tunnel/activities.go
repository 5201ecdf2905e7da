package tunnel

import (
	"context"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// Activities run on the tunnel's task queue, tunnel-<id>.
type Activities struct {
	Relay *Relay
}

// SyncPortsInput is the tunnel ports this tunnel should have open: those of its network's
// servers while it is the network's selected tunnel, none otherwise.
type SyncPortsInput struct {
	Ports []wire.TunnelPort
}

// SyncPortsResult is which agents have a session with the tunnel after the sync.
type SyncPortsResult struct {
	Agents []uint
	// Error says which ports could not be opened (taken by another program): the tunnel
	// itself works, so the activity does not fail for it.
	Error string
}

// SyncPorts opens, moves and closes tunnel ports so that exactly in.Ports are open, and
// reports the connected agents; the panel's health check runs it every round, so it is
// also the tunnel's liveness check. Safe to repeat.
func (a *Activities) SyncPorts(ctx context.Context, in SyncPortsInput) (*SyncPortsResult, error) {
	res := &SyncPortsResult{}
	if err := a.Relay.Sync(ctx, in.Ports); err != nil {
		a.Relay.log().Warn("tunnel ports", "err", err)
		res.Error = err.Error()
	}
	res.Agents = a.Relay.Connected()
	return res, nil
}
