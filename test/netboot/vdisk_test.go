package netboot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/iscsi/initiator"
)

// TestHostVDiskSurvivesReprovisioning is issue 14's first acceptance on the host's boot
// path (file disks for ZFS, the agent's step of the vdisk workflow called directly, since
// the host panel runs no workflows): a device VM boots v1 with a vdisk; the device's
// initiator name writes a marker to LUN 1; v2 is published with strict versioning and lazy
// locks off; the device is reprovisioned and boots v2; LUN 1 still holds the marker, the
// old clone is in the erator and the vdisk is not.
func TestHostVDiskSurvivesReprovisioning(t *testing.T) {
	harness.RequirePackages(t, Packages...)
	p, a := startHost(t)
	g := publishedGroup(p, a)
	dev := DeviceN(41)
	expect(t, bootVM(t, a, dev), Marker(g.ID, 1), "new device")
	d := p.Device(dev.MAC)

	// The API records the vdisk on the device's server; the agent's part of its workflow
	// makes the disk and serves it as LUN 1.
	v := p.API("POST", "/vdisks.json", map[string]any{"network": p.Network.ID, "name": "data", "size": 1, "device": d.ID})
	vid := uint(v["id"].(float64))
	if v["server_id"] != float64(a.ServerID) {
		t.Fatalf("vdisk on server %v, want the device's server %d", v["server_id"], a.ServerID)
	}
	vdisk := filepath.Join(a.Disks.Root, "vdisks", fmt.Sprint(vid))
	if err := os.MkdirAll(filepath.Dir(vdisk), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vdisk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.Svc.AttachVDisk(ctx, p.Network.ID, d.ID, vid, false); err != nil {
		t.Fatal(err)
	}
	op := v["operation"].(map[string]any)
	if err := models.FinishOperation(ctx, p.DB, models.Outcome{WorkflowProgress: models.WorkflowProgress{OperationID: uint(op["id"].(float64))}}); err != nil {
		t.Fatal(err)
	}

	iqn := wire.DeviceIQN(p.Network.ID, d.ID)
	marker := make([]byte, 512)
	copy(marker, fmt.Sprintf("vdisk %d of device %d", vid, d.ID))
	lun1 := func(write bool) []byte {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		s, err := initiator.Dial(cctx, a.ISCSI, initiator.Options{InitiatorName: boot.InitiatorName(dev.UUID), TargetName: iqn})
		if err != nil {
			t.Fatalf("login as the device: %v", err)
		}
		defer s.Close()
		defer s.Logout(cctx) //nolint:errcheck
		if write {
			if err := s.Write(cctx, 1, 0, 512, marker, true); err != nil {
				t.Fatalf("write LUN 1: %v", err)
			}
		}
		blocks, _, err := s.ReadCapacity(cctx, 1)
		if err != nil || blocks != (1<<20)/512 {
			t.Fatalf("LUN 1 capacity: %d blocks, %v", blocks, err)
		}
		buf := make([]byte, 512)
		if err := s.Read(cctx, 1, 0, 512, buf); err != nil {
			t.Fatalf("read LUN 1: %v", err)
		}
		return buf
	}
	if got := lun1(true); !bytes.Equal(got, marker) {
		t.Fatalf("LUN 1 after the write: %q", bytes.TrimRight(got, "\x00"))
	}

	p.Publish(a, g, 2)
	expect(t, bootVM(t, a, dev), Marker(g.ID, 2), "device reprovisioned to v2 (strict, no lazy locks)")
	if got := lun1(false); !bytes.Equal(got, marker) {
		t.Fatalf("LUN 1 after the reprovisioning: %q, want the marker", bytes.TrimRight(got, "\x00"))
	}
	trash, err := a.Disks.Trash()
	if err != nil || len(trash) != 1 || !strings.HasPrefix(trash[0], fmt.Sprintf("device-%d-", d.ID)) {
		t.Fatalf("the old clone is not in the erator: %v %v", trash, err)
	}
	if _, err := os.Stat(vdisk); err != nil {
		t.Fatalf("the vdisk moved: %v", err)
	}
	// The panel's exports carry it, so an agent restart serves it again.
	rows, err := models.DesiredExports(ctx, p.DB, a.ServerID)
	if err != nil || len(rows) != 1 || rows[0].VDiskID != vid {
		t.Fatalf("exports: %+v %v", rows, err)
	}
}
