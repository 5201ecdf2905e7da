package workflows

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
	"github.com/clusterducks/clusterducks/models"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
)

// groupPlan is group 7 (a clone of volume 5) with versions v1 and v2 on master 1,
// replicated to slave 2.
func groupPlan() *panel.ReplicationPlanResult {
	return &panel.ReplicationPlanResult{MasterID: 1, MasterAddr: "10.0.0.1:8082", MasterPool: "tank", SlavePool: "sat",
		BytesPerSecond: 1 << 20,
		Datasets: []models.ReplicationDataset{
			{Kind: "volume", ObjectID: 5, Dataset: "iscsi/volumes/5", Snapshot: "group-7"},
			{Kind: "group", ObjectID: 7, Dataset: "iscsi/groups/7", Snapshot: "v2", GUID: "g2", Origin: "iscsi/volumes/5@group-7"},
		},
		Versions: []models.ReplicationVersion{{ID: 71, Number: 1, GUID: "g1"}, {ID: 72, Number: 2, GUID: "g2"}},
	}
}

type replCalls struct {
	transfers []storage.ReplicateInput
	copies    []panel.RecordVersionCopyInput
	listed    []storage.SnapshotsInput
	verified  []panel.RecordVerifiedInput
	watched   []panel.WatchTransferInput
	// cancelled counts the watchers that saw their cancel.
	cancelled int
	// watching, when set, makes each transfer wait for its watcher to start (the test
	// environment would otherwise cancel a watcher that never ran).
	watching chan string
	// slaveHasGroup: before any transfer, the slave holds the group's dataset.
	slaveHasGroup bool
}

// masterVolumeGUIDs are the guids of the master's volume snapshots in these tests.
var masterVolumeGUIDs = map[string]string{"group-3": "o3", "group-7": "o7", "group-9": "o9"}

func (s *suite) onReplication(plan *panel.ReplicationPlanResult, slaveSnaps []zfs.Snap, transfer func(storage.ReplicateInput) (*storage.ReplicateResult, error)) *replCalls {
	c := &replCalls{}
	s.env.OnActivity(pa.ReplicationPlan, mock.Anything, mock.Anything).Return(plan, nil)
	s.env.OnActivity(sa.Snapshots, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.SnapshotsInput) (*storage.SnapshotsResult, error) {
			s.record(func() { c.listed = append(c.listed, in) })
			if in.Pool == "tank" { // the master's volume
				return &storage.SnapshotsResult{Exists: true, Snapshots: []zfs.Snap{{Name: "group-3", GUID: "o3"}, {Name: "group-7", GUID: "o7"}, {Name: "group-9", GUID: "o9"}}}, nil
			}
			if len(c.transfers) == 0 && !c.slaveHasGroup {
				return &storage.SnapshotsResult{Snapshots: []zfs.Snap{}}, nil
			}
			return &storage.SnapshotsResult{Exists: true, Snapshots: slaveSnaps}, nil
		}).Maybe()
	s.env.OnActivity(sa.Replicate, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.ReplicateInput) (*storage.ReplicateResult, error) {
			s.record(func() { c.transfers = append(c.transfers, in) })
			if c.watching != nil {
				select {
				case <-c.watching:
				case <-time.After(10 * time.Second):
					return nil, temporal.NewNonRetryableApplicationError("no watcher started", "Test", nil)
				}
			}
			res, err := transfer(in)
			if res != nil && res.GUID == "" {
				// The agent takes a volume snapshot's guid from the master's answer.
				res.GUID = masterVolumeGUIDs[in.Snapshot]
			}
			return res, err
		})
	s.env.OnActivity(pa.RecordVersionCopy, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in panel.RecordVersionCopyInput) (*panel.RecordVersionCopyResult, error) {
			s.record(func() { c.copies = append(c.copies, in) })
			return &panel.RecordVersionCopyResult{}, nil
		}).Maybe()
	s.recordVerified(&c.verified).Maybe()
	s.env.OnActivity(pa.WatchTransfer, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in panel.WatchTransferInput) (*panel.WatchTransferResult, error) {
			s.record(func() { c.watched = append(c.watched, in) })
			if c.watching != nil {
				c.watching <- in.Label
			}
			<-ctx.Done()
			s.record(func() { c.cancelled++ })
			return nil, ctx.Err()
		}).Maybe()
	return c
}

