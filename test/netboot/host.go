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
	"strconv"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/workers/panel"
	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"
)

// HostPanel is the real panel (API, agent endpoints, PostgreSQL) on a loopback port.
type HostPanel struct {
	T       testing.TB
	URL     string
	DB      *gorm.DB
	Store   *models.Store
	Auth    string
	App     *fiber.App
	Network models.Network
	Server  models.Server // the master, at 10.0.2.2 (the host as device VMs see it)
	Key     string
	// BootPort is the port of every agent's boot endpoint, the same on every server as in
	// production (redirects name only the other server's IP); the first agent picks it.
	BootPort int
	// CHAPKey, when set before an agent starts, makes that agent's targets require CHAP.
	CHAPKey []byte
	// Outcomes, when set before an agent starts, are the bounds its boot outcomes are
	// decided within (a short UpAfter for tests that wait for "up").
	Outcomes boot.OutcomeBounds

	admin   *models.Actor
	servers int // servers created so far
}

// HostServer is one storage server of the panel's network with its key: what an agent
// starts with.
type HostServer struct {
	models.Server
	Key string
}

func StartHostPanel(t testing.TB) *HostPanel {
	t.Helper()
	db := harness.NewDB(t, "postgres")
	// Slave servers are loopback addresses of their own (AddServer).
	store := &models.Store{DB: db, AllowLoopback: true}
	admin := harness.Admin(t, db)
	app := panel.NewApp(panel.Options{Store: store})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln) //nolint:errcheck
	p := &HostPanel{T: t, URL: "http://" + ln.Addr().String(), DB: db, Store: store, App: app,
		Auth: harness.Token(t, db, admin.ID), admin: admin, servers: 1}
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
	// The host agent serves files, not a pool, and reports none: the panel is told the
	// master is healthy, as its agent would (creates on a master that never reported are refused).
	if err := models.RecordServerStats(ctx, db, p.Server.ID, &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 100 << 30, PoolFree: 90 << 30}); err != nil {
		t.Fatal(err)
	}
	if err := db.Take(&p.Network, p.Network.ID).Error; err != nil {
		t.Fatal(err)
	}
	if p.Network.MasterServerID == nil || *p.Network.MasterServerID != p.Server.ID {
		t.Fatalf("the first server is not the master: %+v", p.Network)
	}
	return p
}

// AddServer creates another storage server of the network (a slave). Its IP is a
// loopback address of its own, 127.0.0.<n>: qemu's user network passes a guest's
// connection to an address outside 10.0.2.0/24 on to the host's, so a device VM reaches
// each agent at its own IP and the one BootPort, as devices reach servers in production.
func (p *HostPanel) AddServer(name string) HostServer {
	p.T.Helper()
	p.servers++
	ip := fmt.Sprintf("127.0.0.%d", p.servers)
	created, err := p.Store.CreateServer(context.Background(), p.admin, &models.ServerInput{NetworkID: &p.Network.ID,
		Name: models.Strp(name), IP: models.Strp(ip), Pool: models.Strp("tank")})
	if err != nil {
		p.T.Fatal(err)
	}
	return HostServer{Server: *created.Object.(*models.Server), Key: created.Secret}
}

// Copy puts version n of g on another server as replication would: the version's image
// on its disks (a version's image is fixed by g and n) and the panel's record that the
// server holds it (models.VersionCopy).
func (p *HostPanel) Copy(to *HostAgent, g *models.Group, n int) {
	p.T.Helper()
	if err := MakeDisk(to.Disks.GroupVersionPath(g.ID, n), Marker(g.ID, n), 0); err != nil {
		p.T.Fatal(err)
	}
	var v models.GroupVersion
	if err := p.DB.Where("group_id = ? AND number = ?", g.ID, n).Take(&v).Error; err != nil {
		p.T.Fatal(err)
	}
	if err := p.DB.Create(&models.VersionCopy{VersionID: v.ID, ServerID: to.ServerID, GUID: v.GUID, ReceivedAt: time.Now()}).Error; err != nil {
		p.T.Fatal(err)
	}
}

// group records a ready group (the file-backed agent has no ZFS workflow to make it) and
// makes it the network's default.
func (p *HostPanel) Group(strict, lazy bool) *models.Group {
	p.T.Helper()
	vol := &models.Volume{NetworkID: p.Network.ID, Alias: "base", SizeGiB: 1, State: models.StateReady}
	if err := p.DB.Create(vol).Error; err != nil {
		p.T.Fatal(err)
	}
	g := &models.Group{NetworkID: p.Network.ID, Name: "desktops", VolumeID: vol.ID, StrictVersioning: strict, LazyLocks: lazy, State: models.StateReady}
	if err := p.DB.Create(g).Error; err != nil {
		p.T.Fatal(err)
	}
	if err := p.DB.Model(&models.Network{}).Where("id = ?", p.Network.ID).Update("default_group_id", g.ID).Error; err != nil {
		p.T.Fatal(err)
	}
	return g
}

