// Package storagetest runs the storage operations through their real parts: PostgreSQL,
// the in-process Temporal server, the panel as a separate process (so it can be killed)
// and a storage-server VM of the storage lab whose agent executes the ZFS work. The
// integration tests and the storage benchmarks share this setup.
package storagetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/clusterducks/clusterducks/test/harness/proc"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/lab"
	"gorm.io/gorm"
)

// Env is a panel with Temporal and PostgreSQL, and one storage-server VM.
type Env struct {
	T        testing.TB
	DB       *gorm.DB // the panel's database, for assertions
	DSN      string
	Token    string // Authorization header value of the first admin
	Binary   string // the static clusterducks binary (panel on the host, agent in the guest)
	URL      string // panel base URL on the host
	Temporal string // frontend host:port
	Space    string // Temporal namespace
	VM       *lab.Server
	// VMs are all the env's storage-server VMs (StartVMs); VMs[0] is VM.
	VMs []*lab.Server

	// AgentFlags are added to every agent the env starts (e.g. --log-zfs).
	AgentFlags []string

	panel    *exec.Cmd
	panelLog string
	listen   string
	logSeen  map[*lab.Server]int // AgentTimeline's place in each VM's agent log
	shimmed  map[*lab.Server]bool
}

// AgentTimeline returns what agent 1 of vm logged since the last call for vm that times
// an operation: each zfs command and each activity with its duration (--log-zfs) and
// replication's lines ("replication: sent" on a master, "replication: received" on a
// slave, with their phases). For the benchmarks: the operation just timed, and anything the agent ran
// meanwhile on its own (its stats report).
func (e *Env) AgentTimeline(vm *lab.Server) string {
	log := vm.Log("agent-1.log")
	if e.logSeen == nil {
		e.logSeen = map[*lab.Server]int{}
	}
	seen := e.logSeen[vm]
	if seen > len(log) {
		seen = 0
	}
	var s strings.Builder
	fmt.Fprintf(&s, "%s's agent since the last sample:", vm.Name)
	for _, l := range strings.Split(log[seen:], "\n") {
		_, rest, ok := strings.Cut(l, "msg=zfs ")
		if _, act, isAct := strings.Cut(l, "msg=activity "); !ok && isAct { // the agent's activityTimes
			rest, ok = "activity "+act, true
		}
		if ok {
			at := ""
			if t, ok := strings.CutPrefix(l, "time="); ok {
				// the debug handler's time=2026-12-02T00:39:42.123Z: the clock part
				t, _, _ = strings.Cut(t, " ")
				if _, clock, ok := strings.Cut(t, "T"); ok {
					at = clock + " "
				}
			}
			fmt.Fprintf(&s, "\n  %s%s", at, rest)
		} else if strings.Contains(l, "replication: sent") || strings.Contains(l, "replication: received") {
			fmt.Fprintf(&s, "\n  %s", l)
		}
	}
	e.logSeen[vm] = len(log)
	return s.String()
}

// Timeouts; the machine running CI is small and shared, so they are generous but bounded.
const (
	opWait   = 4 * time.Minute
	callWait = 30 * time.Second
)

// PoolGiB is the size of the VM's pool disk (sparse): the guide's 42 GiB volume fits.
const PoolGiB = 64

// slowZFS is a shim put before the real zfs on the agent's PATH (/opt/slow, first on it)
// by the first Slow: while /run/slow-<sub> holds a number of seconds, `zfs <sub>` marks
// /run/in-<sub> and waits that long first, so a test can kill a process in the middle of
// a step. Until then the agents run the real zfs: the shim is a /bin/sh in front of each
// command, 0.1 s or more in a TCG guest.
const slowZFS = `#!/bin/sh
if [ -s "/run/slow-$1" ]; then : >"/run/in-$1"; sleep "$(cat "/run/slow-$1")"; fi
exec REALZFS "$@"
`

// Start builds the binary, boots the VM (in parallel), creates a database and starts the
// panel. The VM and the panel are stopped when the test ends.
func Start(t testing.TB) *Env {
	t.Helper()
	return StartVMs(t, []lab.Options{{Name: "storage"}})
}

