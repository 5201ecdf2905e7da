// Package bootviewtest runs the agent's boot side with its own view of the network
// (activities/storage/bootview) against the real panel (PostgreSQL, the agent endpoints
// over HTTP): the boot service, our iSCSI target on loopback and file-backed disks, as
// `clusterducks agent` wires them, with every request to the panel counted.
package bootviewtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/bootview"
	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/netboot"
	"github.com/clusterducks/clusterducks/workers/panel"
)

// Agent is an agent's boot side with its view.
type Agent struct {
	Svc    *boot.Service
	View   *bootview.View
	Disks  *boot.FileDisks
	Target *iscsi.Server
	URL    string // the boot endpoint, http://127.0.0.1:<port>/boot.ipxe
	ISCSI  string // the target's address on loopback
	Panel  *Counter

	http   *boot.Endpoint
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Counter counts the agent's requests to the panel, by path (query left out).
type Counter struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (c *Counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[strings.TrimPrefix(r.URL.Path, wire.Prefix)]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

// Count returns how many requests went to path (e.g. wire.PathBoot).
func (c *Counter) Count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

// Options change an agent's boot service before it starts.
type Options struct {
	Disks *boot.FileDisks // nil: new ones
	// State is the view's file ("" : in memory only).
	State string
	// Config, when set, changes the boot service's configuration.
	Config func(*boot.Config)
}

// Start starts the master's agent boot side with a view.
func Start(t testing.TB, p *netboot.HostPanel, o Options) *Agent {
	t.Helper()
	if o.Disks == nil {
		var err error
		if o.Disks, err = boot.NewFileDisks(filepath.Join(t.TempDir(), "pool")); err != nil {
			t.Fatal(err)
		}
	}
	a, err := Launch(PanelRef{URL: p.URL, Key: p.Key, ServerID: p.Server.ID, ServerIP: p.Server.IP}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a
}

// PanelRef is what an agent knows of its panel and of itself: the panel's URL, the
// server's key, id and IP.
type PanelRef struct {
	URL, Key string
	ServerID uint
	ServerIP string
}

// Launch starts an agent's boot side with a view against the panel p names, on
// o.Disks (required here), outside a test: a process of its own runs it too
// (test/bench/netboot/stormagent). Stop ends it.
func Launch(p PanelRef, o Options) (*Agent, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if o.Disks == nil {
		return nil, errors.New("bootviewtest: Launch needs disks")
	}
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	iln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		hln.Close()
		return nil, err
	}
	target := iscsi.NewServer(iscsi.Config{Logger: log})
	go target.Serve(iln) //nolint:errcheck
	fail := func(err error) (*Agent, error) {
		hln.Close()
		target.Shutdown(context.Background()) //nolint:errcheck
		return nil, err
	}
	client := wire.NewClient(p.URL, p.Key)
	counter := &Counter{next: client.HTTP.Transport, n: map[string]int{}}
	client.HTTP.Transport = counter
	view, err := bootview.Open(bootview.Config{Panel: client, Path: o.State, Logger: log})
	if err != nil {
		return fail(err)
	}
	cfg := boot.Config{
		ServerID:    p.ServerID,
		Portal:      net.JoinHostPort(p.ServerIP, strconv.Itoa(iln.Addr().(*net.TCPAddr).Port)),
		BootPort:    hln.Addr().(*net.TCPAddr).Port,
		Panel:       client,
		Provision:   &boot.LocalProvisioner{Disks: o.Disks, Target: target, Record: client.RecordClone},
		Disks:       o.Disks,
		Target:      target,
		Logger:      log,
		RebootPause: time.Second,
		RetryPause:  time.Second,
		View:        view,
	}
	if o.Config != nil {
		o.Config(&cfg)
	}
	svc, err := boot.NewService(cfg)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Agent{Svc: svc, View: view, Disks: o.Disks, Target: target, Panel: counter, cancel: cancel, done: make(chan struct{}),
		ISCSI: iln.Addr().String(),
		URL:   "http://" + hln.Addr().String() + "/boot.ipxe"}
	go func() {
		defer close(a.done)
		view.Run(ctx)
	}()
	mux := http.NewServeMux() // what the endpoint does not answer itself
	mux.Handle("/booted", svc.CheckIn())
	a.http = svc.Endpoint(mux)
	go a.http.Serve(hln) //nolint:errcheck
	return a, nil
}

// Stop ends the agent: its endpoint, its view (written to its file) and its target.
func (a *Agent) Stop() {
	a.once.Do(func() {
		a.http.Close()
		a.cancel()
		<-a.done
		a.Svc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Target.Shutdown(ctx) //nolint:errcheck
	})
}

// BootQuery is the query of a device's boot-script request, as iPXE's chain sends it.
func BootQuery(d netboot.Device) string {
	return "?mac=" + strings.ReplaceAll(d.MAC, ":", "-") + "&uuid=" + d.UUID
}

// WaitDevices waits until the agent's view holds n devices, at most within.
func (a *Agent) WaitDevices(n int, within time.Duration) error {
	for end := time.Now().Add(within); a.View.Stats().Devices != n; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			return fmt.Errorf("the view holds %d devices after %v, want %d", a.View.Stats().Devices, within, n)
		}
	}
	return nil
}

