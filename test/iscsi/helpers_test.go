package iscsi_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/clusterducks/clusterducks/test/harness/pkgs"
	"github.com/clusterducks/clusterducks/test/iscsi/initiator"
)

const (
	ourIQN   = "iqn.2026-11.dev.clusterducks:conformance"
	tgtIQN   = "iqn.2026-11.dev.clusterducks:tgtd"
	testInit = "iqn.2026-11.dev.clusterducks:tester"
)

// newDisk creates a sparse file of size bytes.
func newDisk(t testing.TB, name string, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

// startOurs serves the in-process target on a loopback port until the test ends.
func startOurs(t testing.TB, cfg iscsi.Config) (*iscsi.Server, string) {
	t.Helper()
	srv := iscsi.NewServer(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, iscsi.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		if n := srv.RecoveredPanics(); n != 0 {
			t.Errorf("target recovered %d panics", n)
		}
	})
	return srv, ln.Addr().String()
}

// tgtd is a private instance of Debian's tgtd.
type tgtd struct {
	cmd  *exec.Cmd
	ctl  int
	addr string
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startTgtd starts tgtd with its own control number and one target whose LUN 1
// is the given file. It is killed (SIGKILL: it ignores SIGTERM) at cleanup.
func startTgtd(t testing.TB, iqn, file string) *tgtd {
	t.Helper()
	pkgs.Require(t, "tgt")
	port := freePort(t)
	ctl := 20000 + os.Getpid()%10000 // tgtd accepts control numbers below 32768
	cleanSockets := func() {
		os.Remove(fmt.Sprintf("/var/run/tgtd/socket.%d", ctl))
		os.Remove(fmt.Sprintf("/var/run/tgtd/socket.%d.lock", ctl))
	}
	cleanSockets()
	os.MkdirAll("/var/run/tgtd", 0o755)
	cmd := exec.Command("tgtd", "-f", "-C", strconv.Itoa(ctl), "--iscsi", fmt.Sprintf("portal=127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = nil, nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tgtd: %v", err)
	}
	d := &tgtd{cmd: cmd, ctl: ctl, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		cleanSockets()
	})
	adm := func(args ...string) error {
		full := append([]string{"-C", strconv.Itoa(ctl), "--lld", "iscsi"}, args...)
		out, err := exec.Command("tgtadm", full...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("tgtadm %v: %v: %s", args, err, out)
		}
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := adm("--op", "new", "--mode", "target", "--tid", "1", "-T", iqn)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", file); err != nil {
		t.Fatal(err)
	}
	// Without thin provisioning tgtd skips every unmap test, which would
	// understate what it supports next to ours.
	if err := adm("--op", "update", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "--params", "thin_provisioning=1"); err != nil {
		t.Fatal(err)
	}
	if err := adm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL"); err != nil {
		t.Fatal(err)
	}
	return d
}

func dial(t testing.TB, addr, target string) *initiator.Session {
	t.Helper()
	s, err := initiator.Dial(context.Background(), addr, initiator.Options{InitiatorName: testInit, TargetName: target})
	if err != nil {
		t.Fatalf("login to %s at %s: %v", target, addr, err)
	}
	return s
}
