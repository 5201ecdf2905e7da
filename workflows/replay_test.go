package workflows

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/test/harness"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"
)

var recordHistories = flag.Bool("record-histories", false, "run the workflows on a real Temporal server and save their histories in testdata/")

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
	}{
		{"server-bootstrap.json", ServerBootstrapID(1), ServerBootstrap, ServerBootstrapInput{OperationID: 1, ServerID: 1, Pool: "tank"}},
		{"volume-create.json", VolumeCreateID(1), VolumeCreate, VolumeCreateInput{OperationID: 2, VolumeID: 1, ServerID: 1, Pool: "tank", SizeGiB: 42}},
		{"group-create.json", GroupCreateID(1), GroupCreate, GroupCreateInput{OperationID: 3, GroupID: 1, VolumeID: 1, ServerID: 1, Pool: "tank"}},
		{"group-publish.json", GroupPublishID(1, 1), GroupPublish, GroupPublishInput{OperationID: 4, GroupID: 1, VersionID: 1, Number: 1, ServerID: 1, Pool: "tank"}},
		{"volume-delete.json", VolumeDeleteID(2), VolumeDelete, DeleteInput{OperationID: 5, ObjectID: 2, ServerID: 1, Pool: "tank"}},
	}
	for _, r := range runs {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: r.id, TaskQueue: PanelQueue}, r.fn, r.input)
		if err != nil {
			t.Fatal(err)
		}
		if err := run.Get(ctx, nil); err != nil {
			t.Fatalf("%s: %v", r.id, err)
		}
		var h historypb.History
		it := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, 0)
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

// fakePanel stands in for the panel's database activities while recording.
type fakePanel struct{}

func (*fakePanel) Progress(context.Context, panel.ProgressInput) (*panel.ProgressResult, error) {
	return &panel.ProgressResult{}, nil
}

func (*fakePanel) Finish(context.Context, panel.FinishInput) (*panel.FinishResult, error) {
	return &panel.FinishResult{}, nil
}
