package lab

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestAgentRegisters is the lab's acceptance: a storage-server VM boots, the agent in it
// registers with a panel on the host using its server key, connects to the panel's
// Temporal, runs the bootstrap workflow's go-zfs activity on its pool (the guide's layout
// appears on the guest's pool) and its pool status reaches the panel.
func TestAgentRegisters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	bin, err := BuildBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	panel, err := StartDevPanel(ctx, bin, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		panel.Stop() //nolint:errcheck
		if t.Failed() {
			t.Logf("panel output:\n%s", tailString(panel.Output(), 6000))
		}
	})
	networkID, err := panel.CreateNetwork(ctx, "Lab")
	if err != nil {
		t.Fatal(err)
	}
	serverID, key, err := panel.CreateServer(ctx, networkID, "labmaster", GuestIP, "tank")
	if err != nil {
		t.Fatal(err)
	}

	srv := StartServer(t, AgentOptions("labmaster", panel.URL, key))

	// The bootstrap operation succeeds only after the agent ran its activity through Temporal.
	deadline := time.Now().Add(5 * time.Minute)
	var stats struct {
		Status     string          `json:"status"`
		PoolHealth string          `json:"pool_health"`
		PoolSize   int64           `json:"pool_size"`
		Stats      json.RawMessage `json:"stats"`
	}
	var boot struct {
		Kind, State, Error, Message string
		ObjectID                    uint `json:"object_id"`
	}
	for {
		var ops []struct {
			Kind     string `json:"kind"`
			State    string `json:"state"`
			Error    string `json:"error"`
			Message  string `json:"message"`
			ObjectID uint   `json:"object_id"`
		}
		if err := panel.Call(ctx, "GET", "operations.json", nil, &ops); err != nil {
			t.Fatal(err)
		}
		for _, op := range ops {
			if op.Kind == "server-bootstrap" && op.ObjectID == serverID {
				boot.Kind, boot.State, boot.Error, boot.Message, boot.ObjectID = op.Kind, op.State, op.Error, op.Message, op.ObjectID
			}
		}
		if err := panel.Call(ctx, "GET", "servers/labmaster/stats.json", nil, &stats); err != nil {
			t.Fatal(err)
		}
		if boot.State == "failed" {
			t.Fatalf("bootstrap failed: %s\nagent log:\n%s", boot.Error, srv.Log("command.log"))
		}
		if boot.State == "succeeded" && stats.PoolHealth == "ONLINE" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5 minutes: bootstrap %+v, stats %+v\nagent log:\n%s", boot, stats, srv.Log("command.log"))
		}
		time.Sleep(time.Second)
	}
	t.Logf("bootstrap: %s; server status %q, pool %s, %d bytes", boot.Message, stats.Status, stats.PoolHealth, stats.PoolSize)
	if stats.PoolSize <= 0 {
		t.Errorf("pool size %d", stats.PoolSize)
	}
	// What the agent did through go-zfs is on the guest's pool.
	if out, err := srv.Exec(ctx, "zfs", "list", "-H", "-o", "name", "tank/iscsi"); err != nil || strings.TrimSpace(out) != "tank/iscsi" {
		t.Errorf("the bootstrap's layout is not on the pool: %q %v", out, err)
	}
}
