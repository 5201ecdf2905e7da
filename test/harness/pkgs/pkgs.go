// Package pkgs installs the Debian packages tests need. It is a leaf package (no
// Temporal, no database), so tests that only need packages — the iSCSI suites, built
// with the race detector — compile fast.
package pkgs

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
)

var aptMu sync.Mutex

// absent returns the Debian packages of pkgs that dpkg does not list as installed.
func absent(pkgs []string) []string {
	var missing []string
	for _, p := range pkgs {
		out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", p).Output()
		if err != nil || !strings.Contains(string(out), "install ok installed") {
			missing = append(missing, p)
		}
	}
	return missing
}

// Install installs the missing Debian packages with apt-get, quietly and idempotently.
// Concurrent test binaries are serialised by a lock file, because dpkg allows one writer.
// Mirrors come from the machine's own apt configuration.
func Install(pkgs ...string) error {
	aptMu.Lock()
	defer aptMu.Unlock()
	if len(absent(pkgs)) == 0 {
		return nil
	}
	lock, err := os.OpenFile("/tmp/clusterducks-apt.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("apt lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("apt lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	missing := absent(pkgs)
	if len(missing) == 0 {
		return nil
	}
	sudo := []string{}
	if os.Geteuid() != 0 {
		sudo = []string{"sudo", "-n"}
	}
	run := func(args ...string) ([]byte, error) {
		full := append(append([]string{}, sudo...), args...)
		cmd := exec.Command(full[0], full[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	install := append([]string{"apt-get", "install", "-y", "-qq", "--no-install-recommends"}, missing...)
	if _, err := run(install...); err == nil {
		return nil
	}
	if out, err := run("apt-get", "update", "-qq"); err != nil {
		return fmt.Errorf("apt-get update: %v: %s", err, Tail(out))
	}
	if out, err := run(install...); err != nil {
		return fmt.Errorf("apt-get install %s: %v: %s", strings.Join(missing, " "), err, Tail(out))
	}
	return nil
}

// Require installs pkgs or fails the test: a missing dependency is a failure, never a skip.
func Require(t testing.TB, pkgs ...string) {
	t.Helper()
	if err := Install(pkgs...); err != nil {
		t.Fatalf("test dependencies: %v", err)
	}
}

// Tail is the end of a command's output, for error messages.
func Tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

// Test are the Debian packages the whole test suite uses: PostgreSQL, the storage
// lab (debootstrap, qemu), the iSCSI reference target and conformance suite, iPXE, the
// browser for the dashboard tests.
var Test = []string{
	"postgresql", "curl",
	"debootstrap", "qemu-system-x86", "qemu-utils", "ipxe-qemu", "e2fsprogs",
	"tgt", "libiscsi-bin", "libiscsi-dev", "nasm",
	"chromium", "chromium-driver",
}
