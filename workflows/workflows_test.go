package workflows

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
)

// suite is one workflow under the SDK's test environment with the panel activities
// recorded (every progress step and the final outcome).
type suite struct {
	env      *testsuite.TestWorkflowEnvironment
	steps    []models.WorkflowProgress
	outcomes []models.Outcome
	trashed  []storage.TrashInput
	// cancelled lists the workflows the one under test asked to cancel.
	cancelled []string
	// queued lists the replications asked for; slaves is what SlavesOf answers.
	queued []panel.QueueReplicationInput
	slaves []panel.Slave
	// noOperation: the workflow under test reports on no operation (no progress, no finish).
	noOperation bool
	// queueErr, when set, is what QueueReplication answers instead.
	queueErr func(panel.QueueReplicationInput) error
	// mu guards what the activity mocks record: the test environment runs a workflow's
	// concurrent activities on their own goroutines.
	mu sync.Mutex
}

// record runs f (a mock's bookkeeping) under the suite's lock.
func (s *suite) record(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// A checksum of its own spares the test environment hashing the whole test binary (its
// default) inside the first activity a workflow starts, which on a loaded machine can
// outlast the deadlock detector's second.
func init() { worker.SetBinaryChecksum("workflows-test") }

func newSuite(t *testing.T) *suite {
	var ts testsuite.WorkflowTestSuite
	ts.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	s := &suite{env: ts.NewTestWorkflowEnvironment()}
	s.env.RegisterActivity(&panel.Activities{})
	s.env.RegisterActivity(&storage.Activities{})
	Register(s.env)
	s.env.OnActivity(pa.Progress, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in panel.ProgressInput) (*panel.ProgressResult, error) {
			s.record(func() { s.steps = append(s.steps, in) })
			return &panel.ProgressResult{}, nil
		}).Maybe() // volume create, group create and publish leave their one step to the engine (Start.First)
	s.env.OnActivity(pa.Finish, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in panel.FinishInput) (*panel.FinishResult, error) {
			s.record(func() { s.outcomes = append(s.outcomes, in) })
			return &panel.FinishResult{}, nil
		})
	s.env.OnRequestCancelExternalWorkflow(mock.Anything, mock.Anything, mock.Anything).Return(
		func(_, wid, _ string) error {
			s.record(func() { s.cancelled = append(s.cancelled, wid) })
			return nil
		}).Maybe()
	s.env.OnActivity(pa.QueueReplication, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in panel.QueueReplicationInput) (*panel.QueueReplicationResult, error) {
			if s.queueErr != nil {
				if err := s.queueErr(in); err != nil {
					return nil, err
				}
			}
			s.record(func() { s.queued = append(s.queued, in) })
			return &panel.QueueReplicationResult{OperationIDs: []uint{uint(100 + len(s.queued))}}, nil
		}).Maybe()
	s.env.OnActivity(pa.SlavesOf, mock.Anything, mock.Anything).Return(
		func(context.Context, panel.SlavesOfInput) (*panel.SlavesOfResult, error) {
			return &panel.SlavesOfResult{Slaves: s.slaves}, nil
		}).Maybe()
	t.Cleanup(func() {
		if !s.noOperation {
			s.env.AssertExpectations(t)
		}
	})
	return s
}

// onTrash records undo and delete renames into the erator.
func (s *suite) onTrash(missing bool) {
	s.env.OnActivity(sa.Trash, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.TrashInput) (*storage.TrashResult, error) {
			s.record(func() { s.trashed = append(s.trashed, in) })
			return &storage.TrashResult{Trash: storage.EratorDataset(in.Pool, in.Kind, in.ID, in.Unix), Missing: missing}, nil
		})
}

// outcome returns the one final outcome the workflow recorded.
func (s *suite) outcome(t *testing.T) models.Outcome {
	t.Helper()
	if len(s.outcomes) != 1 {
		t.Fatalf("recorded %d outcomes, want exactly 1: %+v", len(s.outcomes), s.outcomes)
	}
	return s.outcomes[0]
}

