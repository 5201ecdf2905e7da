package tunnel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel/agentclient"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/lab"
)

// TestTunnelLabVM is the tunnel with a real storage server, through the same StartLab as
// `task lab`: the agent in an OpenZFS VM dials the lab's tunnel on the host (10.0.2.2),
// and its pool's stats reach the panel through the tunnel ("Panel to server OK", pool
// ONLINE); the VM's forwarded ports answer no agent API: the tunnel is the only way in.
func TestTunnelLabVM(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	data := t.TempDir()
	l, err := lab.StartLab(ctx, 1, data, nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("panel output:\n%s", l.Panel.Output())
			t.Logf("agent log:\n%s", l.Servers[0].Log("command.log"))
		}
		l.Stop()
	})
	srv := l.Servers[0]
	var st models.ServerStats
	took := eventually(t, 15*time.Minute, "pool stats through the tunnel", func() error {
		if err := l.Panel.Call(ctx, "GET", "servers/"+srv.Name+"/stats.json", nil, &st); err != nil {
			return err
		}
		if !strings.HasPrefix(st.Status, models.StatusPanelOK) || st.PoolHealth != "ONLINE" || st.PoolSize <= 0 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	t.Logf("stats.json: %q, pool %s, %d bytes, %v after the lab started", st.Status, st.PoolHealth, st.PoolSize, took)

	// The panel's own client asks the VM's agent through the tunnel port directly.
	db, err := models.Open("sqlite:" + filepath.Join(data, "panel.db"))
	if err != nil {
		t.Fatal(err)
	}
	var tunnels []models.Tunnel
	if err := l.Panel.Call(ctx, "GET", "tunnels.json", nil, &tunnels); err != nil || len(tunnels) != 1 {
		t.Fatalf("tunnels: %+v %v", tunnels, err)
	}
	var direct wire.StatsReport
	if err := agentclient.New(db).Get(ctx, &tunnels[0], l.TunnelPorts[0], wire.AgentPathStats, &direct); err != nil || direct.PoolHealth != "ONLINE" || direct.PoolSize <= 0 {
		t.Fatalf("stats through tunnel port %d: %+v %v", l.TunnelPorts[0], direct, err)
	}
	// The agent's Prometheus metrics, as a Prometheus that reaches only the panel scrapes
	// them: the panel fetches them through the tunnel port.
	m := harness.ScrapeMetrics(t, fmt.Sprintf("%s/metrics/servers/%d", l.Panel.URL, l.ServerIDs[0]))
	up, sessions := m.Sum("clusterducks_tunnel_session_up", nil), m.Sum("clusterducks_tunnel_sessions_total", nil)
	t.Logf("agent metrics through the panel and the tunnel: %d families, tunnel_session_up %v, tunnel_sessions_total %v", len(m), up, sessions)
	if m.Sum("clusterducks_build_info", map[string]string{"role": "agent"}) != 1 || up != 1 || sessions < 1 {
		t.Errorf("agent metrics through the tunnel: build_info %v, tunnel_session_up %v, tunnel_sessions_total %v",
			m["clusterducks_build_info"], up, sessions)
	}

	// Every port forwarded to the VM, the agent API's old one included: no agent API.
	for _, port := range lab.DefaultGuestPorts {
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + srv.Addr(port) + wire.AgentPathStats)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var r wire.StatsReport
		if resp.StatusCode == 200 && json.Unmarshal(b, &r) == nil && r.PoolHealth != "" {
			t.Errorf("the VM's port %d answers the agent API from the host", port)
		}
	}
}
