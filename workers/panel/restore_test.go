package panel

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workflows"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
)

// TestRestoreThroughDeviceWorkflow: a device restore recorded through the store (as the
// API records it) runs in the device's workflow on the real Temporal server: it waits for
// the reprovisioning under way, then swaps the disk; the operation row shows it waiting,
// then its end; the restored version is the device's disk (asking for it again is no
// work), and sending the same operation again does not swap the disks back.
func TestRestoreThroughDeviceWorkflow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newDeviceEnv(t, ctx, "restores", "52:54:00:00:20:01", 2)
	tmp, db, store, admin, did, g, versions := e.tmp, e.db, e.store, e.admin, e.did, e.g, e.versions

	// The agent: v2's clone waits for hold; the restore swaps v1 back (the disk v2 replaced).
	agent := &slowAgent{hold: map[int]chan struct{}{2: make(chan struct{})}, started: make(chan int, 8)}
	restores := make(chan storage.RestoreDeviceInput, 8)
	e.startAgent(t, func(aw worker.Registry) {
		agent.register(aw)
		aw.RegisterActivityWithOptions(func(_ context.Context, in storage.RestoreDeviceInput) (*storage.RestoreDeviceResult, error) {
			restores <- in
			from := storage.EratorDataset(in.Pool, "device", in.DeviceID, in.Unix-60)
			return &storage.RestoreDeviceResult{From: from, Origin: fmt.Sprintf("%s/iscsi/groups/%d@v1", in.Pool, g.ID), GroupID: g.ID, Version: 1}, nil
		}, activity.RegisterOptions{Name: "RestoreDevice"})
	})

	provision := e.provision
	op := func(id uint) models.Operation {
		var o models.Operation
		if err := db.Take(&o, id).Error; err != nil {
			t.Fatal(err)
		}
		return o
	}
	waitOp := func(id uint, what string, done func(models.Operation) bool) models.Operation {
		for {
			o := op(id)
			if done(o) {
				return o
			}
			select {
			case <-ctx.Done():
				t.Fatalf("operation %d never %s: %+v", id, what, o)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}

	// 1. A reprovisioning to v2 is under way (its clone held).
	v2 := provision(2)
	select {
	case got := <-agent.started:
		if got != 2 {
			t.Fatalf("clone of v%d started, want v2", got)
		}
	case <-ctx.Done():
		t.Fatal("no clone of v2 started")
	}

	// 2. The restore is recorded (202 with the operation inline) and waits for it.
	res, err := store.RestoreDevice(ctx, admin, did, &models.DeviceRestoreInput{})
	if err != nil {
		t.Fatal(err)
	}
	rop := res.Operation
	if rop == nil || rop.Kind != models.OpDeviceRestore || rop.WorkflowID != workflows.DeviceWorkflowID(did) || rop.RunID == "" || rop.Finished() {
		t.Fatalf("restore answered with operation %+v, want one carried by %s", rop, workflows.DeviceWorkflowID(did))
	}
	waitOp(rop.ID, "showed it waiting", func(o models.Operation) bool { return o.State == models.OpRunning && o.Step == "waiting" })
	select {
	case in := <-restores:
		t.Fatalf("the restore ran during the reprovisioning: %+v", in)
	case <-time.After(time.Second):
	}

	// 3. v2 ends, then the restore swaps the disk back to v1.
	close(agent.hold[2])
	if err := <-v2; err != nil {
		t.Fatalf("reprovision to v2: %v", err)
	}
	select {
	case in := <-restores:
		if in.DeviceID != did || in.Pool != "tank" || in.From != "" {
			t.Fatalf("restore input %+v", in)
		}
	case <-ctx.Done():
		t.Fatal("the restore never ran")
	}
	o := waitOp(rop.ID, "ended", func(o models.Operation) bool { return o.Finished() })
	if o.State != models.OpSucceeded || o.Step != "done" || o.Percent != 100 || o.Error != "" ||
		o.WorkflowID != workflows.DeviceWorkflowID(did) || o.RunID != rop.RunID {
		t.Fatalf("restore operation ended %+v", o)
	}
	var d models.Device
	if err := db.Take(&d, did).Error; err != nil {
		t.Fatal(err)
	}
	if d.CloneVersionID == nil || *d.CloneVersionID != versions[1] {
		t.Fatalf("device's clone version %v after the restore, want v1's %d", d.CloneVersionID, versions[1])
	}

	// 4. v1 is the workflow's disk now: asking for it clones nothing.
	if err := <-provision(1); err != nil {
		t.Fatalf("provision of the restored v1: %v", err)
	}
	if clones := agent.made(); clones != "[2]" {
		t.Fatalf("clones made: %s, want only v2's", clones)
	}

	// 5. The same operation sent again (a panel resuming it) joins the first: no second swap.
	again := op(rop.ID)
	if err := tmp.Engine.Start(ctx, &again); err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-restores:
		t.Fatalf("the same restore operation swapped the disks again: %+v", in)
	case <-time.After(time.Second):
	}
	if o := op(rop.ID); o.State != models.OpSucceeded || o.RunID != rop.RunID {
		t.Fatalf("restore operation after a repeat: %+v", o)
	}
}