func typed(err error) error { return activities.Wrap(err) }

func TestVolumeCreate(t *testing.T) {
	cases := []struct {
		name       string
		result     *storage.VolumeResult
		err        error
		wantFailed bool
		wantText   string // in the outcome's message (success) or error (failure)
	}{
		{"created", &storage.VolumeResult{Dataset: "tank/iscsi/volumes/7", Created: true, Volsize: 42 << 30, Capacity: 100 << 30, Provisioned: 42 << 30},
			nil, false, "created tank/iscsi/volumes/7 (42 GiB)"},
		{"overcommitted", &storage.VolumeResult{Dataset: "tank/iscsi/volumes/7", Created: true, Volsize: 42 << 30, Capacity: 50 << 30, Provisioned: 80 << 30, Overcommitted: true},
			nil, false, "warning: thin provisioning overcommits pool tank"},
		{"too large", nil, typed(errors.Join(errors.New("42 GiB is more than pool tank can ever hold (8.0 GiB usable)"), activities.ErrTooLarge)),
			true, "more than pool tank can ever hold"},
		{"pool missing", nil, typed(activities.ErrPoolNotFound), true, "pool does not exist"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSuite(t)
			s.env.OnActivity(sa.CreateVolume, mock.Anything, storage.VolumeInput{Pool: "tank", VolumeID: 7, Size: 42 << 30}).
				Return(c.result, c.err).Once()
			s.env.ExecuteWorkflow(VolumeCreate, VolumeCreateInput{OperationID: 3, VolumeID: 7, ServerID: 1, Pool: "tank", SizeGiB: 42})
			if !s.env.IsWorkflowCompleted() {
				t.Fatal("workflow did not complete")
			}
			o := s.outcome(t)
			if o.OperationID != 3 || o.Failed != c.wantFailed {
				t.Fatalf("outcome = %+v", o)
			}
			text := o.Message
			if c.wantFailed {
				text = o.Error
				if s.env.GetWorkflowError() == nil {
					t.Error("a failed operation must fail the workflow too")
				}
			} else if err := s.env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(text, c.wantText) {
				t.Errorf("outcome text %q does not contain %q", text, c.wantText)
			}
			// The engine recorded the first step as it attached the run: the run writes
			// none before its activity (VersionFirstStepAtStart).
			if len(s.steps) != 0 {
				t.Errorf("steps = %+v, want none: the engine records the first", s.steps)
			}
		})
	}
}

// TestVolumeCreateCancelledUndoes: a volume deleted while its create runs has its zvol
// moved into the erator by the create itself, and the operation ends failed (cancelled).
func TestVolumeCreateCancelledUndoes(t *testing.T) {
	s := newSuite(t)
	s.onTrash(false)
	s.env.OnActivity(sa.CreateVolume, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in storage.VolumeInput) (*storage.VolumeResult, error) {
			return &storage.VolumeResult{Dataset: storage.VolumeDataset(in.Pool, in.VolumeID), Created: true}, nil
		}).After(time.Minute)
	s.env.RegisterDelayedCallback(s.env.CancelWorkflow, 10*time.Second)
	s.env.ExecuteWorkflow(VolumeCreate, VolumeCreateInput{OperationID: 3, VolumeID: 7, ServerID: 1, Pool: "tank", SizeGiB: 1})
	if !isCancel(s.env.GetWorkflowError()) {
		t.Fatalf("workflow error = %v, want cancelled", s.env.GetWorkflowError())
	}
	if len(s.trashed) != 1 || s.trashed[0].Dataset != "tank/iscsi/volumes/7" || s.trashed[0].Kind != "volume" || s.trashed[0].ID != 7 {
		t.Fatalf("undo = %+v", s.trashed)
	}
	if o := s.outcome(t); !o.Failed || o.Error != "cancelled" {
		t.Errorf("outcome = %+v", o)
	}
}

