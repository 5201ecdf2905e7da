package netboot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/workers/panel"
	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"
)

func TestMain(m *testing.M) { harness.MainPostgres(m) }

// hostPanel is the real panel (API, agent endpoints, PostgreSQL) on a loopback port.
type hostPanel struct {
	t       *testing.T
	URL     string
	DB      *gorm.DB
	Store   *models.Store
	Auth    string
	app     *fiber.App
	Network models.Network
	Server  models.Server
	Key     string
}

func startHostPanel(t *testing.T) *hostPanel {
	t.Helper()
	db := harness.NewDB(t, "postgres")
	store := &models.Store{DB: db}
	admin := harness.Admin(t, db)
	app := panel.NewApp(panel.Options{Store: store})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln) //nolint:errcheck
	p := &hostPanel{t: t, URL: "http://" + ln.Addr().String(), DB: db, Store: store, app: app,
		Auth: harness.Token(t, db, admin.ID)}
	t.Cleanup(func() { app.Shutdown() }) //nolint:errcheck
	ctx := context.Background()
	created, err := store.CreateNetwork(ctx, admin, &models.NetworkInput{Name: models.Strp("netboot"), ClientID: models.Uintp(admin.ClientID)})
	if err != nil {
		t.Fatal(err)
	}
	p.Network = *created.Object.(*models.Network)
	srv, err := store.CreateServer(ctx, admin, &models.ServerInput{NetworkID: &p.Network.ID, Name: models.Strp("host"), IP: models.Strp("10.0.2.2"), Pool: models.Strp("tank")})
	if err != nil {
		t.Fatal(err)
	}
	p.Server, p.Key = *srv.Object.(*models.Server), srv.Secret
	if err := db.Take(&p.Network, p.Network.ID).Error; err != nil {
		t.Fatal(err)
	}
	if p.Network.MasterServerID == nil || *p.Network.MasterServerID != p.Server.ID {
		t.Fatalf("the first server is not the master: %+v", p.Network)
	}
	return p
}

// group records a ready group (the file-backed agent has no ZFS workflow to make it) and
// makes it the network's default.
func (p *hostPanel) group(strict, lazy bool) *models.Group {
	p.t.Helper()
	vol := &models.Volume{NetworkID: p.Network.ID, Alias: "base", SizeGiB: 1, State: models.StateReady}
	if err := p.DB.Create(vol).Error; err != nil {
		p.t.Fatal(err)
	}
	g := &models.Group{NetworkID: p.Network.ID, Name: "desktops", VolumeID: vol.ID, StrictVersioning: strict, LazyLocks: lazy, State: models.StateReady}
	if err := p.DB.Create(g).Error; err != nil {
		p.t.Fatal(err)
	}
	if err := p.DB.Model(&models.Network{}).Where("id = ?", p.Network.ID).Update("default_group_id", g.ID).Error; err != nil {
		p.t.Fatal(err)
	}
	return g
}

// publish makes version n of g: the head copied to g@v<n> on the agent's disks and the
// version recorded ready.
func (p *hostPanel) publish(a *hostAgent, g *models.Group, n int) {
	p.t.Helper()
	head, _, _ := a.disks.GroupPath(context.Background(), g.ID)
	if err := MakeDisk(head, marker(g.ID, n), 0); err != nil {
		p.t.Fatal(err)
	}
	if err := a.disks.Publish(g.ID, n); err != nil {
		p.t.Fatal(err)
	}
	if err := p.DB.Create(&models.GroupVersion{GroupID: g.ID, Number: n, GUID: "", State: models.StateReady}).Error; err != nil {
		p.t.Fatal(err)
	}
}

func marker(g uint, n int) string { return fmt.Sprintf("group%d-v%d", g, n) }

// api sends an authenticated API request and fails the test on a status >= 300.
func (p *hostPanel) api(method, path string, body any) map[string]any {
	p.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, p.URL+"/api/v0.9.2"+path, bytes.NewReader(b))
	req.Header.Set("Authorization", p.Auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		p.t.Fatalf("%s %s: %s: %s", method, path, resp.Status, out)
	}
	var m map[string]any
	json.Unmarshal(out, &m) //nolint:errcheck
	return m
}

