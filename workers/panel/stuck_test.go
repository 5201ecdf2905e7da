package panel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workflows"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
)

// reported records fresh, healthy stats for server sid, as its agent does every 15 s.
func reported(t *testing.T, ctx context.Context, store *models.Store, sid uint) {
	t.Helper()
	err := models.RecordServerStats(ctx, store.DB, sid, &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 100 << 30, PoolFree: 90 << 30})
	if err != nil {
		t.Fatal(err)
	}
}

// standIn is a server's agent as Temporal sees it: a worker on the server's queue
// answering CreateVolume and Trash (what the real agent's activities return), recording
// what it was asked. It starts and stops like an agent that comes and goes.
type standIn struct {
	w       worker.Worker
	creates chan storage.VolumeInput
	trashed chan storage.TrashInput
}

func startStandIn(t *testing.T, c client.Client, sid uint) *standIn {
	t.Helper()
	a := &standIn{w: worker.New(c, workflows.ServerQueue(sid), worker.Options{}),
		creates: make(chan storage.VolumeInput, 8), trashed: make(chan storage.TrashInput, 8)}
	a.w.RegisterActivityWithOptions(func(_ context.Context, in storage.VolumeInput) (*storage.VolumeResult, error) {
		a.creates <- in
		return &storage.VolumeResult{Dataset: storage.VolumeDataset(in.Pool, in.VolumeID), Created: true, Volsize: in.Size, Capacity: 100 << 30, Provisioned: in.Size}, nil
	}, activity.RegisterOptions{Name: "CreateVolume"})
	a.w.RegisterActivityWithOptions(func(_ context.Context, in storage.TrashInput) (*storage.TrashResult, error) {
		a.trashed <- in
		return &storage.TrashResult{Missing: true}, nil
	}, activity.RegisterOptions{Name: "Trash"})
	if err := a.w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.w.Stop)
	return a
}

