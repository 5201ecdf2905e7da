package models

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestBootRevision: every device write path bumps its network's revision with the
// device's id, a bulk one with AllDevices; a watcher behind the log's floor (or ahead of
// the panel) must reload in full.
func TestBootRevision(t *testing.T) {
	ctx := context.Background()
	s, a, _, g := opsStore(t)
	nid := g.NetworkID
	rev := func() uint64 {
		r, _, err := BootRevisionOf(ctx, s.DB, nid)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	changed := func(since uint64) ([]uint, bool) {
		r, floor, err := BootRevisionOf(ctx, s.DB, nid)
		if err != nil {
			t.Fatal(err)
		}
		ids, all, err := BootDevicesChanged(ctx, s.DB, nid, since, r, floor)
		if err != nil {
			t.Fatal(err)
		}
		return ids, all
	}
	r0 := rev()
	if r0 == 0 {
		t.Fatal("a network's revision starts at 1: 0 is a watcher with nothing")
	}
	if _, all := changed(0); !all {
		t.Fatal("revision 0 must be answered in full")
	}
	c, err := s.CreateDevice(ctx, a, &DeviceInput{NetworkID: &nid, MAC: Strp("52:54:00:00:00:01"), GroupID: &g.ID})
	if err != nil {
		t.Fatal(err)
	}
	d := c.Object.(*Device)
	if ids, all := changed(r0); all || !slices.Equal(ids, []uint{d.ID}) {
		t.Fatalf("after a create: %v all %v", ids, all)
	}
	r1 := rev()
	if err := SetDeviceLock(ctx, s.DB, d.ID, true); err != nil {
		t.Fatal(err)
	}
	if ids, _ := changed(r1); !slices.Equal(ids, []uint{d.ID}) || rev() != r1+1 {
		t.Fatalf("after a lock: %v, revision %d (was %d)", ids, rev(), r1)
	}
	r2 := rev()
	if _, err := s.UpdateDevice(ctx, a, d.ID, &DeviceInput{Name: Strp("pc")}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := changed(r2); !slices.Equal(ids, []uint{d.ID}) {
		t.Fatalf("after an update: %v", ids)
	}
	if ids, all := changed(rev()); all || len(ids) != 0 {
		t.Fatalf("nothing since the current revision: %v %v", ids, all)
	}
	if _, all := changed(rev() + 5); !all {
		t.Fatal("a revision ahead of the panel's (another database) must reload in full")
	}
	m, err := s.CreateMenu(ctx, a, &MenuInput{NetworkID: &nid, Name: Strp("m")})
	if err != nil {
		t.Fatal(err)
	}
	r3 := rev()
	if err := s.DeleteMenu(ctx, a, m.Object.(*MenuView).ID); err != nil {
		t.Fatal(err)
	}
	if _, all := changed(r3); !all {
		t.Fatal("a menu delete clears devices' menus in bulk: every device must be sent")
	}
	r4 := rev()
	if err := PruneBootChanges(ctx, s.DB, -time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, all := changed(r4 - 1); !all {
		t.Fatal("a watcher behind the pruned log must reload in full")
	}
	if ids, all := changed(r4); all || len(ids) != 0 {
		t.Fatalf("a watcher at the floor is current: %v %v", ids, all)
	}
}

// TestDeviceBootRevision: a device's boot revision is its newest change's; another
// device's change leaves it, its own (a recorded clone) raises it (a provisioning asked
// after it gets its own update id).
func TestDeviceBootRevision(t *testing.T) {
	ctx := context.Background()
	s, _, _, g := opsStore(t)
	nid := g.NetworkID
	var ids [2]uint
	for i := range ids {
		d := Device{NetworkID: nid, MAC: "52:54:00:00:00:0" + string(rune('1'+i))}
		if err := s.DB.Create(&d).Error; err != nil {
			t.Fatal(err)
		}
		ids[i] = d.ID
	}
	var srv Server
	s.DB.Where("network_id = ?", nid).Take(&srv)
	rev := func(id uint) uint64 {
		t.Helper()
		r, err := DeviceBootRevision(ctx, s.DB, nid, id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r0 := rev(ids[0])
	if err := RecordClone(ctx, s.DB, nid, ids[1], 0, srv.ID); err != nil {
		t.Fatal(err)
	}
	if r := rev(ids[0]); r != r0 {
		t.Errorf("another device's change moved it from %d to %d", r0, r)
	}
	if err := RecordClone(ctx, s.DB, nid, ids[0], 0, srv.ID); err != nil {
		t.Fatal(err)
	}
	r1 := rev(ids[0])
	if r1 <= r0 {
		t.Errorf("its own change left it at %d (was %d)", r1, r0)
	}
	if err := RecordClone(ctx, s.DB, nid, ids[0], 0, srv.ID+1000); err == nil && rev(ids[0]) <= r1 {
		t.Errorf("a second change left it at %d", r1)
	}
}