func TestVolumeResize(t *testing.T) {
	s := newSuite(t)
	s.env.OnActivity(sa.ResizeVolume, mock.Anything, storage.VolumeInput{Pool: "tank", VolumeID: 7, Size: 64 << 30}).
		Return(&storage.VolumeResult{Dataset: "tank/iscsi/volumes/7", Volsize: 64 << 30, Capacity: 100 << 30}, nil).Once()
	s.env.ExecuteWorkflow(VolumeResize, VolumeResizeInput{OperationID: 4, VolumeID: 7, ServerID: 1, Pool: "tank", SizeGiB: 64})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if o := s.outcome(t); o.Failed || o.VolumeSizeGiB != 64 {
		t.Errorf("outcome = %+v", o)
	}
}

func TestVolumeResizeMissing(t *testing.T) {
	s := newSuite(t)
	s.env.OnActivity(sa.ResizeVolume, mock.Anything, mock.Anything).Return(nil, typed(activities.ErrDatasetNotFound)).Once()
	s.env.ExecuteWorkflow(VolumeResize, VolumeResizeInput{OperationID: 4, VolumeID: 7, ServerID: 1, Pool: "tank", SizeGiB: 64})
	if s.env.GetWorkflowError() == nil {
		t.Fatal("want a failed workflow")
	}
	if o := s.outcome(t); !o.Failed || o.VolumeSizeGiB != 0 || !strings.Contains(o.Error, "does not exist") {
		t.Errorf("outcome = %+v", o)
	}
}

func TestDelete(t *testing.T) {
	for _, missing := range []bool{false, true} {
		t.Run(map[bool]string{false: "moved", true: "missing"}[missing], func(t *testing.T) {
			s := newSuite(t)
			s.onTrash(missing)
			s.env.ExecuteWorkflow(VolumeDelete, DeleteInput{OperationID: 5, ObjectID: 7, ServerID: 1, Pool: "tank"})
			if err := s.env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			if len(s.trashed) != 1 || s.trashed[0].Dataset != "tank/iscsi/volumes/7" || s.trashed[0].Unix == 0 {
				t.Fatalf("trash = %+v", s.trashed)
			}
			if len(s.cancelled) != 1 || s.cancelled[0] != VolumeCreateID(7) {
				t.Errorf("the delete must first cancel a running create: %v", s.cancelled)
			}
			o := s.outcome(t)
			want := "moved tank/iscsi/volumes/7 to tank/erator/volume-7-"
			if missing {
				want = "did not exist"
			}
			if o.Failed || !strings.Contains(o.Message, want) {
				t.Errorf("outcome = %+v", o)
			}
		})
	}
}