// TestStuckWorkExplainedCancelledRetried: the guide's promise on the real Temporal. A
// create on a master whose agent never reported is refused 409 naming the server; one
// whose stats are stale too. With fresh stats and the agent away, the operation says it
// waits for that agent (Temporal's own view: the activity nobody picked up, the queue's
// pollers); a cancel runs the create's undo once the agent is back and ends it
// `cancelled`; a retry runs the create again and the volume becomes ready. A workflow
// terminated in Temporal's UI shows as such. Every workflow carries the search attributes.
func TestStuckWorkExplainedCancelledRetried(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	store, admin, c, _ := startEngine(t, ctx)
	net, err := store.CreateNetwork(ctx, admin, &models.NetworkInput{Name: models.Strp("stuck"), ClientID: models.Uintp(admin.ClientID)})
	if err != nil {
		t.Fatal(err)
	}
	nid := net.Object.(*models.Network).ID
	srv, err := store.CreateServer(ctx, admin, &models.ServerInput{NetworkID: &nid, Name: models.Strp("m"), IP: models.Strp("10.0.0.1"), Pool: models.Strp("tank")})
	if err != nil {
		t.Fatal(err)
	}
	sid := srv.Object.(*models.Server).ID
	// Workflow ids come from object ids, and the Temporal server is shared by the
	// package's tests (each on its own database): start this test's volumes at 7001.
	if err := store.DB.Create(&models.Volume{ID: 7000, NetworkID: nid, Alias: "placeholder", SizeGiB: 1, State: models.StateDeleted}).Error; err != nil {
		t.Fatal(err)
	}
	size := int64(2)
	newVolume := func(alias string) (*models.Created, error) {
		return store.CreateVolume(ctx, admin, &models.VolumeInput{NetworkID: &nid, Alias: models.Strp(alias), SizeGiB: &size})
	}
	refused := func(what, want string) {
		t.Helper()
		_, err := newVolume("refused")
		var conflict *models.ConflictError
		if !errors.As(err, &conflict) || !strings.Contains(err.Error(), `"m"`) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: create answered %v, want a conflict naming server \"m\" and %q", what, err, want)
		}
		var n int64
		store.DB.Model(&models.Volume{}).Where("alias = ?", "refused").Count(&n)
		if n != 0 {
			t.Fatalf("%s: the refused create left %d volume rows", what, n)
		}
	}

	// The master's agent never connected.
	refused("never reported", "never reported")
	// It reported once, long ago.
	reported(t, ctx, store, sid)
	old := time.Now().Add(-10 * time.Minute)
	if err := store.DB.Model(&models.Server{}).Where("id = ?", sid).Update("stats_at", old).Error; err != nil {
		t.Fatal(err)
	}
	refused("stale stats", "last reported")

	// Fresh stats, agent away (it dropped after its last report): the create waits for it.
	reported(t, ctx, store, sid)
	res, err := newVolume("waits")
	if err != nil {
		t.Fatal(err)
	}
	vid, op := res.Object.(*models.Volume).ID, res.Operation
	var wait *models.OperationWait
	for wait == nil {
		var got *models.Operation
		if got, wait, err = store.OperationStatus(ctx, admin, op.ID); err != nil {
			t.Fatal(err)
		}
		if got.Finished() {
			t.Fatalf("operation ended without an agent: %+v", got)
		}
		if ctx.Err() != nil {
			t.Fatal("the operation never said what it waits for")
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !strings.Contains(wait.Text, `waiting for server "m"'s agent (last seen`) || wait.ServerID != sid || wait.LastSeen == nil {
		t.Fatalf("wait = %+v", wait)
	}

	// Search attributes: the stuck create is found by network, object type and id.
	q := fmt.Sprintf("ClusterducksNetwork = %d AND ClusterducksObjectType = 'volume' AND ClusterducksObjectID = %d", nid, vid)
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q})
		if err != nil {
			t.Fatalf("list %q: %v", q, err)
		}
		if len(resp.Executions) == 1 && resp.Executions[0].GetExecution().GetWorkflowId() == workflows.VolumeCreateID(vid) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("query %q found %d workflows", q, len(resp.Executions))
		}
		time.Sleep(250 * time.Millisecond)
	}

	// Cancel: the undo waits for the agent, the operation is not ended before it ran.
	got, err := store.CancelOperation(ctx, admin, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Finished() || !strings.Contains(got.Message, "cancelling") {
		t.Fatalf("after cancel: %+v", got)
	}
	time.Sleep(time.Second)
	if got, _ := store.Operation(ctx, nil, op.ID); got.Finished() {
		t.Fatalf("the operation ended before its undo ran: %+v", got)
	}
	agent := startStandIn(t, c, sid)
	select {
	case in := <-agent.trashed:
		if in.Dataset != storage.VolumeDataset("tank", vid) || in.Kind != "volume" || in.ID != vid {
			t.Fatalf("undo trashed %+v", in)
		}
	case <-ctx.Done():
		t.Fatal("the agent came back but the undo never ran")
	}
	ended := waitEnded(t, ctx, store, op.ID)
	if ended.State != models.OpCancelled || ended.Error != "cancelled" {
		t.Fatalf("cancelled operation ended %+v", ended)
	}
	select {
	case in := <-agent.creates:
		t.Fatalf("the cancelled create still ran on the agent: %+v", in)
	default:
	}
	var v models.Volume
	store.DB.Take(&v, vid)
	if v.State != models.StateFailed {
		t.Fatalf("volume after the cancelled create: %s", v.State)
	}
	if _, err := store.CancelOperation(ctx, admin, op.ID); err == nil {
		t.Fatal("a second cancel of an ended operation was accepted")
	}

	// Retry: the same create runs again (once more under the same workflow id).
	again, err := store.RetryOperation(ctx, admin, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == op.ID || again.Kind != models.OpVolumeCreate || again.ObjectID != vid {
		t.Fatalf("retry = %+v", again)
	}
	if done := waitEnded(t, ctx, store, again.ID); done.State != models.OpSucceeded {
		t.Fatalf("retried create ended %+v", done)
	}
	store.DB.Take(&v, vid)
	if v.State != models.StateReady || len(agent.creates) != 1 {
		t.Fatalf("after the retry: volume %s, %d creates", v.State, len(agent.creates))
	}
	if _, err := store.RetryOperation(ctx, admin, again.ID); err == nil {
		t.Fatal("a retry of a succeeded operation was accepted")
	}

	// A workflow terminated in Temporal's UI shows as such in the panel.
	agent.w.Stop()
	reported(t, ctx, store, sid)
	res, err = newVolume("terminated")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.TerminateWorkflow(ctx, res.Operation.WorkflowID, res.Operation.RunID, "operator gave up"); err != nil {
		t.Fatal(err)
	}
	term, _, err := store.OperationStatus(ctx, admin, res.Operation.ID)
	if err != nil {
		t.Fatal(err)
	}
	if term.State != models.OpCancelled || !strings.Contains(term.Error, "terminated in Temporal") || !strings.Contains(term.Error, "operator gave up") {
		t.Fatalf("terminated workflow's operation: %+v", term)
	}

	// A delete of a volume whose create never reached the (still absent) agent ends at
	// once, without it: nothing exists on the server.
	reported(t, ctx, store, sid)
	res, err = newVolume("unmade")
	if err != nil {
		t.Fatal(err)
	}
	unmade := res.Object.(*models.Volume).ID
	for {
		desc, err := c.DescribeWorkflowExecution(ctx, workflows.VolumeCreateID(unmade), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(desc.GetPendingActivities()) == 1 && desc.GetPendingActivities()[0].GetActivityType().GetName() == "CreateVolume" {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the create never asked for its agent")
		}
		time.Sleep(100 * time.Millisecond)
	}
	del, err := store.DeleteVolume(ctx, admin, unmade)
	if err != nil {
		t.Fatal(err)
	}
	if d := waitEnded(t, ctx, store, del.Operation.ID); d.State != models.OpSucceeded || !strings.Contains(d.Message, "nothing to move") {
		t.Fatalf("delete of a volume never made: %+v", d)
	}
	if cr, _ := store.Operation(ctx, nil, res.Operation.ID); cr.State != models.OpCancelled {
		t.Fatalf("its create: %+v", cr)
	}
	var gone models.Volume
	store.DB.Take(&gone, unmade)
	if gone.State != models.StateDeleted {
		t.Fatalf("volume never made, deleted: %s", gone.State)
	}
}

// waitEnded polls an operation until it ends.
func waitEnded(t *testing.T, ctx context.Context, store *models.Store, id uint) *models.Operation {
	t.Helper()
	for {
		got, err := store.Operation(context.Background(), nil, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Finished() {
			return got
		}
		if ctx.Err() != nil {
			t.Fatalf("operation %d never ended: %+v", id, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
