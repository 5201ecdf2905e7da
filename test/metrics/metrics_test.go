// Package metrics scrapes the real processes: a dev panel (`clusterducks dev`) and a
// storage agent (`clusterducks agent`) on host loopback, parses their /metrics in the
// Prometheus text format and checks that the names move under a small workload: the
// agent registering (the panel runs its bootstrap workflow, the agent its activity), a
// few boot requests and an iSCSI connection.
package metrics

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/harness/proc"
	"github.com/clusterducks/clusterducks/test/lab"
)

func TestProcessMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin, err := lab.BuildBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	panel := lab.StartTestPanel(ctx, t)
	netID, err := panel.CreateNetwork(ctx, "Metrics")
	if err != nil {
		t.Fatal(err)
	}
	srvID, key, err := panel.CreateServer(ctx, netID, "m1", "127.0.0.1", "tank")
	if err != nil {
		t.Fatal(err)
	}
	// The server's admission bound on new disks is set in the panel; the one on logins is
	// left at 0, the agent's default.
	if err := panel.Call(ctx, "PATCH", fmt.Sprintf("servers/%d.json", srvID), map[string]any{"boot_max_provisions": 5}, nil); err != nil {
		t.Fatal(err)
	}
	panelBefore := harness.ScrapeMetrics(t, panel.URL+"/metrics")
	if panelBefore.Sum("clusterducks_build_info", map[string]string{"role": "panel"}) != 1 {
		t.Errorf("panel build info: %v", panelBefore["clusterducks_build_info"])
	}

	// The agent, on free loopback ports; it has no ZFS here, which only fails its activities.
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "server.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	iscsiPort, bootAddr := startAgent(t, bin, panel.URL, keyFile, dir)
	agentURL := "http://" + bootAddr + "/metrics"
	agentBefore := harness.ScrapeMetrics(t, agentURL)
	if got := agentBefore.Sum("clusterducks_boot_provisions_max", nil); got != 5 {
		t.Errorf("the agent's bound on new disks is %v, want the panel's 5", got)
	}
	if got := agentBefore.Sum("clusterducks_boot_logins_max", nil); got != 256 {
		t.Errorf("the agent's bound on logins is %v, want the default 256", got)
	}
	if agentBefore.Sum("clusterducks_build_info", map[string]string{"role": "agent"}) != 1 {
		t.Errorf("agent build info: %v", agentBefore["clusterducks_build_info"])
	}

	// The workload: three boot requests of a device the panel does not know (answered
	// with the reboot script), and an iSCSI connection held open while scraping.
	const boots = 3
	for i := range boots {
		resp, err := http.Get(fmt.Sprintf("http://%s/boot.ipxe?mac=52-54-00-00-00-%02x&uuid=8d9e4b1c-1111-4222-8333-44445555666%d", bootAddr, i, i))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "reboot") {
			t.Fatalf("boot answer:\n%s", b)
		}
	}
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", iscsiPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	var agentAfter harness.Metrics
	deadline := time.Now().Add(time.Minute)
	for {
		agentAfter = harness.ScrapeMetrics(t, agentURL)
		if agentAfter.Sum("clusterducks_iscsi_connections", nil) == 1 && agentAfter.Sum("temporal_request", nil) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("iSCSI connections %v, temporal_request %v", agentAfter.Sum("clusterducks_iscsi_connections", nil), agentAfter.Sum("temporal_request", nil))
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := agentAfter.Sum("clusterducks_boot_requests_total", map[string]string{"result": "reboot"}); got != boots {
		t.Errorf("boot requests{result=reboot} = %v, want %d", got, boots)
	}
	if got := agentAfter.Sum("clusterducks_boot_request_duration_seconds", nil); got != boots {
		t.Errorf("boot latency samples = %v, want %d", got, boots)
	}
	if got := agentAfter.Sum("clusterducks_boots_in_progress", nil); got != 0 {
		t.Errorf("boots in progress = %v after the answers", got)
	}

	// A bound changed in the panel reaches the running agent (it re-reads its server at
	// every stats tick).
	if err := panel.Call(ctx, "PATCH", fmt.Sprintf("servers/%d.json", srvID), map[string]any{"boot_max_logins": 40}, nil); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(2 * time.Minute)
	for harness.ScrapeMetrics(t, agentURL).Sum("clusterducks_boot_logins_max", nil) != 40 {
		if time.Now().After(deadline) {
			t.Fatal("the panel's new bound on logins never reached the running agent")
		}
		time.Sleep(time.Second)
	}

	// The panel ran the server's bootstrap workflow through its worker: the SDK's metrics
	// of that workflow type moved.
	deadline = time.Now().Add(2 * time.Minute)
	for {
		panelAfter := harness.ScrapeMetrics(t, panel.URL+"/metrics")
		tasks := panelAfter.Sum("temporal_workflow_task_execution_latency_seconds", map[string]string{"workflow_type": "ServerBootstrap"})
		if tasks > 0 && panelAfter.Sum("temporal_request", nil) > panelBefore.Sum("temporal_request", nil) {
			t.Logf("panel: %v ServerBootstrap workflow tasks, %v SDK requests; agent: %v boot requests, %v SDK requests",
				tasks, panelAfter.Sum("temporal_request", nil), agentAfter.Sum("clusterducks_boot_requests_total", nil), agentAfter.Sum("temporal_request", nil))
			break
		}
		if time.Now().After(deadline) {
			var names []string
			for n := range panelAfter {
				names = append(names, n)
			}
			t.Fatalf("the panel's workflow metrics did not move; families: %v", names)
		}
		time.Sleep(time.Second)
	}
}