func TestGroupCreate(t *testing.T) {
	t.Run("cloned", func(t *testing.T) {
		s := newSuite(t)
		s.env.OnActivity(sa.CloneVolume, mock.Anything, storage.CloneInput{Pool: "tank", VolumeID: 7, GroupID: 2}).
			Return(&storage.CloneResult{Dataset: "tank/iscsi/groups/2", Origin: "tank/iscsi/volumes/7@group-2", Created: true}, nil).Once()
		s.env.ExecuteWorkflow(GroupCreate, GroupCreateInput{OperationID: 6, GroupID: 2, VolumeID: 7, ServerID: 1, Pool: "tank"})
		if err := s.env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		var res GroupCreateResult
		if err := s.env.GetWorkflowResult(&res); err != nil || res.Dataset != "tank/iscsi/groups/2" {
			t.Errorf("result = %+v %v", res, err)
		}
		if o := s.outcome(t); o.Failed {
			t.Errorf("outcome = %+v", o)
		}
	})
	t.Run("volume missing", func(t *testing.T) {
		s := newSuite(t)
		s.env.OnActivity(sa.CloneVolume, mock.Anything, mock.Anything).Return(nil, typed(activities.ErrDatasetNotFound)).Once()
		s.env.ExecuteWorkflow(GroupCreate, GroupCreateInput{OperationID: 6, GroupID: 2, VolumeID: 7, ServerID: 1, Pool: "tank"})
		if s.env.GetWorkflowError() == nil {
			t.Fatal("want a failed workflow")
		}
		if o := s.outcome(t); !o.Failed || o.Step != "clone" {
			t.Errorf("outcome = %+v", o)
		}
		if len(s.trashed) != 0 {
			t.Errorf("nothing was made, nothing to undo: %+v", s.trashed)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		s := newSuite(t)
		s.onTrash(false)
		s.env.OnActivity(sa.CloneVolume, mock.Anything, mock.Anything).
			Return(&storage.CloneResult{Dataset: "tank/iscsi/groups/2", Created: true}, nil).After(time.Minute)
		s.env.RegisterDelayedCallback(s.env.CancelWorkflow, time.Second)
		s.env.ExecuteWorkflow(GroupCreate, GroupCreateInput{OperationID: 6, GroupID: 2, VolumeID: 7, ServerID: 1, Pool: "tank"})
		if !isCancel(s.env.GetWorkflowError()) {
			t.Fatalf("workflow error = %v", s.env.GetWorkflowError())
		}
		if len(s.trashed) != 1 || s.trashed[0].Dataset != "tank/iscsi/groups/2" || s.trashed[0].Kind != "group" {
			t.Errorf("undo = %+v", s.trashed)
		}
		if o := s.outcome(t); !o.Failed {
			t.Errorf("outcome = %+v", o)
		}
	})
}

func TestGroupPublish(t *testing.T) {
	s := newSuite(t)
	s.env.OnActivity(sa.Snapshot, mock.Anything, storage.SnapshotInput{Dataset: "tank/iscsi/groups/2", Name: "v3"}).
		Return(&storage.SnapshotResult{Snapshot: "tank/iscsi/groups/2@v3", GUID: "1234567890", Created: true}, nil).Once()
	s.env.ExecuteWorkflow(GroupPublish, GroupPublishInput{OperationID: 8, GroupID: 2, VersionID: 11, Number: 3, ServerID: 1, Pool: "tank"})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if o := s.outcome(t); o.Failed || o.VersionID != 11 || o.GUID != "1234567890" {
		t.Errorf("outcome = %+v", o)
	}
}

func TestGroupPublishFailureMarksTheVersion(t *testing.T) {
	s := newSuite(t)
	s.env.OnActivity(sa.Snapshot, mock.Anything, mock.Anything).Return(nil, typed(activities.ErrPoolFull)).Once()
	s.env.ExecuteWorkflow(GroupPublish, GroupPublishInput{OperationID: 8, GroupID: 2, VersionID: 11, Number: 3, ServerID: 1, Pool: "tank"})
	if s.env.GetWorkflowError() == nil {
		t.Fatal("want a failed workflow")
	}
	if o := s.outcome(t); !o.Failed || o.VersionID != 11 || o.GUID != "" || !strings.Contains(o.Error, "out of space") {
		t.Errorf("outcome = %+v", o)
	}
}

func TestServerBootstrap(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		s := newSuite(t)
		st := storage.PoolStatus{Capacity: 100, Available: 90}
		st.Pool.Health = "ONLINE"
		s.env.OnActivity(sa.Bootstrap, mock.Anything, storage.PoolInput{Pool: "tank"}).
			Return(&storage.BootstrapResult{Status: st, Created: storage.Layout("tank")}, nil).Once()
		s.env.ExecuteWorkflow(ServerBootstrap, ServerBootstrapInput{OperationID: 1, ServerID: 1, Pool: "tank"})
		if err := s.env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		o := s.outcome(t)
		if o.Failed || o.Stats == nil || o.Stats.PoolHealth != "ONLINE" || o.Stats.PoolSize != 100 || o.Stats.PoolFree != 90 {
			t.Errorf("outcome = %+v %+v", o, o.Stats)
		}
	})
	t.Run("pool missing", func(t *testing.T) {
		s := newSuite(t)
		s.env.OnActivity(sa.Bootstrap, mock.Anything, mock.Anything).Return(nil, typed(activities.ErrPoolNotFound)).Once()
		s.env.ExecuteWorkflow(ServerBootstrap, ServerBootstrapInput{OperationID: 1, ServerID: 1, Pool: "gone"})
		if s.env.GetWorkflowError() == nil {
			t.Fatal("want a failed workflow")
		}
		if o := s.outcome(t); !o.Failed || o.Stats == nil || o.Stats.PoolHealth != models.PoolMissing {
			t.Errorf("outcome = %+v", o)
		}
	})
}

