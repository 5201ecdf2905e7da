package workflows

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
)

func TestServerPromote(t *testing.T) {
	t.Run("switches and catches up", func(t *testing.T) {
		s := newSuite(t)
		s.env.OnActivity(pa.SwitchMaster, mock.Anything, panel.SwitchMasterInput{ServerID: 2}).Return(&panel.SwitchMasterResult{}, nil).Once()
		s.env.ExecuteWorkflow(ServerPromote, ServerPromoteInput{OperationID: 4, NetworkID: 3, ServerID: 2})
		if err := s.env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		if o := s.outcome(t); o.Failed || !strings.Contains(o.Message, "server 2 is the master of network 3; 1 transfers queued") {
			t.Errorf("outcome = %+v", o)
		}
		// Every slave (the old master among them) is caught up from the new master.
		if len(s.queued) != 1 || s.queued[0] != (panel.QueueReplicationInput{NetworkID: 3}) {
			t.Errorf("queued = %+v", s.queued)
		}
	})
	t.Run("releases the holds kept for the new master", func(t *testing.T) {
		s := newSuite(t)
		s.env.OnActivity(pa.SwitchMaster, mock.Anything, panel.SwitchMasterInput{ServerID: 2}).Return(
			&panel.SwitchMasterResult{Slaves: []panel.Slave{{ID: 1, Pool: "tank"}, {ID: 5, Pool: "sat5"}}}, nil).Once()
		var released []storage.ReleaseReplicationHoldsInput
		s.env.OnActivity(sa.ReleaseReplicationHolds, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in storage.ReleaseReplicationHoldsInput) (*storage.ReleaseReplicationHoldsResult, error) {
				s.record(func() { released = append(released, in) })
				if in.Pool == "sat5" {
					return nil, temporal.NewNonRetryableApplicationError("agent away", "Unreachable", nil)
				}
				return &storage.ReleaseReplicationHoldsResult{Released: []string{"tank/iscsi/groups/1@v2"}}, nil
			})
		s.env.ExecuteWorkflow(ServerPromote, ServerPromoteInput{OperationID: 4, NetworkID: 3, ServerID: 2})
		if err := s.env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(released, func(a, b storage.ReleaseReplicationHoldsInput) int { return strings.Compare(a.Pool, b.Pool) })
		want := []storage.ReleaseReplicationHoldsInput{{Pool: "sat5", SlaveID: 2}, {Pool: "tank", SlaveID: 2}}
		// An agent that does not answer leaves its holds; the promote succeeds all the same.
		if !slices.Equal(released, want) {
			t.Errorf("released %+v, want %+v", released, want)
		}
		if o := s.outcome(t); o.Failed || len(s.queued) != 1 {
			t.Errorf("outcome = %+v, queued %+v", o, s.queued)
		}
	})
	t.Run("refused", func(t *testing.T) {
		s := newSuite(t)
		msg := `server "b" cannot become the master: it does not hold a verified copy of group 1 ("win") v3`
		s.env.OnActivity(pa.SwitchMaster, mock.Anything, mock.Anything).Return(nil,
			temporal.NewNonRetryableApplicationError(msg, panel.TypePromoteRefused, nil)).Once()
		s.env.ExecuteWorkflow(ServerPromote, ServerPromoteInput{OperationID: 4, NetworkID: 3, ServerID: 2})
		if s.env.GetWorkflowError() == nil {
			t.Fatal("want a failed workflow")
		}
		if o := s.outcome(t); !o.Failed || o.Error != msg || o.Step != "switch" {
			t.Errorf("outcome = %+v", o)
		}
		if len(s.queued) != 0 {
			t.Errorf("a refused promote queued %+v", s.queued)
		}
	})
}

