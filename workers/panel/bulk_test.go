package panel

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workflows"
)

// TestBulkThroughDeviceWorkflows: a bulk lock through the store (as the API's
// devices/bulk.json and the dashboard's selection make it) is ONE operation whose one
// workflow sends the change through each device's workflow on the real Temporal server,
// reporting n/N and each device's outcome; a bulk delete's disks go to the erator the same
// way, as one operation ending succeeded with the rows gone; a bulk restore on a device
// whose disk cannot come back ends failed naming that device, and its retry runs only it.
func TestBulkThroughDeviceWorkflows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newDeviceEnv(t, ctx, "bulk", "52:54:00:00:41:01", 1)
	db, store, admin := e.db, e.store, e.admin
	agent := &slowAgent{hold: map[int]chan struct{}{}, started: make(chan int, 8)}
	// The agent's erator has nothing for device noRestore (0: every restore works).
	var noRestore atomic.Uint32
	e.startAgent(t, func(aw worker.Registry) {
		agent.register(aw)
		aw.RegisterActivityWithOptions(func(_ context.Context, in storage.RestoreDeviceInput) (*storage.RestoreDeviceResult, error) {
			if uint32(in.DeviceID) == noRestore.Load() {
				return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("no erator entry of device %d", in.DeviceID), activities.TypeNotInErator, nil)
			}
			from := storage.EratorDataset(in.Pool, "device", in.DeviceID, in.Unix-60)
			return &storage.RestoreDeviceResult{From: from, GroupID: e.g.ID, Version: 1}, nil
		}, activity.RegisterOptions{Name: "RestoreDevice"})
	})
	// Devices of their own ids: the package's tests share one Temporal server, where
	// device-<id> and its updates' ids must not meet another test's.
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
	ended := func(op *models.Operation) models.Operation {
		t.Helper()
		for {
			var o models.Operation
			if err := db.Take(&o, op.ID).Error; err != nil {
				t.Fatal(err)
			}
			if o.Finished() {
				return o
			}
			select {
			case <-ctx.Done():
				t.Fatalf("operation %d never ended: %+v", o.ID, o)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	var before int64
	db.Model(&models.Operation{}).Count(&before)

	res, err := store.BulkDevices(ctx, admin, &models.DeviceBulkInput{Action: models.Strp("lock"), Devices: &[]models.DeviceRef{"52:54:00:00:40:01", "pc-2"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Operation == nil || res.Operation.Kind != models.OpBulkLock || len(res.Devices) != 2 || res.Devices[1].OperationID == nil {
		t.Fatalf("bulk lock: %+v", res)
	}
	o := ended(res.Operation)
	if o.State != models.OpSucceeded || o.WorkflowID != workflows.BulkDevicesID(o.ID) || len(o.Result) != 2 {
		t.Fatalf("bulk lock ended %+v", o)
	}
	for _, r := range o.Result {
		if r.State != models.BulkDone {
			t.Errorf("bulk lock's outcome %+v", r)
		}
	}
	var after int64
	db.Model(&models.Operation{}).Count(&after)
	if after != before+1 {
		t.Errorf("a bulk lock of 2 devices recorded %d operations, want 1", after-before)
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

	// A restore with nothing in the erator (the fake agent has none for 902) fails that device.
	noRestore.Store(uint32(d2))
	res, err = store.BulkDevices(ctx, admin, &models.DeviceBulkInput{Action: models.Strp("restore"), Devices: &[]models.DeviceRef{"pc-1", "pc-2"}})
	if err != nil {
		t.Fatal(err)
	}
	o = ended(res.Operation)
	if o.State != models.OpFailed || !strings.Contains(o.Error, "device 902") || strings.Contains(o.Error, "device 901") ||
		o.Result[0].State != models.BulkDone || o.Result[1].State != models.BulkFailed || o.Result[1].Error == "" {
		t.Fatalf("bulk restore with one device failing ended %+v", o)
	}
	noRestore.Store(0)
	retry, err := store.RetryOperation(ctx, admin, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := ended(retry); r.State != models.OpSucceeded || len(r.Result) != 1 || r.Result[0].ID != d2 {
		t.Fatalf("the retry of the bulk restore: %+v", r)
	}

	res, err = store.BulkDevices(ctx, admin, &models.DeviceBulkInput{Action: models.Strp("delete"), Devices: &[]models.DeviceRef{models.DeviceRef(itoa(d1)), models.DeviceRef(itoa(d2))}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Operation == nil || res.Operation.Kind != models.OpBulkDelete || len(res.Others) != 0 {
		t.Fatalf("bulk delete of two devices with disks: %+v", res)
	}
	if o := ended(res.Operation); o.State != models.OpSucceeded || o.Percent != 100 {
		t.Fatalf("bulk delete ended %+v", o)
	}
	var left int64
	db.Model(&models.Device{}).Where("id IN ?", []uint{d1, d2}).Count(&left)
	if left != 0 {
		t.Fatalf("%d device rows left after the bulk delete", left)
	}
}
