package panel

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workflows"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
)

// replicaAgent answers a server's storage activities for the replication triggers:
// snapshots on the master, renames into the erator everywhere, and the release of the
// holds a server kept for a slave (both recorded).
type replicaAgent struct {
	trashed  chan string
	released chan uint // the slave whose holds were released
}

func (f *replicaAgent) start(t *testing.T, c client.Client, serverID uint) {
	t.Helper()
	w := worker.New(c, workflows.ServerQueue(serverID), worker.Options{})
	w.RegisterActivityWithOptions(func(_ context.Context, in storage.SnapshotInput) (*storage.SnapshotResult, error) {
		return &storage.SnapshotResult{Snapshot: in.Dataset + "@" + in.Name, GUID: "4242", Created: true}, nil
	}, activity.RegisterOptions{Name: "Snapshot"})
	w.RegisterActivityWithOptions(func(_ context.Context, in storage.TrashInput) (*storage.TrashResult, error) {
		f.trashed <- in.Dataset
		return &storage.TrashResult{Trash: storage.EratorDataset(in.Pool, in.Kind, in.ID, in.Unix)}, nil
	}, activity.RegisterOptions{Name: "Trash"})
	w.RegisterActivityWithOptions(func(_ context.Context, in storage.ReleaseReplicationHoldsInput) (*storage.ReleaseReplicationHoldsResult, error) {
		f.released <- in.SlaveID
		return &storage.ReleaseReplicationHoldsResult{}, nil
	}, activity.RegisterOptions{Name: "ReleaseReplicationHolds"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
}

// TestReplicationThroughTheEngine: on the real (in-process) Temporal and database, the
// panel's start creates the reconcile schedule (again: no error), a publish queues the
// version's replication to the slave as an operation whose workflow is
// replicate-<slave>-group-<id>, a promote switches the master through its workflow, and a
// delete on the master moves the slave's copy into its erator.
func TestReplicationThroughTheEngine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store, admin, c, _ := startEngine(t, ctx)
	db := store.DB

	if _, err := c.ScheduleClient().GetHandle(ctx, workflows.ReconcileScheduleID).Describe(ctx); err != nil {
		t.Fatalf("the reconcile schedule: %v", err)
	}
	if err := EnsureSchedules(ctx, c); err != nil {
		t.Fatalf("a second panel start: %v", err)
	}

	net, err := store.CreateNetwork(ctx, admin, &models.NetworkInput{Name: models.Strp("n"), ClientID: models.Uintp(admin.ClientID)})
	if err != nil {
		t.Fatal(err)
	}
	nid := net.Object.(*models.Network).ID
	var ids []uint
	for _, name := range []string{"m", "s"} {
		srv, err := store.CreateServer(ctx, admin, &models.ServerInput{NetworkID: &nid, Name: models.Strp(name), IP: models.Strp("10.0.0." + map[string]string{"m": "1", "s": "2"}[name]), Pool: models.Strp("tank-" + name)})
		if err != nil {
			t.Fatal(err)
		}
		id := srv.Object.(*models.Server).ID
		ids = append(ids, id)
		if err := models.RecordServerStats(ctx, db, id, &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 10 << 30, PoolFree: 9 << 30}); err != nil {
			t.Fatal(err)
		}
	}
	m, s := ids[0], ids[1]
	agent := &replicaAgent{trashed: make(chan string, 10), released: make(chan uint, 10)}
	agent.start(t, c, m)
	agent.start(t, c, s)
	vol := &models.Volume{NetworkID: nid, Alias: "base", SizeGiB: 1, State: models.StateReady}
	if err := db.Create(vol).Error; err != nil {
		t.Fatal(err)
	}
	g := &models.Group{NetworkID: nid, Name: "g", VolumeID: vol.ID, State: models.StateReady}
	if err := db.Create(g).Error; err != nil {
		t.Fatal(err)
	}

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	pub, err := store.PublishGroup(ctx, admin, g.ID, &models.PublishInput{})
	if err != nil {
		t.Fatal(err)
	}
	var rep models.Operation
	waitFor("the publish's replication", func() bool {
		return db.Where("kind = ? AND object_id = ? AND workflow_id <> ''", models.OpReplicateGroup, g.ID).Limit(1).Find(&rep).Error == nil && rep.ID != 0
	})
	if pubOp, _ := store.Operation(ctx, nil, pub.Operation.ID); pubOp.State != models.OpSucceeded {
		t.Fatalf("publish = %+v", pubOp)
	}
	if rep.WorkflowID != workflows.ReplicateID(s, workflows.ReplicateGroup, g.ID) || !strings.HasPrefix(rep.Input, `{"server_id":`+itoa(s)+`,"pool":"tank-s"`) ||
		!strings.Contains(rep.Input, `"snapshot":"v1"`) {
		t.Fatalf("replication operation = %+v", rep)
	}
	if _, err := c.DescribeWorkflowExecution(ctx, rep.WorkflowID, ""); err != nil {
		t.Fatalf("the replication workflow: %v", err)
	}

	// Promote the slave once it holds everything: the workflow switches the roles.
	var v1 models.GroupVersion
	db.Where("group_id = ? AND number = 1", g.ID).Take(&v1)
	if err := models.RecordVersionCopy(ctx, db, models.VersionCopyInput{ServerID: s, VersionID: v1.ID, GUID: "4242"}); err != nil {
		t.Fatal(err)
	}
	if err := models.RecordVolumeCopy(ctx, db, models.VolumeCopyInput{ServerID: s, VolumeID: vol.ID, Snapshot: "group-1", GUID: "1"}); err != nil {
		t.Fatal(err)
	}
	prom, err := store.PromoteServer(ctx, admin, s)
	if err != nil {
		t.Fatal(err)
	}
	var op *models.Operation
	waitFor("the promote", func() bool {
		op, _ = store.Operation(ctx, nil, prom.Operation.ID)
		return op != nil && op.Finished()
	})
	var n models.Network
	db.Take(&n, nid)
	if op.State != models.OpSucceeded || n.MasterServerID == nil || *n.MasterServerID != s {
		t.Fatalf("promote: %+v, master %v", op, n.MasterServerID)
	}
	select {
	case id := <-agent.released:
		if id != s {
			t.Errorf("the promote released the holds kept for server %d, want %d (the new master)", id, s)
		}
	default:
		t.Error("the promote did not release the holds the old master kept for the new one")
	}

	// Delete the group on the new master: the old master (now a slave) moves its copy too.
	del, err := store.DeleteGroup(ctx, admin, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for range 2 {
		select {
		case ds := <-agent.trashed:
			got[ds] = true
		case <-ctx.Done():
			t.Fatalf("trashed only %v", got)
		}
	}
	if !got["tank-s/iscsi/groups/"+itoa(g.ID)] || !got["tank-m/iscsi/groups/"+itoa(g.ID)] {
		t.Fatalf("trashed %v", got)
	}
	waitFor("the delete", func() bool {
		op, _ = store.Operation(ctx, nil, del.Operation.ID)
		return op.Finished()
	})
	if op.State != models.OpSucceeded || !strings.Contains(op.Message, "the copies on 1 slaves too") {
		t.Fatalf("delete = %+v", op)
	}
}

func itoa(n uint) string { return strconv.FormatUint(uint64(n), 10) }
