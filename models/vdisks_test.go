package models

import (
	"context"
	"testing"
)

// TestVDiskMovesWithItsDevice: the device plan names the device's ready vdisk when it
// lives on another server than the provisioning's (with that server's pool and
// replication endpoint), and the moved clone's record changes the vdisk's server with
// the device's.
func TestVDiskMovesWithItsDevice(t *testing.T) {
	ctx := context.Background()
	s, a, _, g := opsStore(t) // network's master "m" (10.0.0.1, pool tank)
	nid := g.NetworkID
	sl, err := s.CreateServer(ctx, a, &ServerInput{NetworkID: &nid, Name: Strp("s"), IP: Strp("10.0.0.2"), Pool: Strp("sat")})
	if err != nil {
		t.Fatal(err)
	}
	slave := sl.Object.(*Server)
	var master Server
	s.DB.Where("network_id = ? AND role = ?", nid, ServerMaster).Take(&master)
	ver := GroupVersion{GroupID: g.ID, Number: 1, GUID: "g1", State: StateReady}
	if err := s.DB.Create(&ver).Error; err != nil {
		t.Fatal(err)
	}
	d := Device{NetworkID: nid, MAC: "52:54:00:00:00:07", UUID: "u", ServerID: &master.ID, CloneVersionID: &ver.ID}
	if err := s.DB.Create(&d).Error; err != nil {
		t.Fatal(err)
	}
	v := VDisk{NetworkID: nid, Name: "data", SizeGiB: 1, DeviceID: &d.ID, ServerID: &master.ID, State: StateReady}
	if err := s.DB.Create(&v).Error; err != nil {
		t.Fatal(err)
	}

	p, err := PlanDevice(ctx, s.DB, d.ID, master.ID, master.ID)
	if err != nil || p.VDisk != nil {
		t.Fatalf("same server: %+v %v", p, err)
	}
	p, err = PlanDevice(ctx, s.DB, d.ID, slave.ID, master.ID)
	if err != nil || p.VDisk == nil || *p.VDisk != (VDiskPlace{ID: v.ID, ServerID: master.ID, Pool: "tank", Addr: "10.0.0.1:8082"}) {
		t.Fatalf("other server: %+v %v", p, err)
	}
	// A vdisk under an operation of its own (resizing, say) is left where it is.
	s.DB.Model(&VDisk{}).Where("id = ?", v.ID).Update("state", StatePending)
	if p, err = PlanDevice(ctx, s.DB, d.ID, slave.ID, master.ID); err != nil || p.VDisk != nil {
		t.Fatalf("pending vdisk: %+v %v", p, err)
	}
	s.DB.Model(&VDisk{}).Where("id = ?", v.ID).Update("state", StateReady)

	if err := RecordMovedClone(ctx, s.DB, nid, d.ID, ver.ID, slave.ID, v.ID); err != nil {
		t.Fatal(err)
	}
	var gotD Device
	var gotV VDisk
	s.DB.Take(&gotD, d.ID)
	s.DB.Take(&gotV, v.ID)
	if gotD.ServerID == nil || *gotD.ServerID != slave.ID || gotV.ServerID == nil || *gotV.ServerID != slave.ID {
		t.Fatalf("device on %v, vdisk on %v; want both on %d", gotD.ServerID, gotV.ServerID, slave.ID)
	}
	if p, err = PlanDevice(ctx, s.DB, d.ID, slave.ID, slave.ID); err != nil || p.VDisk != nil {
		t.Fatalf("after the move: %+v %v", p, err)
	}
	// A plain record (no vdisk moved) leaves the vdisk's server alone.
	if err := RecordClone(ctx, s.DB, nid, d.ID, ver.ID, master.ID); err != nil {
		t.Fatal(err)
	}
	s.DB.Take(&gotV, v.ID)
	if *gotV.ServerID != slave.ID {
		t.Fatalf("vdisk moved to %d without a transfer", *gotV.ServerID)
	}
}
