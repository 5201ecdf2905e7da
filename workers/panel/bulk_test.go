package panel

import (
	"context"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workflows"
)

// TestBulkThroughDeviceWorkflows: a bulk lock through the store (as the API's
// devices/bulk.json and the dashboard's selection make it) goes through each device's
// workflow on the real Temporal server, and a bulk delete's disks go to the erator
// through them, each device's operation ending succeeded with its row gone.
func TestBulkThroughDeviceWorkflows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newDeviceEnv(t, ctx, "bulk", "52:54:00:00:41:01", 1)
	db, store, admin := e.db, e.store, e.admin
	agent := &slowAgent{hold: map[int]chan struct{}{}, started: make(chan int, 8)}
	e.startAgent(t, agent.register)
	// Two devices of their own ids: the package's tests share one Temporal server, where
	// device-<id> and its updates' ids (from operation ids) must not meet another test's.
	d1, d2 := uint(901), uint(902)
	for i, id := range []uint{d1, d2} {
		d := &models.Device{ID: id, NetworkID: e.nid, MAC: "52:54:00:00:40:0" + itoa(uint(i+1)), Name: "pc-" + itoa(uint(i+1)), GroupID: &e.g.ID}
		if err := db.Create(d).Error; err != nil {
			t.Fatal(err)
		}
		if err := models.RecordClone(ctx, db, e.nid, id, e.versions[1], e.sid); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			e.c.TerminateWorkflow(context.Background(), workflows.DeviceWorkflowID(id), "", "test over") //nolint:errcheck
		})
	}

	res, err := store.BulkDevices(ctx, admin, &models.DeviceBulkInput{Action: models.Strp("lock"), Devices: &[]models.DeviceRef{"52:54:00:00:40:01", "pc-2"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 0 || len(res.Devices) != 2 {
		t.Fatalf("bulk lock: %+v", res)
	}
	for _, id := range []uint{d1, d2} {
		var d models.Device
		if err := db.Take(&d, id).Error; err != nil || !d.Locked {
			t.Fatalf("device %d after the bulk lock: %+v %v", id, d, err)
		}
		if _, err := e.c.DescribeWorkflowExecution(ctx, workflows.DeviceWorkflowID(id), ""); err != nil {
			t.Fatalf("device %d's lock did not go through its workflow: %v", id, err)
		}
	}

	res, err = store.BulkDevices(ctx, admin, &models.DeviceBulkInput{Action: models.Strp("delete"), Devices: &[]models.DeviceRef{models.DeviceRef(itoa(d1)), models.DeviceRef(itoa(d2))}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Operations) != 2 {
		t.Fatalf("bulk delete of two devices with disks: operations %+v", res.Operations)
	}
	for _, op := range res.Operations {
		for {
			var o models.Operation
			if err := db.Take(&o, op.ID).Error; err != nil {
				t.Fatal(err)
			}
			if o.Finished() {
				if o.State != models.OpSucceeded || o.WorkflowID != workflows.DeviceWorkflowID(o.ObjectID) {
					t.Fatalf("delete of device %d ended %+v", o.ObjectID, o)
				}
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("operation %d never ended: %+v", o.ID, o)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	var left int64
	db.Model(&models.Device{}).Where("id IN ?", []uint{d1, d2}).Count(&left)
	if left != 0 {
		t.Fatalf("%d device rows left after the bulk delete", left)
	}
}