// Get asks the agent for a device's boot script.
func (a *Agent) Get(c *http.Client, d netboot.Device) (string, error) {
	resp, err := c.Get(a.URL + BootQuery(d))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Serve (re)starts the panel's HTTP app on p's address with the given boot lease (a
// panel restart: the database stays), stopping the running one first.
func Serve(t testing.TB, p *netboot.HostPanel, lease time.Duration) {
	t.Helper()
	Stop(p)
	addr := strings.TrimPrefix(p.URL, "http://")
	var ln net.Listener
	var err error
	for range 50 { // the old listener's port is free once its server has closed it
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	tl := &trackedListener{Listener: ln, conns: map[net.Conn]bool{}}
	app := panel.NewApp(panel.Options{Store: p.Store, BootLease: lease})
	go app.Listener(tl) //nolint:errcheck
	p.App = app
	served.Store(p, tl)
	t.Cleanup(func() { Stop(p) })
}

// served holds the listener of each panel Serve started, by panel.
var served sync.Map

// Stop stops the panel's HTTP app (its database stays), cutting its open connections as
// a stopped process would: the agents' watches under way end with an error.
func Stop(p *netboot.HostPanel) {
	if tl, ok := served.LoadAndDelete(p); ok {
		tl.(*trackedListener).closeAll()
	}
	p.App.ShutdownWithTimeout(time.Second) //nolint:errcheck
}

// trackedListener remembers its connections so that Stop can cut them.
type trackedListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns[c] = true
		l.mu.Unlock()
	}
	return c, err
}

func (l *trackedListener) closeAll() {
	l.Listener.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
	}
}

// KnownDevices registers n devices of group g, numbered from first, with clones of
// version 1 on the agent's disks for the first withDisk of them (devices that booted
// before), in one batch.
func KnownDevices(t testing.TB, p *netboot.HostPanel, disks *boot.FileDisks, g *models.Group, first, n, withDisk int) []netboot.Device {
	t.Helper()
	v, err := models.VersionByNumber(context.Background(), p.DB, g.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	devs := make([]netboot.Device, n)
	rows := make([]models.Device, n)
	for i := range devs {
		devs[i] = netboot.DeviceN(first + i)
		rows[i] = models.Device{NetworkID: p.Network.ID, MAC: devs[i].MAC, UUID: devs[i].UUID, GroupID: &g.ID, CloneVersionID: &v.ID, ServerID: &p.Server.ID}
	}
	if err := p.DB.CreateInBatches(rows, 500).Error; err != nil {
		t.Fatal(err)
	}
	for i := range withDisk {
		if _, err := disks.Clone(g.ID, 1, rows[i].ID); err != nil {
			t.Fatal(err)
		}
	}
	return devs
}
