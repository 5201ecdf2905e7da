package workflows

import (
	"context"
	"errors"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"
)

var (
	recordHistories = flag.Bool("record-histories", false, "run the workflows on a real Temporal server and save their histories in testdata/")
	recordOnly      = flag.String("record-only", "", "with -record-histories: record only the histories whose file name contains this")
)

// TestReplayHistories replays every saved history through today's workflow code: a change
// that would break the workflows already running in production (a new step without a
// GetVersion flag, a reordered activity) fails here.
func TestReplayHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no saved histories in testdata/ (record them with -record-histories)")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			Register(r)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(f, "-gen1.json") {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				// The generation's marker and its upsert, and nothing per flag.
				var h historypb.History
				if err := protojson.Unmarshal(b, &h); err != nil {
					t.Fatal(err)
				}
				ids, upserts := harness.VersionMarkers(h.Events)
				if len(ids) != 1 || ids[0] != FlagGenerationID || upserts != 1 {
					t.Errorf("a run of flag generation 1 recorded version markers %q and %d upserts, want only %q's and its upsert", ids, upserts, FlagGenerationID)
				}
			}
		})
	}
}

// fakeStorage answers the storage activities like a healthy agent would.
func fakeStorage(w worker.Registry) {
	reg := func(fn any, name string) { w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(func(_ context.Context, in storage.PoolInput) (*storage.BootstrapResult, error) {
		st := storage.PoolStatus{Capacity: 8 << 30, Available: 8 << 30}
		st.Pool.Name, st.Pool.Health = in.Pool, "ONLINE"
		return &storage.BootstrapResult{Status: st, Created: storage.Layout(in.Pool)}, nil
	}, "Bootstrap")
	reg(func(_ context.Context, in storage.VolumeInput) (*storage.VolumeResult, error) {
		return &storage.VolumeResult{Dataset: storage.VolumeDataset(in.Pool, in.VolumeID), Created: true, Volsize: in.Size, Capacity: 8 << 30, Provisioned: in.Size}, nil
	}, "CreateVolume")
	reg(func(_ context.Context, in storage.CloneInput) (*storage.CloneResult, error) {
		return &storage.CloneResult{Dataset: storage.GroupDataset(in.Pool, in.GroupID), Origin: storage.VolumeDataset(in.Pool, in.VolumeID) + "@" + storage.GroupOriginSnapshot(in.GroupID), Created: true}, nil
	}, "CloneVolume")
	reg(func(_ context.Context, in storage.SnapshotInput) (*storage.SnapshotResult, error) {
		return &storage.SnapshotResult{Snapshot: in.Dataset + "@" + in.Name, GUID: "11282122156945685705", Created: true}, nil
	}, "Snapshot")
	reg(func(_ context.Context, in storage.TrashInput) (*storage.TrashResult, error) {
		return &storage.TrashResult{Trash: storage.EratorDataset(in.Pool, in.Kind, in.ID, in.Unix)}, nil
	}, "Trash")
	reg(func(_ context.Context, in storage.BuildCTemplateInput) (*storage.BuildCTemplateResult, error) {
		return &storage.BuildCTemplateResult{Snapshot: storage.CTemplateDataset(in.Pool, in.CTemplateID) + "@" + storage.VersionSnapshot(in.Version),
			Mirror: "http://deb.debian.org/debian"}, nil
	}, "BuildCTemplate")
	reg(func(_ context.Context, in storage.CloneDeviceInput) (*storage.CloneDeviceResult, error) {
		return &storage.CloneDeviceResult{}, nil
	}, "CloneDevice")
	for _, name := range []string{"ExportTarget", "UnexportTarget"} {
		reg(func(context.Context, storage.ExportInput) (*storage.ExportResult, error) {
			return &storage.ExportResult{}, nil
		}, name)
	}
	reg(func(_ context.Context, in storage.RestoreDeviceInput) (*storage.RestoreDeviceResult, error) {
		return &storage.RestoreDeviceResult{From: storage.EratorDataset(in.Pool, "device", in.DeviceID, in.Unix-60),
			Origin: in.Pool + "/iscsi/groups/1@v1", GroupID: 1, Version: 1}, nil
	}, "RestoreDevice")
	reg(func(_ context.Context, in storage.SnapshotsInput) (*storage.SnapshotsResult, error) {
		if in.Pool == "slave" {
			return &storage.SnapshotsResult{Snapshots: []zfs.Snap{}}, nil
		}
		return &storage.SnapshotsResult{Exists: true, Snapshots: []zfs.Snap{{Name: "v1", GUID: "11282122156945685705"}}}, nil
	}, "Snapshots")
}

// TestRecordHistories (only with -record-histories) runs each workflow on the shared
// in-process Temporal server with fake activities and saves its history as JSON.
func TestRecordHistories(t *testing.T) {
	if !*recordHistories {
		t.Skip("run with -record-histories to re-record testdata/*.json")
	}
	c := harness.TemporalClient(t)
	pw := worker.New(c, PanelQueue, worker.Options{})
	Register(pw)
	pw.RegisterActivity(&fakePanel{})
	sw := worker.New(c, ServerQueue(1), worker.Options{})
	fakeStorage(sw)
	for _, w := range []worker.Worker{pw, sw} {
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Stop)
	}
	runs := []struct {
		file  string
		id    string
		fn    any
		input any
		// updates are sent in order (update-with-start) instead of waiting for the end:
		// an entity workflow does not end by itself, so it is terminated once they are done.
		updates []recordedUpdate
	}{
		{"server-bootstrap.json", ServerBootstrapID(1), ServerBootstrap, ServerBootstrapInput{OperationID: 1, ServerID: 1, Pool: "tank"}, nil},
		{"volume-create.json", VolumeCreateID(1), VolumeCreate, VolumeCreateInput{OperationID: 2, VolumeID: 1, ServerID: 1, Pool: "tank", SizeGiB: 42}, nil},
		{"group-create.json", GroupCreateID(1), GroupCreate, GroupCreateInput{OperationID: 3, GroupID: 1, VolumeID: 1, ServerID: 1, Pool: "tank"}, nil},
		{"group-publish.json", GroupPublishID(1, 1), GroupPublish, GroupPublishInput{OperationID: 4, GroupID: 1, VersionID: 1, Number: 1, ServerID: 1, Pool: "tank"}, nil},
		{"volume-delete.json", VolumeDeleteID(2), VolumeDelete, DeleteInput{OperationID: 5, ObjectID: 2, ServerID: 1, Pool: "tank"}, nil},
		{"device-restore.json", DeviceRestoreID(7), DeviceRestore, DeviceRestoreInput{OperationID: 6, DeviceID: 7, ServerID: 1, Pool: "tank"}, nil},
		{"device-provision-lock.json", DeviceWorkflowID(7), Device, DeviceInput{DeviceID: 7}, []recordedUpdate{
			{UpdateProvision, "p1", wire.ProvisionRequest{NetworkID: 1, DeviceID: 7, GroupID: 1, ServerID: 1, Version: 1, UUID: "u"}},
			{UpdateLock, "l1", DeviceLockRequest{Locked: true}},
			{UpdateLock, "l2", DeviceLockRequest{Locked: false}},
			{UpdateProvision, "p2", wire.ProvisionRequest{NetworkID: 1, DeviceID: 7, GroupID: 1, ServerID: 1, Version: 2, UUID: "u",
				Reprovision: true, OldServerID: 1}},
		}},
		// Since replication: the triggers, deletes on the slaves, promote and reconcile.
		{"group-publish-replication.json", GroupPublishID(1, 2), GroupPublish, GroupPublishInput{OperationID: 8, GroupID: 1, VersionID: 2, Number: 2, ServerID: 1, Pool: "tank"}, nil},
		{"volume-create-replication.json", VolumeCreateID(3), VolumeCreate, VolumeCreateInput{OperationID: 9, VolumeID: 3, ServerID: 1, Pool: "tank", SizeGiB: 1}, nil},
		{"server-bootstrap-replication.json", ServerBootstrapID(2), ServerBootstrap, ServerBootstrapInput{OperationID: 10, ServerID: 1, Pool: "tank"}, nil},
		{"group-delete-replication.json", GroupDeleteID(4), GroupDelete, DeleteInput{OperationID: 11, ObjectID: 4, ServerID: 1, Pool: "tank"}, nil},
		{"server-promote-replication.json", ServerPromoteID(1), ServerPromote, ServerPromoteInput{OperationID: 12, NetworkID: 1, ServerID: 1}, nil},
		{"reconcile-replication.json", ReconcileID, Reconcile, ReconcileInput{}, nil},
		// Recorded before ctemplates replicated: a build ends with its Finish, a delete
		// moves only the ctemplate's own dataset.
		{"ctemplate-build.json", CTemplateBuildID(4, 1), CTemplateBuild, CTemplateBuildInput{OperationID: 13, ServerID: 1,
			Build: storage.BuildCTemplateInput{Pool: "tank", CTemplateID: 4, Version: 1, Suite: "bookworm"}}, nil},
		{"ctemplate-delete.json", CTemplateDeleteID(4), CTemplateDelete, DeleteInput{OperationID: 14, ObjectID: 4, ServerID: 1, Pool: "tank"}, nil},
		// Since the engine records the first step (VersionFirstStepAtStart).
		{"volume-create-first-step.json", VolumeCreateID(5), VolumeCreate, VolumeCreateInput{OperationID: 15, VolumeID: 5, ServerID: 1, Pool: "tank", SizeGiB: 1}, nil},
		{"group-create-first-step.json", GroupCreateID(6), GroupCreate, GroupCreateInput{OperationID: 16, GroupID: 6, VolumeID: 5, ServerID: 1, Pool: "tank"}, nil},
		{"group-publish-first-step.json", GroupPublishID(6, 1), GroupPublish, GroupPublishInput{OperationID: 17, GroupID: 6, VersionID: 3, Number: 1, ServerID: 1, Pool: "tank"}, nil},
		// Since flag generations (generation 1): one generation marker, every flag in force
		// without a marker of its own.
		{"volume-create-gen1.json", VolumeCreateID(9), VolumeCreate, VolumeCreateInput{OperationID: 18, VolumeID: 9, ServerID: 1, Pool: "tank", SizeGiB: 1}, nil},
		{"group-create-gen1.json", GroupCreateID(10), GroupCreate, GroupCreateInput{OperationID: 19, GroupID: 10, VolumeID: 9, ServerID: 1, Pool: "tank"}, nil},
		{"group-publish-gen1.json", GroupPublishID(10, 1), GroupPublish, GroupPublishInput{OperationID: 20, GroupID: 10, VersionID: 4, Number: 1, ServerID: 1, Pool: "tank"}, nil},
		{"volume-delete-gen1.json", VolumeDeleteID(9), VolumeDelete, DeleteInput{OperationID: 21, ObjectID: 9, ServerID: 1, Pool: "tank"}, nil},
		// The run ends by itself after the delete.
		{"device-provision-delete.json", DeviceWorkflowID(8), Device, DeviceInput{DeviceID: 8}, []recordedUpdate{
			{UpdateProvision, "p1", wire.ProvisionRequest{NetworkID: 1, DeviceID: 8, GroupID: 1, ServerID: 1, Version: 1, UUID: "u"}},
			{UpdateDelete, DeleteUpdateID(7), DeviceDeleteRequest{OperationID: 7, DeviceID: 8, NetworkID: 1, ServerID: 1, Pool: "tank"}},
		}},
	}
	for _, r := range runs {
		if !strings.Contains(r.file, *recordOnly) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		wid, rid := r.id, ""
		if r.updates == nil {
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: r.id, TaskQueue: PanelQueue}, r.fn, r.input)
			if err != nil {
				t.Fatal(err)
			}
			if err := run.Get(ctx, nil); err != nil {
				t.Fatalf("%s: %v", r.id, err)
			}
			rid = run.GetRunID()
		}
		for _, u := range r.updates {
			start := c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{ID: r.id, TaskQueue: PanelQueue,
				WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING}, r.fn, r.input)
			h, err := c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{StartWorkflowOperation: start,
				UpdateOptions: client.UpdateWorkflowOptions{UpdateID: u.id, UpdateName: u.name, Args: []any{u.arg},
					WaitForStage: client.WorkflowUpdateStageCompleted}})
			if err == nil {
				err = h.Get(ctx, nil)
			}
			if err != nil {
				t.Fatalf("%s: update %s: %v", r.id, u.id, err)
			}
			rid = h.RunID()
		}
		if r.updates != nil {
			var ended *serviceerror.NotFound
			if err := c.TerminateWorkflow(ctx, wid, rid, "recorded"); err != nil && !errors.As(err, &ended) {
				t.Fatal(err)
			}
		}
		var h historypb.History
		it := c.GetWorkflowHistory(ctx, wid, rid, false, 0)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			h.Events = append(h.Events, e)
		}
		cancel()
		b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", r.file), b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s (%d events)", r.file, len(h.Events))
	}
}

