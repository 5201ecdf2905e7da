package containerstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/lab"
)

// upload PUTs a tarball to ctemplate id's rootfs with checksum sum and returns the status
// and the decoded answer.
func upload(ctx context.Context, t *testing.T, p *lab.DevPanel, id uint, body []byte, sum string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "PUT", fmt.Sprintf("%s/api/v0.9.2/ctemplates/%d/rootfs?sha256=%s", p.URL, id, sum), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", `Token token="`+p.Token+`"`)
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m) //nolint:errcheck
	return resp.StatusCode, m
}

// eventually is harness.Eventually polling every second.
func eventually(t *testing.T, within time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	return harness.Eventually(t, within, time.Second, what, f)
}

// waitOp waits for operation id to end and fails the test unless it succeeded.
func waitOp(ctx context.Context, t *testing.T, p *lab.DevPanel, op map[string]any) {
	t.Helper()
	oid := uint(op["id"].(float64))
	var got map[string]any
	eventually(t, 10*time.Minute, fmt.Sprintf("operation %d", oid), func() error {
		if err := p.Call(ctx, "GET", fmt.Sprintf("operations/%d.json", oid), nil, &got); err != nil {
			return err
		}
		switch got["state"] {
		case models.OpSucceeded:
			return nil
		case models.OpFailed, models.OpCancelled:
			t.Fatalf("operation %d: %v", oid, got)
		}
		return fmt.Errorf("%v %v%% %v", got["state"], got["percent"], got["message"])
	})
}

