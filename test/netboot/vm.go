// Package netboot boots diskless device VMs under qemu (TCG) through iPXE's PXE ROM and
// the agent's boot endpoint, and reads which image each one booted. The images carry the
// shared boot sector fixture (test/fixtures/bootsector): LBA 0 boots, LBA 1 holds a marker
// text the boot sector prints to COM1 before it ends qemu through isa-debug-exit.
package netboot

import (
	"context"
	"fmt"
	"github.com/clusterducks/clusterducks/test/harness/proc"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/clusterducks/clusterducks/test/lab"
)

var (
	sectorOnce sync.Once
	bootSector []byte
	sectorErr  error
)

// loadBootSector reads the committed fixture test/fixtures/bootsector/bootsector.bin.
func loadBootSector() ([]byte, error) {
	sectorOnce.Do(func() {
		root, err := lab.ModuleRoot()
		if err != nil {
			sectorErr = err
			return
		}
		bootSector, sectorErr = os.ReadFile(filepath.Join(root, "test", "fixtures", "bootsector", "bootsector.bin"))
		if sectorErr == nil && len(bootSector) != 512 {
			sectorErr = fmt.Errorf("boot sector fixture is %d bytes, not 512", len(bootSector))
		}
	})
	return bootSector, sectorErr
}

// Packages are the Debian packages a device VM needs.
var Packages = []string{"qemu-system-x86", "ipxe-qemu"}

// MakeDisk writes a disk image of size bytes (at least 32 MiB, sparse: iPXE derives a CHS geometry and a smaller disk has no cylinder) that boots and prints marker.
func MakeDisk(path, marker string, size int64) error {
	if len(marker) > 500 || strings.Contains(marker, ">>>") {
		return fmt.Errorf("marker %q: at most 500 bytes, without \">>>\"", marker)
	}
	sector, err := loadBootSector()
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

// Device is one diskless machine.
type Device struct {
	MAC  string // 52:54:00:..
	UUID string // its SMBIOS UUID: iPXE's initiator name is derived from it
}

// DeviceN returns a distinct device for index i.
func DeviceN(i int) Device {
	return Device{
		MAC:  fmt.Sprintf("52:54:00:cd:%02x:%02x", (i>>8)&0xff, i&0xff),
		UUID: fmt.Sprintf("c1d0c1d0-0000-4000-8000-%012x", i),
	}
}

// Result is how a device VM ended.
type Result struct {
	Marker string        // what the boot sector printed; "" if it never ran
	Exit   int           // qemu's exit status (33: marker printed)
	Took   time.Duration // from qemu start to exit
	Output string        // firmware, iPXE and COM1 output
}

var markerLine = regexp.MustCompile(`<<<CLUSTERDUCKS-MARKER:(.*?)>>>`)

// Boot runs one device VM that PXE-boots with bootURL as its DHCP boot file, until it
// ends or timeout passes (then it is killed, by pid).
func Boot(ctx context.Context, bootURL string, d Device, timeout time.Duration) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := []string{
		"-accel", "tcg", "-m", "64", "-no-user-config",
		"-nographic", "-monitor", "none", "-serial", "stdio",
		"-no-reboot", "-boot", "order=n,reboot-timeout=0",
		"-uuid", d.UUID,
		"-netdev", "user,id=n0,bootfile=" + bootURL,
		"-device", "e1000,netdev=n0,mac=" + d.MAC,
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	var out proc.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-ctx.Done():
		cmd.Process.Kill() //nolint:errcheck
		<-done
		werr = ctx.Err()
	}
	res := &Result{Took: time.Since(start), Output: out.String(), Exit: cmd.ProcessState.ExitCode()}
	if m := markerLine.FindStringSubmatch(res.Output); m != nil {
		res.Marker = strings.TrimSpace(m[1])
	}
	if werr != nil && res.Marker == "" {
		if ee, ok := werr.(*exec.ExitError); ok && ee.ExitCode() != 33 {
			return res, fmt.Errorf("qemu exited %d without a marker; output:\n%s", ee.ExitCode(), tail(res.Output))
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("no marker after %s; output:\n%s", timeout, tail(res.Output))
		}
	}
	if res.Marker == "" {
		return res, fmt.Errorf("qemu exited %d without a marker; output:\n%s", res.Exit, tail(res.Output))
	}
	return res, nil
}

// ansi strips terminal escapes from iPXE's console output for readable failures.
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

func tail(s string) string {
	s = ansi.ReplaceAllString(s, "")
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}
