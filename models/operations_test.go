package models

import (
	"context"
	"errors"
	"testing"
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
