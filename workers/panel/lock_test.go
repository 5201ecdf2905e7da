package panel

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
)

// slowAgent answers the device workflow's storage activities; a clone of a version in
// hold waits until that version is released.
type slowAgent struct {
	mu      sync.Mutex
	hold    map[int]chan struct{}
	started chan int
	clones  []int
}

// made lists the versions cloned so far, in order.
func (f *slowAgent) made() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprint(f.clones)
}

func (f *slowAgent) register(w worker.Registry) {
	reg := func(fn any, name string) { w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(func(ctx context.Context, in storage.CloneDeviceInput) (*storage.CloneDeviceResult, error) {
		f.mu.Lock()
		f.clones = append(f.clones, in.Version)
		h := f.hold[in.Version]
		f.mu.Unlock()
		f.started <- in.Version
		if h != nil {
			select {
			case <-h:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return &storage.CloneDeviceResult{}, nil
	}, "CloneDevice")
	for _, name := range []string{"ExportTarget", "UnexportTarget"} {
		reg(func(context.Context, storage.ExportInput) (*storage.ExportResult, error) {
			return &storage.ExportResult{}, nil
		}, name)
	}
	reg(func(_ context.Context, in storage.TrashInput) (*storage.TrashResult, error) {
		return &storage.TrashResult{Trash: storage.EratorDataset(in.Pool, in.Kind, in.ID, in.Unix)}, nil
	}, "Trash")
}

// TestLockThroughDeviceWorkflow: a lock change made through the store (as the API and the
// dashboard make it) goes through the device's workflow on the real Temporal server: it
// waits for the reprovisioning under way, a reprovisioning decided before the lock is
// then refused, and a lock held up longer than the wait is answered as queued and still
// happens.
func TestLockThroughDeviceWorkflow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newDeviceEnv(t, ctx, "locks", "52:54:00:00:10:01", 3)
	tmp, db, store, admin, did, versions := e.tmp, e.db, e.store, e.admin, e.did, e.versions
	tmp.Engine.LockWait = 3 * time.Second

	agent := &slowAgent{hold: map[int]chan struct{}{2: make(chan struct{}), 3: make(chan struct{})}, started: make(chan int, 8)}
	e.startAgent(t, agent.register)

	provision := e.provision
	lock := func(locked bool) <-chan *models.Created {
		out := make(chan *models.Created, 1)
		go func() {
			res, err := store.UpdateDevice(ctx, admin, did, &models.DeviceInput{Locked: &locked})
			if err != nil {
				t.Errorf("lock %t: %v", locked, err)
			}
			out <- res
		}()
		return out
	}
	row := func() models.Device {
		var d models.Device
		if err := db.Take(&d, did).Error; err != nil {
			t.Fatal(err)
		}
		return d
	}
	waitClone := func(v int) {
		select {
		case got := <-agent.started:
			if got != v {
				t.Fatalf("clone of v%d started, want v%d", got, v)
			}
		case <-ctx.Done():
			t.Fatalf("no clone of v%d started", v)
		}
	}

	// 1. A lock arriving while v2 is being cloned waits for it.
	v2 := provision(2)
	waitClone(2)
	locked := lock(true)
	select {
	case <-locked:
		t.Fatal("the lock change did not wait for the reprovisioning under way")
	case <-time.After(time.Second):
	}
	close(agent.hold[2])
	if err := <-v2; err != nil {
		t.Fatalf("reprovision to v2: %v", err)
	}
	if res := <-locked; res == nil || res.Warning != "" || !res.Object.(*models.Device).Locked {
		t.Fatalf("lock answer: %+v", res)
	}
	if d := row(); !d.Locked || d.CloneVersionID == nil || *d.CloneVersionID != versions[2] {
		t.Fatalf("after the lock: locked %t, clone version %v (want v2's %d)", d.Locked, d.CloneVersionID, versions[2])
	}

	// 2. A reprovisioning the boot path decided before it saw the lock is refused.
	if err := <-provision(3); !activities.IsType(err, activities.TypeDeviceLocked) {
		t.Fatalf("stale reprovision of a locked device: %v, want DeviceLocked", err)
	}
	if clones := agent.made(); clones != "[2]" {
		t.Fatalf("clones made: %s, want only v2's", clones)
	}

	// 3. Unlocked, v3 goes ahead; a lock held up longer than the wait is answered as
	// queued, and is made once v3 is done.
	if res := <-lock(false); res == nil || res.Object.(*models.Device).Locked {
		t.Fatalf("unlock answer: %+v", res)
	}
	v3 := provision(3)
	waitClone(3)
	res := <-lock(true)
	if res == nil || res.Warning == "" {
		t.Fatalf("lock held up by a reprovisioning: %+v, want a queued warning", res)
	}
	if row().Locked {
		t.Fatal("the queued lock was made before the reprovisioning under way ended")
	}
	close(agent.hold[3])
	if err := <-v3; err != nil {
		t.Fatalf("reprovision to v3: %v", err)
	}
	for !row().Locked {
		select {
		case <-ctx.Done():
			t.Fatal("the queued lock never happened")
		case <-time.After(100 * time.Millisecond):
		}
	}
	var audits int64
	db.Model(&models.AuditEvent{}).Where("object = ? AND object_id = ? AND detail IN ?", "device", did, []string{"lock", "unlock"}).Count(&audits)
	if audits != 3 {
		t.Fatalf("audit rows for lock changes: %d, want 3", audits)
	}
}
