// Package lab starts real OpenZFS storage servers as qemu VMs for the integration tests
// and for `task lab`.
//
// The first use on a machine builds a Debian bookworm image with OpenZFS (EnsureImage,
// 12–15 minutes, cached under CacheDir); each server then boots a copy-on-write overlay
// of it under TCG with a fresh sparse pool disk, qemu user-mode networking (the guest
// reaches the host's loopback at 10.0.2.2, the host reaches the guest's ports through
// forwards on 127.0.0.1) and a 9p share mounted at /mnt/host in the guest, through which
// the freshly built clusterducks binary goes in and its logs come out. Boot to a ready
// pool takes 15–25 s on an idle machine, more under load.
package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/clusterducks/clusterducks/test/harness/proc"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

//go:embed init.sh
var initScript []byte

//go:embed systemd.sh
var systemdScript []byte

// Guest ports the agent serves; the defaults every server forwards. Tests that need
// another port list set Options.GuestPorts.
const (
	PortISCSI       = 3260 // the agent's iSCSI target
	PortBoot        = 8080 // boot-script HTTP endpoint (boot.ipxe)
	PortAgentAPI    = 8081 // agent API and stats, reached by the panel through the tunnel
	PortReplication = 8082 // zfs send/recv stream endpoint between servers
)

// DefaultGuestPorts are forwarded when Options.GuestPorts is nil.
var DefaultGuestPorts = []int{PortISCSI, PortBoot, PortAgentAPI, PortReplication}

// PortName says what a guest port is, for what the lab prints: "iSCSI", "boot",
// "agent API", "replication", "lab exec"; another port is named by its number.
func PortName(guestPort int) string {
	switch guestPort {
	case PortISCSI:
		return "iSCSI"
	case PortBoot:
		return "boot"
	case PortAgentAPI:
		return "agent API"
	case PortReplication:
		return "replication"
	case execPort:
		return "lab exec"
	}
	return "port " + strconv.Itoa(guestPort)
}

// portsEnv is the share file (sourced by a guest's command) naming each guest port's
// host port: LAB_HOST_PORT_<guest port>=<host port>. It is written before qemu starts, so
// it is right even when a forward had to be picked again.
const portsEnv = "ports.env"

// execPort is the guest port of the lab's exec helper (test tooling, not the agent).
const execPort = 7022

// GuestHostIP is the address at which a guest reaches the host's loopback.
const GuestHostIP = "10.0.2.2"

// GuestIP is every guest's own address on its private user-mode network.
const GuestIP = "10.0.2.15"

// Options describe one storage server. The zero value is a usable server.
type Options struct {
	Name       string            // host name and state directory name; default lab1, lab2, …
	Pool       string            // pool created on the pool disk; default "tank"
	PoolSize   int64             // sparse pool disk size in bytes; default 8 GiB
	MemoryMB   int               // default 1024
	CPUs       int               // default 2
	GuestPorts []int             // guest TCP ports forwarded from host loopback; default DefaultGuestPorts
	Binary     bool              // build clusterducks and install it as /usr/local/bin/clusterducks
	Files      map[string][]byte // extra files put on the share, seen in the guest as /mnt/host/<name>
	// Command is a shell script run in the guest once the pool exists, as root, in the
	// background; its output goes to the share's command.log (see Server.Log).
	Command     string
	BootTimeout time.Duration // from qemu start to ready; default 6 minutes
	Logf        func(format string, args ...any)
	// Systemd boots the image with systemd as init, as an installed server runs: the
	// network comes from systemd-networkd, the pool is created at the first boot and
	// imported by zfs-import-cache at the next ones, and the guest may reboot (Reboot).
	// Command is not run; use Exec.
	Systemd bool
}

// Server is a running storage-server VM.
type Server struct {
	Name     string
	UUID     string
	Pool     string
	Dir      string        // state directory on the host (overlay, pool disk, share)
	Share    string        // host side of the guest's /mnt/host
	Image    *Image        // what it booted
	BootTime time.Duration // from qemu start to ready

	ports map[int]int // guest port -> host port
	opts  Options     // what it was started with (Reboot starts qemu again)
	emu   emulator    // the qemu it runs in
	token string
	cmd   *exec.Cmd
	done  chan struct{}
	err   error // qemu's exit, valid after done

	stopOnce sync.Once
	stopErr  error
	attached bool // found with Find: owned by another process
}

