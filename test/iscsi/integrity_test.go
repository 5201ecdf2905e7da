package iscsi_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/clusterducks/clusterducks/test/harness/pkgs"
)

type ioWrite struct {
	off, n  int64
	pattern byte
}

func qemuIO(ctx context.Context, url string, cmds ...string) (string, error) {
	args := []string{"-f", "raw"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	args = append(args, url)
	out, err := exec.CommandContext(ctx, "qemu-io", args...).CombinedOutput()
	s := string(out)
	if err == nil && (strings.Contains(s, "failed") || strings.Contains(s, "error")) {
		err = fmt.Errorf("qemu-io reported a failure")
	}
	return s, err
}

// TestDataIntegrity: patterns written by one client are read back by another,
// through two targets at once: qemu-io (libiscsi) writes aligned and unaligned
// patterns that our Go initiator verifies; the Go initiator writes random data
// that qemu-img (libiscsi) copies out for a byte-for-byte comparison; and the
// backing files hold exactly the model. Zero mismatches allowed.
func TestDataIntegrity(t *testing.T) {
	pkgs.Require(t, "qemu-utils", "qemu-block-extra")
	const size = 32 << 20
	srv, addr := startOurs(t, iscsi.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	type disk struct {
		iqn, path, url string
		model          []byte
	}
	var disks []*disk
	for i := range 2 {
		d := &disk{
			iqn:   fmt.Sprintf("iqn.2026-11.dev.clusterducks:integrity-%d", i),
			path:  newDisk(t, fmt.Sprintf("integrity-%d.img", i), size),
			model: make([]byte, size),
		}
		d.url = fmt.Sprintf("iscsi://%s/%s/0", addr, d.iqn)
		if err := srv.AddTarget(iscsi.TargetConfig{IQN: d.iqn, LUNs: []iscsi.LUNConfig{{Path: d.path}}}); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, d)
	}

	// 1. qemu-io writes, both targets at once.
	var wg sync.WaitGroup
	errs := make(chan error, len(disks))
	for i, d := range disks {
		writes := []ioWrite{
			{0, 1 << 20, byte(0x11 + i)},
			{4097, 10000, byte(0x22 + i)},        // unaligned start and end
			{(1 << 20) + 511, 3, byte(0x33 + i)}, // three bytes across a block boundary
			{size - 4096, 4096, byte(0x44 + i)},  // the last page
			{5<<20 + 100, 3<<20 + 7, byte(0x55 + i)},
		}
		var cmds []string
		for _, w := range writes {
			cmds = append(cmds, fmt.Sprintf("write -P %#x %d %d", w.pattern, w.off, w.n))
			for j := w.off; j < w.off+w.n; j++ {
				d.model[j] = w.pattern
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := qemuIO(ctx, d.url, cmds...); err != nil {
				errs <- fmt.Errorf("qemu-io on %s: %v\n%s", d.iqn, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// 2. The Go initiator reads everything back.
	for _, d := range disks {
		s := dial(t, addr, d.iqn)
		got := make([]byte, size)
		for off := 0; off < size; off += 1 << 20 {
			if err := s.Read(ctx, 0, uint64(off/512), 512, got[off:off+1<<20]); err != nil {
				t.Fatal(err)
			}
		}
		if i := firstDiff(got, d.model); i >= 0 {
			t.Fatalf("%s: Go initiator read differs from qemu-io's writes at byte %d", d.iqn, i)
		}
		// 3. The Go initiator writes random data, both targets at once below.
		r := rand.New(rand.NewPCG(uint64(len(d.iqn)), 3))
		for range 40 {
			n := (1 + r.IntN(512)) * 512
			lba := r.IntN((size-8192)/512 - n/512) // the last page keeps its qemu-io pattern
			buf := make([]byte, n)
			for j := range buf {
				buf[j] = byte(r.Uint32())
			}
			if err := s.Write(ctx, 0, uint64(lba), 512, buf, r.IntN(4) == 0); err != nil {
				t.Fatal(err)
			}
			copy(d.model[lba*512:], buf)
		}
		s.Logout(ctx)
	}

	// 4. qemu-img copies each disk out through libiscsi, both at once.
	errs = make(chan error, len(disks))
	for _, d := range disks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := filepath.Join(t.TempDir(), "copy.raw")
			if b, err := exec.CommandContext(ctx, "qemu-img", "convert", "-f", "raw", "-O", "raw", d.url, out).CombinedOutput(); err != nil {
				errs <- fmt.Errorf("qemu-img convert %s: %v\n%s", d.iqn, err, b)
				return
			}
			got, err := os.ReadFile(out)
			if err != nil {
				errs <- err
				return
			}
			if i := firstDiff(got, d.model); i >= 0 {
				errs <- fmt.Errorf("%s: qemu-img copy differs from the model at byte %d", d.iqn, i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// 5. qemu-io verifies a pattern region, and the backing files hold the model.
	if out, err := qemuIO(ctx, disks[0].url, "read -P 0x44 33550336 4096"); err != nil {
		t.Errorf("qemu-io verify: %v\n%s", err, out)
	}
	for _, d := range disks {
		got, err := os.ReadFile(d.path)
		if err != nil {
			t.Fatal(err)
		}
		if i := firstDiff(got, d.model); i >= 0 {
			t.Errorf("%s: backing file differs from the model at byte %d", d.iqn, i)
		}
	}
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
