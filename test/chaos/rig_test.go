package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/lab"
)

// One storage VM serves every test of the package (booting one costs a minute or more
// under TCG); each test gets a pool of its own in it, so tests that reuse object ids on
// fresh databases never meet each other's datasets.
var (
	vmOnce sync.Once
	vm     *lab.Server
	vmErr  error
	pools  atomic.Int32
)

func sharedVM(t *testing.T) *lab.Server {
	t.Helper()
	vmOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
		defer cancel()
		vm, vmErr = lab.Start(ctx, lab.Options{Name: "chaos", Binary: true, Logf: t.Logf})
	})
	if vmErr != nil {
		t.Fatalf("storage VM: %v", vmErr)
	}
	return vm
}

func stopVM() {
	if vm != nil {
		vm.Stop() //nolint:errcheck
	}
}

// agent is a `clusterducks agent` in the shared VM, on a pool of its own.
type agent struct {
	t        *testing.T
	vm       *lab.Server
	pool     string
	panelURL string
	name     string // its files: /mnt/host/<name>.key, <name>.log; /run/<name>.pid
}

// newPool makes a fresh pool on a sparse file in the guest and returns its name.
func newPool(t *testing.T, s *lab.Server) string {
	t.Helper()
	name := fmt.Sprintf("p%d", pools.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := s.Exec(ctx, "sh", "-c", fmt.Sprintf("truncate -s 8G /var/tmp/%s.img && zpool create -f -o ashift=12 %s /var/tmp/%s.img", name, name, name)); err != nil {
		t.Fatalf("zpool create %s: %v %s", name, err, out)
	}
	return name
}

// startAgent writes the server key into the share and starts the agent against panelURL
// (a host loopback URL) on pool; it is killed when the test ends.
func startAgent(t *testing.T, s *lab.Server, panelURL, pool string, key []byte) *agent {
	t.Helper()
	a := &agent{t: t, vm: s, pool: pool, panelURL: panelURL, name: "agent-" + pool}
	if err := os.WriteFile(filepath.Join(s.Share, a.name+".key"), append(key, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	a.start()
	t.Cleanup(func() {
		a.kill()
		if t.Failed() {
			t.Logf("%s log:\n%s", a.name, a.log())
		}
	})
	return a
}

func (a *agent) exec(script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return a.vm.Exec(ctx, "sh", "-c", script)
}

func (a *agent) start() {
	a.t.Helper()
	script := fmt.Sprintf("mkdir -p /run/%s && setsid /usr/local/bin/clusterducks agent --panel %s --key /mnt/host/%s.key --state /run/%s "+
		">>/mnt/host/%s.log 2>&1 </dev/null & echo $! >/run/%s.pid", a.name, lab.GuestURL(a.panelURL), a.name, a.name, a.name, a.name)
	if out, err := a.exec(script); err != nil {
		a.t.Fatalf("start %s: %v %s", a.name, err, out)
	}
}

// kill SIGKILLs the agent by the pid it was started with (a crash).
func (a *agent) kill() {
	a.exec(fmt.Sprintf("[ -f /run/%s.pid ] && kill -9 $(cat /run/%s.pid); rm -f /run/%s.pid", a.name, a.name, a.name)) //nolint:errcheck
}

func (a *agent) log() string { return tail(a.vm.Log(a.name+".log"), 4000) }

// datasets lists the pool's datasets (names relative to the pool) under root.
func (a *agent) datasets(root string) ([]string, error) {
	out, err := a.exec(fmt.Sprintf("zfs list -H -o name -r %s/%s", a.pool, root))
	if err != nil {
		return nil, fmt.Errorf("zfs list: %v %s", err, out)
	}
	var ds []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l = strings.TrimPrefix(strings.TrimSpace(l), a.pool+"/"); l != "" && l != root {
			ds = append(ds, l)
		}
	}
	return ds, nil
}
