package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// opsStore is a store on a fresh SQLite file with a network, its master server (key
// returned) and a ready group on a ready volume.
func opsStore(t *testing.T) (s *Store, a *Actor, key string, g *Group) {
	t.Helper()
	ctx := context.Background()
	s, a = testStore(t)
	db := s.DB
	n, err := s.CreateNetwork(ctx, a, &NetworkInput{Name: Strp("n"), ClientID: Uintp(1)})
	if err != nil {
		t.Fatal(err)
	}
	nid := n.Object.(*Network).ID
	srv, err := s.CreateServer(ctx, a, &ServerInput{NetworkID: &nid, Name: Strp("m"), IP: Strp("10.0.0.1"), Pool: Strp("tank")})
	if err != nil {
		t.Fatal(err)
	}
	// Its agent has reported (creates on a master that never did are refused).
	if err := RecordServerStats(ctx, db, srv.Object.(*Server).ID, &StatsReport{PoolHealth: "ONLINE"}); err != nil {
		t.Fatal(err)
	}
	size := int64(1)
	v, err := s.CreateVolume(ctx, a, &VolumeInput{NetworkID: &nid, Alias: Strp("v"), SizeGiB: &size})
	if err != nil {
		t.Fatal(err)
	}
	vid := v.Object.(*Volume).ID
	db.Model(&Volume{}).Where("id = ?", vid).Update("state", StateReady)
	gr, err := s.CreateGroup(ctx, a, &GroupInput{NetworkID: &nid, Name: Strp("g"), VolumeID: &vid})
	if err != nil {
		t.Fatal(err)
	}
	g = gr.Object.(*Group)
	db.Model(&Group{}).Where("id = ?", g.ID).Update("state", StateReady)
	return s, a, srv.Secret, g
}

// twoServerStore is opsStore plus a slave "s" (10.0.0.2, pool sat) of the group's
// network; reported is whether the slave has sent healthy stats.
func twoServerStore(t *testing.T, reported bool) (s *Store, a *Actor, g *Group, master, slave *Server) {
	t.Helper()
	ctx := context.Background()
	s, a, _, g = opsStore(t) // network's master "m" (10.0.0.1, pool tank)
	nid := g.NetworkID
	sl, err := s.CreateServer(ctx, a, &ServerInput{NetworkID: &nid, Name: Strp("s"), IP: Strp("10.0.0.2"), Pool: Strp("sat")})
	if err != nil {
		t.Fatal(err)
	}
	slave = sl.Object.(*Server)
	if reported {
		if err := RecordServerStats(ctx, s.DB, slave.ID, &StatsReport{PoolHealth: "ONLINE"}); err != nil {
			t.Fatal(err)
		}
	}
	master = &Server{}
	if err := s.DB.Where("network_id = ? AND role = ?", nid, ServerMaster).Take(master).Error; err != nil {
		t.Fatal(err)
	}
	return s, a, g, master, slave
}

func TestPublishNumbersVersionsAndRepeats(t *testing.T) {
	ctx := context.Background()
	s, a, _, g := opsStore(t)
	for n := 1; n <= 3; n++ {
		res, err := s.PublishGroup(ctx, a, g.ID, &PublishInput{})
		if err != nil {
			t.Fatal(err)
		}
		if v := res.Object.(*GroupVersion); v.Number != n || v.State != StatePending || res.Operation == nil || res.Operation.Kind != OpGroupPublish {
			t.Fatalf("publish %d = %+v %+v", n, v, res.Operation)
		}
	}
	two := 2
	res, err := s.PublishGroup(ctx, a, g.ID, &PublishInput{Version: &two})
	if err != nil || res.Object.(*GroupVersion).Number != 2 {
		t.Fatalf("repeat of v2 = %+v, %v", res, err)
	}
	var versions int64
	s.DB.Model(&GroupVersion{}).Where("group_id = ?", g.ID).Count(&versions)
	if versions != 3 {
		t.Errorf("%d versions after a repeat, want 3", versions)
	}
	nine := 9
	var conflict *ConflictError
	if _, err := s.PublishGroup(ctx, a, g.ID, &PublishInput{Version: &nine}); !errors.As(err, &conflict) {
		t.Errorf("publish v9 out of order: %v", err)
	}
}

