// Package install is the acceptance of install.sh (issue 13): the guide's step 15,
// `sh install.sh -h "panel.hostname" -k "server.key" -n "bridge.name"`, run verbatim in
// a storage-lab VM that boots systemd from the minimal Debian image with OpenZFS, against
// a dev panel on the host that serves install.sh and the agent binary.
package install

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/lab"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

type serverStats struct {
	Status     string     `json:"status"`
	PoolHealth string     `json:"pool_health"`
	PoolSize   int64      `json:"pool_size"`
	StatsAt    *time.Time `json:"stats_at"`
}

// waitStats polls stats.json until the agent has reported its pool after since.
func waitStats(ctx context.Context, t *testing.T, p *lab.DevPanel, name string, since time.Time, within time.Duration) serverStats {
	t.Helper()
	deadline := time.Now().Add(within)
	var st serverStats
	for {
		st = serverStats{}
		if err := p.Call(ctx, "GET", "servers/"+name+"/stats.json", nil, &st); err != nil {
			t.Fatal(err)
		}
		if st.PoolHealth == "ONLINE" && st.PoolSize > 0 && st.StatsAt != nil && st.StatsAt.After(since) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pool stats from %s since %s after %s: %+v", name, since.Format(time.RFC3339), within, st)
		}
		time.Sleep(time.Second)
	}
}

// unitState is what systemd says of the agent's unit.
type unitState struct{ active, pid, since string }

func agentUnit(ctx context.Context, t *testing.T, srv *lab.Server) unitState {
	t.Helper()
	out, err := srv.Exec(ctx, "systemctl", "show", "-p", "ActiveState,MainPID,ActiveEnterTimestamp", "clusterducks-agent.service")
	if err != nil {
		t.Fatalf("systemctl show: %v", err)
	}
	var u unitState
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "ActiveState":
			u.active = v
		case "MainPID":
			u.pid = v
		case "ActiveEnterTimestamp":
			u.since = v
		}
	}
	return u
}

