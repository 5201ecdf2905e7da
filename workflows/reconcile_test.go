package workflows

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
	"github.com/clusterducks/clusterducks/models"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
)

// TestReconcile: slaves are compared with the master by guid, never by name; a slave
// missing the master's newest snapshot (or the whole dataset) gets a replication queued,
// one that holds it (even under another name) does not, and an agent that does not
// answer is skipped for this round. Each dataset is listed once.
func TestReconcile(t *testing.T) {
	s := newSuite(t)
	s.noOperation = true
	tg := func(kind string, obj, slave uint, pool string) models.ReplicaTarget {
		return models.ReplicaTarget{NetworkID: 1, Kind: kind, ObjectID: obj, MasterID: 1, MasterPool: "m", SlaveID: slave, SlavePool: pool}
	}
	s.env.OnActivity(pa.ReplicaTargets, mock.Anything, mock.Anything).Return(&panel.ReplicaTargetsResult{Targets: []models.ReplicaTarget{
		tg("group", 4, 2, "current"), tg("group", 4, 3, "behind"), tg("group", 4, 5, "empty"), tg("group", 4, 6, "down"),
		tg("volume", 9, 2, "current"),
	}}, nil).Once()
	listings := map[string]*storage.SnapshotsResult{
		"m/iscsi/groups/4":        {Exists: true, Snapshots: []zfs.Snap{{Name: "v1", GUID: "11"}, {Name: "v2", GUID: "22"}}},
		"current/iscsi/groups/4":  {Exists: true, Snapshots: []zfs.Snap{{Name: "v1", GUID: "11"}, {Name: "renamed", GUID: "22"}}},
		"behind/iscsi/groups/4":   {Exists: true, Snapshots: []zfs.Snap{{Name: "v1", GUID: "11"}, {Name: "v2", GUID: "99"}}},
		"empty/iscsi/groups/4":    {Snapshots: []zfs.Snap{}},
		"m/iscsi/volumes/9":       {Exists: true, Snapshots: []zfs.Snap{{Name: "group-4", GUID: "7"}}},
		"current/iscsi/volumes/9": {Exists: true, Snapshots: []zfs.Snap{{Name: "group-4", GUID: "7"}}},
	}
	calls := map[string]int{}
	s.env.OnActivity(sa.Snapshots, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.SnapshotsInput) (*storage.SnapshotsResult, error) {
			full := in.Pool + "/" + in.Dataset
			s.record(func() { calls[full]++ })
			if r, ok := listings[full]; ok {
				return r, nil
			}
			return nil, temporal.NewNonRetryableApplicationError("agent away", "X", nil)
		})
	var verified []panel.RecordVerifiedInput
	s.recordVerified(&verified)
	s.env.ExecuteWorkflow(Reconcile, ReconcileInput{})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res ReconcileResult
	if err := s.env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res != (ReconcileResult{Compared: 4, Queued: 2, Skipped: 1}) {
		t.Errorf("result = %+v", res)
	}
	want := []panel.QueueReplicationInput{{Kind: "group", ObjectID: 4, SlaveID: 3}, {Kind: "group", ObjectID: 4, SlaveID: 5}}
	if len(s.queued) != 2 || s.queued[0] != want[0] || s.queued[1] != want[1] {
		t.Errorf("queued = %+v", s.queued)
	}
	// Verified copies are recorded, by guid: v1 and v2 (named "renamed") on the current
	// slave, v1 only on the one behind, the volume's snapshot on the current slave.
	want2 := []panel.RecordVerifiedInput{
		{ServerID: 2, Kind: "group", ObjectID: 4, Both: []models.SnapshotGUID{{Name: "v1", GUID: "11"}, {Name: "v2", GUID: "22"}}},
		{ServerID: 3, Kind: "group", ObjectID: 4, Both: []models.SnapshotGUID{{Name: "v1", GUID: "11"}}},
		{ServerID: 2, Kind: "volume", ObjectID: 9, Both: []models.SnapshotGUID{{Name: "group-4", GUID: "7"}}},
	}
	if !reflect.DeepEqual(verified, want2) {
		t.Errorf("verified = %+v", verified)
	}
	if calls["m/iscsi/groups/4"] != 1 {
		t.Errorf("the master's dataset was listed %d times", calls["m/iscsi/groups/4"])
	}
}

