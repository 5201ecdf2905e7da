package panel

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/workflows"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
)

// fakeAgent answers a server's storage activities like a healthy agent, counting creates.
type fakeAgent struct{ creates int }

func (f *fakeAgent) register(w worker.Registry) {
	w.RegisterActivityWithOptions(func(_ context.Context, in storage.VolumeInput) (*storage.VolumeResult, error) {
		f.creates++
		return &storage.VolumeResult{Dataset: storage.VolumeDataset(in.Pool, in.VolumeID), Created: true, Volsize: in.Size, Capacity: 100 << 30, Provisioned: in.Size}, nil
	}, activity.RegisterOptions{Name: "CreateVolume"})
}

// TestEngineThroughTheStore: an operation the store records starts its workflow on the
// real (in-process) Temporal, the workflow's progress and result land in the database,
// and starting the same operation again never runs the workflow twice.
func TestEngineThroughTheStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store, admin, c, tmp := startEngine(t, ctx)
	db := store.DB

	net, err := store.CreateNetwork(ctx, admin, &models.NetworkInput{Name: models.Strp("n"), ClientID: models.Uintp(1)})
	if err != nil {
		t.Fatal(err)
	}
	nid := net.Object.(*models.Network).ID
	srv, err := store.CreateServer(ctx, admin, &models.ServerInput{NetworkID: &nid, Name: models.Strp("m"), IP: models.Strp("10.0.0.1"), Pool: models.Strp("tank")})
	if err != nil {
		t.Fatal(err)
	}
	sid := srv.Object.(*models.Server).ID
	reported(t, ctx, store, sid)
	agent := &fakeAgent{}
	aw := worker.New(c, workflows.ServerQueue(sid), worker.Options{})
	agent.register(aw)
	if err := aw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(aw.Stop)

	size := int64(3)
	res, err := store.CreateVolume(ctx, admin, &models.VolumeInput{NetworkID: &nid, Alias: models.Strp("v"), SizeGiB: &size})
	if err != nil {
		t.Fatal(err)
	}
	op := res.Operation
	vid := res.Object.(*models.Volume).ID
	if op.WorkflowID != workflows.VolumeCreateID(vid) || op.RunID == "" {
		t.Fatalf("operation not attached to its workflow: %+v", op)
	}
	waitOp := func(id uint) *models.Operation {
		for {
			got, err := store.Operation(context.Background(), nil, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Finished() {
				return got
			}
			if ctx.Err() != nil {
				dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer dcancel()
				d, derr := c.DescribeWorkflowExecution(dctx, got.WorkflowID, "")
				t.Fatalf("operation %d still %s (%s): %v %v", id, got.State, got.Step, d, derr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	done := waitOp(op.ID)
	if done.State != models.OpSucceeded || done.Percent != 100 || done.FinishedAt == nil {
		t.Fatalf("operation = %+v", done)
	}
	var v models.Volume
	db.Take(&v, vid)
	if v.State != models.StateReady {
		t.Errorf("volume state %s", v.State)
	}
	// The run records its flag generation once and so asks no GetVersion per flag: one
	// version marker (the generation's) and its one search-attribute upsert.
	var events []*historypb.HistoryEvent
	for it := c.GetWorkflowHistory(ctx, op.WorkflowID, op.RunID, false, 0); it.HasNext(); {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	ids, upserts := harness.VersionMarkers(events)
	if len(ids) != 1 || ids[0] != workflows.FlagGenerationID || upserts != 1 {
		t.Errorf("version markers %q and %d search-attribute upserts, want only %q's and its one upsert (generation %d)",
			ids, upserts, workflows.FlagGenerationID, workflows.Generation)
	}

	// A repeat of the same operation (a retried start, a panel restarting queued work)
	// finds the finished run: no second run, no second create.
	if err := tmp.Engine.Start(ctx, op); err != nil {
		t.Fatal(err)
	}
	// A second operation row for the same object (a double submit) adopts the run's outcome.
	dup := &models.Operation{NetworkID: &nid, Kind: models.OpVolumeCreate, ObjectType: "volume", ObjectID: vid, State: models.OpQueued}
	if err := db.Create(dup).Error; err != nil {
		t.Fatal(err)
	}
	if err := tmp.Engine.Start(ctx, dup); err != nil {
		t.Fatal(err)
	}
	if got := waitOp(dup.ID); got.State != models.OpSucceeded || got.WorkflowID != op.WorkflowID {
		t.Errorf("duplicate = %+v", got)
	}
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = %q", op.WorkflowID)})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Executions) != 1 || agent.creates != 1 {
		t.Errorf("%d runs, %d creates: want 1 and 1", len(resp.Executions), agent.creates)
	}
}