// waitActive waits until the agent's unit is active; past within it fails with what
// systemd still waits for.
func waitActive(ctx context.Context, t *testing.T, srv *lab.Server, within time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		u := agentUnit(ctx, t, srv)
		if u.active == "active" {
			t.Logf("agent unit active %s after the VM was reachable", time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Since(start) > within {
			jobs, _ := srv.Exec(ctx, "systemctl", "list-jobs", "--no-pager")
			chain, _ := srv.Exec(ctx, "systemd-analyze", "critical-chain", "--no-pager", "clusterducks-agent.service")
			t.Fatalf("agent unit after reboot: %+v after %v\njobs:\n%s\ncritical chain:\n%s", u, within, jobs, chain)
		}
		time.Sleep(time.Second)
	}
}

func mustExec(ctx context.Context, t *testing.T, srv *lab.Server, name string, args ...string) string {
	t.Helper()
	out, err := srv.Exec(ctx, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// TestInstallScript: install.sh installs and starts the agent under systemd, the agent
// comes back by itself after a reboot and its pool data reaches the panel; a second run
// changes nothing and does not restart it; the uninstall script leaves the pool and every
// dataset in place.
func TestInstallScript(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	start := time.Now()
	panel := lab.StartTestPanel(ctx, t)
	netID, err := panel.CreateNetwork(ctx, "Install")
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := panel.CreateServer(ctx, netID, "s1", lab.GuestIP, "tank")
	if err != nil {
		t.Fatal(err)
	}
	deployDir, err := filepath.Abs("../../deploy")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"server.key": key}
	for _, f := range []string{"clusterducks-panel.service", "clusterducks-tunnel.service", "panel.env.example", "tunnel.env.example"} {
		b, err := os.ReadFile(filepath.Join(deployDir, f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = b
	}
	srv := lab.StartServer(t, lab.Options{Name: "s1", Systemd: true, Files: files})
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := srv.Exec(context.Background(), "journalctl", "-b", "--no-pager", "-n", "150", "-u", "clusterducks-agent.service")
			t.Logf("agent journal:\n%s", out)
		}
	})
	t.Logf("systemd VM ready in %s (%s since the test started)", srv.BootTime.Round(time.Second), time.Since(start).Round(time.Second))

	// The guide's step 15, verbatim but for the lab panel's address (http: a loopback lab
	// panel, allowed by the one explicit switch).
	panelHost := strings.TrimPrefix(lab.GuestURL(panel.URL), "http://")
	mustExec(ctx, t, srv, "wget", "-q", "-O", "/root/install.sh", "http://"+panelHost+"/install.sh")
	mustExec(ctx, t, srv, "install", "-m", "600", "/mnt/host/server.key", "/root/server.key")
	install := func() string {
		t.Helper()
		return mustExec(ctx, t, srv, "sh", "-c",
			"cd /root && CLUSTERDUCKS_INSECURE_HTTP=1 sh install.sh -h "+panelHost+" -k server.key -n br0 2>&1")
	}
	installAt := time.Now()
	out := install()
	t.Logf("install.sh (%s):\n%s", time.Since(installAt).Round(100*time.Millisecond), out)
	if u := agentUnit(ctx, t, srv); u.active != "active" {
		t.Fatalf("agent unit after install: %+v", u)
	}
	if got := strings.TrimSpace(mustExec(ctx, t, srv, "stat", "-c", "%a", "/etc/clusterducks/agent.env", "/etc/clusterducks/server.key")); got != "600\n600" {
		t.Errorf("config modes: %q, want 600 and 600", got)
	}
	mustExec(ctx, t, srv, "ip", "link", "show", "br0")
	unit := mustExec(ctx, t, srv, "cat", "/etc/systemd/system/clusterducks-agent.service")
	for _, want := range []string{"Restart=always", "After=network-online.target zfs.target"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	st := waitStats(ctx, t, panel, "s1", installAt.Add(-time.Minute), 5*time.Minute)
	t.Logf("after install: status %q, pool %s, %d bytes", st.Status, st.PoolHealth, st.PoolSize)

	// "once finished, reboot the server": the agent comes back by itself and reports again.
	rebootTook, err := srv.Reboot(ctx, 8*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	// The exec helper is up before multi-user.target: the agent's unit waits for
	// network-online.target and zfs.target, which on a loaded machine come later.
	waitActive(ctx, t, srv, 3*time.Minute)
	mustExec(ctx, t, srv, "ip", "link", "show", "br0") // the bridge survives the reboot
	st = waitStats(ctx, t, panel, "s1", back, 5*time.Minute)
	t.Logf("reboot to ready %s; stats after reboot: status %q, pool %s, %d bytes", rebootTook.Round(time.Second), st.Status, st.PoolHealth, st.PoolSize)

	// The agent's own metrics, on its boot listener until the tunnel's agent API serves them.
	checkAgentMetrics(t, "http://"+srv.Addr(lab.PortBoot)+"/metrics")

	// A second run is the upgrade path: nothing changed, so nothing restarts.
	before := agentUnit(ctx, t, srv)
	out = install()
	after := agentUnit(ctx, t, srv)
	if before != after || after.active != "active" {
		t.Errorf("a second install.sh restarted the agent: before %+v, after %+v\n%s", before, after, out)
	}
	if !strings.Contains(out, "nothing changed") || !strings.Contains(out, "agent binary up to date") {
		t.Errorf("second run output:\n%s", out)
	}

	// The deploy/ units: systemd accepts them, and the panel's starts and answers.
	checkDeployUnits(ctx, t, srv)

	// Uninstall: the agent goes, the pool and every dataset stay.
	datasets := mustExec(ctx, t, srv, "zfs", "list", "-H", "-o", "name,guid", "-t", "all")
	if !strings.Contains(datasets, "tank/iscsi") {
		t.Fatalf("the agent's bootstrap made no layout on the pool:\n%s", datasets)
	}
	out = mustExec(ctx, t, srv, "/usr/local/sbin/clusterducks-uninstall")
	t.Logf("uninstall: %s", strings.TrimSpace(out))
	if got := mustExec(ctx, t, srv, "zfs", "list", "-H", "-o", "name,guid", "-t", "all"); got != datasets {
		t.Errorf("datasets changed by the uninstall:\nbefore\n%s\nafter\n%s", datasets, got)
	}
	if _, err := srv.Exec(ctx, "systemctl", "is-active", "--quiet", "clusterducks-agent.service"); err == nil {
		t.Error("the agent still runs after the uninstall")
	}
	if _, err := srv.Exec(ctx, "test", "-e", "/usr/local/bin/clusterducks-agent"); err == nil {
		t.Error("the agent binary is still there after the uninstall")
	}
	if h := strings.TrimSpace(mustExec(ctx, t, srv, "zpool", "list", "-H", "-o", "health", "tank")); h != "ONLINE" {
		t.Errorf("pool after uninstall: %s", h)
	}
	t.Logf("install acceptance done in %s", time.Since(start).Round(time.Second))
}

// checkDeployUnits verifies the panel and tunnel units with systemd-analyze and starts
// the panel's on SQLite, without Temporal: it must answer /healthz and serve install.sh.
func checkDeployUnits(ctx context.Context, t *testing.T, srv *lab.Server) {
	t.Helper()
	mustExec(ctx, t, srv, "install", "-m", "755", "/usr/local/bin/clusterducks-agent", "/usr/local/bin/clusterducks")
	mustExec(ctx, t, srv, "mkdir", "-p", "/etc/clusterducks")
	for _, u := range []string{"clusterducks-panel.service", "clusterducks-tunnel.service"} {
		mustExec(ctx, t, srv, "install", "-m", "644", "/mnt/host/"+u, "/etc/systemd/system/"+u)
	}
	// The tunnel's key file is only read when it starts; verify needs it to exist.
	mustExec(ctx, t, srv, "sh", "-c", "umask 077; echo placeholder >/etc/clusterducks/tunnel.key; cp /mnt/host/tunnel.env.example /etc/clusterducks/tunnel.env")
	if out, err := srv.Exec(ctx, "systemd-analyze", "verify", "/etc/systemd/system/clusterducks-panel.service", "/etc/systemd/system/clusterducks-tunnel.service"); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The example, with the single-server SQLite database and a port of its own.
	mustExec(ctx, t, srv, "sh", "-c", `umask 077; sed -e 's|^DATABASE_URL=.*|DATABASE_URL=sqlite:/var/lib/clusterducks-panel/panel.db|' `+
		`-e 's|^LISTEN=.*|LISTEN=127.0.0.1:18080|' -e 's|^TEMPORAL_ADDRESS=.*||' /mnt/host/panel.env.example >/etc/clusterducks/panel.env`)
	mustExec(ctx, t, srv, "systemctl", "daemon-reload")
	mustExec(ctx, t, srv, "systemctl", "start", "clusterducks-panel.service")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := srv.Exec(ctx, "wget", "-q", "-O", "-", "http://127.0.0.1:18080/healthz")
		if err == nil && strings.TrimSpace(out) == "ok" {
			break
		}
		if time.Now().After(deadline) {
			j, _ := srv.Exec(ctx, "journalctl", "--no-pager", "-n", "60", "-u", "clusterducks-panel.service")
			t.Fatalf("the panel unit does not answer /healthz: %v %q\n%s", err, out, j)
		}
		time.Sleep(time.Second)
	}
	if out, err := srv.Exec(ctx, "wget", "-q", "-O", "-", "http://127.0.0.1:18080/install.sh"); err != nil || !strings.HasSuffix(out, "main \"$@\"\n") {
		t.Errorf("the panel unit's /install.sh: %v (%d bytes)", err, len(out))
	}
	if u := strings.TrimSpace(mustExec(ctx, t, srv, "systemctl", "show", "-p", "Restart", "--value", "clusterducks-panel.service")); u != "always" {
		t.Errorf("panel unit Restart=%s", u)
	}
	mustExec(ctx, t, srv, "systemctl", "stop", "clusterducks-panel.service")
}

// checkAgentMetrics scrapes an agent and checks its own metric families are there.
func checkAgentMetrics(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Errorf("agent metrics: %v", err)
		return
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Errorf("agent metrics: %v", err)
		return
	}
	for _, name := range []string{"clusterducks_build_info", "clusterducks_iscsi_connections", "temporal_request"} {
		if fams[name] == nil {
			t.Errorf("agent metrics lack %s", name)
		}
	}
}