func TestReplicateGroupOriginFirstThenVersions(t *testing.T) {
	s := newSuite(t)
	c := s.onReplication(groupPlan(), []zfs.Snap{{Name: "v1", GUID: "g1"}, {Name: "v2", GUID: "g2"}},
		func(in storage.ReplicateInput) (*storage.ReplicateResult, error) {
			return &storage.ReplicateResult{Snapshot: in.Snapshot, GUID: in.GUID, Bytes: 1000}, nil
		})
	c.watching = make(chan string, 1)
	s.env.ExecuteWorkflow(Replicate, ReplicateInput{NetworkID: 3, SlaveID: 2, Kind: ReplicateGroup, ObjectID: 7, OperationID: 9})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res ReplicateResult
	if err := s.env.GetWorkflowResult(&res); err != nil || res.GUID != "g2" || res.Bytes != 2000 || !slices.Equal(res.Versions, []uint{71, 72}) {
		t.Errorf("result %+v %v", res, err)
	}
	if len(c.transfers) != 2 {
		t.Fatalf("transfers %+v", c.transfers)
	}
	vol, grp := c.transfers[0], c.transfers[1]
	// The volume's guid comes with the master's answer to the slave (the panel records
	// none, and the master is not listed first), the group's from the panel's record.
	if vol.Dataset != "iscsi/volumes/5" || vol.Snapshot != "group-7" || vol.GUID != "" || vol.Pool != "sat" ||
		vol.Master.ServerID != 1 || vol.Master.NetworkID != 3 || vol.MasterAddr != "10.0.0.1:8082" || vol.BytesPerSecond != 1<<20 {
		t.Errorf("volume transfer %+v", vol)
	}
	for _, l := range c.listed {
		if l.Pool == "tank" {
			t.Errorf("the master was listed for a named snapshot's guid: %+v", c.listed)
		}
	}
	if grp.Dataset != "iscsi/groups/7" || grp.GUID != "g2" || grp.Origin != "iscsi/volumes/5@group-7" {
		t.Errorf("group transfer %+v", grp)
	}
	if len(c.copies) != 2 || c.copies[0] != (panel.RecordVersionCopyInput{ServerID: 2, VersionID: 71, GUID: "g1"}) || c.copies[1].VersionID != 72 {
		t.Errorf("copies %+v", c.copies)
	}
	if o := s.outcome(t); o.Failed || o.OperationID != 9 || o.Percent != 100 {
		t.Errorf("outcome %+v", o)
	}
	if len(s.steps) < 3 {
		t.Errorf("progress steps %+v", s.steps)
	}
	// The volume's snapshot, verified by guid, is the slave's copy of the volume.
	if len(c.verified) != 1 || c.verified[0].ServerID != 2 || c.verified[0].Kind != ReplicateVolume || c.verified[0].ObjectID != 5 ||
		len(c.verified[0].Both) != 1 || c.verified[0].Both[0] != (models.SnapshotGUID{Name: "group-7", GUID: "o7"}) {
		t.Errorf("verified %+v", c.verified)
	}
	// Each transfer had a watcher copying its heartbeats to operation 9 between its
	// percents, cancelled once the transfer ended.
	if len(c.watched) != 2 || c.watched[0].OperationID != 9 || c.watched[0].Activity != "Replicate" ||
		c.watched[0].From != 5 || c.watched[0].To != 50 || c.watched[1].From != 50 || c.watched[1].To != 95 ||
		c.watched[1].Label != "iscsi/groups/7@v2 from server 1" {
		t.Errorf("watchers %+v", c.watched)
	}
}

