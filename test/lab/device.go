package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/clusterducks/clusterducks/test/harness/proc"
)

// DevicePackages are the Debian packages a device VM needs: qemu and the iPXE ROMs that
// its -boot n network card boots (Debian's ipxe-qemu).
var DevicePackages = []string{"qemu-system-x86", "ipxe-qemu"}

// DeviceVM is a diskless device under qemu (TCG) that PXE-boots iPXE on its own user
// network, whose DHCP hands it BootURL as its boot file. The command `task lab` prints
// and the one the tests run are both its Args.
type DeviceVM struct {
	BootURL  string // http://10.0.2.2:PORT/boot.ipxe: a server's boot endpoint as the device sees it
	MAC      string // 52:54:00:…
	UUID     string // its SMBIOS UUID: iPXE's initiator name is derived from it, so each device has its own
	MemoryMB int    // default 256
}

// NewDeviceVM returns a device with a fresh MAC and UUID that boots from bootURL.
func NewDeviceVM(bootURL string) DeviceVM {
	b := make([]byte, 3)
	rand.Read(b) //nolint:errcheck // never fails
	return DeviceVM{BootURL: bootURL, MAC: fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2]), UUID: newUUID()}
}

// Args are qemu's arguments: plain TCG (the machine's KVM cannot run iPXE), firmware,
// iPXE and COM1 on stdio, network boot only, and the VM ends instead of rebooting (a
// failed boot ends it; so does a boot sector that writes to the isa-debug-exit port).
func (d DeviceVM) Args() []string {
	mem := d.MemoryMB
	if mem == 0 {
		mem = 256
	}
	return []string{
		"-accel", "tcg", "-m", strconv.Itoa(mem), "-no-user-config",
		"-nographic", "-monitor", "none", "-serial", "stdio",
		"-no-reboot", "-boot", "order=n,reboot-timeout=0",
		"-uuid", d.UUID,
		"-netdev", "user,id=n0,bootfile=" + d.BootURL,
		"-device", "e1000,netdev=n0,mac=" + d.MAC,
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
	}
}

// plainWord is a shell word that needs no quotes.
var plainWord = regexp.MustCompile(`^[A-Za-z0-9_./:=,@%+-]+$`)

// Command is the ready-to-paste shell command that runs the device.
func (d DeviceVM) Command() string {
	words := []string{"qemu-system-x86_64"}
	for _, a := range d.Args() {
		if plainWord.MatchString(a) {
			words = append(words, a)
		} else {
			words = append(words, shellQuote(a))
		}
	}
	return strings.Join(words, " ")
}

// DeviceResult is how a device VM ended.
type DeviceResult struct {
	Marker string        // what the boot-sector fixture printed (MakeBootDisk); "" if it never ran
	Exit   int           // qemu's exit status (33: the boot sector ended it)
	Took   time.Duration // from qemu start to exit
	Output string        // firmware, iPXE and COM1 output
}

var markerLine = regexp.MustCompile(`<<<CLUSTERDUCKS-MARKER:(.*?)>>>`)

// Run runs the device until qemu ends or timeout passes (then it is killed, by pid). It
// fails unless the device booted a disk made by MakeBootDisk: the marker it printed came
// from the disk's LBA 1, read over iSCSI through iPXE's sanboot.
func (d DeviceVM) Run(ctx context.Context, timeout time.Duration) (*DeviceResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.Command("qemu-system-x86_64", d.Args()...)
	var out proc.SyncBuffer
	if err := skipBanner(cmd, &out); err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-ctx.Done():
		cmd.Process.Kill() //nolint:errcheck
		<-done
	}
	res := &DeviceResult{Took: time.Since(start), Output: out.String(), Exit: cmd.ProcessState.ExitCode()}
	if m := markerLine.FindStringSubmatch(res.Output); m != nil {
		res.Marker = strings.TrimSpace(m[1])
	}
	if res.Marker != "" {
		return res, nil
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("no marker after %s; output:\n%s", timeout, ConsoleTail(res.Output))
	}
	return res, fmt.Errorf("qemu exited %d without a marker; output:\n%s", res.Exit, ConsoleTail(res.Output))
}

// MarkerLine matches the marker line of both boot-sector fixtures; BootsLine the boot
// count the staying-up one (MakeUpDisk) prints after it.
var (
	MarkerLine = markerLine
	BootsLine  = regexp.MustCompile(`<<<CLUSTERDUCKS-BOOTS:([0-9]+)>>>`)
)

// RunningVM is a device VM started in the background (DeviceVM.Start).
type RunningVM struct {
	Device DeviceVM
	Start  time.Time
	cmd    *exec.Cmd
	out    proc.SyncBuffer
	done   chan struct{}
	exit   int
}

// Start starts the device VM in the background: for a boot that stays up (MakeUpDisk),
// or devices that must be up at once. Wait for its output with Expect, end it with Stop
// (by its pid); it is stopped at the end of the test at the latest.
func (d DeviceVM) Start(t interface{ Cleanup(func()) }) (*RunningVM, error) {
	v := &RunningVM{Device: d, done: make(chan struct{}), exit: -1}
	v.cmd = exec.Command("qemu-system-x86_64", d.Args()...)
	if err := skipBanner(v.cmd, &v.out); err != nil {
		return nil, err
	}
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	v.Start = time.Now()
	if err := v.cmd.Start(); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	go func() {
		v.cmd.Wait() //nolint:errcheck
		v.exit = v.cmd.ProcessState.ExitCode()
		close(v.done)
	}()
	t.Cleanup(v.Stop)
	return v, nil
}

