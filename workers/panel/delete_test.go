package panel

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workflows"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
)

// TestDeleteThroughDeviceWorkflow: deleting a provisioned device through the store (as the
// API does) runs the device's workflow on the real Temporal server: the agent is asked to
// remove the target and move the disk to the erator, the operation ends succeeded and the
// workflow ends. A delete queued by a panel from before (its input names only the server,
// and no engine took it) is started at the panel's start and ends the same way.
func TestDeleteThroughDeviceWorkflow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newDeviceEnv(t, ctx, "deletes", "52:54:00:00:30:01", 1)
	tmp, c, db, store, admin, sid, did := e.tmp, e.c, e.db, e.store, e.admin, e.sid, e.did

	trashed := make(chan storage.TrashInput, 8)
	aw := worker.New(c, workflows.ServerQueue(sid), worker.Options{})
	aw.RegisterActivityWithOptions(func(context.Context, storage.ExportInput) (*storage.ExportResult, error) {
		return &storage.ExportResult{}, nil
	}, activity.RegisterOptions{Name: "UnexportTarget"})
	aw.RegisterActivityWithOptions(func(_ context.Context, in storage.TrashInput) (*storage.TrashResult, error) {
		trashed <- in
		return &storage.TrashResult{Trash: storage.EratorDataset(in.Pool, in.Kind, in.ID, in.Unix)}, nil
	}, activity.RegisterOptions{Name: "Trash"})
	if err := aw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(aw.Stop)

	waitOp := func(id uint) models.Operation {
		for {
			var o models.Operation
			if err := db.Take(&o, id).Error; err != nil {
				t.Fatal(err)
			}
			if o.Finished() {
				return o
			}
			select {
			case <-ctx.Done():
				t.Fatalf("operation %d never ended: %+v", id, o)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	// deleted checks that device id's disk went to the erator through its workflow, which
	// ended, and that operation opID ended succeeded.
	deleted := func(id, opID uint) {
		t.Helper()
		select {
		case in := <-trashed:
			if in.Pool != "tank" || in.Dataset != storage.DeviceDataset("tank", id) || in.Kind != "device" || in.ID != id {
				t.Fatalf("trash input %+v, want device %d's disk in tank", in, id)
			}
		case <-ctx.Done():
			t.Fatalf("the agent was never asked to move device %d's disk to the erator", id)
		}
		o := waitOp(opID)
		if o.State != models.OpSucceeded || o.Percent != 100 || o.WorkflowID != workflows.DeviceWorkflowID(id) ||
			!strings.Contains(o.Message, fmt.Sprintf("tank/erator/device-%d-", id)) {
			t.Fatalf("delete operation ended %+v", o)
		}
		run := c.GetWorkflow(ctx, workflows.DeviceWorkflowID(id), o.RunID)
		var res workflows.DeviceResult
		if err := run.Get(ctx, &res); err != nil || res.Clone != (workflows.DeviceClone{}) {
			t.Fatalf("device %d's workflow: %+v %v, want it ended without a disk", id, res, err)
		}
		var n int64
		db.Model(&models.Device{}).Where("id = ?", id).Count(&n)
		if n != 0 {
			t.Fatalf("device %d's row is still there", id)
		}
	}

	res, err := store.DeleteDevice(ctx, admin, did)
	if err != nil {
		t.Fatal(err)
	}
	op := res.Operation
	if op == nil || op.Kind != models.OpDeviceDelete || op.WorkflowID != workflows.DeviceWorkflowID(did) || op.RunID == "" {
		t.Fatalf("delete answered with operation %+v, want one carried by %s", op, workflows.DeviceWorkflowID(did))
	}
	deleted(did, op.ID)

	// A delete a panel from before left queued: its device row is gone, its input names
	// only the server; the panel's start sends it to the device's workflow.
	dev, err := store.CreateDevice(ctx, admin, &models.DeviceInput{NetworkID: &e.nid, MAC: models.Strp("52:54:00:00:30:02"), GroupID: &e.g.ID})
	if err != nil {
		t.Fatal(err)
	}
	old := dev.Object.(*models.Device).ID
	if err := models.RecordClone(ctx, db, e.nid, old, e.versions[1], sid); err != nil {
		t.Fatal(err)
	}
	queued := &models.Operation{NetworkID: &e.nid, Kind: models.OpDeviceDelete, ObjectType: "device", ObjectID: old,
		State: models.OpQueued, Step: "queued", Input: fmt.Sprintf(`{"server_id":%d}`, sid)}
	if err := db.Create(queued).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(&models.Device{}, old).Error; err != nil {
		t.Fatal(err)
	}
	tmp.Engine.ResumeQueued(ctx)
	deleted(old, queued.ID)
	desc, err := c.DescribeWorkflowExecution(ctx, workflows.DeviceWorkflowID(old), "")
	if err != nil || desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("device %d's workflow: %v %v", old, desc.GetWorkflowExecutionInfo().GetStatus(), err)
	}
}
