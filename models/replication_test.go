package models

import (
	"context"
	"errors"
	"strconv"
	"testing"
)

// TestPlanReplication: a group's plan is its origin volume snapshot, then the group up to
// the wanted ready version, with the master's advertised address (or the Replication IP
// and port 8082) and the slave's bandwidth.
func TestPlanReplication(t *testing.T) {
	ctx := context.Background()
	s, a, _, g := opsStore(t) // network's master "m" (10.0.0.1, pool tank), volume, group
	nid := g.NetworkID
	sl, err := s.CreateServer(ctx, a, &ServerInput{NetworkID: &nid, Name: Strp("s"), IP: Strp("10.0.0.2"), ReplicationIP: Strp("10.9.0.2"), Pool: Strp("sat")})
	if err != nil {
		t.Fatal(err)
	}
	slave := sl.Object.(*Server)
	s.DB.Model(&Server{}).Where("id = ?", slave.ID).Update("bandwidth_limit", 1000)
	for n, guid := range []string{"g1", "g2", ""} { // v3 is not published yet
		state := StateReady
		if guid == "" {
			state = StatePending
		}
		if err := s.DB.Create(&GroupVersion{GroupID: g.ID, Number: n + 1, GUID: guid, State: state}).Error; err != nil {
			t.Fatal(err)
		}
	}
	var master Server
	s.DB.Where("network_id = ? AND role = ?", nid, ServerMaster).Take(&master)

	p, err := PlanReplication(ctx, s.DB, nid, slave.ID, ReplicateGroup, g.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if p.MasterID != master.ID || p.MasterAddr != "10.0.0.1:8082" || p.MasterPool != "tank" || p.SlavePool != "sat" || p.BytesPerSecond != 1000 {
		t.Errorf("plan %+v", p)
	}
	if len(p.Datasets) != 2 || p.Datasets[0].Kind != ReplicateVolume || p.Datasets[0].Snapshot != "group-"+itoa(g.ID) ||
		p.Datasets[1].Snapshot != "v2" || p.Datasets[1].GUID != "g2" || p.Datasets[1].Origin != "iscsi/volumes/"+itoa(g.VolumeID)+"@group-"+itoa(g.ID) {
		t.Errorf("datasets %+v", p.Datasets)
	}
	if len(p.Versions) != 2 || p.Versions[1].GUID != "g2" {
		t.Errorf("versions %+v", p.Versions)
	}
	if p, err = PlanReplication(ctx, s.DB, nid, slave.ID, ReplicateGroup, g.ID, "v1"); err != nil || len(p.Versions) != 1 || p.Datasets[1].GUID != "g1" {
		t.Errorf("v1: %+v %v", p, err)
	}

	// The advertised address wins; a malformed one is refused naming the field.
	if err := SetReplicationAddr(ctx, s.DB, master.ID, "203.0.113.5:9000"); err != nil {
		t.Fatal(err)
	}
	if p, err = PlanReplication(ctx, s.DB, nid, slave.ID, ReplicateVolume, g.VolumeID, ""); err != nil || p.MasterAddr != "203.0.113.5:9000" || len(p.Datasets) != 1 || p.Versions != nil {
		t.Errorf("volume plan %+v %v", p, err)
	}
	var ve *ValidationError
	for _, bad := range []string{"nohost", ":80", "h:0", "h:99999", "h:x"} {
		if err := SetReplicationAddr(ctx, s.DB, master.ID, bad); !errors.As(err, &ve) || ve.Field != "replication_addr" {
			t.Errorf("%q: %v", bad, err)
		}
	}

	for name, c := range map[string]struct {
		slave uint
		kind  string
		id    uint
		snap  string
	}{
		"the master as slave": {master.ID, ReplicateVolume, g.VolumeID, ""},
		"an unknown kind":     {slave.ID, "vdisk", 1, ""},
		"a missing group":     {slave.ID, ReplicateGroup, 999, ""},
		"an unready version":  {slave.ID, ReplicateGroup, g.ID, "v3"},
		"a missing slave":     {999, ReplicateVolume, g.VolumeID, ""},
	} {
		if _, err := PlanReplication(ctx, s.DB, nid, c.slave, c.kind, c.id, c.snap); err == nil {
			t.Errorf("%s: planned", name)
		} else if !errors.Is(err, ErrNotFound) && !errors.As(err, &ve) {
			t.Errorf("%s: %v is neither not-found nor invalid", name, err)
		}
	}
}

func itoa(n uint) string { return strconv.FormatUint(uint64(n), 10) }

// TestRecordTransferProgress: a transfer's bytes, percent and rate land on its running
// operation, never moving its percent back (a watcher's late write after the workflow's
// next step), and never on a finished one.
func TestRecordTransferProgress(t *testing.T) {
	ctx := context.Background()
	s, _, _, g := opsStore(t)
	op := Operation{NetworkID: &g.NetworkID, Kind: OpReplicateGroup, ObjectType: "group", ObjectID: g.ID, State: OpRunning, Step: "transfer", Percent: 50}
	if err := s.DB.Create(&op).Error; err != nil {
		t.Fatal(err)
	}
	p := TransferProgress{WorkflowProgress: WorkflowProgress{OperationID: op.ID, Step: "transfer", Percent: 60, Message: "receiving"},
		Bytes: 3 << 20, BytesTotal: 10 << 20, Rate: 1 << 20}
	if err := RecordTransferProgress(ctx, s.DB, p); err != nil {
		t.Fatal(err)
	}
	var got Operation
	s.DB.Take(&got, op.ID)
	if got.Percent != 60 || got.Bytes != 3<<20 || got.BytesTotal != 10<<20 || got.Rate != 1<<20 || got.Message != "receiving" {
		t.Errorf("after a write: %+v", got)
	}
	// The workflow went on (verified, 95 %): a late watcher write changes nothing.
	s.DB.Model(&Operation{}).Where("id = ?", op.ID).Updates(map[string]any{"percent": 95, "message": "verified"})
	p.Percent, p.Bytes = 94, 9<<20
	if err := RecordTransferProgress(ctx, s.DB, p); err != nil {
		t.Fatal(err)
	}
	s.DB.Take(&got, op.ID)
	if got.Percent != 95 || got.Message != "verified" || got.Bytes != 3<<20 {
		t.Errorf("a late write moved the row: %+v", got)
	}
	s.DB.Model(&Operation{}).Where("id = ?", op.ID).Updates(map[string]any{"state": OpSucceeded, "percent": 100})
	p.Percent = 99
	if err := RecordTransferProgress(ctx, s.DB, p); err != nil {
		t.Fatal(err)
	}
	if s.DB.Take(&got, op.ID); got.State != OpSucceeded || got.Percent != 100 {
		t.Errorf("a finished operation changed: %+v", got)
	}
}