func TestEratorPurgeAndRestore(t *testing.T) {
	s := newSuite(t)
	s.env.OnActivity(sa.Purge, mock.Anything, storage.PurgeInput{Pool: "tank", Before: 500}).Return(&storage.PurgeResult{
		Destroyed: []string{"tank/erator/group-2-1", "tank/erator/volume-1-1"}, FreedBytes: 4096,
		Kept: []storage.Kept{{Name: "tank/erator/volume-3-1", Reason: "clones depend on it: tank/iscsi/groups/4"}},
	}, nil).Once()
	s.env.ExecuteWorkflow(EratorPurge, EratorPurgeInput{OperationID: 9, ServerID: 1, Pool: "tank", Before: 500})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	o := s.outcome(t)
	for _, want := range []string{"freed 4096 bytes", "destroyed 2", "kept 1", "tank/iscsi/groups/4"} {
		if !strings.Contains(o.Message, want) {
			t.Errorf("message %q lacks %q", o.Message, want)
		}
	}

	r := newSuite(t)
	r.env.OnActivity(sa.Restore, mock.Anything, storage.RestoreInput{Pool: "tank", Kind: "group", ID: 2, Target: "tank/iscsi/groups/2"}).
		Return(nil, typed(activities.ErrNotInErator)).Once()
	r.env.ExecuteWorkflow(Restore, RestoreInput{OperationID: 10, Kind: "group", ObjectID: 2, ServerID: 1, Pool: "tank"})
	if r.env.GetWorkflowError() == nil {
		t.Fatal("want a failed restore")
	}
	if o := r.outcome(t); !o.Failed || !strings.Contains(o.Error, "nothing in the erator") {
		t.Errorf("outcome = %+v", o)
	}
}

// TestActivitiesRunOnTheirQueues: ZFS work goes to the agent of the server that holds
// the data, database work to the panel.
func TestActivitiesRunOnTheirQueues(t *testing.T) {
	s := newSuite(t)
	queues := map[string]string{}
	s.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		queues[info.ActivityType.Name] = info.TaskQueue
	})
	// A local activity runs in the worker of its workflow: the panel's.
	s.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		queues[info.ActivityType.Name] = "local"
	})
	s.env.OnActivity(sa.Snapshot, mock.Anything, mock.Anything).Return(&storage.SnapshotResult{GUID: "1"}, nil).Once()
	s.env.ExecuteWorkflow(GroupPublish, GroupPublishInput{OperationID: 8, GroupID: 2, VersionID: 11, Number: 1, ServerID: 42, Pool: "tank"})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	// (Its first step is the engine's to record: the run's only database write is its end.)
	want := map[string]string{"Snapshot": "server-42", "Finish": "local"}
	for name, q := range want {
		if queues[name] != q {
			t.Errorf("%s ran on %q, want %q", name, queues[name], q)
		}
	}
}

// recordVerified mocks the panel's RecordVerified, appending each input to *into.
func (s *suite) recordVerified(into *[]panel.RecordVerifiedInput) *testsuite.MockCallWrapper {
	return s.env.OnActivity(pa.RecordVerified, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in panel.RecordVerifiedInput) (*panel.RecordVerifiedResult, error) {
			s.record(func() { *into = append(*into, in) })
			return &panel.RecordVerifiedResult{}, nil
		})
}