// TestContainersLab: a ctemplate from a busybox root file system uploaded through the
// panel, streamed through the tunnel to the master's agent; a corrupted upload (its
// checksum wrong) leaves no dataset and no version; a container cloned from v1 runs its
// command under systemd-nspawn with its memory limit on its unit, its output in the
// journal read back through the API; killed on the server, it is a container_failed
// alert until started again; stopped, it comes back after a reboot of the server
// (autostart); rebased onto v2, it runs a clone of v2 and its v1 clone is in the erator;
// deleted, its clone is in the erator and its unit is gone.
func TestContainersLab(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	start := time.Now()
	bb, err := Busybox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tarball, err := Rootfs(bb, 0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := lab.StartLabWith(ctx, 1, t.TempDir(), nil, t.Logf, lab.LabOptions{Systemd: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := l.Servers[0]
	guest := func(args ...string) string {
		t.Helper()
		out, err := srv.Exec(ctx, args[0], args[1:]...)
		if err != nil {
			t.Fatalf("guest %v: %v", args, err)
		}
		return out
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("panel output:\n%s", tail(l.Panel.Output(), 6000))
			out, _ := srv.Exec(context.Background(), "journalctl", "--no-pager", "-n", "120", "-u", lab.AgentUnit, "-u", "cd-container-*")
			t.Logf("agent and container journal:\n%s", out)
		}
		l.Stop()
	})
	p := l.Panel
	eventually(t, 15*time.Minute, "the server reports through the tunnel", func() error {
		var st models.ServerStats
		if err := p.Call(ctx, "GET", "servers/"+srv.Name+"/stats.json", nil, &st); err != nil {
			return err
		}
		if !strings.HasPrefix(st.Status, models.StatusPanelOK) || st.PoolHealth != "ONLINE" {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	t.Logf("lab with systemd ready in %s", time.Since(start).Round(time.Second))

	var ct map[string]any
	if err := p.Call(ctx, "POST", "ctemplates.json", map[string]any{"network": l.NetworkID, "name": "busybox"}, &ct); err != nil {
		t.Fatal(err)
	}
	ctID := uint(ct["id"].(float64))
	ds := fmt.Sprintf("%s/iscsi/ctemplates/%d", srv.Pool, ctID)

	// A corrupted upload: the bytes differ from what the checksum names.
	bad := slices.Clone(tarball)
	bad[len(bad)/2] ^= 0xff
	// The stats above come to the panel directly; the upload goes through the tunnel,
	// whose port forward can come up a moment later: its 503 ("did not answer through its
	// tunnel") is what an operator would retry on.
	var code int
	var m map[string]any
	eventually(t, 2*time.Minute, "the agent answers through the tunnel", func() error {
		if code, m = upload(ctx, t, p, ctID, bad, SHA256(tarball)); code == http.StatusServiceUnavailable {
			return fmt.Errorf("%d %v", code, m)
		}
		return nil
	})
	if code != http.StatusUnprocessableEntity || m["field"] != "sha256" {
		t.Fatalf("corrupted upload: %d %v, want 422 naming sha256", code, m)
	}
	if out, err := srv.Exec(ctx, "zfs", "list", "-H", "-t", "all", "-r", ds); err == nil {
		t.Errorf("the corrupted upload left %s:\n%s", ds, out)
	}
	if err := p.Call(ctx, "GET", fmt.Sprintf("ctemplates/%d.json", ctID), nil, &ct); err != nil || ct["version"] != float64(0) || ct["state"] != "pending" {
		t.Errorf("ctemplate after the corrupted upload: %v %v", ct, err)
	}

	upAt := time.Now()
	code, m = upload(ctx, t, p, ctID, tarball, SHA256(tarball))
	if code != http.StatusOK || m["version"] != float64(1) || m["state"] != "ready" || m["sha256"] != SHA256(tarball) {
		t.Fatalf("upload: %d %v", code, m)
	}
	t.Logf("uploaded %d bytes in %s", len(tarball), time.Since(upAt).Round(time.Millisecond))
	if out := guest("zfs", "list", "-H", "-o", "name", "-t", "snapshot", ds); strings.TrimSpace(out) != ds+"@v1" {
		t.Errorf("snapshots of %s: %q, want @v1", ds, out)
	}

	marker := fmt.Sprintf("clusterducks-marker-%d", time.Now().UnixNano())
	var c map[string]any
	err = p.Call(ctx, "POST", "containers.json", map[string]any{"network": l.NetworkID, "name": "hello", "ctemplate": ctID,
		"memory_mb": 64, "tasks_max": 16, "cpu_quota_percent": 50, "disk_quota_gib": 1, "autostart": true,
		"command": "echo " + marker + " $(cat /etc/os-release | busybox head -n1); exec sleep 100000"}, &c)
	if err != nil {
		t.Fatal(err)
	}
	cid := uint(c["id"].(float64))
	waitOp(ctx, t, p, c["operation"].(map[string]any))
	unit := fmt.Sprintf("cd-container-%d.service", cid)
	clone := fmt.Sprintf("%s/iscsi/containers/%d", srv.Pool, cid)
	if got := strings.TrimSpace(guest("zfs", "get", "-H", "-p", "-o", "value", "origin,refquota", clone)); got != ds+"@v1\n"+fmt.Sprint(1<<30) {
		t.Errorf("%s origin and refquota: %q", clone, got)
	}

	status := func() map[string]any {
		t.Helper()
		var st map[string]any
		if err := p.Call(ctx, "GET", fmt.Sprintf("containers/%d/status.json?lines=50", cid), nil, &st); err != nil {
			t.Fatalf("status: %v", err)
		}
		return st
	}
	running := func(what string) map[string]any {
		t.Helper()
		var st map[string]any
		eventually(t, 5*time.Minute, what, func() error {
			var err error
			st = map[string]any{}
			if err = p.Call(ctx, "GET", fmt.Sprintf("containers/%d/status.json?lines=50", cid), nil, &st); err != nil {
				return err
			}
			journal, _ := json.Marshal(st["journal"])
			if st["active_state"] != "active" || !strings.Contains(string(journal), marker) {
				return fmt.Errorf("%v", st)
			}
			return nil
		})
		return st
	}
	st := running("the container runs and prints its marker")
	if st["memory_max"] != float64(64<<20) || st["tasks_max"] != float64(16) || st["enabled"] != "enabled" || st["since"] == "" {
		t.Errorf("status: %v, want memory_max 64 MiB, tasks_max 16, enabled, since", st)
	}
	if got := guest("systemctl", "show", "-p", "MemoryMax", "-p", "CPUQuotaPerSecUSec", unit); !strings.Contains(got, "MemoryMax=67108864") || !strings.Contains(got, "CPUQuotaPerSecUSec=500ms") {
		t.Errorf("the unit's limits: %q", got)
	}
	t.Logf("running: %v", st)

	// A machine killed behind the panel's back (SIGKILL on the server) leaves its unit
	// failed: the health check, reading the units the agent reports, raises
	// container_failed; started again through the API, the alert clears.
	alerted := func(want bool) error {
		var list []models.Alert
		if err := p.Call(ctx, "GET", "alerts.json", nil, &list); err != nil {
			return err
		}
		for _, a := range list {
			if a.Code == models.AlertContainerFailed && a.Link == fmt.Sprintf("/containers/%d", cid) {
				if want {
					t.Logf("alert: %s", a.Message)
					return nil
				}
				return fmt.Errorf("still alerted: %s", a.Message)
			}
		}
		if want {
			return fmt.Errorf("no container_failed among %d alerts", len(list))
		}
		return nil
	}
	guest("systemctl", "kill", "--signal=SIGKILL", unit)
	took := eventually(t, 3*time.Minute, "container_failed once its machine was killed", func() error { return alerted(true) })
	t.Logf("container_failed raised %s after the kill", took.Round(time.Second))
	var restart map[string]any
	if err := p.Call(ctx, "POST", fmt.Sprintf("containers/%d/start.json", cid), nil, &restart); err != nil {
		t.Fatal(err)
	}
	waitOp(ctx, t, p, restart["operation"].(map[string]any))
	running("the container runs again once started")
	took = eventually(t, 3*time.Minute, "container_failed cleared once it runs", func() error { return alerted(false) })
	t.Logf("container_failed cleared %s after the start", took.Round(time.Second))

	var stop map[string]any
	if err := p.Call(ctx, "POST", fmt.Sprintf("containers/%d/stop.json", cid), nil, &stop); err != nil {
		t.Fatal(err)
	}
	waitOp(ctx, t, p, stop["operation"].(map[string]any))
	if st := status(); st["active_state"] == "active" {
		t.Errorf("after stop: %v", st)
	}

	// Reboot: the enabled unit starts the container again at boot, with no agent involved.
	took, err = srv.Reboot(ctx, 10*time.Minute)
	if err != nil {
		t.Fatalf("reboot: %v", err)
	}
	t.Logf("rebooted in %s", took.Round(time.Second))
	if got := strings.TrimSpace(guest("systemctl", "is-active", unit)); got != "active" {
		// The agent may not be back yet; systemd is.
		t.Logf("right after the reboot %s is %q", unit, got)
	}
	st = running("the container runs again after the reboot (autostart)")
	t.Logf("after the reboot: active since %v", st["since"])

	// Rebase onto v2: a new clone of @v2 runs in place of the v1 clone, which is in the
	// erator.
	tarball2, err := Rootfs(bb, 1)
	if err != nil {
		t.Fatal(err)
	}
	if code, m := upload(ctx, t, p, ctID, tarball2, SHA256(tarball2)); code != http.StatusOK || m["version"] != float64(2) {
		t.Fatalf("upload of v2: %d %v", code, m)
	}
	var rb map[string]any
	if err := p.Call(ctx, "POST", fmt.Sprintf("containers/%d/rebase.json", cid), map[string]any{}, &rb); err != nil {
		t.Fatal(err)
	}
	waitOp(ctx, t, p, rb["operation"].(map[string]any))
	if got := strings.TrimSpace(guest("zfs", "get", "-H", "-o", "value", "origin", clone)); got != ds+"@v2" {
		t.Errorf("%s's origin after the rebase: %q, want %s@v2", clone, got, ds)
	}
	if trash := guest("zfs", "list", "-H", "-o", "name,origin", "-r", srv.Pool+"/erator"); !strings.Contains(trash, fmt.Sprintf("%s/erator/container-%d-", srv.Pool, cid)) || !strings.Contains(trash, ds+"@v1") {
		t.Errorf("after the rebase the v1 clone is not in the erator:\n%s", trash)
	}
	var got map[string]any
	if err := p.Call(ctx, "GET", fmt.Sprintf("containers/%d.json", cid), nil, &got); err != nil || got["ctemplate_version"] != float64(2) {
		t.Errorf("container after the rebase: %v %v", got, err)
	}
	running("the container runs on v2")

	var del map[string]any
	if err := p.Call(ctx, "DELETE", fmt.Sprintf("containers/%d.json", cid), nil, &del); err != nil {
		t.Fatal(err)
	}
	waitOp(ctx, t, p, del["operation"].(map[string]any))
	if out, err := srv.Exec(ctx, "zfs", "list", "-H", clone); err == nil {
		t.Errorf("%s is still there after the delete: %s", clone, out)
	}
	trash := guest("zfs", "list", "-H", "-o", "name,origin", "-r", srv.Pool+"/erator")
	if !strings.Contains(trash, fmt.Sprintf("%s/erator/container-%d-", srv.Pool, cid)) || !strings.Contains(trash, ds+"@v2") {
		t.Errorf("the clone is not in the erator (as a clone of v2):\n%s", trash)
	}
	if out, err := srv.Exec(ctx, "test", "-e", "/etc/systemd/system/"+unit); err == nil {
		t.Errorf("the unit file is still there: %s", out)
	}
	t.Logf("whole run %s", time.Since(start).Round(time.Second))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