// TestReplicateVersionsFromTheTransfersListing: an agent that returns the slave's listing
// with the transfer spares the Snapshots activity after it; the versions are recorded
// from that listing.
func TestReplicateVersionsFromTheTransfersListing(t *testing.T) {
	s := newSuite(t)
	listed := []zfs.Snap{{Name: "v1", GUID: "g1"}, {Name: "v2", GUID: "g2"}}
	c := s.onReplication(groupPlan(), []zfs.Snap{{Name: "v1", GUID: "wrong"}},
		func(in storage.ReplicateInput) (*storage.ReplicateResult, error) {
			return &storage.ReplicateResult{Snapshot: in.Snapshot, GUID: in.GUID, Snapshots: listed}, nil
		})
	s.env.ExecuteWorkflow(Replicate, ReplicateInput{NetworkID: 3, SlaveID: 2, Kind: ReplicateGroup, ObjectID: 7, OperationID: 9})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	// The slave is listed once, before the transfers (does it hold the group?).
	onSlave := 0
	for _, l := range c.listed {
		if l.Pool == "sat" {
			onSlave++
		}
	}
	if onSlave != 1 {
		t.Errorf("listings %+v: want one on the slave", c.listed)
	}
	if len(c.copies) != 2 || c.copies[0].GUID != "g1" || c.copies[1].GUID != "g2" {
		t.Errorf("copies %+v", c.copies)
	}
}

// TestReplicateSkipsTheOriginTheSlaveHas: a slave holding the group already gets only
// the group's increment, not a turn of its origin volume.
func TestReplicateSkipsTheOriginTheSlaveHas(t *testing.T) {
	s := newSuite(t)
	c := s.onReplication(groupPlan(), []zfs.Snap{{Name: "v1", GUID: "g1"}, {Name: "v2", GUID: "g2"}},
		func(in storage.ReplicateInput) (*storage.ReplicateResult, error) {
			return &storage.ReplicateResult{Snapshot: in.Snapshot, GUID: in.GUID}, nil
		})
	c.slaveHasGroup = true
	s.env.ExecuteWorkflow(Replicate, ReplicateInput{NetworkID: 3, SlaveID: 2, Kind: ReplicateGroup, ObjectID: 7, OperationID: 9})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(c.transfers) != 1 || c.transfers[0].Dataset != "iscsi/groups/7" || c.transfers[0].GUID != "g2" {
		t.Errorf("transfers %+v", c.transfers)
	}
	if len(c.copies) != 2 || len(c.verified) != 0 {
		t.Errorf("copies %+v, verified volumes %+v", c.copies, c.verified)
	}
	for _, l := range c.listed {
		if l.Pool == "tank" {
			t.Errorf("the master was asked for its volume's snapshots: %+v", c.listed)
		}
	}
}

func TestReplicateWithoutOperationHasNoWatcher(t *testing.T) {
	s := newSuite(t)
	c := s.onReplication(groupPlan(), []zfs.Snap{{Name: "v1", GUID: "g1"}, {Name: "v2", GUID: "g2"}},
		func(in storage.ReplicateInput) (*storage.ReplicateResult, error) {
			return &storage.ReplicateResult{Snapshot: in.Snapshot, GUID: in.GUID}, nil
		})
	s.noOperation = true
	s.env.ExecuteWorkflow(Replicate, ReplicateInput{NetworkID: 3, SlaveID: 2, Kind: ReplicateGroup, ObjectID: 7})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(c.watched) != 0 || len(c.transfers) != 2 {
		t.Errorf("watchers %+v, transfers %d", c.watched, len(c.transfers))
	}
}

func TestReplicateRecordsOnlyVerifiedVersions(t *testing.T) {
	s := newSuite(t)
	// The slave's v2 has another guid (say, a snapshot taken there by hand): no copy of v2.
	c := s.onReplication(groupPlan(), []zfs.Snap{{Name: "v1", GUID: "g1"}, {Name: "v2", GUID: "zz"}},
		func(in storage.ReplicateInput) (*storage.ReplicateResult, error) {
			return &storage.ReplicateResult{Snapshot: in.Snapshot, GUID: in.GUID}, nil
		})
	s.env.ExecuteWorkflow(Replicate, ReplicateInput{NetworkID: 3, SlaveID: 2, Kind: ReplicateGroup, ObjectID: 7, OperationID: 9})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(c.copies) != 1 || c.copies[0].VersionID != 71 {
		t.Errorf("copies %+v", c.copies)
	}
}