// TestReconcileVDisks: a vdisk is snapshotted once on the server it lives on (whichever
// role it has) before its backups are compared by guid; a backup that lacks the newest
// snapshot gets a replication queued, from that server; nothing is recorded as a copy.
func TestReconcileVDisks(t *testing.T) {
	s := newSuite(t)
	s.noOperation = true
	tg := func(slave uint, pool string) models.ReplicaTarget {
		return models.ReplicaTarget{NetworkID: 1, Kind: ReplicateVDisk, ObjectID: 5, MasterID: 2, MasterPool: "sat", SlaveID: slave, SlavePool: pool}
	}
	s.env.OnActivity(pa.ReplicaTargets, mock.Anything, mock.Anything).Return(&panel.ReplicaTargetsResult{Targets: []models.ReplicaTarget{
		tg(1, "tank"), tg(3, "current"),
	}}, nil).Once()
	var snapped []storage.SnapshotInput
	newest := zfs.Snap{Name: "backup-1", GUID: "41"}
	s.env.OnActivity(sa.SnapshotWritten, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.SnapshotInput) (*storage.SnapshotResult, error) {
			s.record(func() { snapped = append(snapped, in) })
			newest = zfs.Snap{Name: in.Name, GUID: "42"}
			return &storage.SnapshotResult{Snapshot: in.Dataset + "@" + in.Name, GUID: "42", Created: true}, nil
		})
	s.env.OnActivity(sa.Snapshots, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.SnapshotsInput) (*storage.SnapshotsResult, error) {
			switch in.Pool + "/" + in.Dataset {
			case "sat/vdisks/5":
				return &storage.SnapshotsResult{Exists: true, Snapshots: []zfs.Snap{{Name: "move-1", GUID: "40"}, newest}}, nil
			case "tank/vdisks/5":
				return &storage.SnapshotsResult{Exists: true, Snapshots: []zfs.Snap{{Name: "move-1", GUID: "40"}}}, nil
			case "current/vdisks/5":
				return &storage.SnapshotsResult{Exists: true, Snapshots: []zfs.Snap{{Name: "move-1", GUID: "40"}, newest}}, nil
			}
			return nil, temporal.NewNonRetryableApplicationError("no such dataset "+in.Pool+"/"+in.Dataset, "X", nil)
		})
	s.env.ExecuteWorkflow(Reconcile, ReconcileInput{})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res ReconcileResult
	if err := s.env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if len(snapped) != 1 || snapped[0].Dataset != "sat/vdisks/5" || !strings.HasPrefix(snapped[0].Name, "backup-") {
		t.Fatalf("snapshots taken: %+v; want one of sat/vdisks/5", snapped)
	}
	if res != (ReconcileResult{Compared: 2, Queued: 1}) {
		t.Errorf("result = %+v", res)
	}
	if want := (panel.QueueReplicationInput{Kind: ReplicateVDisk, ObjectID: 5, SlaveID: 1}); len(s.queued) != 1 || s.queued[0] != want {
		t.Errorf("queued = %+v, want %+v", s.queued, want)
	}
}