func (p *hostPanel) device(mac string) models.Device {
	p.t.Helper()
	var d models.Device
	if err := p.DB.Where("mac = ?", mac).Take(&d).Error; err != nil {
		p.t.Fatalf("device %s: %v", mac, err)
	}
	return d
}

// hostAgent is the agent's boot side on the host: our iSCSI target on loopback, the boot
// endpoint, file-backed disks, talking to the panel over HTTP with the server key.
type hostAgent struct {
	svc     *boot.Service
	disks   *boot.FileDisks
	target  *iscsi.Server
	BootURL string // as device VMs see it
	http    *http.Server
}

// startHostAgent starts the agent's boot side over disks (new ones when nil) and the
// cache file, as an agent start does.
func startHostAgent(t *testing.T, p *hostPanel, disks *boot.FileDisks, cacheFile string) *hostAgent {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if disks == nil {
		var err error
		if disks, err = boot.NewFileDisks(filepath.Join(t.TempDir(), "pool")); err != nil {
			t.Fatal(err)
		}
	}
	target := iscsi.NewServer(iscsi.Config{Logger: log})
	iln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go target.Serve(iln) //nolint:errcheck
	client := boot.NewHTTPPanel(p.URL, p.Key)
	cache, err := boot.OpenCache(cacheFile)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := boot.NewService(boot.Config{
		ServerID:    p.Server.ID,
		Portal:      fmt.Sprintf("10.0.2.2:%d", iln.Addr().(*net.TCPAddr).Port),
		Panel:       client,
		Provision:   &boot.LocalProvisioner{Disks: disks, Target: target, Record: client.RecordClone},
		Disks:       disks,
		Target:      target,
		Cache:       cache,
		Logger:      log,
		RebootPause: time.Second,
		RetryPause:  time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/boot.ipxe", svc)
	hs := &http.Server{Handler: mux}
	go hs.Serve(hln) //nolint:errcheck
	a := &hostAgent{svc: svc, disks: disks, target: target, http: hs,
		BootURL: fmt.Sprintf("http://10.0.2.2:%d/boot.ipxe", hln.Addr().(*net.TCPAddr).Port)}
	t.Cleanup(a.stop)
	return a
}

// stop ends the agent's boot side: the endpoint, the service (flushing its cache) and
// the target. Stopping twice is harmless.
func (a *hostAgent) stop() {
	a.http.Close()
	a.svc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.target.Shutdown(ctx) //nolint:errcheck
}

// bootVM boots a device VM and returns the marker it printed.
func bootVM(t *testing.T, a *hostAgent, d Device) string {
	t.Helper()
	res, err := Boot(context.Background(), a.BootURL, d, 3*time.Minute)
	if err != nil {
		t.Fatalf("device %s: %v", d.MAC, err)
	}
	t.Logf("device %s booted %q in %s", d.MAC, res.Marker, res.Took.Round(time.Millisecond))
	return res.Marker
}

func expect(t *testing.T, got, want, why string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: booted %q, want %q", why, got, want)
	}
}

// TestHostNetboot runs the boot path on the host through every real part but ZFS and
// Temporal: the panel (API, agent endpoints, PostgreSQL), the boot endpoint, our iSCSI
// target, and real iPXE boots under qemu. Disks are files and provisioning is direct.
func TestHostNetboot(t *testing.T) {
	harness.RequirePackages(t, Packages...)
	p := startHostPanel(t)
	cacheFile := filepath.Join(t.TempDir(), "boot-cache.json")
	a := startHostAgent(t, p, nil, cacheFile)
	g := p.group(true, false)
	p.publish(a, g, 1)

	devA, devB, devC := DeviceN(1), DeviceN(2), DeviceN(3)

	// New devices register into the default group and boot a clone of the assigned v1.
	expect(t, bootVM(t, a, devA), marker(g.ID, 1), "new device A")
	dA := p.device(devA.MAC)
	if dA.GroupID == nil || *dA.GroupID != g.ID || dA.CloneVersionID == nil || dA.UUID != devA.UUID {
		t.Fatalf("device A registered as %+v", dA)
	}
	expect(t, bootVM(t, a, devB), marker(g.ID, 1), "new device B")
	dB := p.device(devB.MAC)
	p.api("PUT", fmt.Sprintf("/devices/%d.json", dB.ID), map[string]any{"locked": true})
	expect(t, bootVM(t, a, devC), marker(g.ID, 1), "new device C")

	// Publish v2, strict versioning on, lazy locks off.
	p.publish(a, g, 2)
	expect(t, bootVM(t, a, devA), marker(g.ID, 2), "unlocked device A after v2 (strict, no lazy locks)")
	trash, err := a.disks.Trash()
	if err != nil || len(trash) != 1 || !strings.HasPrefix(trash[0], fmt.Sprintf("device-%d-", dA.ID)) {
		t.Fatalf("A's old clone is not in the erator: %v %v", trash, err)
	}
	expect(t, bootVM(t, a, devB), marker(g.ID, 1), "locked device B after v2")
	comp := complianceOf(t, p, g.ID)
	if comp[dB.ID] || !comp[dA.ID] {
		t.Fatalf("compliance: %v (B must be non-compliant, A compliant)", comp)
	}

	// Lazy locks on: the unlocked device C keeps its v1 clone.
	p.api("PUT", fmt.Sprintf("/groups/%d.json", g.ID), map[string]any{"lazy_locks": true})
	expect(t, bootVM(t, a, devC), marker(g.ID, 1), "unlocked device C with lazy locks")

	// Non-strict: unlocked devices boot the newest local version, locked ones keep theirs.
	p.publish(a, g, 3)
	p.api("POST", fmt.Sprintf("/groups/%d/assign.json", g.ID), map[string]any{"version": 2})
	p.api("PUT", fmt.Sprintf("/groups/%d.json", g.ID), map[string]any{"strict_versioning": false, "lazy_locks": false})
	expect(t, bootVM(t, a, devC), marker(g.ID, 3), "unlocked device C, non-strict: newest local v3")
	expect(t, bootVM(t, a, devB), marker(g.ID, 1), "locked device B, non-strict")

	// Four devices at once (three known, one new) all reach their markers.
	devs := []Device{devA, devB, devC, DeviceN(4)}
	want := []string{marker(g.ID, 3), marker(g.ID, 1), marker(g.ID, 3), marker(g.ID, 3)}
	got := make([]string, len(devs))
	errs := make([]error, len(devs))
	var wg sync.WaitGroup
	for i := range devs {
		wg.Go(func() {
			res, err := Boot(context.Background(), a.BootURL, devs[i], 3*time.Minute)
			if err == nil {
				got[i] = res.Marker
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range devs {
		if errs[i] != nil || got[i] != want[i] {
			t.Fatalf("concurrent boot of %s: %q (want %q): %v", devs[i].MAC, got[i], want[i], errs[i])
		}
	}

	// The agent restarts while the panel is down: it exports again what its cache lists,
	// and non-strict devices still boot.
	a.stop()
	p.app.Shutdown() //nolint:errcheck
	b := startHostAgent(t, p, a.disks, cacheFile)
	if n, err := b.svc.Restore(context.Background()); n != 4 {
		t.Fatalf("restore from the cache exported %d targets, want 4: %v", n, err)
	}
	expect(t, bootVM(t, b, devA), marker(g.ID, 3), "device A with the panel down")
	res, err := Boot(context.Background(), b.BootURL, DeviceN(5), 2*time.Minute)
	if err == nil || !strings.Contains(res.Output, "panel is unreachable") {
		t.Fatalf("a new device with the panel down: %v", err)
	}
}

func complianceOf(t *testing.T, p *hostPanel, groupID uint) map[uint]bool {
	t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v0.9.2/groups/%d/compliance.json", p.URL, groupID), nil)
	req.Header.Set("Authorization", p.Auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rows []models.Compliance
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil {
		t.Fatal(err)
	}
	out := map[uint]bool{}
	for _, r := range rows {
		out[r.DeviceID] = r.Compliant
	}
	return out
}