// publish makes version n of g: the head copied to g@v<n> on the agent's disks and the
// version recorded ready.
func (p *HostPanel) Publish(a *HostAgent, g *models.Group, n int) {
	p.T.Helper()
	head, _, _ := a.Disks.GroupPath(context.Background(), g.ID)
	if err := MakeDisk(head, Marker(g.ID, n), 0); err != nil {
		p.T.Fatal(err)
	}
	if err := a.Disks.Publish(g.ID, n); err != nil {
		p.T.Fatal(err)
	}
	if err := p.DB.Create(&models.GroupVersion{GroupID: g.ID, Number: n, GUID: "", State: models.StateReady}).Error; err != nil {
		p.T.Fatal(err)
	}
}

func Marker(g uint, n int) string { return fmt.Sprintf("group%d-v%d", g, n) }

// api sends an authenticated API request and fails the test on a status >= 300.
func (p *HostPanel) API(method, path string, body any) map[string]any {
	p.T.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, p.URL+"/api/v0.9.2"+path, bytes.NewReader(b))
	req.Header.Set("Authorization", p.Auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.T.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		p.T.Fatalf("%s %s: %s: %s", method, path, resp.Status, out)
	}
	var m map[string]any
	json.Unmarshal(out, &m) //nolint:errcheck
	return m
}

func (p *HostPanel) Device(mac string) models.Device {
	p.T.Helper()
	var d models.Device
	if err := p.DB.Where("mac = ?", mac).Take(&d).Error; err != nil {
		p.T.Fatalf("device %s: %v", mac, err)
	}
	return d
}

// HostAgent is the agent's boot side on the host: our iSCSI target on loopback, the boot
// endpoint, file-backed disks, talking to the panel over HTTP with the server key.
type HostAgent struct {
	ServerID uint
	Svc      *boot.Service
	Disks    *boot.FileDisks
	Target   *iscsi.Server
	BootURL  string // as device VMs see it
	ISCSI    string // the iSCSI target's address as the host reaches it
	http     *boot.Endpoint
}

// StartHostAgent starts the master's agent (boot side) over disks (new ones when nil) and
// the cache file, as an agent start does.
func StartHostAgent(t testing.TB, p *HostPanel, disks *boot.FileDisks, cacheFile string) *HostAgent {
	t.Helper()
	return StartServerAgent(t, p, HostServer{Server: p.Server, Key: p.Key}, disks, cacheFile)
}

// hostAddr is the host address a server's IP reaches from a device VM: qemu maps 10.0.2.2
// to 127.0.0.1; other addresses are the host's own.
func hostAddr(ip string) string {
	if ip == "10.0.2.2" {
		return "127.0.0.1"
	}
	return ip
}

// StartServerAgent starts the agent (boot side) of server srv: its iSCSI target and boot
// endpoint listen at the server's IP as the host has it, the boot endpoint on p.BootPort.
func StartServerAgent(t testing.TB, p *HostPanel, srv HostServer, disks *boot.FileDisks, cacheFile string) *HostAgent {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("server", srv.Name)
	if disks == nil {
		var err error
		if disks, err = boot.NewFileDisks(filepath.Join(t.TempDir(), "pool")); err != nil {
			t.Fatal(err)
		}
	}
	host := hostAddr(srv.IP)
	hln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p.BootPort)))
	if err != nil {
		t.Fatal(err)
	}
	p.BootPort = hln.Addr().(*net.TCPAddr).Port
	target := iscsi.NewServer(iscsi.Config{Logger: log})
	iln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	go target.Serve(iln) //nolint:errcheck
	client := wire.NewClient(p.URL, srv.Key)
	cache, err := boot.OpenCache(cacheFile)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := boot.NewService(boot.Config{
		ServerID:    srv.ID,
		Portal:      net.JoinHostPort(srv.IP, strconv.Itoa(iln.Addr().(*net.TCPAddr).Port)),
		BootPort:    p.BootPort,
		Panel:       client,
		Provision:   &boot.LocalProvisioner{Disks: disks, Target: target, Record: client.RecordClone},
		Disks:       disks,
		Target:      target,
		Cache:       cache,
		Logger:      log,
		RebootPause: time.Second,
		RetryPause:  time.Second,
		CHAPKey:     p.CHAPKey,
		Outcomes:    p.Outcomes,
	})
	if err != nil {
		t.Fatal(err)
	}
	ep := svc.Endpoint(nil)
	go ep.Serve(hln) //nolint:errcheck
	a := &HostAgent{ServerID: srv.ID, Svc: svc, Disks: disks, Target: target, http: ep, ISCSI: iln.Addr().String(),
		BootURL: "http://" + net.JoinHostPort(srv.IP, strconv.Itoa(p.BootPort)) + "/boot.ipxe"}
	t.Cleanup(a.Stop)
	return a
}

// stop ends the agent's boot side: the endpoint, the service (flushing its cache) and
// the target. Stopping twice is harmless.
func (a *HostAgent) Stop() {
	a.http.Close()
	a.Svc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.Target.Shutdown(ctx) //nolint:errcheck
}
