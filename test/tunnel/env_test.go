// Package tunnel_test runs the tunnel through the real parts: a panel on PostgreSQL with
// the in-process Temporal server, `clusterducks tunnel` and `clusterducks agent`
// processes on host loopback (agents without ZFS report their pool as missing, which is
// enough for reachability), and the SMTP sink for the health mail.
package tunnel_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/harness/proc"
	"github.com/clusterducks/clusterducks/test/lab"
	"github.com/clusterducks/clusterducks/workers/panel"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"gorm.io/gorm"
)

var binary string

// TestMain builds the binary once (the lab's static build, shared with its VMs): tunnels
// and agents run as their own processes, so that a test can stop and kill them.
func TestMain(m *testing.M) {
	var err error
	if binary, err = lab.BuildBinary(context.Background()); err != nil {
		panic("build: " + err.Error())
	}
	code := harness.RunWithPostgres(m)
	harness.StopTemporal()
	os.Exit(code)
}

// env is a panel with its workflow engine (and, when asked, its health schedule).
type env struct {
	t     *testing.T
	ctx   context.Context
	DB    *gorm.DB
	Store *models.Store
	Tmp   *panel.Temporal
	URL   string
	Admin *models.Actor
}

func startEnv(t *testing.T, health *panel.HealthConfig) *env {
	t.Helper()
	ctx := context.Background()
	db := harness.NewDB(t, "postgres")
	harness.DistinctIDs(t, db)
	store := &models.Store{DB: db, AllowLoopback: true}
	ts := harness.Temporal(t)
	tmp, err := panel.StartTemporal(ctx, harness.TemporalClient(t), store,
		temporalclient.Config{Address: ts.GetFrontendHostPort(), Namespace: ts.GetDefaultNamespace()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tmp.Worker.Stop() })
	if health != nil {
		if err := tmp.StartHealth(ctx, *health); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tmp.StopHealth(context.Background()) }) //nolint:errcheck
	}
	app := panel.NewApp(panel.Options{Store: store, Early: []panel.Mount{tmp.AgentMount(store)}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)                  //nolint:errcheck
	t.Cleanup(func() { app.Shutdown() }) //nolint:errcheck
	return &env{t: t, ctx: ctx, DB: db, Store: store, Tmp: tmp, URL: "http://" + ln.Addr().String(), Admin: harness.Admin(t, db)}
}

func objectID(t *testing.T, c *models.Created, err error) uint {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	switch o := c.Object.(type) {
	case *models.Client:
		return o.ID
	case *models.Network:
		return o.ID
	case *models.Tunnel:
		return o.ID
	case *models.Server:
		return o.ID
	case *models.User:
		return o.ID
	}
	t.Fatalf("created %T", c.Object)
	return 0
}

// network creates a network of client clientID.
func (e *env) network(name string, clientID uint) uint {
	c, err := e.Store.CreateNetwork(e.ctx, e.Admin, &models.NetworkInput{Name: &name, ClientID: &clientID})
	return objectID(e.t, c, err)
}

// tunnel creates a tunnel on loopback for network nid and returns its id and key.
func (e *env) tunnel(nid uint, alias string) (uint, string) {
	c, err := e.Store.CreateTunnel(e.ctx, e.Admin, &models.TunnelInput{NetworkID: &nid, Alias: &alias, IP: models.Strp("127.0.0.1")})
	return objectID(e.t, c, err), c.Secret
}

// server creates a server of network nid with a free tunnel port; it returns its id,
// key and port.
func (e *env) server(nid uint, name string) (uint, string, int) {
	port, err := proc.FreePort()
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := e.Store.CreateServer(e.ctx, e.Admin, &models.ServerInput{NetworkID: &nid, Name: &name,
		IP: models.Strp("127.0.0.1"), Pool: models.Strp("tank"), TunnelPort: &port})
	return objectID(e.t, c, err), c.Secret, port
}

// process is a clusterducks sub-command run by a test.
type process struct {
	t    *testing.T
	args []string
	cmd  *exec.Cmd
	out  *proc.SyncBuffer
	done chan struct{}
}

func (e *env) start(args ...string) *process {
	p := &process{t: e.t, args: args}
	p.run()
	e.t.Cleanup(p.kill)
	return p
}

func (p *process) run() {
	p.cmd = exec.Command(binary, p.args...)
	p.out = &proc.SyncBuffer{}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(os.Environ(), "TEMPORAL_VERSION_CHECK_DISABLED=1")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.done) }() //nolint:errcheck
}

// kill ends the process with SIGKILL (SIGCONT first, in case it was stopped).
func (p *process) kill() {
	if p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill() //nolint:errcheck
	<-p.done
	if p.t.Failed() {
		p.t.Logf("%v output:\n%s", p.args[0], p.out.String())
	}
}

func (p *process) signal(s syscall.Signal) {
	if err := p.cmd.Process.Signal(s); err != nil {
		p.t.Fatalf("signal %v: %v", s, err)
	}
}

// restart runs the same command again after it ended.
func (p *process) restart() { p.kill(); p.run() }

func keyFile(t *testing.T, key string) string {
	f := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(f, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// startTunnel runs `clusterducks tunnel` listening for agents on a free loopback port.
func (e *env) startTunnel(key string) (*process, string) {
	port, err := proc.FreePort()
	if err != nil {
		e.t.Fatal(err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	return e.start("tunnel", "--panel", e.URL, "--key", keyFile(e.t, key), "--listen", listen,
		"--ports-host", "127.0.0.1", "--state", e.t.TempDir()), listen
}

// startAgent runs `clusterducks agent` for a server, its state in a directory of its own.
func (e *env) startAgent(key, state string) *process {
	return e.start("agent", "--panel", e.URL, "--key", keyFile(e.t, key), "--state", state,
		"--iscsi-listen", "127.0.0.1:0", "--boot-listen", "127.0.0.1:0", "--replication-listen", "127.0.0.1:0")
}

// eventually is harness.Eventually polling every 200 ms.
func eventually(t *testing.T, within time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	return harness.Eventually(t, within, 200*time.Millisecond, what, f)
}

func (e *env) healthState(class string, id uint) models.HealthState {
	var st models.HealthState
	e.DB.Where("object_key = ?", models.HealthKey(class, id)).Take(&st) //nolint:errcheck
	return st
}