// Output is the VM's console output so far (firmware, iPXE, COM1).
func (v *RunningVM) Output() string { return v.out.String() }

// Exited reports whether qemu has ended, and its exit status then.
func (v *RunningVM) Exited() (int, bool) {
	select {
	case <-v.done:
		return v.exit, true
	default:
		return 0, false
	}
}

// Expect waits up to timeout for re in the VM's output and returns its submatches. It
// fails when the time passes or qemu ends first, with the console's tail.
func (v *RunningVM) Expect(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(v.out.String()); m != nil {
			return m, nil
		}
		if code, ok := v.Exited(); ok {
			if m := re.FindStringSubmatch(v.out.String()); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("device %s: qemu exited %d after %s without %s; output:\n%s",
				v.Device.MAC, code, time.Since(v.Start).Round(time.Second), re, ConsoleTail(v.out.String()))
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("device %s: no %s after %s; output:\n%s", v.Device.MAC, re, timeout, ConsoleTail(v.out.String()))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Wait waits up to timeout for qemu to end and returns its exit status.
func (v *RunningVM) Wait(timeout time.Duration) (int, error) {
	select {
	case <-v.done:
		return v.exit, nil
	case <-time.After(timeout):
		return -1, fmt.Errorf("device %s: qemu still running after %s; output:\n%s", v.Device.MAC, timeout, ConsoleTail(v.out.String()))
	}
}

// Stop kills qemu by its pid and waits for it. Stopping an ended VM is harmless.
func (v *RunningVM) Stop() {
	select {
	case <-v.done:
		return
	default:
	}
	v.cmd.Process.Kill() //nolint:errcheck
	<-v.done
}

// skipBanner sends cmd's console output to out and answers every "Press Ctrl-B for the
// iPXE command line..." prompt with Enter on COM1, as a person at the console would: iPXE
// then goes on at once instead of after its 2 s wait, a third of a device's boot here
// (the rest is iPXE's 3 s DHCP wait for ProxyDHCP offers, which the ROM decides).
func skipBanner(cmd *exec.Cmd, out io.Writer) error {
	in, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	w := &promptAnswerer{out: out, in: in, prompt: []byte("Ctrl-B")}
	cmd.Stdout, cmd.Stderr = w, w
	return nil
}

// promptAnswerer passes output on to out and writes Enter to in after each prompt in it
// (also one split across writes).
type promptAnswerer struct {
	out    io.Writer
	in     io.Writer
	prompt []byte
	tail   []byte // the last len(prompt)-1 bytes written, for a prompt split across writes
}

func (p *promptAnswerer) Write(b []byte) (int, error) {
	seen := append(append([]byte(nil), p.tail...), b...)
	for i := bytes.Index(seen, p.prompt); i >= 0; i = bytes.Index(seen, p.prompt) {
		p.in.Write([]byte("\r")) //nolint:errcheck // a VM that ended reads no more keys
		seen = seen[i+len(p.prompt):]
	}
	if keep := len(p.prompt) - 1; len(seen) > keep {
		seen = seen[len(seen)-keep:]
	}
	p.tail = append(p.tail[:0], seen...)
	return p.out.Write(b)
}

// ansi strips terminal escapes from iPXE's console output for readable failures.
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// ConsoleText is a device's console output without terminal escapes.
func ConsoleText(s string) string { return ansi.ReplaceAllString(s, "") }

// ConsoleTail is the end of a device's console output without terminal escapes.
func ConsoleTail(s string) string {
	s = ConsoleText(s)
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}

var (
	sectorMu sync.Mutex
	sectors  = map[string][]byte{}
)

// loadSector reads a committed boot sector fixture, test/fixtures/bootsector/<name>.
func loadSector(name string) ([]byte, error) {
	sectorMu.Lock()
	defer sectorMu.Unlock()
	if b, ok := sectors[name]; ok {
		return b, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(root, "test", "fixtures", "bootsector", name))
	if err != nil {
		return nil, err
	}
	if len(b) != 512 {
		return nil, fmt.Errorf("boot sector fixture %s is %d bytes, not 512", name, len(b))
	}
	sectors[name] = b
	return b, nil
}

// MakeBootDisk writes a disk image of size bytes (at least 32 MiB, sparse: iPXE derives a
// CHS geometry and a smaller disk has no cylinder) that boots and prints marker: the
// shared boot-sector fixture in LBA 0, the marker in LBA 1. The boot sector ends qemu
// once it printed the marker (status 33).
func MakeBootDisk(path, marker string, size int64) error {
	return makeDisk(path, "bootsector.bin", marker, size)
}

// MakeUpDisk writes a disk like MakeBootDisk's whose boot sector stays up
// (test/fixtures/bootsector/upsector.asm): it prints marker, counts its boots in LBA 2
// (the count starts at 0 here; each boot prints <<<CLUSTERDUCKS-BOOTS:N>>>, see
// BootsLine) and reads a sector about once a second until the VM is stopped.
func MakeUpDisk(path, marker string, size int64) error {
	return makeDisk(path, "upsector.bin", marker, size)
}

func makeDisk(path, fixture, marker string, size int64) error {
	if len(marker) > 500 || strings.Contains(marker, ">>>") {
		return fmt.Errorf("marker %q: at most 500 bytes, without \">>>\"", marker)
	}
	sector, err := loadSector(fixture)
	if err != nil {
		return err
	}
	size = max(size, 32<<20)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	sec := make([]byte, 1024)
	copy(sec, sector)
	copy(sec[512:], marker)
	if _, err := f.WriteAt(sec, 0); err != nil {
		return err
	}
	return f.Close()
}