var (
	seq          atomic.Int64
	namePattern  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9.-]{0,62}$`)
	cleanupStale sync.Once
)

func (o *Options) setDefaults() error {
	if o.Name == "" {
		o.Name = fmt.Sprintf("lab%d", seq.Add(1))
	}
	if o.Pool == "" {
		o.Pool = "tank"
	}
	if !namePattern.MatchString(o.Name) || !namePattern.MatchString(o.Pool) {
		return fmt.Errorf("lab: bad name %q or pool %q", o.Name, o.Pool)
	}
	if o.PoolSize == 0 {
		o.PoolSize = 8 << 30
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 1024
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.GuestPorts == nil {
		o.GuestPorts = DefaultGuestPorts
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = 6 * time.Minute
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return nil
}

// StartServer boots a storage server for a test and stops it when the test ends. Any
// failure (including a missing host package or a failed image build) fails the test.
// On failure the guest's logs are added to the test output.
func StartServer(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			s.dumpLogs(t.Logf)
		}
		if err := s.Stop(); err != nil {
			t.Errorf("lab: stop %s: %v", s.Name, err)
		}
	})
	return s
}

// StartServers boots several servers at once (a replication master and its slaves, or
// the servers of `task lab`). Either all are running on return, or none is.
func StartServers(ctx context.Context, opts []Options) ([]*Server, error) {
	if len(opts) > 0 {
		// One image check up front, so the servers don't queue behind each other's logs.
		if _, err := EnsureImage(ctx, opts[0].Logf); err != nil {
			return nil, err
		}
	}
	servers := make([]*Server, len(opts))
	errs := make([]error, len(opts))
	var wg sync.WaitGroup
	for i := range opts {
		wg.Go(func() { servers[i], errs[i] = Start(ctx, opts[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range servers {
			if s != nil {
				s.Stop() //nolint:errcheck
			}
		}
		return nil, err
	}
	return servers, nil
}

// AgentOptions returns the options of a server whose guest runs
// `clusterducks agent --panel URL --key /mnt/host/server.key` with the freshly built
// binary. panelURL is as the host sees it (http://127.0.0.1:PORT); loopback addresses are
// rewritten to the host's address inside the guest.
//
// The agent's iSCSI target and boot endpoint listen on the guest ports PortISCSI and
// PortBoot; the portal it names in its sanboot scripts is the target's forward as a device
// VM on its own user network sees it, 10.0.2.2:<host port> (Server.DevicePortal): the
// guest's own address, 10.0.2.15, is every slirp guest's own and reaches nothing.
func AgentOptions(name, panelURL string, serverKey []byte) Options {
	return Options{
		Name:   name,
		Binary: true,
		Files:  map[string][]byte{"server.key": serverKey},
		Command: fmt.Sprintf(". /mnt/host/%s\n"+
			"exec /usr/local/bin/clusterducks agent --panel %s --key /mnt/host/server.key "+
			"--iscsi-listen :%d --iscsi-portal \"%s:$LAB_HOST_PORT_%d\" --boot-listen :%d\n",
			portsEnv, shellQuote(GuestURL(panelURL)), PortISCSI, GuestHostIP, PortISCSI, PortBoot),
	}
}

// StartAgents boots n servers named <prefix>1…<prefix>n, each running the agent against
// panelURL with its own key (keys[i]). It is what `task lab` calls after creating the
// servers in the panel. Stop them with Stop.
func StartAgents(ctx context.Context, prefix, panelURL string, keys [][]byte, logf func(string, ...any)) ([]*Server, error) {
	opts := make([]Options, len(keys))
	for i, k := range keys {
		opts[i] = AgentOptions(fmt.Sprintf("%s%d", prefix, i+1), panelURL, k)
		opts[i].Logf = logf
	}
	return StartServers(ctx, opts)
}

// GuestURL rewrites a host loopback URL (127.0.0.1, localhost, ::1) to the address at
// which a guest reaches it; other URLs are returned unchanged.
func GuestURL(hostURL string) string {
	u, err := url.Parse(hostURL)
	if err != nil {
		return hostURL
	}
	switch u.Hostname() {
	case "127.0.0.1", "localhost", "::1":
		if p := u.Port(); p != "" {
			u.Host = net.JoinHostPort(GuestHostIP, p)
		} else {
			u.Host = GuestHostIP
		}
	}
	return u.String()
}

// Start boots a storage server and waits until its pool is ready and its exec channel
// answers. The caller must Stop it. Stale VMs of killed runs are cleaned up first.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	cleanupStale.Do(func() {
		if err := CleanStale(); err != nil {
			opts.Logf("lab: cleaning stale VMs: %v", err)
		}
	})
	img, err := EnsureImage(ctx, opts.Logf)
	if err != nil {
		return nil, err
	}
	guestexec, err := guestExecBinary(ctx)
	if err != nil {
		return nil, err
	}
	var binary string
	if opts.Binary {
		if binary, err = BuildBinary(ctx); err != nil {
			return nil, err
		}
	}

	dir, err := newStateDir(opts.Name)
	if err != nil {
		return nil, err
	}
	s := &Server{
		Name:  opts.Name,
		UUID:  newUUID(),
		Pool:  opts.Pool,
		Dir:   dir,
		Share: filepath.Join(dir, "share"),
		Image: img,
		emu:   serverEmulator(ctx, opts.Logf),
		opts:  opts,
		token: randomHex(16),
		done:  make(chan struct{}),
	}
	if err := s.prepare(ctx, opts, guestexec, binary); err != nil {
		os.RemoveAll(dir) //nolint:errcheck
		return nil, err
	}
	// A forward port taken between our probe and qemu's bind fails qemu at once: retry.
	for attempt := 1; ; attempt++ {
		err = s.boot(opts)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "host forwarding") {
			break
		}
		s.ports = nil // other ports next time
	}
	if err != nil {
		os.RemoveAll(dir) //nolint:errcheck
		return nil, err
	}
	start := time.Now()
	if err := s.waitReady(ctx, opts.BootTimeout); err != nil {
		s.dumpLogs(opts.Logf)
		s.Stop() //nolint:errcheck
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	s.BootTime = time.Since(start)
	if err := s.writeInfo(); err != nil {
		s.Stop() //nolint:errcheck
		return nil, err
	}
	opts.Logf("lab: %s ready in %s (uuid %s, %s)", s.Name, s.BootTime.Round(100*time.Millisecond), s.UUID, s.describePorts())
	return s, nil
}

// prepare writes the overlay, the pool disk and the share.
func (s *Server) prepare(ctx context.Context, opts Options, guestexec, binary string) error {
	overlay := filepath.Join(s.Dir, "root.qcow2")
	if b, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
		"-b", s.Image.Root, overlay).CombinedOutput(); err != nil {
		return fmt.Errorf("qemu-img create: %w: %s", err, b)
	}
	pool, err := os.Create(filepath.Join(s.Dir, "pool.img"))
	if err != nil {
		return err
	}
	if err := pool.Truncate(opts.PoolSize); err != nil {
		pool.Close()
		return err
	}
	pool.Close()

	if err := os.MkdirAll(s.Share, 0o755); err != nil {
		return err
	}
	env := fmt.Sprintf("LAB_NAME=%s\nLAB_POOL=%s\nLAB_EXEC_PORT=%d\n", s.Name, s.Pool, execPort)
	files := map[string][]byte{
		"init.sh": initScript,
		"lab.env": []byte(env),
		"token":   []byte(s.token + "\n"),
	}
	if opts.Command != "" {
		files["command.sh"] = []byte(opts.Command)
	}
	if opts.Systemd {
		files["systemd.sh"] = systemdScript
	}
	for name, b := range opts.Files {
		if strings.Contains(name, "/") || files[name] != nil || name == "clusterducks" || name == "guestexec" {
			return fmt.Errorf("lab: file name %q not allowed", name)
		}
		files[name] = b
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(s.Share, name), b, 0o644); err != nil {
			return err
		}
	}
	if err := copyFile(guestexec, filepath.Join(s.Share, "guestexec")); err != nil {
		return err
	}
	if binary != "" {
		if err := copyFile(binary, filepath.Join(s.Share, "clusterducks")); err != nil {
			return err
		}
	}
	return nil
}

// boot starts qemu with fresh forward ports.
func (s *Server) boot(opts Options) error {
	// A restart (Reboot) keeps the forwards the tests and the guest already know.
	if s.ports == nil {
		s.ports = map[int]int{}
		for _, gp := range append([]int{execPort}, opts.GuestPorts...) {
			if _, dup := s.ports[gp]; dup {
				continue
			}
			hp, err := proc.FreePort()
			if err != nil {
				return err
			}
			s.ports[gp] = hp
		}
	}
	var fwd []string
	for _, gp := range slices.Sorted(maps.Keys(s.ports)) {
		fwd = append(fwd, fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-:%d", s.ports[gp], gp))
	}
	if err := os.WriteFile(filepath.Join(s.Share, portsEnv), []byte(portsEnvText(s.ports)), 0o644); err != nil {
		return err
	}
	args := []string{
		"-name", "clusterducks-lab-" + s.Name,
		"-machine", "q35",
		"-accel", "tcg,thread=multi",
		// "max", AES included, on a QEMU that runs the guests' AES rounds on the host's
		// AES-NI; AES hidden on an older one (qemu.go).
		"-cpu", s.emu.CPU,
		"-smp", strconv.Itoa(opts.CPUs), "-m", strconv.Itoa(opts.MemoryMB),
		"-uuid", s.UUID,
		// A guest's reboot ends qemu; Reboot starts it again (see there).
		"-nodefaults", "-display", "none", "-monitor", "none", "-no-reboot",
		"-serial", "file:" + filepath.Join(s.Dir, "console.log"),
		"-kernel", s.Image.Kernel, "-initrd", s.Image.Initrd,
		"-append", kernelLine(opts.Systemd, s.UUID),
		// Disks are named by serial and label, not by order: the pool disk may enumerate first.
		"-drive", "file=" + filepath.Join(s.Dir, "root.qcow2") + ",if=none,id=root,format=qcow2,cache=unsafe",
		"-device", "virtio-blk-pci,drive=root,serial=labroot",
		"-drive", "file=" + filepath.Join(s.Dir, "pool.img") + ",if=none,id=pool,format=raw,cache=unsafe,discard=unmap",
		"-device", "virtio-blk-pci,drive=pool,serial=labpool",
		"-netdev", "user,id=n0,ipv6=off," + strings.Join(fwd, ","),
		"-device", "virtio-net-pci,netdev=n0",
		"-fsdev", "local,id=share,path=" + s.Share + ",security_model=none",
		"-device", "virtio-9p-pci,fsdev=share,mount_tag=host",
		"-pidfile", filepath.Join(s.Dir, "qemu.pid"),
	}
	cmd := exec.Command(s.emu.Bin, append(slices.Clone(s.emu.Args), args...)...)
	cmd.Env = append(os.Environ(), s.emu.Env...)
	// qemu dies with this process even when it is SIGKILLed; the pid file covers the rest.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	logf, err := os.OpenFile(filepath.Join(s.Dir, "qemu.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("qemu: %w", err)
	}
	logf.Close()
	s.cmd = cmd
	done := make(chan struct{})
	s.done = done
	go func() {
		s.err = cmd.Wait()
		close(done)
	}()
	// qemu fails on a taken forward port within a moment of starting.
	select {
	case <-s.done:
		b, _ := os.ReadFile(filepath.Join(s.Dir, "qemu.log"))
		return fmt.Errorf("qemu exited at start (%v): %s", s.err, tailString(string(b), 2000))
	case <-time.After(500 * time.Millisecond):
	}
	return nil
}

// waitReady waits for the guest init's ready (or failed) marker and the exec helper.
func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return fmt.Errorf("qemu exited during boot (%v)", s.err)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w", timeout, ctx.Err())
		case <-tick.C:
		}
		if b, err := os.ReadFile(filepath.Join(s.Share, "failed")); err == nil {
			return fmt.Errorf("guest init failed: %s", strings.TrimSpace(string(b)))
		}
		if !fileExists(filepath.Join(s.Share, "ready")) {
			continue
		}
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.ping(pctx)
		pcancel()
		if err == nil {
			return nil
		}
	}
}

// kernelLine is the kernel command line: the lab's own init, or systemd (the image's
// /sbin/init) with this VM's machine id.
func kernelLine(systemd bool, uuid string) string {
	const common = "root=LABEL=labroot rw console=ttyS0 net.ifnames=0 no_timer_check panic=-1 loglevel=4"
	if systemd {
		return common + " systemd.machine_id=" + strings.ReplaceAll(uuid, "-", "")
	}
	return "root=LABEL=labroot rw console=ttyS0 init=/sbin/lab-init net.ifnames=0 no_timer_check panic=-1 loglevel=4"
}

// Reboot reboots a systemd server's guest (systemctl reboot: its units stop, its file
// systems are unmounted) and waits until it is ready again: its pool imported and the
// exec helper answering. The guest's reboot ends qemu, which is started again with the
// same disks, share, UUID and forwarded ports: the guest boots as after a reset. A reset
// in place (qemu's default) booted 2–3× slower here under TCG (first boot 41–45 s, the
// same boot after a reset 90–100 s; a guest CPU loop ran as fast after it), so the lab
// does not use it.
func (s *Server) Reboot(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	if !s.opts.Systemd {
		return 0, fmt.Errorf("lab: %s does not run systemd: it cannot reboot", s.Name)
	}
	if s.attached {
		return 0, fmt.Errorf("lab: %s belongs to another process", s.Name)
	}
	os.Remove(filepath.Join(s.Share, "ready")) //nolint:errcheck
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The helper dies with the guest: its answer may never come.
	ectx, ecancel := context.WithTimeout(ctx, 30*time.Second)
	s.Exec(ectx, "systemctl", "reboot") //nolint:errcheck
	ecancel()
	select {
	case <-s.done:
	case <-ctx.Done():
		return 0, fmt.Errorf("%s: still running %s after systemctl reboot", s.Name, time.Since(start).Round(time.Second))
	}
	down := time.Since(start)
	if err := s.boot(s.opts); err != nil {
		return 0, fmt.Errorf("%s: starting again after its reboot: %w", s.Name, err)
	}
	if err := s.waitReady(ctx, timeout); err != nil {
		return 0, fmt.Errorf("%s after reboot: %w", s.Name, err)
	}
	took := time.Since(start)
	if s.opts.Logf != nil {
		s.opts.Logf("lab: %s rebooted: down after %s, ready %s later", s.Name, down.Round(100*time.Millisecond), (took - down).Round(100*time.Millisecond))
	}
	return took, nil
}

// Addr returns the host address (127.0.0.1:port) forwarded to guestPort, or "" when the
// port is not forwarded.
func (s *Server) Addr(guestPort int) string {
	hp, ok := s.ports[guestPort]
	if !ok {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(hp))
}

// Ports returns the forwarded guest ports and their host ports.
func (s *Server) Ports() map[int]int {
	out := map[int]int{}
	for g, h := range s.ports {
		if g != execPort {
			out[g] = h
		}
	}
	return out
}

// portsEnvText is the text of portsEnv for ports (guest port -> host port).
func portsEnvText(ports map[int]int) string {
	var b strings.Builder
	for _, g := range slices.Sorted(maps.Keys(ports)) {
		fmt.Fprintf(&b, "LAB_HOST_PORT_%d=%d\n", g, ports[g])
	}
	return b.String()
}

// DeviceAddr returns the address at which a device VM on its own qemu user network
// reaches guestPort of this server: 10.0.2.2 (the host's loopback) and the forward's host
// port; "" when the port is not forwarded.
func (s *Server) DeviceAddr(guestPort int) string {
	hp, ok := s.ports[guestPort]
	if !ok {
		return ""
	}
	return net.JoinHostPort(GuestHostIP, strconv.Itoa(hp))
}

// DevicePortal is the iSCSI portal a device VM logs into: what the lab's agents put in
// their sanboot scripts.
func (s *Server) DevicePortal() string { return s.DeviceAddr(PortISCSI) }

// DeviceBootURL is the boot endpoint a device VM chains to (its DHCP boot file), or ""
// when the boot port is not forwarded.
func (s *Server) DeviceBootURL() string {
	a := s.DeviceAddr(PortBoot)
	if a == "" {
		return ""
	}
	return "http://" + a + "/boot.ipxe"
}

// Forwards describes each forwarded port by what it is, one line each: its name, the
// guest port, its host address and, for the iSCSI target and the boot endpoint, the
// address a device VM uses.
func (s *Server) Forwards() []string {
	var out []string
	for _, g := range slices.Sorted(maps.Keys(s.Ports())) {
		line := fmt.Sprintf("%-12s guest :%d -> %s", PortName(g), g, s.Addr(g))
		switch g {
		case PortISCSI:
			line += "   devices log in at " + s.DevicePortal()
		case PortBoot:
			line += "   devices chain " + s.DeviceBootURL()
		}
		out = append(out, line)
	}
	return out
}

func (s *Server) describePorts() string {
	var parts []string
	for _, g := range slices.Sorted(maps.Keys(s.Ports())) {
		parts = append(parts, fmt.Sprintf("%s %d->%s", PortName(g), g, s.Addr(g)))
	}
	return "forwards: " + strings.Join(parts, ", ")
}

// Done is closed when qemu has exited. Reboot ends qemu and starts another: ask again
// after it.
func (s *Server) Done() <-chan struct{} { return s.done }

// Log returns a file the guest wrote to its share: "command.log" (the Command's output),
// "init.log" (guest init), "guestexec.log"; "console.log" and "qemu.log" are the serial
// console and qemu's own output. A missing file reads as "".
func (s *Server) Log(name string) string {
	p := filepath.Join(s.Share, name)
	if name == "console.log" || name == "qemu.log" {
		p = filepath.Join(s.Dir, name)
	}
	b, _ := os.ReadFile(p)
	return string(b)
}

func (s *Server) dumpLogs(logf func(string, ...any)) {
	if logf == nil {
		return
	}
	for _, n := range []string{"qemu.log", "console.log", "init.log", "guestexec.log", "command.log"} {
		if l := s.Log(n); l != "" {
			logf("lab: %s %s:\n%s", s.Name, n, tailString(l, 3000))
		}
	}
}

// Stop kills qemu by pid and removes the server's files. Safe to call more than once.
func (s *Server) Stop() error {
	if s.attached {
		return fmt.Errorf("lab: %s belongs to another process", s.Name)
	}
	s.stopOnce.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			s.cmd.Process.Kill() //nolint:errcheck
			select {
			case <-s.done:
			case <-time.After(30 * time.Second):
				s.stopErr = fmt.Errorf("qemu pid %d did not exit", s.cmd.Process.Pid)
				return
			}
		}
		s.stopErr = os.RemoveAll(s.Dir)
	})
	return s.stopErr
}

// ExecError is a guest command that ran and exited non-zero.
type ExecError struct {
	Args     []string
	ExitCode int
	Stderr   string
}

func (e *ExecError) Error() string {
	return fmt.Sprintf("%s: exit %d: %s", strings.Join(e.Args, " "), e.ExitCode, strings.TrimSpace(e.Stderr))
}

// Exec runs a command in the guest as root and returns its stdout. A non-zero exit is an
// *ExecError carrying stderr. The command is killed when ctx ends.
func (s *Server) Exec(ctx context.Context, name string, args ...string) (string, error) {
	return s.ExecInput(ctx, nil, name, args...)
}

// WaitZvol waits (up to a minute) for zvol's /dev/zvol link: udev makes it a moment after
// zfs made the zvol, so a write right after the operation that made it can miss it.
func (s *Server) WaitZvol(ctx context.Context, zvol string) error {
	wait := `i=0; while [ ! -e "$1" ]; do i=$((i + 1)); [ $i -gt 240 ] && exit 1; udevadm settle --timeout=5 2>/dev/null; sleep 0.25; done`
	if out, err := s.Exec(ctx, "sh", "-c", wait, "sh", "/dev/zvol/"+zvol); err != nil {
		return fmt.Errorf("/dev/zvol/%s never appeared: %v %s", zvol, err, out)
	}
	return nil
}

// ExecInput is Exec with stdin.
func (s *Server) ExecInput(ctx context.Context, stdin []byte, name string, args ...string) (string, error) {
	argv := append([]string{name}, args...)
	body, err := json.Marshal(map[string]any{"args": argv, "stdin": stdin})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.Addr(execPort)+"/exec", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("X-Lab-Token", s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("lab exec %s on %s: %w", name, s.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("lab exec %s on %s: %s", name, s.Name, resp.Status)
	}
	var res struct {
		Stdout   []byte `json:"stdout"`
		Stderr   []byte `json:"stderr"`
		ExitCode int    `json:"exit_code"`
		Error    string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return "", fmt.Errorf("lab exec %s on %s: %w", name, s.Name, err)
	}
	if res.Error != "" {
		return string(res.Stdout), fmt.Errorf("lab exec %s on %s: %s", name, s.Name, res.Error)
	}
	if res.ExitCode != 0 {
		return string(res.Stdout), &ExecError{Args: argv, ExitCode: res.ExitCode, Stderr: string(res.Stderr)}
	}
	return string(res.Stdout), nil
}

// Install copies a host file into the guest at guestPath (mode 0755), through the share.
func (s *Server) Install(ctx context.Context, hostPath, guestPath string) error {
	name := "install-" + randomHex(6)
	if err := copyFile(hostPath, filepath.Join(s.Share, name)); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(s.Share, name))
	_, err := s.Exec(ctx, "install", "-D", "-m", "755", "/mnt/host/"+name, guestPath)
	return err
}

func (s *Server) ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr(execPort)+"/ping", nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Lab-Token", s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping: %s", resp.Status)
	}
	return nil
}

func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b) //nolint:errcheck // never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // never fails
	return hex.EncodeToString(b)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
