package boot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// TestVDiskIsLUN1OfTheDeviceTarget: a device's vdisk is LUN 1 of its target at boot, stays
// LUN 1 when the target is made again for a new clone (a reprovisioning replaces LUN 0
// only), comes back from the panel's exports after a restart (not at a reconcile), and leaves a booted device
// only once it has logged out.
func TestVDiskIsLUN1OfTheDeviceTarget(t *testing.T) {
	in := info(true, 1)
	svc, panel, target, _, disks := newTestService(t, in)
	ctx := context.Background()
	iqn := wire.DeviceIQN(1, 7)
	vd := filepath.Join(disks.Root, "vdisks", "5")
	if err := os.MkdirAll(filepath.Dir(vd), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(vd); err != nil {
		t.Fatal(err)
	}
	lun1 := func() string {
		target.mu.Lock()
		defer target.mu.Unlock()
		if luns := target.added[iqn].LUNs; len(luns) > 1 {
			return luns[1].Path
		}
		return ""
	}
	// Attached before the device's target exists: its first export carries it.
	if err := svc.AttachVDisk(ctx, 1, 7, 5, false); err != nil {
		t.Fatal(err)
	}
	if s := svc.Script(ctx, mac1, uuid1, 0); !strings.Contains(s, "sanboot iscsi:") {
		t.Fatalf("script:\n%s", s)
	}
	if lun1() != vd {
		t.Fatalf("LUN 1 after the boot: %q, want %q", lun1(), vd)
	}
	// A reprovisioning's new target (unexport, then export of the new clone).
	p, _, _ := disks.DevicePath(ctx, 7)
	if err := svc.Unexport(iqn); err != nil {
		t.Fatal(err)
	}
	if err := svc.Export(iqn, wire.Export{Kind: "device", ID: 7, NetworkID: 1, UUID: uuid1}, p); err != nil {
		t.Fatal(err)
	}
	if lun1() != vd {
		t.Fatalf("LUN 1 after a new clone: %q, want %q", lun1(), vd)
	}
	// The cache remembers it for a restart.
	found := false
	for _, e := range svc.cfg.Cache.Exports() {
		found = found || e.Kind == "device" && e.ID == 7 && e.VDiskID == 5
	}
	if !found {
		t.Errorf("cache exports: %+v", svc.cfg.Cache.Exports())
	}
	// A booted device keeps it.
	target.mu.Lock()
	target.sessions = map[string]int{iqn: 1}
	target.mu.Unlock()
	if err := svc.AttachVDisk(ctx, 1, 7, 0, true); !errors.Is(err, activities.ErrDeviceBooted) {
		t.Fatalf("detach from a booted device: %v", err)
	}
	if lun1() != vd {
		t.Fatalf("a refused detach removed LUN 1")
	}
	target.mu.Lock()
	target.sessions = nil
	target.mu.Unlock()
	if err := svc.AttachVDisk(ctx, 1, 7, 0, true); err != nil || lun1() != "" {
		t.Fatalf("detach: %v, LUN 1 %q", err, lun1())
	}
	// A reconcile leaves device targets to the agent's own attachments (the panel's list
	// lags behind them); a restart takes the panel's list.
	panel.mu.Lock()
	panel.exports = []wire.Export{{Kind: "device", ID: 7, NetworkID: 1, UUID: uuid1, VDiskID: 5}}
	panel.mu.Unlock()
	if _, err := svc.restore(ctx, false); err != nil {
		t.Fatal(err)
	}
	if lun1() != "" {
		t.Fatalf("a reconcile changed LUN 1: %q", lun1())
	}
	if _, err := svc.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if lun1() != vd {
		t.Fatalf("LUN 1 after a restart's restore: %q", lun1())
	}
}