func TestFinishOperationAppliesOutcomeOnce(t *testing.T) {
	ctx := context.Background()
	s, a, _, g := opsStore(t)
	res, err := s.PublishGroup(ctx, a, g.ID, &PublishInput{})
	if err != nil {
		t.Fatal(err)
	}
	op, ver := res.Operation, res.Object.(*GroupVersion)
	p := WorkflowProgress{OperationID: op.ID, WorkflowID: "group-publish-1-v1", RunID: "r1", Step: "snapshot", Percent: 10}
	if err := RecordProgress(ctx, s.DB, p); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Operation(ctx, nil, op.ID)
	if got.State != OpRunning || got.Step != "snapshot" || got.WorkflowID != "group-publish-1-v1" {
		t.Fatalf("after progress: %+v", got)
	}
	o := Outcome{WorkflowProgress: p, VersionID: ver.ID, GUID: "123"}
	for range 2 {
		if err := FinishOperation(ctx, s.DB, o); err != nil {
			t.Fatal(err)
		}
	}
	// A late progress report never reopens a finished operation.
	if err := RecordProgress(ctx, s.DB, p); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Operation(ctx, nil, op.ID)
	if got.State != OpSucceeded || got.Percent != 100 || got.FinishedAt == nil {
		t.Errorf("finished: %+v", got)
	}
	var v GroupVersion
	s.DB.Take(&v, ver.ID)
	if v.State != StateReady || v.GUID != "123" {
		t.Errorf("version: %+v", v)
	}
}

// The engine records the first step of a run that leaves it to the engine as it attaches
// the run: a queued operation starts running at that step; an operation that ended
// meanwhile keeps its end; the run's own end still lands.
func TestAttachWorkflowRecordsTheFirstStep(t *testing.T) {
	ctx := context.Background()
	s, a, _, g := opsStore(t)
	first := &WorkflowProgress{Step: "snapshot", Percent: 10, Message: "snapshotting tank/iscsi/groups/1@v1"}
	res, err := s.PublishGroup(ctx, a, g.ID, &PublishInput{})
	if err != nil {
		t.Fatal(err)
	}
	op := res.Operation
	if err := AttachWorkflow(ctx, s.DB, op.ID, "group-publish-1-v1", "r1", first); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Operation(ctx, nil, op.ID)
	if got.State != OpRunning || got.Step != "snapshot" || got.Percent != 10 || got.Message != first.Message || got.RunID != "r1" {
		t.Fatalf("after attach: %+v", got)
	}
	if err := FinishOperation(ctx, s.DB, Outcome{WorkflowProgress: WorkflowProgress{OperationID: op.ID, WorkflowID: "group-publish-1-v1", RunID: "r1"}}); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Operation(ctx, nil, op.ID); got.State != OpSucceeded || got.Step != "done" {
		t.Fatalf("after finish: %+v", got)
	}

	// Cancelled before the engine attached its run: it stays cancelled.
	res, err = s.PublishGroup(ctx, a, g.ID, &PublishInput{})
	if err != nil {
		t.Fatal(err)
	}
	op = res.Operation
	if err := s.DB.Model(&Operation{}).Where("id = ?", op.ID).Updates(map[string]any{"state": OpCancelled, "message": "cancelled"}).Error; err != nil {
		t.Fatal(err)
	}
	if err := AttachWorkflow(ctx, s.DB, op.ID, "group-publish-1-v2", "r2", first); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Operation(ctx, nil, op.ID); got.State != OpCancelled || got.Message != "cancelled" || got.Step == "snapshot" || got.RunID != "r2" {
		t.Fatalf("cancelled, then attached: %+v", got)
	}
}

func TestCreateOutcomeDoesNotUndoADelete(t *testing.T) {
	ctx := context.Background()
	s, _, _, g := opsStore(t)
	var create Operation
	if err := s.DB.Where("kind = ? AND object_id = ?", OpGroupCreate, g.ID).Take(&create).Error; err != nil {
		t.Fatal(err)
	}
	s.DB.Model(&Group{}).Where("id = ?", g.ID).Update("state", StateDeleting)
	if err := FinishOperation(ctx, s.DB, Outcome{WorkflowProgress: WorkflowProgress{OperationID: create.ID}, Failed: true, Error: "cancelled"}); err != nil {
		t.Fatal(err)
	}
	var got Group
	s.DB.Take(&got, g.ID)
	if got.State != StateDeleting {
		t.Errorf("a cancelled create changed a deleting group to %s", got.State)
	}
}

