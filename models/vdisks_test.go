package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestVDiskMovesWithItsDevice: the device plan names the device's ready vdisk when it
// lives on another server than the provisioning's (with that server's pool and
// replication endpoint), and the moved clone's record changes the vdisk's server with
// the device's.
func TestVDiskMovesWithItsDevice(t *testing.T) {
	ctx := context.Background()
	s, _, g, m, slave := twoServerStore(t, false) // master "m" (10.0.0.1, pool tank), slave "s"
	nid, master := g.NetworkID, *m
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

// TestVDiskBackups: a ready vdisk is backed up from the server it lives on (a slave here)
// to every other server of its network, the master included: the reconcile's targets,
// the queued operations and the transfer's plan name that server as the source. Its
// device's export on another server never carries it (a backup is never served).
func TestVDiskBackups(t *testing.T) {
	ctx := context.Background()
	s, _, g, m, slave := twoServerStore(t, true)
	nid, master := g.NetworkID, *m
	ver := GroupVersion{GroupID: g.ID, Number: 1, GUID: "g1", State: StateReady}
	if err := s.DB.Create(&ver).Error; err != nil {
		t.Fatal(err)
	}
	d := Device{NetworkID: nid, MAC: "52:54:00:00:00:08", UUID: "u", ServerID: &master.ID, CloneVersionID: &ver.ID}
	if err := s.DB.Create(&d).Error; err != nil {
		t.Fatal(err)
	}
	v := VDisk{NetworkID: nid, Name: "data", SizeGiB: 1, DeviceID: &d.ID, ServerID: &slave.ID, State: StateReady}
	if err := s.DB.Create(&v).Error; err != nil {
		t.Fatal(err)
	}

	targets, err := ReplicaTargets(ctx, s.DB)
	if err != nil {
		t.Fatal(err)
	}
	var vt []ReplicaTarget
	for _, tg := range targets {
		if tg.Kind == ReplicateVDisk {
			vt = append(vt, tg)
		} else if tg.SlaveID == master.ID {
			t.Errorf("target %+v: the master is no slave of its volumes and groups", tg)
		}
	}
	want := ReplicaTarget{NetworkID: nid, Kind: ReplicateVDisk, ObjectID: v.ID, MasterID: slave.ID, MasterPool: "sat", SlaveID: master.ID, SlavePool: "tank"}
	if len(vt) != 1 || vt[0] != want {
		t.Fatalf("vdisk targets %+v, want %+v", vt, want)
	}

	ops, err := s.QueueReplication(ctx, ReplicationRequest{Kind: ReplicateVDisk, ObjectID: v.ID})
	if err != nil || len(ops) != 1 || ops[0].Kind != OpReplicateVDisk || ops[0].ObjectID != v.ID || !strings.HasPrefix(ops[0].Input, fmt.Sprintf(`{"server_id":%d,`, master.ID)) {
		t.Fatalf("queued %+v %v; want one replicate-vdisk to the master", ops, err)
	}
	if again, err := s.QueueReplication(ctx, ReplicationRequest{Kind: ReplicateVDisk, ObjectID: v.ID}); err != nil || len(again) != 0 {
		t.Errorf("queued again %+v %v; want the one under way to stand", again, err)
	}

	p, err := PlanReplication(ctx, s.DB, nid, master.ID, ReplicateVDisk, v.ID, "")
	if err != nil || p.MasterID != slave.ID || p.MasterAddr != "10.0.0.2:8082" || p.MasterPool != "sat" || p.SlavePool != "tank" ||
		len(p.Datasets) != 1 || p.Datasets[0].Dataset != fmt.Sprintf("vdisks/%d", v.ID) || p.Versions != nil {
		t.Fatalf("plan %+v %v", p, err)
	}
	var ve *ValidationError
	if _, err := PlanReplication(ctx, s.DB, nid, slave.ID, ReplicateVDisk, v.ID, ""); !errors.As(err, &ve) {
		t.Errorf("a plan to the vdisk's own server: %v", err)
	}

	// A delete moves the backups too: every server but the vdisk's own.
	if others, err := SlavesOf(ctx, s.DB, ReplicateVDisk, v.ID); err != nil || len(others) != 1 || others[0].ID != master.ID {
		t.Errorf("servers holding its backups %+v %v; want the master", others, err)
	}

	// The device boots from the master, whose copy is a backup: not its LUN 1.
	rows, err := DesiredExports(ctx, s.DB, master.ID)
	if err != nil || len(rows) != 1 || rows[0].VDiskID != 0 {
		t.Fatalf("master's exports %+v %v; want the device without its vdisk", rows, err)
	}
	s.DB.Model(&VDisk{}).Where("id = ?", v.ID).Update("server_id", master.ID)
	if rows, err = DesiredExports(ctx, s.DB, master.ID); err != nil || len(rows) != 1 || rows[0].VDiskID != v.ID {
		t.Fatalf("master's exports %+v %v; want the device with its vdisk", rows, err)
	}
}
