package tunnel_test

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel/agentclient"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness/proc"
)

// portBound is how long a committed change may take to open or close a tunnel port: the
// TunnelPorts workflow's start, a panel activity and the tunnel's SyncPorts. No health
// schedule runs in these tests, so only the workflow can do it.
const portBound = 30 * time.Second

// moveBound is how long an agent may take to be reachable through its network's new
// tunnel: the workflow closes its port (and session) on the old tunnel and opens it on the
// new one; the agent, dropped, asks the panel for its tunnel and dials the new one (a
// first dial that finds the port not open yet waits out a backoff of at most 12 s).
const moveBound = 45 * time.Second

// TestTunnelPortsFollowChanges: a server added, given another port, moved to another
// tunnel with its network, and deleted has its tunnel port opened, moved and closed by
// the TunnelPorts workflow right after the change, with no health round; the agent
// follows its network to the new tunnel without a restart; a deleted tunnel closes its ports.
func TestTunnelPortsFollowChanges(t *testing.T) {
	e := startEnv(t, nil)
	n := e.network("N", e.Admin.ClientID)
	ta, keyA := e.tunnel(n, "ta") // the network's first tunnel: selected
	tb, keyB := e.tunnel(n, "tb")
	e.startTunnel(keyA)
	e.startTunnel(keyB)
	waitTunnelRegistered(t, e, ta)
	waitTunnelRegistered(t, e, tb)

	// Added: its port opens on the selected tunnel, and the agent answers through it.
	s1, k1, p1 := e.server(n, "s1")
	took := eventually(t, portBound, "s1's port open on tunnel A", func() error { return portOpen(p1) })
	t.Logf("port of a new server open %v after its create", took.Round(time.Millisecond))
	e.startAgent(k1, t.TempDir())
	ac := agentclient.New(e.DB)
	eventually(t, 90*time.Second, "s1 through tunnel A", func() error { return agentVia(e, ac, ta, p1, s1) })

	// Another port: the old one closes, the new one opens, the agent answers there.
	p2, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.UpdateServer(e.ctx, e.Admin, s1, &models.ServerInput{TunnelPort: &p2}); err != nil {
		t.Fatal(err)
	}
	took = eventually(t, portBound, "s1's port moved", func() error {
		if portOpen(p1) == nil {
			return fmt.Errorf("port %d still open", p1)
		}
		return agentVia(e, ac, ta, p2, s1)
	})
	t.Logf("port moved and the agent reachable there %v after the update", took.Round(time.Millisecond))

	// The network selects tunnel B: A closes the port, B opens it, the agent follows.
	if _, err := e.Store.UpdateNetwork(e.ctx, e.Admin, n, &models.NetworkInput{TunnelID: &tb}); err != nil {
		t.Fatal(err)
	}
	moved := time.Now()
	eventually(t, moveBound, "s1 through tunnel B", func() error { return agentVia(e, ac, tb, p2, s1) })
	t.Logf("agent reachable through the new tunnel %v after the switch (bound %v)", time.Since(moved).Round(time.Millisecond), moveBound)
	if agentVia(e, ac, ta, p2, s1) == nil {
		t.Error("s1 still answers through tunnel A")
	}

	// Deleted: its port closes.
	if err := e.Store.DeleteServer(e.ctx, e.Admin, s1); err != nil {
		t.Fatal(err)
	}
	eventually(t, portBound, "s1's port closed", func() error {
		if portOpen(p2) == nil {
			return fmt.Errorf("port %d still open", p2)
		}
		return nil
	})

	// The selected tunnel deleted: its process, still running, closes every port.
	_, _, p3 := e.server(n, "s3")
	eventually(t, portBound, "s3's port open on tunnel B", func() error { return portOpen(p3) })
	if err := e.Store.DeleteTunnel(e.ctx, e.Admin, tb); err != nil {
		t.Fatal(err)
	}
	eventually(t, portBound, "the deleted tunnel's port closed", func() error {
		if portOpen(p3) == nil {
			return fmt.Errorf("port %d still open", p3)
		}
		return nil
	})
}

// waitTunnelRegistered waits for the tunnel process to have registered (and so to have
// its worker on tunnel-<id> about to poll).
func waitTunnelRegistered(t *testing.T, e *env, id uint) {
	t.Helper()
	eventually(t, 60*time.Second, "tunnel registered", func() error {
		var tun models.Tunnel
		if err := e.DB.Take(&tun, id).Error; err != nil {
			return err
		}
		if tun.AgentAddr == "" {
			return fmt.Errorf("tunnel %d has not registered", id)
		}
		return nil
	})
}

// portOpen: something listens on the loopback port.
func portOpen(port int) error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// agentVia asks server id for its health through tunnel tid's port.
func agentVia(e *env, ac *agentclient.Client, tid uint, port int, id uint) error {
	var tun models.Tunnel
	if err := e.DB.Take(&tun, tid).Error; err != nil {
		return err
	}
	var h wire.AgentHealth
	if err := ac.Get(e.ctx, &tun, port, wire.AgentPathHealth, &h); err != nil {
		return err
	}
	if h.ServerID != id {
		return fmt.Errorf("server %d answered for %d", h.ServerID, id)
	}
	return nil
}