// TestTriggersQueueReplication: a publish (after its snapshot is recorded), a new volume
// and a bootstrapped server each queue replication; a panel that cannot queue it does not
// fail the work already done (the reconcile catches up).
func TestTriggersQueueReplication(t *testing.T) {
	t.Run("publish", func(t *testing.T) {
		s := newSuite(t)
		s.queueErr = func(panel.QueueReplicationInput) error {
			if len(s.outcomes) != 1 {
				t.Errorf("replication queued before the version was recorded")
			}
			return nil
		}
		s.env.OnActivity(sa.Snapshot, mock.Anything, mock.Anything).Return(snapshotOK("tank/iscsi/groups/2@v3"), nil).Once()
		s.env.ExecuteWorkflow(GroupPublish, GroupPublishInput{OperationID: 8, GroupID: 2, VersionID: 11, Number: 3, ServerID: 1, Pool: "tank"})
		if err := s.env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		if len(s.queued) != 1 || s.queued[0] != (panel.QueueReplicationInput{Kind: ReplicateGroup, ObjectID: 2, Snapshot: "v3"}) {
			t.Errorf("queued = %+v", s.queued)
		}
	})
	t.Run("publish, panel refuses the queue", func(t *testing.T) {
		s := newSuite(t)
		s.queueErr = func(panel.QueueReplicationInput) error {
			return temporal.NewNonRetryableApplicationError("database gone", "X", nil)
		}
		s.env.OnActivity(sa.Snapshot, mock.Anything, mock.Anything).Return(snapshotOK("tank/iscsi/groups/2@v3"), nil).Once()
		s.env.ExecuteWorkflow(GroupPublish, GroupPublishInput{OperationID: 8, GroupID: 2, VersionID: 11, Number: 3, ServerID: 1, Pool: "tank"})
		if err := s.env.GetWorkflowError(); err != nil {
			t.Fatalf("the publish must not fail for its replication: %v", err)
		}
		if o := s.outcome(t); o.Failed {
			t.Errorf("outcome = %+v", o)
		}
	})
	t.Run("volume create", func(t *testing.T) {
		s := newSuite(t)
		s.env.OnActivity(sa.CreateVolume, mock.Anything, mock.Anything).Return(volumeOK(), nil).Once()
		s.env.ExecuteWorkflow(VolumeCreate, VolumeCreateInput{OperationID: 2, VolumeID: 5, ServerID: 1, Pool: "tank", SizeGiB: 1})
		if err := s.env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		if len(s.queued) != 1 || s.queued[0] != (panel.QueueReplicationInput{Kind: ReplicateVolume, ObjectID: 5}) {
			t.Errorf("queued = %+v", s.queued)
		}
	})
	t.Run("slave joins", func(t *testing.T) {
		s := newSuite(t)
		s.env.OnActivity(sa.Bootstrap, mock.Anything, mock.Anything).Return(bootstrapOK(), nil).Once()
		s.env.ExecuteWorkflow(ServerBootstrap, ServerBootstrapInput{OperationID: 1, ServerID: 6, Pool: "tank"})
		if err := s.env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		if len(s.queued) != 1 || s.queued[0] != (panel.QueueReplicationInput{SlaveID: 6}) {
			t.Errorf("queued = %+v", s.queued)
		}
	})
	t.Run("failed bootstrap catches nothing up", func(t *testing.T) {
		s := newSuite(t)
		s.env.OnActivity(sa.Bootstrap, mock.Anything, mock.Anything).Return(nil, temporal.NewNonRetryableApplicationError("no pool", "PoolNotFound", nil)).Once()
		s.env.ExecuteWorkflow(ServerBootstrap, ServerBootstrapInput{OperationID: 1, ServerID: 6, Pool: "tank"})
		if s.env.GetWorkflowError() == nil || len(s.queued) != 0 {
			t.Errorf("err %v, queued %+v", s.env.GetWorkflowError(), s.queued)
		}
	})
}

// TestDeleteMovesSlavesCopies: deleting on the master cancels the transfers to the slaves
// and moves each slave's copy into its erator; a slave that does not answer keeps its
// copy, and the operation says so without failing.
func TestDeleteMovesSlavesCopies(t *testing.T) {
	s := newSuite(t)
	s.slaves = []panel.Slave{{ID: 2, Pool: "tank2"}, {ID: 3, Pool: "away"}}
	s.env.OnActivity(sa.Trash, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.TrashInput) (*storage.TrashResult, error) {
			s.record(func() { s.trashed = append(s.trashed, in) })
			if in.Pool == "away" {
				return nil, temporal.NewNonRetryableApplicationError("agent away", "X", nil)
			}
			return trashOK(in), nil
		})
	s.env.ExecuteWorkflow(GroupDelete, DeleteInput{OperationID: 5, ObjectID: 7, ServerID: 1, Pool: "tank"})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var sets []string
	for _, tr := range s.trashed {
		sets = append(sets, tr.Dataset)
	}
	slices.Sort(sets[1:]) // the slaves' moves run at once
	if strings.Join(sets, " ") != "tank/iscsi/groups/7 away/iscsi/groups/7 tank2/iscsi/groups/7" {
		t.Errorf("trashed %v", sets)
	}
	if strings.Join(s.cancelled, " ") != GroupCreateID(7)+" "+ReplicateID(2, "group", 7)+" "+ReplicateID(3, "group", 7) {
		t.Errorf("cancelled %v", s.cancelled)
	}
	if o := s.outcome(t); o.Failed || !strings.Contains(o.Message, "copies left on server 3 (agent away)") {
		t.Errorf("outcome = %+v", o)
	}
}

func snapshotOK(snap string) *storage.SnapshotResult {
	return &storage.SnapshotResult{Snapshot: snap, GUID: "1234567890", Created: true}
}

func volumeOK() *storage.VolumeResult {
	return &storage.VolumeResult{Dataset: "tank/iscsi/volumes/5", Created: true, Volsize: storage.GiB, Capacity: 8 * storage.GiB}
}

func bootstrapOK() *storage.BootstrapResult {
	st := storage.PoolStatus{Capacity: 100, Available: 90}
	st.Pool.Health = "ONLINE"
	return &storage.BootstrapResult{Status: st, Created: storage.Layout("tank")}
}

func trashOK(in storage.TrashInput) *storage.TrashResult {
	return &storage.TrashResult{Trash: storage.EratorDataset(in.Pool, in.Kind, in.ID, in.Unix)}
}
