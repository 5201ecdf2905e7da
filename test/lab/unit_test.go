package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/harness"
)

func TestMirrorFromDeb822(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"debian.sources", `Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
`, "http://mirror.example/debian"},
		{"security first", `Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb deb-src
URIs: http://mirror.example/debian/
Suites: bookworm
Components: main contrib
`, "http://mirror.example/debian"},
		{"disabled", `Enabled: no
Types: deb
URIs: http://old.example/debian
Suites: bookworm
Components: main
`, ""},
		{"source only", `Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main
`, ""},
		{"other release", `Types: deb
URIs: http://mirror.example/debian
Suites: trixie
Components: main
`, ""},
		{"folded field", "Types: deb\nURIs:\n http://mirror.example/debian\nSuites: bookworm\nComponents: main\n", "http://mirror.example/debian"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mirrorFromDeb822(tt.text, "bookworm"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMirrorFromList(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"plain", "deb http://mirror.example/debian bookworm main contrib\n", "http://mirror.example/debian"},
		{"options", "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n", "http://mirror.example/debian"},
		{"comments and others", "# deb http://x.example/debian bookworm main\ndeb-src http://y.example/debian bookworm main\ndeb http://z.example/debian-security bookworm-security main\ndeb http://mirror.example/debian bookworm main # here\n", "http://mirror.example/debian"},
		{"no main", "deb http://mirror.example/debian bookworm contrib\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mirrorFromList(tt.text, "bookworm"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHostMirror(t *testing.T) {
	m, err := HostMirror()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("host archive: %s", m)
}

func TestGuestURL(t *testing.T) {
	tests := map[string]string{
		"http://127.0.0.1:8080":        "http://10.0.2.2:8080",
		"http://localhost:7233/x?y=1":  "http://10.0.2.2:7233/x?y=1",
		"http://[::1]:9000/":           "http://10.0.2.2:9000/",
		"http://127.0.0.1/":            "http://10.0.2.2/",
		"https://panel.example:443/a":  "https://panel.example:443/a",
		"http://10.0.2.2:8080/already": "http://10.0.2.2:8080/already",
	}
	for in, want := range tests {
		if got := GuestURL(in); got != want {
			t.Errorf("GuestURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	var o Options
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if o.Pool != "tank" || o.Name == "" || len(o.GuestPorts) != len(DefaultGuestPorts) || o.BootTimeout == 0 {
		t.Errorf("defaults: %+v", o)
	}
	for _, bad := range []Options{{Name: "a b"}, {Name: "x", Pool: "p;rm"}, {Name: "../x"}} {
		if err := bad.setDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	a := AgentOptions("s1", "http://127.0.0.1:8080", []byte("key"))
	if want := ". /mnt/host/ports.env\nexec /usr/local/bin/clusterducks agent --panel 'http://10.0.2.2:8080' --key /mnt/host/server.key " +
		"--iscsi-listen :3260 --iscsi-portal \"10.0.2.2:$LAB_HOST_PORT_3260\" --boot-listen :8080\n"; a.Command != want || !a.Binary || string(a.Files["server.key"]) != "key" {
		t.Errorf("AgentOptions: %q", a.Command)
	}
}

// TestDeviceAddresses: the names of the forwards, the ports file the agent's command
// sources, and the addresses a device VM is given, from one server's forwards.
func TestDeviceAddresses(t *testing.T) {
	s := &Server{ports: map[int]int{execPort: 40000, PortISCSI: 40001, PortBoot: 40002, PortAgentAPI: 40003, PortReplication: 40004}}
	if got, want := portsEnvText(s.ports), "LAB_HOST_PORT_3260=40001\nLAB_HOST_PORT_7022=40000\nLAB_HOST_PORT_8080=40002\n"+
		"LAB_HOST_PORT_8081=40003\nLAB_HOST_PORT_8082=40004\n"; got != want {
		t.Errorf("ports.env:\n%s", got)
	}
	if s.DevicePortal() != "10.0.2.2:40001" || s.DeviceBootURL() != "http://10.0.2.2:40002/boot.ipxe" {
		t.Errorf("device addresses %q %q", s.DevicePortal(), s.DeviceBootURL())
	}
	f := strings.Join(s.Forwards(), "\n")
	for _, want := range []string{"iSCSI        guest :3260 -> 127.0.0.1:40001   devices log in at 10.0.2.2:40001",
		"boot         guest :8080 -> 127.0.0.1:40002   devices chain http://10.0.2.2:40002/boot.ipxe",
		"agent API    guest :8081 -> 127.0.0.1:40003", "replication  guest :8082 -> 127.0.0.1:40004"} {
		if !strings.Contains(f, want) {
			t.Errorf("forwards lack %q:\n%s", want, f)
		}
	}
	if strings.Contains(f, "7022") || len(s.Forwards()) != 4 {
		t.Errorf("forwards:\n%s", f)
	}
	if (&Server{ports: map[int]int{}}).DeviceBootURL() != "" {
		t.Error("a boot URL without a boot forward")
	}
}

// TestDeviceCommand: the printed command is the device's own arguments, each a single
// shell word, and two devices never share a MAC or a UUID.
func TestDeviceCommand(t *testing.T) {
	d := NewDeviceVM("http://10.0.2.2:40002/boot.ipxe")
	e := NewDeviceVM(d.BootURL)
	if d.MAC == e.MAC || d.UUID == e.UUID || !regexp.MustCompile(`^52:54:00(:[0-9a-f]{2}){3}$`).MatchString(d.MAC) {
		t.Errorf("devices %+v %+v", d, e)
	}
	cmd := d.Command()
	for _, want := range []string{"qemu-system-x86_64 -accel tcg ", " -uuid " + d.UUID + " ",
		" -netdev user,id=n0,bootfile=http://10.0.2.2:40002/boot.ipxe ", " -device e1000,netdev=n0,mac=" + d.MAC + " "} {
		if !strings.Contains(cmd, want) {
			t.Errorf("command lacks %q: %s", want, cmd)
		}
	}
	if got := strings.Fields(cmd)[1:]; strings.Join(got, "\x00") != strings.Join(d.Args(), "\x00") {
		t.Errorf("command %q is not the args %q", got, d.Args())
	}
	d.BootURL = "http://10.0.2.2:1/boot.ipxe?x=a b"
	if !strings.Contains(d.Command(), "'user,id=n0,bootfile=http://10.0.2.2:1/boot.ipxe?x=a b'") {
		t.Errorf("a word with a space is not quoted: %s", d.Command())
	}
}

// TestPromptAnswerer: Enter once per iPXE banner prompt, also one split across writes,
// and the output passed on unchanged.
func TestPromptAnswerer(t *testing.T) {
	var out, in strings.Builder
	p := &promptAnswerer{out: &out, in: &in, prompt: []byte("Ctrl-B")}
	for _, w := range []string{"iPXE ... Press Ct", "rl-B for the iPXE command line...", "\r\nConfiguring", "Ctrl-BCtrl-", "B", "Ctrl"} {
		if n, err := p.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if in.String() != "\r\r\r" {
		t.Fatalf("keys sent %q, want three Enters", in.String())
	}
	if want := "iPXE ... Press Ctrl-B for the iPXE command line...\r\nConfiguringCtrl-BCtrl-BCtrl"; out.String() != want {
		t.Fatalf("output %q, want %q", out.String(), want)
	}
}

func TestRecipeHash(t *testing.T) {
	a, b := recipeHash("http://a.example/debian"), recipeHash("http://b.example/debian")
	if a == b || len(a) != 12 {
		t.Errorf("recipe hashes %q %q", a, b)
	}
}

// withCacheDir points the package at a scratch cache for one test.
func withCacheDir(t *testing.T) string {
	t.Helper()
	old := CacheDir
	CacheDir = t.TempDir()
	t.Cleanup(func() { CacheDir = old })
	return CacheDir
}

// TestCleanStale plays a killed run: a qemu whose owner is gone must be killed and its
// directory removed; a qemu that is not named in the directory (a reused pid) must not be
// touched, and neither must the VM of a live owner.
func TestCleanStale(t *testing.T) {
	harness.RequirePackages(t, "qemu-system-x86")
	withCacheDir(t)
	startQemu := func(dir string) *exec.Cmd {
		t.Helper()
		cmd := exec.Command("qemu-system-x86_64", "-machine", "none", "-display", "none",
			"-monitor", "none", "-nodefaults", "-pidfile", filepath.Join(dir, "qemu.pid"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) //nolint:errcheck
		return cmd
	}
	waitPidFile := func(dir string) {
		t.Helper()
		for i := 0; i < 100; i++ {
			if fileExists(filepath.Join(dir, "qemu.pid")) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("qemu wrote no pid file")
	}
	// A dead owner: a process that has exited.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadOwner := fmt.Sprintf("%d 1\n", dead.Process.Pid)

	stale := filepath.Join(runDir(), "stale-1-x")
	decoy := filepath.Join(runDir(), "decoy-1-x")
	live, err := newStateDir("live")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{stale, decoy} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "owner"), []byte(deadOwner), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	staleQemu := startQemu(stale)
	liveQemu := startQemu(live)
	other := t.TempDir()
	otherQemu := startQemu(other)
	waitPidFile(stale)
	waitPidFile(live)
	waitPidFile(other)
	// The decoy's pid file names a qemu that is not its own.
	b, _ := os.ReadFile(filepath.Join(other, "qemu.pid"))
	os.WriteFile(filepath.Join(decoy, "qemu.pid"), b, 0o644) //nolint:errcheck

	if err := CleanStale(); err != nil {
		t.Fatal(err)
	}
	if fileExists(stale) || fileExists(decoy) {
		t.Error("stale directories left")
	}
	if !fileExists(live) {
		t.Error("live owner's directory removed")
	}
	exited := make(chan error, 1)
	go func() { exited <- staleQemu.Wait() }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Error("stale qemu still running")
	}
	for _, c := range []*exec.Cmd{liveQemu, otherQemu} {
		if err := c.Process.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("qemu %d was killed: %v", c.Process.Pid, err)
		}
	}
}

// TestCleanBuildDirs plays a build killed with the chroot's mounts in place: they must be
// unmounted before the directory goes, and the directory must go.
func TestCleanBuildDirs(t *testing.T) {
	dir := withCacheDir(t)
	work := filepath.Join(dir, "build-1", "tmp", "root")
	for _, d := range []string{"proc", "dev"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mount("tmpfs", filepath.Join(work, "dev"), "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount (the lab needs root): %v", err)
	}
	if err := os.WriteFile(filepath.Join(work, "dev", "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("proc", filepath.Join(work, "proc"), "proc", 0, ""); err != nil {
		t.Fatal(err)
	}
	// A build script that outlived its driver, with a child in its process group.
	script := exec.Command("bash", "-c", "sleep 300 & wait", filepath.Join(dir, "build-1", "build-image.sh"))
	script.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := script.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { script.Wait(); close(exited) }()                                                             //nolint:errcheck
	os.WriteFile(filepath.Join(dir, "build-1", "script.pid"), []byte(fmt.Sprint(script.Process.Pid)), 0o644) //nolint:errcheck
	// Start returns once execve has dropped the old memory, which can be before the kernel
	// has set up the new command line: until then /proc/<pid>/cmdline reads empty, and the
	// cleanup would rightly not recognise the script. A real stale script is long past it.
	cmdline := fmt.Sprintf("/proc/%d/cmdline", script.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(cmdline); strings.Contains(string(b), "build-image.sh") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the build script's command line never appeared")
		}
	}
	if err := cleanBuildDirs(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Error("stale build script still running")
		syscall.Kill(-script.Process.Pid, syscall.SIGKILL) //nolint:errcheck
	}
	if m := mountsUnder(dir); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	if fileExists(filepath.Join(dir, "build-1")) {
		t.Error("build directory left")
	}
}

func TestProcStartTime(t *testing.T) {
	a, err := procStartTime(os.Getpid())
	if err != nil || a == "" {
		t.Fatal(a, err)
	}
	if ownerAlive(t.TempDir()) != true { // no owner file, fresh: counts as being created
		t.Error("fresh directory without owner counted as stale")
	}
}

// TestFind: a server of a live process is found by name; one whose owner is gone is not,
// and a found server cannot be stopped from here.
func TestFind(t *testing.T) {
	withCacheDir(t)
	live, err := newStateDir("box")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Name: "box", UUID: newUUID(), Pool: "tank", Dir: live, ports: map[int]int{execPort: 12345, PortISCSI: 23456}, token: "t"}
	if err := s.writeInfo(); err != nil {
		t.Fatal(err)
	}
	f, err := Find("box")
	if err != nil {
		t.Fatal(err)
	}
	if f.UUID != s.UUID || f.Addr(PortISCSI) != "127.0.0.1:23456" || f.token != "t" {
		t.Errorf("found %+v", f)
	}
	if err := f.Stop(); err == nil || !fileExists(live) {
		t.Errorf("Stop on a found server: %v", err)
	}
	if _, err := Find("bo"); err == nil {
		t.Error("found by prefix")
	}
	os.WriteFile(filepath.Join(live, "owner"), []byte("999999999 1\n"), 0o644) //nolint:errcheck
	if _, err := Find("box"); err == nil {
		t.Error("found a server whose owner is gone")
	}
}

// The systemd mode boots the image's own init with a machine id of the VM's UUID; the
// default keeps the lab's init.
func TestKernelLine(t *testing.T) {
	line := kernelLine(false, "6e56620d-2926-4926-8880-18e0d59d7297")
	if !strings.Contains(line, "init=/sbin/lab-init") {
		t.Errorf("lab init: %q", line)
	}
	line = kernelLine(true, "6e56620d-2926-4926-8880-18e0d59d7297")
	if strings.Contains(line, "init=") || !strings.Contains(line, "systemd.machine_id=6e56620d29264926888018e0d59d7297") {
		t.Errorf("systemd: %q", line)
	}
}

// Both guest scripts parse as the guest's sh (dash).
func TestGuestScriptsParse(t *testing.T) {
	for _, f := range []string{"init.sh", "systemd.sh"} {
		if out, err := exec.Command("dash", "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
	}
}

// TestLockFileSaysItWaits: a lab start that finds the image build lock held says at once
// that it waits for another build (once), instead of hanging silently.
func TestLockFileSaysItWaits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "build.lock")
	held, err := lockFile(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held()
	ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
	defer cancel()
	said := 0
	if _, err := lockFile(ctx, path, func() { said++ }); err == nil {
		t.Fatal("a held lock was taken")
	}
	if said != 1 {
		t.Errorf("the wait was announced %d times, want once", said)
	}
}

func TestEmulatorCPU(t *testing.T) {
	for _, c := range []struct {
		out  string
		want string
	}{
		{"QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)\nCopyright", "max,aes=off"},
		{"QEMU emulator version 8.0.4\n", "max,aes=off"},
		{"QEMU emulator version 8.1.0\n", "max"},
		{"QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\n", "max"},
	} {
		_, got, err := parseVersion(c.out)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%q: -cpu %s, want %s", c.out, got, c.want)
		}
	}
	if got := sanitizeVersion("1:10.0.2+ds-2~bpo12+1"); got != "1_10.0.2+ds-2~bpo12+1" {
		t.Errorf("sanitizeVersion: %s", got)
	}
}

// TestFetchEmulator fetches the backports QEMU into an empty cache from the machine's
// mirror, as a fresh machine's first lab test does, and finds it there the second time.
func TestFetchEmulator(t *testing.T) {
	installed := emulator{Bin: "qemu-system-x86_64"}
	harness.RequirePackages(t, HostPackages...)
	if err := installed.probe(); err != nil {
		t.Fatal(err)
	}
	if installed.CPU == "max" {
		t.Logf("the installed QEMU %s is new enough: the lab does not fetch one on this host", installed.Version)
		return
	}
	cache := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e, err := fetchEmulator(ctx, t.Logf, cache)
	if err != nil {
		t.Fatal(err)
	}
	if e.CPU != "max" || !strings.HasPrefix(e.Bin, cache) {
		t.Fatalf("fetched %+v", e)
	}
	again, ok := cachedEmulator(cache)
	if !ok || again.Bin != e.Bin || again.Version != e.Version {
		t.Fatalf("cached %+v (%v), fetched %+v", again, ok, e)
	}
	t.Logf("QEMU %s in %s", e.Version, filepath.Dir(filepath.Dir(filepath.Dir(e.Bin))))
}