func TestReplicateFailsOnAGUIDMismatch(t *testing.T) {
	s := newSuite(t)
	c := s.onReplication(groupPlan(), nil, func(in storage.ReplicateInput) (*storage.ReplicateResult, error) {
		if in.Dataset == "iscsi/groups/7" {
			return nil, temporal.NewNonRetryableApplicationError("received guid zz, master's g2", storage.TypeGUIDMismatch, nil)
		}
		return &storage.ReplicateResult{Snapshot: in.Snapshot, GUID: in.GUID}, nil
	})
	s.env.ExecuteWorkflow(Replicate, ReplicateInput{NetworkID: 3, SlaveID: 2, Kind: ReplicateGroup, ObjectID: 7, OperationID: 9})
	if err := s.env.GetWorkflowError(); err == nil {
		t.Fatal("a guid mismatch succeeded")
	}
	if len(c.copies) != 0 || len(c.transfers) != 2 {
		t.Errorf("copies %+v transfers %d", c.copies, len(c.transfers))
	}
	if o := s.outcome(t); !o.Failed || o.Step != "transfer" {
		t.Errorf("outcome %+v", o)
	}
}

func TestReplicateRetriesACutTransfer(t *testing.T) {
	s := newSuite(t)
	plan := groupPlan()
	plan.Datasets, plan.Versions = plan.Datasets[:1], nil
	plan.Datasets[0].Snapshot = "" // the master's newest
	attempts := 0
	c := s.onReplication(plan, nil, func(in storage.ReplicateInput) (*storage.ReplicateResult, error) {
		attempts++
		if attempts < 3 {
			return nil, temporal.NewApplicationError("stalled: no byte from the master for 1m0s", "")
		}
		return &storage.ReplicateResult{Snapshot: in.Snapshot, GUID: in.GUID, Bytes: 5, Resumed: true}, nil
	})
	s.env.ExecuteWorkflow(Replicate, ReplicateInput{NetworkID: 3, SlaveID: 2, Kind: ReplicateVolume, ObjectID: 5, OperationID: 9})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if attempts != 3 || c.transfers[2].Snapshot != "group-9" || c.transfers[2].GUID != "o9" {
		t.Errorf("attempts %d, last %+v", attempts, c.transfers[len(c.transfers)-1])
	}
}

// An agent older than the panel refuses a transfer without the master's guid (BadInput):
// the workflow then asks the master for it, and the transfer goes with it.
func TestReplicateOlderAgentGetsTheGUID(t *testing.T) {
	s := newSuite(t)
	plan := groupPlan()
	plan.Datasets, plan.Versions = plan.Datasets[:1], nil
	c := s.onReplication(plan, nil, func(in storage.ReplicateInput) (*storage.ReplicateResult, error) {
		if in.GUID == "" {
			return nil, temporal.NewNonRetryableApplicationError("replicate: bad input", "BadInput", nil)
		}
		return &storage.ReplicateResult{Snapshot: in.Snapshot, GUID: in.GUID, Bytes: 5}, nil
	})
	s.env.ExecuteWorkflow(Replicate, ReplicateInput{NetworkID: 3, SlaveID: 2, Kind: ReplicateVolume, ObjectID: 5, OperationID: 9})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(c.transfers) != 2 || c.transfers[0].GUID != "" || c.transfers[1].GUID != "o7" || c.transfers[1].Snapshot != "group-7" {
		t.Errorf("transfers %+v", c.transfers)
	}
	if len(c.verified) != 1 || c.verified[0].Both[0] != (models.SnapshotGUID{Name: "group-7", GUID: "o7"}) {
		t.Errorf("verified %+v", c.verified)
	}
}

