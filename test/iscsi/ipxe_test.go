package iscsi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/clusterducks/clusterducks/test/harness/pkgs"
)

var markerRE = regexp.MustCompile(`<<<CLUSTERDUCKS-MARKER:(.*?)>>>`)

func randomUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// TestIPXESanboot boots qemu (TCG) from the network: iPXE gets a script over
// TFTP, sanboots our target, and the fixture boot sector prints the marker
// it reads from LBA 1 and exits qemu. The target's ACL admits only this VM.
func TestIPXESanboot(t *testing.T) {
	pkgs.Require(t, "qemu-system-x86", "ipxe-qemu")
	boot, err := os.ReadFile("../fixtures/bootsector/bootsector.bin")
	if err != nil || len(boot) != 512 {
		t.Fatalf("boot sector fixture: %d bytes, %v", len(boot), err)
	}
	uuid := randomUUID()
	marker := "sanboot-" + uuid[:8]
	disk := newDisk(t, "boot.img", 64<<20)
	img := append(append([]byte{}, boot...), marker...)
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(img, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()

	srv, addr := startOurs(t, iscsi.Config{})
	const iqn = "iqn.2026-11.dev.clusterducks:boot"
	if err := srv.AddTarget(iscsi.TargetConfig{
		IQN: iqn, LUNs: []iscsi.LUNConfig{{Path: disk, ReadOnly: true}},
		AllowedInitiators: []string{"iqn.2010-04.org.ipxe:" + uuid},
	}); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	tftp := t.TempDir()
	script := fmt.Sprintf("#!ipxe\nsanboot iscsi:10.0.2.2::%s:0:%s\n", port, iqn)
	if err := os.WriteFile(filepath.Join(tftp, "boot.ipxe"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "tcg", "-m", "128", "-uuid", uuid,
		"-nographic", "-serial", "stdio", "-monitor", "none",
		"-netdev", "user,id=n0,tftp="+tftp+",bootfile=boot.ipxe", "-device", "e1000,netdev=n0",
		"-boot", "order=n,reboot-timeout=0", "-no-reboot",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	code := -1
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	m := markerRE.FindSubmatch(out.Bytes())
	if code != 33 || m == nil || string(m[1]) != marker {
		t.Fatalf("qemu exit %d (%v), marker %q, want %q; output:\n%s", code, err, m, marker, out.String())
	}
	t.Logf("booted through iPXE sanboot and read marker %q in %v", m[1], time.Since(start).Round(time.Millisecond))
	st := srv.Stats()[0]
	if st.Logins != 1 || st.BytesRead == 0 {
		t.Errorf("stats after boot: %+v", st)
	}
}