// recordedUpdate is one update sent to an entity workflow while recording.
type recordedUpdate struct {
	name, id string
	arg      any
}

// fakePanel stands in for the panel's database activities while recording.
type fakePanel struct{}

func (*fakePanel) DevicePlan(context.Context, panel.DevicePlanInput) (*panel.DevicePlanResult, error) {
	return &panel.DevicePlanResult{NetworkID: 1, UUID: "u", Pool: "tank", OldPool: "tank"}, nil
}

func (*fakePanel) RecordClone(context.Context, panel.RecordCloneInput) (*panel.RecordCloneResult, error) {
	return &panel.RecordCloneResult{}, nil
}

func (*fakePanel) SetDeviceLock(context.Context, panel.SetDeviceLockInput) (*panel.SetDeviceLockResult, error) {
	return &panel.SetDeviceLockResult{}, nil
}

func (*fakePanel) Progress(context.Context, panel.ProgressInput) (*panel.ProgressResult, error) {
	return &panel.ProgressResult{}, nil
}

func (*fakePanel) Finish(context.Context, panel.FinishInput) (*panel.FinishResult, error) {
	return &panel.FinishResult{}, nil
}

func (*fakePanel) QueueReplication(context.Context, panel.QueueReplicationInput) (*panel.QueueReplicationResult, error) {
	return &panel.QueueReplicationResult{OperationIDs: []uint{20}}, nil
}