func TestReplicatePlanRefused(t *testing.T) {
	s := newSuite(t)
	s.env.OnActivity(pa.ReplicationPlan, mock.Anything, mock.Anything).Return(nil,
		temporal.NewNonRetryableApplicationError("server 1 is the network's master", "NotFound", nil))
	s.env.ExecuteWorkflow(Replicate, ReplicateInput{NetworkID: 3, SlaveID: 1, Kind: ReplicateVolume, ObjectID: 5, OperationID: 4})
	if err := s.env.GetWorkflowError(); err == nil {
		t.Fatal("a refused plan succeeded")
	}
	if o := s.outcome(t); !o.Failed || o.Step != "plan" {
		t.Errorf("outcome %+v", o)
	}
}

// TestReplicateCTemplate: a ctemplate comes from its server (the plan's master) up to the
// version asked for, its guid named by that server's answer; each version the slave then holds
// with the same guid is recorded (not one whose guid differs), for containers to clone.
func TestReplicateCTemplate(t *testing.T) {
	s := newSuite(t)
	plan := &panel.ReplicationPlanResult{MasterID: 1, MasterAddr: "10.0.0.1:8082", MasterPool: "tank", SlavePool: "sat",
		Datasets: []models.ReplicationDataset{{Kind: ReplicateCTemplate, ObjectID: 4, Dataset: "iscsi/ctemplates/4", Snapshot: "v3"}}}
	c := &replCalls{}
	s.env.OnActivity(pa.ReplicationPlan, mock.Anything, mock.Anything).Return(plan, nil)
	s.env.OnActivity(sa.Snapshots, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.SnapshotsInput) (*storage.SnapshotsResult, error) {
			s.record(func() { c.listed = append(c.listed, in) })
			if in.Pool == "tank" {
				return &storage.SnapshotsResult{Exists: true, Snapshots: []zfs.Snap{{Name: "v1", GUID: "c1"}, {Name: "v2", GUID: "c2"}, {Name: "v3", GUID: "c3"}}}, nil
			}
			return &storage.SnapshotsResult{Exists: true, Snapshots: []zfs.Snap{{Name: "v1", GUID: "c1"}, {Name: "v2", GUID: "zz"}, {Name: "v3", GUID: "c3"}}}, nil
		})
	s.env.OnActivity(sa.Replicate, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.ReplicateInput) (*storage.ReplicateResult, error) {
			s.record(func() { c.transfers = append(c.transfers, in) })
			return &storage.ReplicateResult{Snapshot: in.Snapshot, GUID: "c3", Bytes: 500}, nil // named by the master's answer
		})
	s.recordVerified(&c.verified)
	s.env.OnActivity(pa.WatchTransfer, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, _ panel.WatchTransferInput) (*panel.WatchTransferResult, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}).Maybe()
	s.env.ExecuteWorkflow(Replicate, ReplicateInput{NetworkID: 3, SlaveID: 2, Kind: ReplicateCTemplate, ObjectID: 4, Snapshot: "v3", OperationID: 9})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(c.transfers) != 1 || c.transfers[0].Dataset != "iscsi/ctemplates/4" || c.transfers[0].Snapshot != "v3" || c.transfers[0].GUID != "" ||
		c.transfers[0].Origin != "" || c.transfers[0].Pool != "sat" || c.transfers[0].Master.ServerID != 1 {
		t.Fatalf("transfers %+v", c.transfers)
	}
	want := []panel.RecordVerifiedInput{{ServerID: 2, Kind: ReplicateCTemplate, ObjectID: 4,
		Both: []models.SnapshotGUID{{Name: "v1", GUID: "c1"}, {Name: "v3", GUID: "c3"}}}}
	if !slices.EqualFunc(c.verified, want, func(a, b panel.RecordVerifiedInput) bool {
		return a.ServerID == b.ServerID && a.Kind == b.Kind && a.ObjectID == b.ObjectID && slices.Equal(a.Both, b.Both)
	}) {
		t.Errorf("verified %+v, want %+v", c.verified, want)
	}
	if o := s.outcome(t); o.Failed || o.Bytes != 500 {
		t.Errorf("outcome %+v", o)
	}
}
