package netboot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/iscsi/initiator"
)

// TestVolumeMaintenance installs "the first OS" on a volume through the real parts: a
// device registered through the API (no group, no menu) is put in the volume's
// maintenance through the API and boots the volume under qemu+iPXE; the volume's target
// is read-write for that device only (our initiator, logged in with the device's iPXE
// name, writes a new marker and the next boot shows it); ending the maintenance through
// the API gets the target removed by the agent's periodic check, and the device no longer
// boots the volume.
func TestVolumeMaintenance(t *testing.T) {
	harness.RequirePackages(t, Packages...)
	ctx := context.Background()
	p, a := startHost(t)

	// A volume, ready (the file-backed agent has no ZFS workflow to create it), whose disk
	// on the master holds a boot sector and a marker.
	created := p.API("POST", "/volumes.json", map[string]any{"network": p.Network.ID, "alias": "base", "vol_size": 1})
	vid := uint(created["id"].(float64))
	if err := p.DB.Model(&models.Volume{}).Where("id = ?", vid).Update("state", models.StateReady).Error; err != nil {
		t.Fatal(err)
	}
	volPath, _, _ := a.Disks.VolumePath(ctx, vid)
	blank, installed := fmt.Sprintf("volume%d-blank", vid), fmt.Sprintf("volume%d-installed", vid)
	if err := MakeDisk(volPath, blank, 0); err != nil {
		t.Fatal(err)
	}

	dev := DeviceN(40)
	did := uint(p.API("POST", "/devices.json", map[string]any{"network": p.Network.ID, "mac": dev.MAC})["id"].(float64))
	p.API("POST", fmt.Sprintf("/volumes/%d/maintenance.json", vid), map[string]any{"device_id": did})

	expect(t, bootVM(t, a, dev), blank, "the maintenance device boots the volume")
	iqn := wire.VolumeIQN(p.Network.ID, vid)
	if !slices.Contains(a.Target.Targets(), iqn) {
		t.Fatalf("the volume's target is not exported: %v", a.Target.Targets())
	}
	if d := p.Device(dev.MAC); d.UUID != dev.UUID || d.GroupID != nil {
		t.Fatalf("device after its first boot: %+v", d)
	}

	// Our initiator on a loopback listener of the same target: another machine's name is
	// refused; the device's name writes LBA 1 (the marker the boot sector prints).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go a.Target.Serve(ln) //nolint:errcheck
	portal := ln.Addr().String()
	var rejected *initiator.ErrLoginRejected
	if s, err := initiator.Dial(ctx, portal, initiator.Options{InitiatorName: boot.InitiatorName(DeviceN(41).UUID), TargetName: iqn}); !errors.As(err, &rejected) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("another machine logged in to the volume: %v", err)
	}
	writeMarker(t, portal, boot.InitiatorName(dev.UUID), iqn, installed)
	b, err := os.ReadFile(volPath)
	if err != nil || !bytes.HasPrefix(b[512:], []byte(installed+"\x00")) {
		t.Fatalf("the volume's file does not hold the written marker: %q %v", b[512:560], err)
	}
	expect(t, bootVM(t, a, dev), installed, "the volume after the write")

	// Maintenance ends: the agent's periodic check (every 30 s by default) removes the
	// target; the device, with no group, is told so and reboots.
	p.API("DELETE", fmt.Sprintf("/volumes/%d/maintenance.json", vid), nil)
	start := time.Now()
	for slices.Contains(a.Target.Targets(), iqn) {
		if time.Since(start) > 45*time.Second {
			t.Fatalf("the volume's target is still exported %s after the maintenance ended", time.Since(start).Round(time.Second))
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("target removed %s after the maintenance ended", time.Since(start).Round(time.Millisecond))
	<-time.After(1100 * time.Millisecond) // the panel reuses a network's boot state for up to 1 s
	res, err := Boot(ctx, a.BootURL, dev, 2*time.Minute)
	if err == nil || res == nil || !strings.Contains(res.Output, "has no group") {
		t.Fatalf("the device after the maintenance: %+v %v", res, err)
	}
	if slices.Contains(a.Target.Targets(), iqn) {
		t.Fatalf("booting the device exported the volume again: %v", a.Target.Targets())
	}
}

// writeMarker logs in to target iqn as initiator name and writes marker over the disk's
// LBA 1 (bytes 512..1023, whatever the block size), reading it back.
func writeMarker(t *testing.T, portal, name, iqn, marker string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := initiator.Dial(ctx, portal, initiator.Options{InitiatorName: name, TargetName: iqn})
	if err != nil {
		t.Fatalf("login as %s: %v", name, err)
	}
	defer s.Close()
	_, bs, err := s.ReadCapacity(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	lba, off := uint64(512/int(bs)), 512%int(bs)
	blk := make([]byte, bs)
	if err := s.Read(ctx, 0, lba, int(bs), blk); err != nil {
		t.Fatal(err)
	}
	sector := make([]byte, 512)
	copy(sector, marker)
	copy(blk[off:], sector)
	if err := s.Write(ctx, 0, lba, int(bs), blk, true); err != nil {
		t.Fatalf("write to the volume: %v", err)
	}
	back := make([]byte, bs)
	if err := s.Read(ctx, 0, lba, int(bs), back); err != nil || !bytes.Equal(back, blk) {
		t.Fatalf("read back: %v", err)
	}
	s.Logout(ctx) //nolint:errcheck
}