func TestRestoreOnlyDeleted(t *testing.T) {
	ctx := context.Background()
	s, a, _, g := opsStore(t)
	var conflict *ConflictError
	if _, err := s.RestoreGroup(ctx, a, g.ID); !errors.As(err, &conflict) {
		t.Fatalf("restore of a ready group: %v", err)
	}
	s.DB.Model(&Group{}).Where("id = ?", g.ID).Update("state", StateDeleted)
	res, err := s.RestoreGroup(ctx, a, g.ID)
	if err != nil || res.Operation == nil || res.Operation.Kind != OpGroupRestore || res.Object.(*Group).State != StatePending {
		t.Fatalf("restore = %+v, %v", res, err)
	}
	if _, err := s.RestoreGroup(ctx, a, g.ID); !errors.As(err, &conflict) {
		t.Errorf("second restore: %v", err)
	}
}

func TestAgentKeyAndStats(t *testing.T) {
	ctx := context.Background()
	s, a, key, _ := opsStore(t)
	if _, err := ServerByKey(ctx, s.DB, "cdk_wrong"); !errors.Is(err, ErrBadServerKey) {
		t.Errorf("wrong key: %v", err)
	}
	srv, err := ServerByKey(ctx, s.DB, " "+key+"\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := RecordServerStats(ctx, s.DB, srv.ID, &StatsReport{PoolHealth: PoolMissing}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.FindServer(ctx, a, "m")
	if got.Status != StatusPanelOK+"; pool missing" || got.PoolHealth != PoolMissing || got.StatsAt == nil {
		t.Errorf("server after stats: %+v", got)
	}
	// The master's missing pool now refuses creates with a 409 and no row.
	size := int64(1)
	var conflict *ConflictError
	if _, err := s.CreateVolume(ctx, a, &VolumeInput{NetworkID: &srv.NetworkID, Alias: Strp("x"), SizeGiB: &size}); !errors.As(err, &conflict) {
		t.Errorf("create with the pool missing: %v", err)
	}
	var vols int64
	s.DB.Model(&Volume{}).Count(&vols)
	if vols != 1 {
		t.Errorf("%d volumes, want only the first", vols)
	}
	for _, bad := range []string{"-1s", "abc", "1e9999"} {
		var invalid *ValidationError
		if _, err := s.PurgeErator(ctx, a, "m", &PurgeInput{OlderThan: Strp(bad)}); !errors.As(err, &invalid) {
			t.Errorf("older_than %q: %v", bad, err)
		}
	}
	// 0 purges everything, whatever the clocks say (Before 0); an age gives now - age.
	for _, c := range []struct {
		age        string
		lo, hi     int64
		everything bool
	}{{"0", 0, 0, true}, {"1h", time.Now().Add(-time.Hour).Unix() - 1, time.Now().Add(-time.Hour).Unix() + 60, false}} {
		created, err := s.PurgeErator(ctx, a, "m", &PurgeInput{OlderThan: Strp(c.age)})
		if err != nil {
			t.Fatalf("older_than %s: %v", c.age, err)
		}
		var in OperationInput
		if err := json.Unmarshal([]byte(created.Operation.Input), &in); err != nil {
			t.Fatal(err)
		}
		if in.Before < c.lo || in.Before > c.hi || (in.Before == 0) != c.everything {
			t.Errorf("older_than %s: before %d, want %d..%d", c.age, in.Before, c.lo, c.hi)
		}
	}
}

func TestVolumeSizeAgainstTheMastersStats(t *testing.T) {
	ctx := context.Background()
	s, a, key, _ := opsStore(t)
	srv, err := ServerByKey(ctx, s.DB, key)
	if err != nil {
		t.Fatal(err)
	}
	const gib = 1 << 30
	if err := RecordServerStats(ctx, s.DB, srv.ID, &StatsReport{PoolHealth: "ONLINE", PoolSize: 8 * gib, PoolFree: 7 * gib,
		Detail: []byte(`{"provisioned": 4294967296}`)}); err != nil {
		t.Fatal(err)
	}
	create := func(size int64) (*Created, error) {
		return s.CreateVolume(ctx, a, &VolumeInput{NetworkID: &srv.NetworkID, Alias: Strp("v"), SizeGiB: &size})
	}
	var invalid *ValidationError
	if _, err := create(9); !errors.As(err, &invalid) || invalid.Field != "vol_size" {
		t.Errorf("9 GiB on an 8 GiB pool: %v", err)
	}
	if res, err := create(5); err != nil || res.Warning == "" {
		t.Errorf("5 GiB more on 4 of 8 promised: %+v %v", res, err)
	}
	if res, err := create(2); err != nil || res.Warning != "" {
		t.Errorf("2 GiB more on 4 of 8 promised: %+v %v", res, err)
	}
	// Growing volume 1 (1 GiB) to 9 GiB is refused the same way.
	nine := int64(9)
	if _, err := s.UpdateVolume(ctx, a, 1, &VolumeInput{SizeGiB: &nine}); !errors.As(err, &invalid) {
		t.Errorf("resize beyond the pool: %v", err)
	}
}

// inputOf decodes the input recorded with an operation.
func inputOf(t *testing.T, op *Operation) OperationInput {
	t.Helper()
	var in OperationInput
	if err := json.Unmarshal([]byte(op.Input), &in); err != nil {
		t.Fatalf("operation %d's input %q: %v", op.ID, op.Input, err)
	}
	return in
}

// Every operation the store records carries its kind's object type and the complete input
// of its workflow, decided in the same transaction: the engine reads nothing else.
func TestOperationsRecordTheirWorkflowInput(t *testing.T) {
	ctx := context.Background()
	s, a, _, g := opsStore(t)
	sid := masterOf(t, s, g.NetworkID)
	at := func(in OperationInput) OperationInput {
		in.ServerID, in.Pool = sid, "tank"
		return in
	}
	byKind := func(kind string) *Operation {
		var op Operation
		if err := s.DB.Where("kind = ?", kind).Order("id DESC").Take(&op).Error; err != nil {
			t.Fatalf("no %s operation: %v", kind, err)
		}
		return &op
	}
	size := int64(2)
	if _, err := s.UpdateVolume(ctx, a, g.VolumeID, &VolumeInput{SizeGiB: &size}); err != nil {
		t.Fatal(err)
	}
	pub, err := s.PublishGroup(ctx, a, g.ID, &PublishInput{})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := s.CreateDevice(ctx, a, &DeviceInput{NetworkID: &g.NetworkID, MAC: Strp("52:54:00:00:00:01")})
	if err != nil {
		t.Fatal(err)
	}
	did := dev.Object.(*Device).ID
	if err := RecordClone(ctx, s.DB, g.NetworkID, did, pub.Object.(*GroupVersion).ID, sid); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RestoreDevice(ctx, a, did, &DeviceRestoreInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteDevice(ctx, a, did); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind   string
		object string
		id     uint
		want   OperationInput
	}{
		{OpVolumeCreate, "volume", g.VolumeID, at(OperationInput{SizeGiB: 1})},
		{OpVolumeResize, "volume", g.VolumeID, at(OperationInput{SizeGiB: 2})},
		{OpGroupCreate, "group", g.ID, at(OperationInput{VolumeID: g.VolumeID})},
		{OpGroupPublish, "group", g.ID, at(OperationInput{VersionID: pub.Object.(*GroupVersion).ID, Number: 1})},
		{OpDeviceRestore, "device", did, at(OperationInput{})},
		{OpDeviceDelete, "device", did, at(OperationInput{})},
	} {
		op := byKind(tc.kind)
		if op.ObjectType != tc.object || op.ObjectID != tc.id || !reflect.DeepEqual(inputOf(t, op), tc.want) {
			t.Errorf("%s: %s %d with %s, want %s %d with %+v", tc.kind, op.ObjectType, op.ObjectID, op.Input, tc.object, tc.id, tc.want)
		}
		if in, err := StartInput(ctx, s.DB, op); err != nil || !reflect.DeepEqual(*in, tc.want) {
			t.Errorf("%s: start input %+v %v", tc.kind, in, err)
		}
	}

	// A device that never had a disk leaves nothing to move: no operation.
	dev, err = s.CreateDevice(ctx, a, &DeviceInput{NetworkID: &g.NetworkID, MAC: Strp("52:54:00:00:00:02")})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := s.DeleteDevice(ctx, a, dev.Object.(*Device).ID); err != nil || res.Operation != nil {
		t.Fatalf("delete of a device without a disk: %+v %v", res, err)
	}
	if _, err := newOperation(s.DB, g.NetworkID, "volume-explode", 1, OperationInput{}); err == nil {
		t.Fatal("an undeclared kind was recorded")
	}
}

// Rows recorded without their server (by a panel from before recorded inputs, or a
// delete queued while the network had no master) are completed when the engine starts
// them, from the rows they act on, and the completion is kept.
func TestStartInputCompletesOlderRows(t *testing.T) {
	ctx := context.Background()
	s, a, _, g := opsStore(t)
	sid := masterOf(t, s, g.NetworkID)
	for _, tc := range []struct {
		kind, object, input string
		id                  uint
		want                OperationInput
	}{
		{OpVolumeCreate, "volume", "", g.VolumeID, OperationInput{SizeGiB: 1}},
		{OpVolumeResize, "volume", `{"vol_size":5}`, g.VolumeID, OperationInput{SizeGiB: 5}},
		{OpGroupCreate, "group", "", g.ID, OperationInput{VolumeID: g.VolumeID}},
		{OpGroupPublish, "group", `{"version_id":3,"number":2}`, g.ID, OperationInput{VersionID: 3, Number: 2}},
		{OpServerBootstrap, "server", "", sid, OperationInput{}},
		{OpEratorPurge, "server", `{"before":100}`, sid, OperationInput{Before: 100}},
		{OpDeviceRestore, "device", fmt.Sprintf(`{"server_id":%d,"from":""}`, sid), 9, OperationInput{}},
		{OpDeviceDelete, "device", fmt.Sprintf(`{"server_id":%d}`, sid), 9, OperationInput{}},
	} {
		op := &Operation{NetworkID: &g.NetworkID, Kind: tc.kind, ObjectType: tc.object, ObjectID: tc.id, State: OpQueued, Input: tc.input}
		if err := s.DB.Create(op).Error; err != nil {
			t.Fatal(err)
		}
		tc.want.ServerID, tc.want.Pool = sid, "tank"
		in, err := StartInput(ctx, s.DB, op)
		if err != nil || !reflect.DeepEqual(*in, tc.want) {
			t.Errorf("%s %q: %+v %v, want %+v", tc.kind, tc.input, in, err, tc.want)
			continue
		}
		var kept Operation
		s.DB.Take(&kept, op.ID)
		if !reflect.DeepEqual(inputOf(t, &kept), tc.want) {
			t.Errorf("%s: kept %s", tc.kind, kept.Input)
		}
	}

	// A delete queued on a network without a master waits for one.
	s.DB.Model(&Network{}).Where("id = ?", g.NetworkID).Update("master_server_id", nil)
	s.DB.Model(&Group{}).Where("id = ?", g.ID).Update("state", StateDeleted)
	res, err := s.DeleteVolume(ctx, a, g.VolumeID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := StartInput(ctx, s.DB, res.Operation); err == nil || !strings.Contains(err.Error(), "has no master server") {
		t.Fatalf("start without a master: %v", err)
	}
	s.DB.Model(&Network{}).Where("id = ?", g.NetworkID).Update("master_server_id", sid)
	if in, err := StartInput(ctx, s.DB, res.Operation); err != nil || in.ServerID != sid || in.Pool != "tank" {
		t.Fatalf("start once the network has a master: %+v %v", in, err)
	}
}

// masterOf is the id of a network's master server.
func masterOf(t *testing.T, s *Store, networkID uint) uint {
	t.Helper()
	var n Network
	if err := s.DB.Take(&n, networkID).Error; err != nil || n.MasterServerID == nil {
		t.Fatalf("network %d's master: %+v %v", networkID, n.MasterServerID, err)
	}
	return *n.MasterServerID
}