func (*fakePanel) RecordVerified(context.Context, panel.RecordVerifiedInput) (*panel.RecordVerifiedResult, error) {
	return &panel.RecordVerifiedResult{}, nil
}

func (*fakePanel) SwitchMaster(context.Context, panel.SwitchMasterInput) (*panel.SwitchMasterResult, error) {
	return &panel.SwitchMasterResult{}, nil
}

// ReplicaTargets: one slave (on the same queue as the master, the one agent recording
// has) that lacks the group.
func (*fakePanel) ReplicaTargets(context.Context, panel.ReplicaTargetsInput) (*panel.ReplicaTargetsResult, error) {
	return &panel.ReplicaTargetsResult{Targets: []models.ReplicaTarget{{NetworkID: 1, Kind: "group", ObjectID: 1, MasterID: 1, MasterPool: "tank", SlaveID: 1, SlavePool: "slave"}}}, nil
}

func (*fakePanel) SlavesOf(context.Context, panel.SlavesOfInput) (*panel.SlavesOfResult, error) {
	return &panel.SlavesOfResult{Slaves: []panel.Slave{{ID: 1, Pool: "slave"}}}, nil
}

// TestFlagGenerations: every flag declared in versions.go has a generation, none beyond
// this code's Generation; a flag left out would quietly keep its marker on every run.
func TestFlagGenerations(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "versions.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			for i, name := range s.(*ast.ValueSpec).Names {
				if !strings.HasPrefix(name.Name, "Version") {
					continue
				}
				n++
				lit, ok := s.(*ast.ValueSpec).Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s: not a string literal", name.Name)
				}
				id, _ := strconv.Unquote(lit.Value)
				gen, ok := flagGeneration[id]
				if !ok || gen < 1 || gen > Generation {
					t.Errorf("flag %s (%q): generation %d, want 1..%d in flagGeneration", name.Name, id, gen, Generation)
				}
			}
		}
	}
	if n != len(flagGeneration) {
		t.Errorf("versions.go declares %d flags, flagGeneration lists %d", n, len(flagGeneration))
	}
}