// TestReconcilePrunesVDiskBackups: after comparing, each vdisk keeps its newest
// storage.VDiskBackupKeep backup snapshots on the server it lives on and on every backup
// server, plus the newest snapshot each backup server shares with it (by guid: the lagging
// backup's base stays everywhere); a held snapshot is kept by the agent; a vdisk one of
// whose servers did not answer is not pruned this round.
func TestReconcilePrunesVDiskBackups(t *testing.T) {
	s := newSuite(t)
	s.noOperation = true
	tg := func(vdisk, slave uint, pool string) models.ReplicaTarget {
		return models.ReplicaTarget{NetworkID: 1, Kind: ReplicateVDisk, ObjectID: vdisk, MasterID: 2, MasterPool: "sat", SlaveID: slave, SlavePool: pool}
	}
	s.env.OnActivity(pa.ReplicaTargets, mock.Anything, mock.Anything).Return(&panel.ReplicaTargetsResult{Targets: []models.ReplicaTarget{
		tg(5, 1, "tank"), tg(5, 3, "current"), tg(6, 1, "tank"), tg(6, 4, "down"),
	}}, nil).Once()
	s.env.OnActivity(sa.SnapshotWritten, mock.Anything, mock.Anything).Return(&storage.SnapshotResult{GUID: "x"}, nil)
	backups := func(from, to int) []zfs.Snap {
		out := []zfs.Snap{{Name: "move-1", GUID: "m"}}
		for n := from; n <= to; n++ {
			out = append(out, zfs.Snap{Name: "backup-" + itoa(n), GUID: "g" + itoa(n)})
		}
		return out
	}
	listings := map[string][]zfs.Snap{
		"sat/vdisks/5": backups(1, 10), "tank/vdisks/5": backups(1, 3), "current/vdisks/5": backups(1, 10),
		"sat/vdisks/6": backups(1, 12), "tank/vdisks/6": backups(1, 12),
	}
	s.env.OnActivity(sa.Snapshots, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.SnapshotsInput) (*storage.SnapshotsResult, error) {
			if l, ok := listings[in.Pool+"/"+in.Dataset]; ok {
				return &storage.SnapshotsResult{Exists: true, Snapshots: l}, nil
			}
			return nil, temporal.NewNonRetryableApplicationError("agent away", "X", nil)
		})
	var pruned []string
	s.env.OnActivity(sa.PruneSnapshots, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.PruneSnapshotsInput) (*storage.PruneSnapshotsResult, error) {
			s.record(func() { pruned = append(pruned, in.Pool+"/"+in.Dataset+" "+strings.Join(in.Names, ",")) })
			res := &storage.PruneSnapshotsResult{}
			for _, n := range in.Names {
				if in.Pool == "current" && n == "backup-2" {
					res.Kept = append(res.Kept, storage.Kept{Name: n, Reason: "dataset is busy"})
					continue
				}
				res.Destroyed = append(res.Destroyed, n)
			}
			return res, nil
		})
	s.env.ExecuteWorkflow(Reconcile, ReconcileInput{})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res ReconcileResult
	if err := s.env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	slices.Sort(pruned)
	want := []string{"current/vdisks/5 backup-1,backup-2", "sat/vdisks/5 backup-1,backup-2"}
	if !reflect.DeepEqual(pruned, want) {
		t.Errorf("pruned %q, want %q", pruned, want)
	}
	if res.Pruned != 3 {
		t.Errorf("result %+v: want 3 destroyed", res)
	}
}

// TestReconcileCTemplates: a ctemplate's copy is compared by guid with its server's
// dataset: the versions the slave holds are recorded, and a slave behind is caught up.
func TestReconcileCTemplates(t *testing.T) {
	s := newSuite(t)
	s.noOperation = true
	s.env.OnActivity(pa.ReplicaTargets, mock.Anything, mock.Anything).Return(&panel.ReplicaTargetsResult{Targets: []models.ReplicaTarget{
		{NetworkID: 1, Kind: ReplicateCTemplate, ObjectID: 4, MasterID: 1, MasterPool: "m", SlaveID: 2, SlavePool: "s"},
	}}, nil).Once()
	listings := map[string]*storage.SnapshotsResult{
		"m/iscsi/ctemplates/4": {Exists: true, Snapshots: []zfs.Snap{{Name: "v1", GUID: "11"}, {Name: "v2", GUID: "22"}}},
		"s/iscsi/ctemplates/4": {Exists: true, Snapshots: []zfs.Snap{{Name: "v1", GUID: "11"}}},
	}
	s.env.OnActivity(sa.Snapshots, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.SnapshotsInput) (*storage.SnapshotsResult, error) {
			if r, ok := listings[in.Pool+"/"+in.Dataset]; ok {
				return r, nil
			}
			return nil, temporal.NewNonRetryableApplicationError("unexpected listing "+in.Pool+"/"+in.Dataset, "X", nil)
		})
	var verified []panel.RecordVerifiedInput
	s.recordVerified(&verified)
	s.env.ExecuteWorkflow(Reconcile, ReconcileInput{})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	want := []panel.RecordVerifiedInput{{ServerID: 2, Kind: ReplicateCTemplate, ObjectID: 4, Both: []models.SnapshotGUID{{Name: "v1", GUID: "11"}}}}
	if !reflect.DeepEqual(verified, want) {
		t.Errorf("verified = %+v", verified)
	}
	if q := (panel.QueueReplicationInput{Kind: ReplicateCTemplate, ObjectID: 4, SlaveID: 2}); len(s.queued) != 1 || s.queued[0] != q {
		t.Errorf("queued = %+v", s.queued)
	}
}