// startAgent starts `clusterducks agent` on free loopback ports and waits for its metrics
// (served on the boot listener). A port taken between proc.FreePort and the agent's bind
// (the replication listener's own port 0 can be the one just freed) fails the boot path
// at once: then it starts again on other ports, up to three times.
func startAgent(t *testing.T, bin, panelURL, keyFile, dir string) (iscsiPort int, bootAddr string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		ports := make([]int, 3)
		for i := range ports {
			p, err := proc.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			ports[i] = p
		}
		iscsiPort, bootAddr = ports[0], fmt.Sprintf("127.0.0.1:%d", ports[1])
		agent := exec.Command(bin, "agent", "--panel", panelURL, "--key", keyFile, "--state", filepath.Join(dir, "state"),
			"--iscsi-listen", fmt.Sprintf("127.0.0.1:%d", iscsiPort), "--boot-listen", bootAddr,
			"--replication-listen", fmt.Sprintf("127.0.0.1:%d", ports[2]))
		agent.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		agentLog := &proc.SyncBuffer{}
		agent.Stdout, agent.Stderr = agentLog, agentLog
		if err := agent.Start(); err != nil {
			t.Fatal(err)
		}
		stop := func() {
			agent.Process.Kill() //nolint:errcheck
			agent.Wait()         //nolint:errcheck
		}
		agentURL := "http://" + bootAddr + "/metrics"
		deadline := time.Now().Add(3 * time.Minute)
		for {
			resp, err := http.Get(agentURL)
			if err == nil {
				resp.Body.Close()
				t.Cleanup(func() {
					stop()
					if t.Failed() {
						t.Logf("agent output:\n%s", agentLog.String())
					}
				})
				return iscsiPort, bootAddr
			}
			if strings.Contains(agentLog.String(), "address already in use") && attempt < 3 {
				t.Logf("a port was taken before the agent bound it (attempt %d): starting it again on others", attempt)
				stop()
				break
			}
			if time.Now().After(deadline) {
				stop()
				t.Fatalf("the agent's metrics never answered: %v\nagent output:\n%s", err, agentLog.String())
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}