// StartVMs is Start with several storage-server VMs booted at once (replication's master
// and slaves); each gets the binary, the slow-zfs shim and, unless set, a PoolGiB pool.
func StartVMs(t testing.TB, opts []lab.Options) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	type booted struct {
		vms []*lab.Server
		err error
	}
	for i := range opts {
		opts[i].Binary, opts[i].Logf = true, t.Logf
		if opts[i].PoolSize == 0 {
			opts[i].PoolSize = PoolGiB << 30
		}
	}
	vmc := make(chan booted, 1)
	go func() {
		vms, err := lab.StartServers(ctx, opts)
		vmc <- booted{vms, err}
	}()

	e := &Env{T: t}
	ts := harness.Temporal(t)
	e.Temporal, e.Space = ts.GetFrontendHostPort(), ts.GetDefaultNamespace()
	e.DSN = harness.SharedPostgres(t).NewDatabase(t)
	db, err := models.Open(e.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})
	if err := models.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := models.Bootstrap(ctx, db, "admin@example.com"); err != nil {
		t.Fatal(err)
	}
	e.DB = db
	e.Token = harness.Token(t, db, harness.Admin(t, db).ID)

	b := <-vmc
	if b.err != nil {
		t.Fatalf("storage VM: %v", b.err)
	}
	e.VMs, e.VM = b.vms, b.vms[0]
	t.Cleanup(func() {
		for _, vm := range e.VMs {
			if t.Failed() {
				t.Logf("%s agent logs:\n%s\n%s", vm.Name, tail(vm.Log("agent-1.log"), 4000), tail(vm.Log("agent-2.log"), 2000))
			}
			vm.Stop() //nolint:errcheck
		}
	})
	if e.Binary, err = lab.BuildBinary(ctx); err != nil {
		t.Fatal(err)
	}

	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	e.listen = "127.0.0.1:" + strconv.Itoa(port)
	e.URL = "http://" + e.listen
	e.panelLog = filepath.Join(t.TempDir(), "panel.log")
	e.StartPanel()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(e.panelLog)
			t.Logf("panel log:\n%s", tail(string(b), 6000))
		}
		e.KillPanel()
	})
	return e
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// StartPanel starts `clusterducks panel` on the env's address and waits for it.
func (e *Env) StartPanel() {
	t := e.T
	t.Helper()
	logf, err := os.OpenFile(e.panelLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(e.Binary, "panel", "--listen", e.listen)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+e.DSN, "TEMPORAL_ADDRESS="+e.Temporal, "TEMPORAL_NAMESPACE="+e.Space)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The panel dies with the test process even when that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.panel = cmd
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(e.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("panel did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// KillPanel SIGKILLs the panel process (by its pid) and reaps it.
func (e *Env) KillPanel() {
	if e.panel == nil || e.panel.Process == nil {
		return
	}
	e.panel.Process.Kill() //nolint:errcheck
	e.panel.Wait()         //nolint:errcheck
	e.panel = nil
}

// Guest runs a command in the VM and fails the test on error.
func (e *Env) Guest(args ...string) string {
	e.T.Helper()
	return e.GuestOn(e.VM, args...)
}

// WaitZvol waits for zvol's /dev/zvol link in the env's VM (lab.Server.WaitZvol) before
// a test writes to it.
func (e *Env) WaitZvol(zvol string) {
	e.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.VM.WaitZvol(ctx, zvol); err != nil {
		e.T.Fatal(err)
	}
}

// GuestOn runs a command in one of the env's VMs and fails the test on error.
func (e *Env) GuestOn(vm *lab.Server, args ...string) string {
	e.T.Helper()
	out, err := e.GuestErrOn(vm, args...)
	if err != nil {
		e.T.Fatalf("guest %s %v: %v", vm.Name, args, err)
	}
	return out
}

// GuestErr runs a command in the VM.
func (e *Env) GuestErr(args ...string) (string, error) { return e.GuestErrOn(e.VM, args...) }

// GuestErrOn runs a command in one of the env's VMs.
func (e *Env) GuestErrOn(vm *lab.Server, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return vm.Exec(ctx, args[0], args[1:]...)
}

// StartAgent starts `clusterducks agent` in the guest with a server key, as agent n
// (its pid in /run/agent-n.pid, its log in the share's agent-n.log). The shim's directory
// comes first on its PATH (empty until Slow puts the shim there).
func (e *Env) StartAgent(n int, key string) {
	e.T.Helper()
	e.StartAgentOn(e.VM, n, key)
}

// StartAgentOn is StartAgent in one of the env's VMs, with extra agent flags (each
// shell-safe, e.g. --replication-advertise 10.0.2.2:PORT).
func (e *Env) StartAgentOn(vm *lab.Server, n int, key string, flags ...string) {
	e.T.Helper()
	kf := fmt.Sprintf("server-%d.key", n)
	if err := os.WriteFile(filepath.Join(vm.Share, kf), []byte(key+"\n"), 0o600); err != nil {
		e.T.Fatal(err)
	}
	script := fmt.Sprintf("PATH=/opt/slow:$PATH setsid /usr/local/bin/clusterducks agent --panel %s --key /mnt/host/%s %s >>/mnt/host/agent-%d.log 2>&1 </dev/null & echo $! >/run/agent-%d.pid",
		lab.GuestURL(e.URL), kf, strings.Join(append(append([]string(nil), e.AgentFlags...), flags...), " "), n, n)
	e.GuestOn(vm, "sh", "-c", script)
}

// Shim puts slowZFS in front of the agents' zfs in vm (once).
func (e *Env) Shim(vm *lab.Server) {
	e.T.Helper()
	if e.shimmed[vm] {
		return
	}
	real := strings.TrimSpace(e.GuestOn(vm, "sh", "-c", "command -v zfs"))
	if err := os.WriteFile(filepath.Join(vm.Share, "slowzfs"), []byte(strings.Replace(slowZFS, "REALZFS", real, 1)), 0o755); err != nil {
		e.T.Fatal(err)
	}
	e.GuestOn(vm, "install", "-D", "-m", "755", "/mnt/host/slowzfs", "/opt/slow/zfs")
	if e.shimmed == nil {
		e.shimmed = map[*lab.Server]bool{}
	}
	e.shimmed[vm] = true
}

// RealZFS takes the shim away again: the agents of vm run zfs as a server does.
func (e *Env) RealZFS(vm *lab.Server) {
	e.T.Helper()
	e.GuestOn(vm, "rm", "-f", "/opt/slow/zfs")
	delete(e.shimmed, vm)
}

// KillAgent SIGKILLs agent n by the pid it was started with.
func (e *Env) KillAgent(n int) {
	e.T.Helper()
	e.KillAgentOn(e.VM, n)
}

// KillAgentOn is KillAgent in one of the env's VMs.
func (e *Env) KillAgentOn(vm *lab.Server, n int) {
	e.T.Helper()
	e.GuestOn(vm, "sh", "-c", fmt.Sprintf("kill -9 $(cat /run/agent-%d.pid) && rm /run/agent-%d.pid", n, n))
}

// Slow makes `zfs <sub>` in the guest wait seconds first (0 turns it off) and clears
// its "in progress" marker.
func (e *Env) Slow(sub string, seconds int) {
	e.T.Helper()
	if seconds == 0 {
		e.Guest("rm", "-f", "/run/slow-"+sub)
		return
	}
	e.Shim(e.VM)
	e.Guest("sh", "-c", fmt.Sprintf("rm -f /run/in-%s; echo %d >/run/slow-%s", sub, seconds, sub))
}

// WaitIn waits until a slowed `zfs <sub>` has started.
func (e *Env) WaitIn(sub string) {
	e.T.Helper()
	deadline := time.Now().Add(opWait)
	for {
		if _, err := e.GuestErr("test", "-e", "/run/in-"+sub); err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("zfs %s did not start within %s", sub, opWait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Call sends a JSON request to the panel's API as the admin; it returns the status and
// the decoded body.
func (e *Env) Call(method, path string, body any) (int, map[string]any) {
	e.T.Helper()
	status, raw := e.CallRaw(method, path, body)
	out := map[string]any{}
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out); err != nil {
			e.T.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return status, out
}

// CallRaw is Call without decoding.
func (e *Env) CallRaw(method, path string, body any) (int, []byte) {
	e.T.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.T.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.URL+"/api/v0.9.2"+path, r)
	if err != nil {
		e.T.Fatal(err)
	}
	req.Header.Set("Authorization", e.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// Must is Call that fails the test unless the status is want.
func (e *Env) Must(want int, method, path string, body any) map[string]any {
	e.T.Helper()
	status, out := e.Call(method, path, body)
	if status != want {
		e.T.Fatalf("%s %s: status %d, want %d: %v", method, path, status, want, out)
	}
	return out
}

// ID reads a numeric id field.
func ID(m map[string]any, key string) uint {
	f, _ := m[key].(float64)
	return uint(f)
}

// OpID is the id of the operation a 202 answer carries.
func OpID(m map[string]any) uint {
	op, _ := m["operation"].(map[string]any)
	return ID(op, "id")
}

// WaitOp polls an operation until it ends and returns it.
func (e *Env) WaitOp(id uint) models.Operation {
	e.T.Helper()
	deadline := time.Now().Add(opWait)
	for {
		status, b := e.CallRaw("GET", fmt.Sprintf("/operations/%d.json", id), nil)
		var op models.Operation
		if status == http.StatusOK {
			if err := json.Unmarshal(b, &op); err != nil {
				e.T.Fatal(err)
			}
			if op.Finished() {
				return op
			}
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("operation %d did not end within %s: %s", id, opWait, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// WaitOK waits for an operation and fails the test unless it succeeded at 100 %.
func (e *Env) WaitOK(id uint) models.Operation {
	e.T.Helper()
	op := e.WaitOp(id)
	if op.State != models.OpSucceeded || op.Percent != 100 {
		e.T.Fatalf("operation %d (%s) ended %s at %d%%: %s %s", id, op.Kind, op.State, op.Percent, op.Error, op.Message)
	}
	return op
}

// WaitStats waits until the server's stats say "Panel to server OK" with the given pool health.
func (e *Env) WaitStats(server, health string) map[string]any {
	e.T.Helper()
	deadline := time.Now().Add(opWait)
	for {
		_, st := e.Call("GET", "/servers/"+server+"/stats.json", nil)
		if s, _ := st["status"].(string); strings.HasPrefix(s, models.StatusPanelOK) && st["pool_health"] == health {
			return st
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("server %s stats never reached %q / %s: %v", server, models.StatusPanelOK, health, st)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Datasets lists the guest's datasets under a pool path (names only; "" when missing).
func (e *Env) Datasets(root string) []string {
	e.T.Helper()
	out, err := e.GuestErr("zfs", "list", "-H", "-r", "-t", "all", "-o", "name", root)
	if err != nil {
		return nil
	}
	return strings.Fields(out)
}

// Prop reads one property of a dataset in the guest (parsable value).
func (e *Env) Prop(ds, prop string) string {
	e.T.Helper()
	return strings.TrimSpace(e.Guest("zfs", "get", "-Hp", "-o", "value", prop, ds))
}

// Network creates a client, a network with a tunnel, and its master server on the VM's
// pool whose agent (number n) is started and reported healthy; it returns the ids.
func (e *Env) Network(name string, n int) (networkID, serverID uint) {
	e.T.Helper()
	client := e.Must(http.StatusCreated, "POST", "/clients.json", map[string]any{"Name": name + " client"})
	network := e.Must(http.StatusCreated, "POST", "/networks.json", map[string]any{"Name": name, "Client": ID(client, "id")})
	networkID = ID(network, "id")
	e.Must(http.StatusCreated, "POST", "/tunnels.json", map[string]any{"Alias": name + " tunnel", "network": networkID, "IP": "4.2.2.1"})
	server := e.Must(http.StatusCreated, "POST", "/servers.json", map[string]any{"Name": name + "-master", "network": networkID, "IP": "192.168.1.10", "Pool": e.VM.Pool})
	e.StartAgent(n, server["key"].(string))
	e.WaitStats(name+"-master", "ONLINE")
	var boot models.Operation
	if err := e.DB.Where("kind = ? AND object_id = ?", models.OpServerBootstrap, ID(server, "id")).Order("id DESC").Take(&boot).Error; err != nil {
		e.T.Fatal(err)
	}
	e.WaitOK(boot.ID)
	return networkID, ID(server, "id")
}

// GuestNanos runs a shell command in the guest and returns how long it took there, in
// nanoseconds (the exec channel's own overhead excluded).
func (e *Env) GuestNanos(script string) int64 {
	e.T.Helper()
	out := e.Guest("sh", "-c", `s=$(date +%s%N); `+script+` >/dev/null; r=$?; f=$(date +%s%N); [ $r = 0 ] && echo $((f-s))`)
	n, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		e.T.Fatalf("guest timing of %q: %q", script, out)
	}
	return n
}
