package workflows

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/stretchr/testify/mock"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
)

// deviceSuite runs the device workflow with every activity recorded in call order.
type deviceSuite struct {
	env    *testsuite.TestWorkflowEnvironment
	calls  []string
	locked bool // the device row's lock, as SetDeviceLock left it
	// steps and outcomes are the operation rows' writes (trackOps).
	steps    []string
	outcomes []panel.FinishInput
	diskGone bool // Trash finds no disk (removed by hand, or moved by an earlier run)
	// vdiskOn is the server holding the device's vdisk 5 (pool "vd", 0: no vdisk): the
	// plan names it for a provisioning on any other server.
	vdiskOn uint
	// moveErr fails the vdisk's transfer; exportErr every export.
	moveErr, exportErr error
	// vdiskBusy: the vdisk has a change of its own under way (the plan refuses the move).
	vdiskBusy bool
}

func newDeviceSuite(t *testing.T) *deviceSuite {
	var ts testsuite.WorkflowTestSuite
	ts.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	s := &deviceSuite{env: ts.NewTestWorkflowEnvironment()}
	// CI machines are small and shared: a starved test process is not a deadlock.
	s.env.SetWorkerOptions(worker.Options{DeadlockDetectionTimeout: 30 * time.Second})
	s.env.RegisterActivity(&panel.Activities{})
	s.env.RegisterActivity(&storage.Activities{})
	s.env.RegisterActivity(&storage.Devices{})
	Register(s.env)
	s.env.OnActivity(pa.DevicePlan, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in panel.DevicePlanInput) (*panel.DevicePlanResult, error) {
			s.calls = append(s.calls, "plan")
			res := &panel.DevicePlanResult{NetworkID: 1, UUID: "u", Pool: "tank", Locked: s.locked}
			if in.OldServerID != 0 {
				res.OldPool = "old"
			}
			if s.vdiskOn != 0 && s.vdiskOn != in.ServerID {
				res.VDisk = &models.VDiskPlace{ID: 5, ServerID: s.vdiskOn, Pool: "vd", Addr: "10.0.0.1:8082"}
				if !in.MarkVDiskMoving {
					return nil, temporal.NewNonRetryableApplicationError("vdisk 5 not marked moving", "X", nil)
				}
				if s.vdiskBusy {
					return nil, temporal.NewNonRetryableApplicationError("device 7: vdisk 5 has a vdisk-resize under way", panel.TypeVDiskBusy, nil)
				}
				s.calls[len(s.calls)-1] = "plan (vdisk 5 moving)"
			}
			return res, nil
		}).Maybe()
	s.env.OnActivity(pa.EndVDiskMove, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in panel.EndVDiskMoveInput) (*panel.EndVDiskMoveResult, error) {
			s.calls = append(s.calls, fmt.Sprintf("vdisk %d move ended", in.VDiskID))
			return &panel.EndVDiskMoveResult{}, nil
		}).Maybe()
	s.env.OnActivity(pa.RecordClone, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in panel.RecordCloneInput) (*panel.RecordCloneResult, error) {
			rec := "record v" + itoa(in.Version)
			if in.VDiskID != 0 {
				rec += fmt.Sprintf(" with vdisk %d on server %d", in.VDiskID, in.ServerID)
			}
			s.calls = append(s.calls, rec)
			return &panel.RecordCloneResult{}, nil
		}).Maybe()
	var moveSnap storage.SnapshotResult
	s.env.OnActivity(da.AttachVDisk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.AttachVDiskInput) (*storage.AttachVDiskResult, error) {
			s.calls = append(s.calls, fmt.Sprintf("vdisk %d from device %d to %d on %s", in.VDiskID, in.From, in.To, in.Pool))
			return &storage.AttachVDiskResult{}, nil
		}).Maybe()
	s.env.OnActivity(sa.Snapshot, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.SnapshotInput) (*storage.SnapshotResult, error) {
			s.calls = append(s.calls, "snapshot "+in.Dataset)
			moveSnap = storage.SnapshotResult{Snapshot: in.Dataset + "@" + in.Name, GUID: "g" + in.Name, Created: true}
			return &moveSnap, nil
		}).Maybe()
	s.env.OnActivity(sa.Replicate, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.ReplicateInput) (*storage.ReplicateResult, error) {
			// The transfer asks for the snapshot just taken, by its guid, from its holder.
			if in.Snapshot == "" || moveSnap.Snapshot != "vd/"+in.Dataset+"@"+in.Snapshot || in.GUID != moveSnap.GUID {
				return nil, fmt.Errorf("replicate %+v: not the snapshot taken (%+v)", in, moveSnap)
			}
			s.calls = append(s.calls, fmt.Sprintf("pull %s into %s from server %d at %s", in.Dataset, in.Pool, in.Master.ServerID, in.MasterAddr))
			if s.moveErr != nil {
				return nil, s.moveErr
			}
			return &storage.ReplicateResult{Snapshot: in.Snapshot, GUID: in.GUID}, nil
		}).Maybe()
	s.env.OnActivity(pa.SetDeviceLock, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in panel.SetDeviceLockInput) (*panel.SetDeviceLockResult, error) {
			s.locked = in.Locked
			s.calls = append(s.calls, fmt.Sprintf("lock %t", in.Locked))
			return &panel.SetDeviceLockResult{}, nil
		}).Maybe()
	s.env.OnActivity(da.UnexportTarget, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.ExportInput) (*storage.ExportResult, error) {
			s.calls = append(s.calls, "unexport "+in.Pool)
			return &storage.ExportResult{}, nil
		}).Maybe()
	s.env.OnActivity(sa.Trash, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.TrashInput) (*storage.TrashResult, error) {
			s.calls = append(s.calls, "trash "+in.Dataset)
			return &storage.TrashResult{Trash: storage.EratorDataset(in.Pool, in.Kind, in.ID, in.Unix), Missing: s.diskGone}, nil
		}).Maybe()
	s.env.OnActivity(da.ExportTarget, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.ExportInput) (*storage.ExportResult, error) {
			s.calls = append(s.calls, "export "+in.Pool)
			if s.exportErr != nil {
				return nil, s.exportErr
			}
			return &storage.ExportResult{}, nil
		}).Maybe()
	return s
}

func itoa(n int) string { return string(rune('0' + n)) }

func (s *deviceSuite) onClone(fn func(storage.CloneDeviceInput) error) {
	s.env.OnActivity(da.CloneDevice, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.CloneDeviceInput) (*storage.CloneDeviceResult, error) {
			s.calls = append(s.calls, "clone v"+itoa(in.Version))
			if err := fn(in); err != nil {
				return nil, err
			}
			return &storage.CloneDeviceResult{}, nil
		})
}

// expect checks the activities called and the operation rows' writes, in order.
func (s *deviceSuite) expect(t *testing.T, calls, steps string) {
	t.Helper()
	if j := join(s.calls); j != calls {
		t.Fatalf("calls %s\nwant  %s", j, calls)
	}
	if j := join(s.steps); j != steps {
		t.Fatalf("operations %s\nwant       %s", j, steps)
	}
}

// slowClone makes every clone take 5 s (workflow time), for updates to arrive meanwhile.
func (s *deviceSuite) slowClone() {
	s.env.OnActivity(da.CloneDevice, mock.Anything, mock.Anything).After(5 * time.Second).Return(
		func(_ context.Context, in storage.CloneDeviceInput) (*storage.CloneDeviceResult, error) {
			s.calls = append(s.calls, "clone v"+itoa(in.Version))
			return &storage.CloneDeviceResult{}, nil
		})
}

// update sends a provision update after delay and records its outcome.
func (s *deviceSuite) update(t *testing.T, delay time.Duration, id string, r wire.ProvisionRequest, got *DeviceClone, gotErr *error) {
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(UpdateProvision, id, &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { *gotErr = err },
			OnComplete: func(v any, err error) {
				if err != nil {
					*gotErr = err
					return
				}
				*got = v.(DeviceClone)
			},
		}, r)
	}, delay)
}

// lock sends a lock update after delay and records when it completed (in calls) and its outcome.
func (s *deviceSuite) lock(delay time.Duration, locked bool, gotErr *error) {
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(UpdateLock, fmt.Sprintf("lock-%t-%s", locked, delay), &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { *gotErr = err },
			OnComplete: func(_ any, err error) {
				*gotErr = err
				s.calls = append(s.calls, fmt.Sprintf("locked %t", locked))
			},
		}, DeviceLockRequest{Locked: locked})
	}, delay)
}

func req(version int, server uint) wire.ProvisionRequest {
	return wire.ProvisionRequest{NetworkID: 1, DeviceID: 7, GroupID: 3, ServerID: server, Version: version, UUID: "u"}
}

func TestDeviceProvisionsOncePerVersion(t *testing.T) {
	s := newDeviceSuite(t)
	s.onClone(func(storage.CloneDeviceInput) error { return nil })
	var first, second, third DeviceClone
	var e1, e2, e3 error
	s.update(t, time.Second, "a", req(1, 1), &first, &e1)
	s.update(t, 2*time.Second, "b", req(1, 1), &second, &e2) // the same version again: no work
	r2 := req(2, 1)
	r2.Reprovision, r2.OldServerID = true, 1
	s.update(t, 3*time.Second, "c", r2, &third, &e3)
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if e1 != nil || e2 != nil || e3 != nil {
		t.Fatalf("updates failed: %v %v %v", e1, e2, e3)
	}
	if first != (DeviceClone{GroupID: 3, Version: 1, ServerID: 1}) || second != first || third != (DeviceClone{GroupID: 3, Version: 2, ServerID: 1}) {
		t.Fatalf("clones: %+v %+v %+v", first, second, third)
	}
	want := []string{"plan", "clone v1", "export tank", "record v1",
		"plan", "unexport old", "trash old/iscsi/devices/7", "clone v2", "export tank", "record v2"}
	if len(s.calls) != len(want) {
		t.Fatalf("calls %q, want %q", s.calls, want)
	}
	for i := range want {
		if s.calls[i] != want[i] {
			t.Fatalf("calls %q, want %q", s.calls, want)
		}
	}
	var res DeviceResult
	if err := s.env.GetWorkflowResult(&res); err != nil || res.Clone != third {
		t.Fatalf("result %+v %v", res, err)
	}
}

// A device redirected to another server takes its vdisk along: LUN 1 leaves the old
// server before the snapshot (no write after it is lost), the new server pulls that
// snapshot and serves it as LUN 1 before the device's target is exported there, and the
// vdisk's server is recorded with the device's.
func TestDeviceMovesItsVDiskWithTheClone(t *testing.T) {
	s := newDeviceSuite(t)
	s.vdiskOn = 1
	s.onClone(func(storage.CloneDeviceInput) error { return nil })
	var got DeviceClone
	var err error
	r := req(1, 2) // the same version, on server 2 (a redirect)
	r.Reprovision, r.OldServerID = true, 1
	s.update(t, time.Second, "a", r, &got, &err)
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7, Clone: DeviceClone{GroupID: 3, Version: 1, ServerID: 1}})
	if err != nil || got != (DeviceClone{GroupID: 3, Version: 1, ServerID: 2}) {
		t.Fatalf("update: %+v %v", got, err)
	}
	s.expect(t, "plan (vdisk 5 moving),unexport old,trash old/iscsi/devices/7,clone v1,vdisk 5 from device 7 to 0 on vd,snapshot vd/vdisks/5,"+
		"pull vdisks/5 into tank from server 1 at 10.0.0.1:8082,vdisk 5 from device 0 to 7 on tank,export tank,record v1 with vdisk 5 on server 2", "")
}

// A reprovisioning on the server that holds the vdisk leaves it alone.
func TestDeviceKeepsItsVDiskOnTheSameServer(t *testing.T) {
	s := newDeviceSuite(t)
	s.vdiskOn = 1
	s.onClone(func(storage.CloneDeviceInput) error { return nil })
	var got DeviceClone
	var err error
	r := req(2, 1)
	r.Reprovision, r.OldServerID = true, 1
	s.update(t, time.Second, "a", r, &got, &err)
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7, Clone: DeviceClone{GroupID: 3, Version: 1, ServerID: 1}})
	if err != nil {
		t.Fatal(err)
	}
	s.expect(t, "plan,unexport old,trash old/iscsi/devices/7,clone v2,export tank,record v2", "")
}

// A transfer that fails fails the provisioning before the new target is exported or
// anything recorded: the vdisk is LUN 1 of the device's target on the old server again,
// where the panel still places it (and the device), and the next boot's provisioning
// here moves it again.
func TestDeviceVDiskMoveFailureGivesItBack(t *testing.T) {
	s := newDeviceSuite(t)
	s.vdiskOn = 1
	s.moveErr = temporal.NewNonRetryableApplicationError("guid differs", storage.TypeGUIDMismatch, nil)
	s.onClone(func(storage.CloneDeviceInput) error { return nil })
	var got DeviceClone
	var err error
	s.update(t, time.Second, "a", req(1, 2), &got, &err)
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7})
	if err == nil || !strings.Contains(err.Error(), "move vdisk 5 from server 1 to server 2") {
		t.Fatalf("update: %+v %v", got, err)
	}
	s.expect(t, "plan (vdisk 5 moving),clone v1,vdisk 5 from device 7 to 0 on vd,snapshot vd/vdisks/5,pull vdisks/5 into tank from server 1 at 10.0.0.1:8082,"+
		"vdisk 5 from device 7 to 0 on tank,vdisk 5 from device 0 to 7 on vd,vdisk 5 move ended", "")
}

// An export that fails after the vdisk moved gives the vdisk back to the old server (the
// panel still places it there) before the provisioning fails.
func TestDeviceExportFailureGivesTheVDiskBack(t *testing.T) {
	s := newDeviceSuite(t)
	s.vdiskOn = 1
	s.exportErr = temporal.NewNonRetryableApplicationError("target failed", "X", nil)
	s.onClone(func(storage.CloneDeviceInput) error { return nil })
	var got DeviceClone
	var err error
	s.update(t, time.Second, "a", req(1, 2), &got, &err)
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7})
	if err == nil || !strings.Contains(err.Error(), "export device 7") {
		t.Fatalf("update: %+v %v", got, err)
	}
	s.expect(t, "plan (vdisk 5 moving),clone v1,vdisk 5 from device 7 to 0 on vd,snapshot vd/vdisks/5,pull vdisks/5 into tank from server 1 at 10.0.0.1:8082,"+
		"vdisk 5 from device 0 to 7 on tank,export tank,vdisk 5 from device 7 to 0 on tank,vdisk 5 from device 0 to 7 on vd,vdisk 5 move ended", "")
}

// A vdisk with a resize or an attachment of its own under way does not move: the plan
// refuses (nothing was marked, so nothing is cleared) and the provisioning fails before
// the old disk is touched; the device's next boot asks again.
func TestDeviceVDiskBusyStopsTheMove(t *testing.T) {
	s := newDeviceSuite(t)
	s.vdiskOn, s.vdiskBusy = 1, true
	s.onClone(func(storage.CloneDeviceInput) error { return nil })
	var got DeviceClone
	var err error
	r := req(1, 2)
	r.Reprovision, r.OldServerID = true, 1
	s.update(t, time.Second, "a", r, &got, &err)
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7, Clone: DeviceClone{GroupID: 3, Version: 1, ServerID: 1}})
	if err == nil || !strings.Contains(err.Error(), "vdisk 5 has a vdisk-resize under way") {
		t.Fatalf("update: %+v %v", got, err)
	}
	s.expect(t, "plan", "")
}

func TestDeviceUnknownDiskGoesToErator(t *testing.T) {
	s := newDeviceSuite(t)
	n := 0
	s.onClone(func(storage.CloneDeviceInput) error {
		n++
		if n == 1 {
			return activities.Wrap(activities.ErrExists)
		}
		return nil
	})
	var got DeviceClone
	var err error
	s.update(t, time.Second, "a", req(1, 2), &got, &err)
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7})
	if err != nil || got != (DeviceClone{GroupID: 3, Version: 1, ServerID: 2}) {
		t.Fatalf("update: %+v %v", got, err)
	}
	want := "plan,clone v1,unexport tank,trash tank/iscsi/devices/7,clone v1,export tank,record v1"
	if j := join(s.calls); j != want {
		t.Fatalf("calls %s\nwant  %s", j, want)
	}
}

func TestDeviceCloneFailureFailsTheUpdateOnly(t *testing.T) {
	s := newDeviceSuite(t)
	fail := true
	s.onClone(func(storage.CloneDeviceInput) error {
		if fail {
			fail = false
			return activities.Wrap(activities.ErrDatasetNotFound) // the version is not on this server
		}
		return nil
	})
	var got1, got2 DeviceClone
	var err1, err2 error
	s.update(t, time.Second, "a", req(4, 1), &got1, &err1)
	s.update(t, 2*time.Second, "b", req(4, 1), &got2, &err2)
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatalf("the workflow must outlive a failed update: %v", err)
	}
	if err1 == nil {
		t.Fatalf("first update: %v", err1)
	}
	if err2 != nil || got2 != (DeviceClone{GroupID: 3, Version: 4, ServerID: 1}) {
		t.Fatalf("retry: %+v %v", got2, err2)
	}
}

func TestDeviceRejectsAnotherDevice(t *testing.T) {
	s := newDeviceSuite(t)
	s.onClone(func(storage.CloneDeviceInput) error { return nil })
	var got DeviceClone
	var err error
	r := req(1, 1)
	r.DeviceID = 8
	s.update(t, time.Second, "a", r, &got, &err)
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7})
	if err == nil || len(s.calls) != 0 {
		t.Fatalf("a request for device 8 reached device 7's workflow: %v %v", err, s.calls)
	}
}

func join(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

func TestDeviceRestoreSwapsTheDisk(t *testing.T) {
	s := newDeviceSuite(t)
	s.env.OnActivity(pa.Progress, mock.Anything, mock.Anything).Return(&panel.ProgressResult{}, nil)
	var outcome panel.FinishInput
	s.env.OnActivity(pa.Finish, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in panel.FinishInput) (*panel.FinishResult, error) {
			outcome = in
			return &panel.FinishResult{}, nil
		})
	s.env.OnActivity(da.RestoreDevice, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.RestoreDeviceInput) (*storage.RestoreDeviceResult, error) {
			s.calls = append(s.calls, "restore "+in.From)
			return &storage.RestoreDeviceResult{From: "tank/erator/device-7-100", GroupID: 3, Version: 1}, nil
		})
	s.env.ExecuteWorkflow(DeviceRestore, DeviceRestoreInput{OperationID: 9, DeviceID: 7, ServerID: 1, Pool: "tank"})
	var res DeviceRestoreResult
	if err := s.env.GetWorkflowResult(&res); err != nil || res.Version != 1 {
		t.Fatalf("restore: %+v %v", res, err)
	}
	if j := join(s.calls); j != "plan,unexport tank,restore ,export tank,record v1" {
		t.Fatalf("calls %s", j)
	}
	if outcome.Failed || outcome.OperationID != 9 {
		t.Fatalf("outcome %+v", outcome)
	}
}

func TestDeviceRestoreNothingInErator(t *testing.T) {
	s := newDeviceSuite(t)
	s.env.OnActivity(pa.Progress, mock.Anything, mock.Anything).Return(&panel.ProgressResult{}, nil)
	var outcome panel.FinishInput
	s.env.OnActivity(pa.Finish, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in panel.FinishInput) (*panel.FinishResult, error) {
			outcome = in
			return &panel.FinishResult{}, nil
		})
	s.env.OnActivity(da.RestoreDevice, mock.Anything, mock.Anything).Return(nil, activities.Wrap(activities.ErrNotInErator))
	s.env.ExecuteWorkflow(DeviceRestore, DeviceRestoreInput{OperationID: 9, DeviceID: 7, ServerID: 1, Pool: "tank"})
	if s.env.GetWorkflowError() == nil || !outcome.Failed || !strings.Contains(outcome.Error, "nothing in the erator") {
		t.Fatalf("outcome %+v", outcome)
	}
}

// A lock set while the device is being reprovisioned waits for it; a reprovisioning the
// boot path decided before the lock is then refused (the disk stays); after an unlock the
// next one goes ahead. All through the one device workflow, in order.
func TestDeviceLockIsSerialisedWithProvisioning(t *testing.T) {
	s := newDeviceSuite(t)
	s.slowClone()
	reprovision := func(v int) wire.ProvisionRequest {
		r := req(v, 1)
		r.Reprovision, r.OldServerID = true, 1
		return r
	}
	var v2, v3refused, v3 DeviceClone
	var e2, e3refused, e3, eLock, eUnlock error
	s.update(t, time.Second, "v2", reprovision(2), &v2, &e2)
	s.lock(2*time.Second, true, &eLock) // arrives while v2's clone runs
	s.update(t, 20*time.Second, "v3-stale", reprovision(3), &v3refused, &e3refused)
	s.lock(30*time.Second, false, &eUnlock)
	s.update(t, 40*time.Second, "v3", reprovision(3), &v3, &e3)
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7, Clone: DeviceClone{GroupID: 3, Version: 1, ServerID: 1}})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if e2 != nil || eLock != nil || eUnlock != nil || e3 != nil {
		t.Fatalf("updates failed: v2 %v, lock %v, unlock %v, v3 %v", e2, eLock, eUnlock, e3)
	}
	if !activities.IsType(e3refused, activities.TypeDeviceLocked) {
		t.Fatalf("a reprovisioning of a locked device: %v, want a DeviceLocked refusal", e3refused)
	}
	if v2 != (DeviceClone{GroupID: 3, Version: 2, ServerID: 1}) || v3 != (DeviceClone{GroupID: 3, Version: 3, ServerID: 1}) {
		t.Fatalf("clones: v2 %+v, v3 %+v", v2, v3)
	}
	want := "plan,unexport old,trash old/iscsi/devices/7,clone v2,export tank,record v2,lock true,locked true," +
		"plan," + // the stale v3: refused, nothing touched
		"lock false,locked false," +
		"plan,unexport old,trash old/iscsi/devices/7,clone v3,export tank,record v3"
	if j := join(s.calls); j != want {
		t.Fatalf("calls %s\nwant  %s", j, want)
	}
}

// A locked device whose disk is gone gets a new one: the boot path decided knowing the lock.
func TestDeviceLockedWithoutDiskIsProvisioned(t *testing.T) {
	s := newDeviceSuite(t)
	s.locked = true
	s.onClone(func(storage.CloneDeviceInput) error { return nil })
	r := req(2, 1)
	r.Reprovision, r.OldServerID, r.Locked = true, 1, true
	var got DeviceClone
	var err error
	s.update(t, time.Second, "a", r, &got, &err)
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7})
	if err != nil || got != (DeviceClone{GroupID: 3, Version: 2, ServerID: 1}) {
		t.Fatalf("update: %+v %v", got, err)
	}
}

// trackOps records the operation rows' writes (progress steps and ends) made through the
// panel activities, as "op<id> <step>" in steps and in outcomes.
func (s *deviceSuite) trackOps() {
	s.env.OnActivity(pa.Progress, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in panel.ProgressInput) (*panel.ProgressResult, error) {
			s.steps = append(s.steps, fmt.Sprintf("op%d %s", in.OperationID, in.Step))
			if in.RunID != "" {
				return nil, fmt.Errorf("op%d: a device workflow's progress names its run %q: it would land on the run's other operations", in.OperationID, in.RunID)
			}
			return &panel.ProgressResult{}, nil
		}).Maybe()
	s.env.OnActivity(pa.Finish, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in panel.FinishInput) (*panel.FinishResult, error) {
			s.outcomes = append(s.outcomes, in)
			state := "succeeded"
			if in.Failed {
				state = "failed"
			}
			s.steps = append(s.steps, fmt.Sprintf("op%d %s", in.OperationID, state))
			return &panel.FinishResult{}, nil
		}).Maybe()
}

// onRestore answers the agent's RestoreDevice: the swap gives v<version> of group 3 back,
// or fails with err.
func (s *deviceSuite) onRestore(version int, err error) {
	s.env.OnActivity(da.RestoreDevice, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in storage.RestoreDeviceInput) (*storage.RestoreDeviceResult, error) {
			s.calls = append(s.calls, "restore "+in.Pool)
			if err != nil {
				return nil, err
			}
			return &storage.RestoreDeviceResult{From: in.Pool + "/erator/device-7-100", Origin: in.Pool + "/iscsi/groups/3@v" + itoa(version),
				GroupID: 3, Version: version}, nil
		})
}

// restore sends a restore update for operation opID after delay and records its outcome.
func (s *deviceSuite) restore(delay time.Duration, opID uint, from string, got *DeviceRestoreUpdateResult, gotErr *error) {
	r := DeviceRestoreRequest{OperationID: opID, DeviceID: 7, ServerID: 1, Pool: "tank", From: from}
	sendUpdate(s, delay, UpdateRestore, RestoreUpdateID(opID), r, got, gotErr)
}

// sendUpdate sends update name (id, arg) after delay and records its outcome.
func sendUpdate[T any](s *deviceSuite, delay time.Duration, name, id string, arg any, got *T, gotErr *error) {
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(name, id, &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { *gotErr = err },
			OnComplete: func(v any, err error) {
				*gotErr = err
				if err == nil {
					*got = v.(T)
				}
			},
		}, arg)
	}, delay)
}

// A restore asked while a reprovisioning runs waits for it and then swaps the disk; the
// restored clone is the workflow's disk, so asking for the restored version afterwards is
// no work, and the operation's row shows the steps and the end.
func TestDeviceRestoreRunsAfterTheProvisioningUnderWay(t *testing.T) {
	s := newDeviceSuite(t)
	s.trackOps()
	s.slowClone()
	s.onRestore(1, nil)
	r2 := req(2, 1)
	r2.Reprovision, r2.OldServerID = true, 1
	var v2, v1 DeviceClone
	var restored DeviceRestoreUpdateResult
	var e2, eRestore, e1 error
	s.update(t, time.Second, "v2", r2, &v2, &e2)
	s.restore(2*time.Second, 9, "", &restored, &eRestore) // arrives while v2's clone runs
	r1 := req(1, 1)
	r1.Reprovision, r1.OldServerID = true, 1
	s.update(t, 30*time.Second, "v1", r1, &v1, &e1) // the restored version: no work
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7, Clone: DeviceClone{GroupID: 3, Version: 1, ServerID: 1}})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if e2 != nil || eRestore != nil || e1 != nil {
		t.Fatalf("updates failed: v2 %v, restore %v, v1 %v", e2, eRestore, e1)
	}
	want := DeviceClone{GroupID: 3, Version: 1, ServerID: 1}
	if restored.Clone != want || restored.Version != 1 || restored.From != "tank/erator/device-7-100" || v1 != want {
		t.Fatalf("restore %+v, then v1 %+v; want the disk %+v", restored, v1, want)
	}
	s.expect(t, "plan,unexport old,trash old/iscsi/devices/7,clone v2,export tank,record v2,"+
		"plan,unexport tank,restore tank,export tank,record v1",
		"op9 waiting,op9 unexport,op9 restore,op9 export,op9 succeeded")
	if o := s.outcomes[0]; o.Failed || o.WorkflowID == "" || o.RunID != "" || o.Percent != 100 {
		t.Fatalf("outcome %+v", o)
	}
	var res DeviceResult
	if err := s.env.GetWorkflowResult(&res); err != nil || res.Clone != want {
		t.Fatalf("the workflow ends with the disk %+v (%v), want %+v", res.Clone, err, want)
	}
}

// Nothing to restore fails the operation and leaves the disk as it was: exported again,
// and still the workflow's disk (asking for its version is no work).
func TestDeviceRestoreNothingInEratorKeepsTheDisk(t *testing.T) {
	s := newDeviceSuite(t)
	s.trackOps()
	s.onClone(func(storage.CloneDeviceInput) error { return nil })
	s.onRestore(0, activities.Wrap(activities.ErrNotInErator))
	var restored DeviceRestoreUpdateResult
	var again DeviceClone
	var eRestore, eAgain error
	s.restore(time.Second, 9, "", &restored, &eRestore)
	s.update(t, 10*time.Second, "v2", req(2, 1), &again, &eAgain)
	disk := DeviceClone{GroupID: 3, Version: 2, ServerID: 1}
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7, Clone: disk})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatalf("the workflow must outlive a failed restore: %v", err)
	}
	if eRestore == nil || !strings.Contains(eRestore.Error(), "nothing in the erator") {
		t.Fatalf("restore: %v, want nothing in the erator", eRestore)
	}
	if eAgain != nil || again != disk {
		t.Fatalf("after the failed restore: %+v %v, want the disk %+v unchanged", again, eAgain, disk)
	}
	if j := join(s.calls); j != "plan,unexport tank,restore tank,export tank" {
		t.Fatalf("calls %s", j)
	}
	if j := join(s.steps); j != "op9 unexport,op9 restore,op9 failed" {
		t.Fatalf("operation 9: %s", j)
	}
	if o := s.outcomes[0]; !o.Failed || o.Step != "restore" || !strings.Contains(o.Error, "nothing in the erator") {
		t.Fatalf("outcome %+v", o)
	}
}

// The same restore asked twice while the first is under way (a double click) swaps once:
// the second operation ends as the first did. A later one is a new swap.
func TestDeviceRestoreAskedTwiceSwapsOnce(t *testing.T) {
	s := newDeviceSuite(t)
	s.trackOps()
	s.env.OnActivity(da.RestoreDevice, mock.Anything, mock.Anything).After(5 * time.Second).Return(
		func(_ context.Context, in storage.RestoreDeviceInput) (*storage.RestoreDeviceResult, error) {
			s.calls = append(s.calls, "restore "+in.Pool)
			return &storage.RestoreDeviceResult{From: "tank/erator/device-7-100", GroupID: 3, Version: 1}, nil
		})
	var r1, r2, r3 DeviceRestoreUpdateResult
	var e1, e2, e3 error
	s.restore(time.Second, 9, "", &r1, &e1)
	s.restore(2*time.Second, 10, "", &r2, &e2)
	s.restore(30*time.Second, 11, "", &r3, &e3)
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7})
	if e1 != nil || e2 != nil || e3 != nil {
		t.Fatalf("restores: %v %v %v", e1, e2, e3)
	}
	if r2 != r1 || r1.Clone != (DeviceClone{GroupID: 3, Version: 1, ServerID: 1}) {
		t.Fatalf("restores: %+v, joined %+v", r1, r2)
	}
	want := "plan,unexport tank,restore tank,export tank,record v1,plan,unexport tank,restore tank,export tank,record v1"
	if j := join(s.calls); j != want {
		t.Fatalf("calls %s\nwant  %s", j, want)
	}
	want = "op9 unexport,op9 restore,op10 waiting,op9 export,op9 succeeded,op10 succeeded," +
		"op11 unexport,op11 restore,op11 export,op11 succeeded"
	if j := join(s.steps); j != want {
		t.Fatalf("operations %s\nwant       %s", j, want)
	}
}

// A reprovisioning onto another server ahead of the restore moved the disk: the restore,
// asked on the old server, fails without touching anything.
func TestDeviceRestoreAfterTheDiskMovedFails(t *testing.T) {
	s := newDeviceSuite(t)
	s.trackOps()
	var got DeviceRestoreUpdateResult
	var err error
	s.restore(time.Second, 9, "", &got, &err)
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7, Clone: DeviceClone{GroupID: 3, Version: 2, ServerID: 2}})
	if err == nil || !strings.Contains(err.Error(), "moved to server 2") || len(s.calls) != 0 {
		t.Fatalf("restore: %v, calls %v", err, s.calls)
	}
	if j := join(s.steps); j != "op9 failed" || !strings.Contains(s.outcomes[0].Error, "ask again") {
		t.Fatalf("operation 9: %s %+v", j, s.outcomes)
	}
}

// del sends the delete update of operation opID (the disk recorded on server, pool) after
// delay and records its outcome.
func (s *deviceSuite) del(delay time.Duration, opID, server uint, pool string, got *DeviceDeleteResult, gotErr *error) {
	r := DeviceDeleteRequest{OperationID: opID, DeviceID: 7, NetworkID: 1, ServerID: server, Pool: pool}
	sendUpdate(s, delay, UpdateDelete, DeleteUpdateID(opID), r, got, gotErr)
}

// deleteSuite is a device suite tracking operations, with operation 9's delete (the disk
// recorded on server, pool) sent after a second; got and err receive its outcome.
func deleteSuite(t *testing.T, server uint, pool string) (s *deviceSuite, got *DeviceDeleteResult, err *error) {
	s = newDeviceSuite(t)
	s.trackOps()
	got, err = new(DeviceDeleteResult), new(error)
	s.del(time.Second, 9, server, pool, got, err)
	return s, got, err
}

// runDevice runs the device workflow from disk and returns how long it ran (workflow time).
func (s *deviceSuite) runDevice(t *testing.T, disk DeviceClone) time.Duration {
	t.Helper()
	start := s.env.Now()
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7, Clone: disk})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res DeviceResult
	if err := s.env.GetWorkflowResult(&res); err != nil || res.Clone != (DeviceClone{}) {
		t.Fatalf("the workflow ends with the disk %+v (%v), want none", res.Clone, err)
	}
	return s.env.Now().Sub(start)
}

// A delete moves the device's disk to the erator of its server (target removed first),
// ends the operation succeeded and the workflow at once (not after its idle hour).
func TestDeviceDeleteMovesTheDiskToTheErator(t *testing.T) {
	s, got, err := deleteSuite(t, 1, "tank")
	took := s.runDevice(t, DeviceClone{GroupID: 3, Version: 1, ServerID: 1})
	if *err != nil || got.Trash != "tank/erator/device-7-"+strconv.FormatInt(s.env.Now().Unix(), 10) {
		t.Fatalf("delete: %+v %v", got, *err)
	}
	s.expect(t, "unexport tank,trash tank/iscsi/devices/7", "op9 unexport,op9 erator,op9 succeeded")
	if o := s.outcomes[0]; o.Failed || o.Percent != 100 || !strings.Contains(o.Message, "tank/erator/device-7-") {
		t.Fatalf("outcome %+v", o)
	}
	if took >= deviceIdle {
		t.Fatalf("the workflow ran %s after the delete, want it to end at once", took)
	}
}

// A run that does not know the disk (a fresh run: the last one ended idle) trusts the
// recorded server; a device that never had a disk only ends its operation and its run.
func TestDeviceDeleteWithoutAKnownDisk(t *testing.T) {
	for _, tc := range []struct {
		name   string
		server uint
		calls  string
		steps  string
	}{
		{"fresh run", 1, "unexport tank,trash tank/iscsi/devices/7", "op9 unexport,op9 erator,op9 succeeded"},
		{"never provisioned", 0, "", "op9 succeeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := deleteSuite(t, tc.server, map[bool]string{true: "tank"}[tc.server != 0])
			s.runDevice(t, DeviceClone{})
			if *err != nil {
				t.Fatal(*err)
			}
			s.expect(t, tc.calls, tc.steps)
		})
	}
}

// A disk already gone (a repeated delete, a disk removed by hand) is success: deleting is
// safe to repeat.
func TestDeviceDeleteDiskAlreadyGone(t *testing.T) {
	s, got, err := deleteSuite(t, 1, "tank")
	s.diskGone = true
	s.runDevice(t, DeviceClone{GroupID: 3, Version: 1, ServerID: 1})
	if *err != nil || got.Trash != "" {
		t.Fatalf("delete: %+v %v", got, *err)
	}
	if o := s.outcomes[0]; o.Failed || !strings.Contains(o.Message, "already gone") {
		t.Fatalf("outcome %+v", o)
	}
}

// A delete asked while a reprovisioning runs waits for it, then moves the new disk to the
// erator; a provisioning that waited behind the delete is refused (the device is gone).
func TestDeviceDeleteWaitsForTheProvisioningUnderWay(t *testing.T) {
	s := newDeviceSuite(t)
	s.trackOps()
	s.slowClone()
	r2 := req(2, 1)
	r2.Reprovision, r2.OldServerID = true, 1
	var v2, v3 DeviceClone
	var deleted DeviceDeleteResult
	var e2, eDelete, e3 error
	s.update(t, time.Second, "v2", r2, &v2, &e2)
	s.del(2*time.Second, 9, 1, "tank", &deleted, &eDelete) // arrives while v2's clone runs
	s.update(t, 3*time.Second, "v3", req(3, 1), &v3, &e3)  // queued behind the delete
	s.runDevice(t, DeviceClone{GroupID: 3, Version: 1, ServerID: 1})
	if e2 != nil || eDelete != nil {
		t.Fatalf("updates failed: v2 %v, delete %v", e2, eDelete)
	}
	if e3 == nil || !strings.Contains(e3.Error(), "device 7 was deleted") {
		t.Fatalf("a provisioning after the delete: %+v %v, want it refused; calls %v", v3, e3, s.calls)
	}
	s.expect(t, "plan,unexport old,trash old/iscsi/devices/7,clone v2,export tank,record v2,"+
		"unexport tank,trash tank/iscsi/devices/7",
		"op9 waiting,op9 unexport,op9 erator,op9 succeeded")
}

// A disk the workflow knows on another server than the delete names (moved since the
// delete was recorded) is left alone and the operation fails, saying so.
func TestDeviceDeleteAfterTheDiskMovedFails(t *testing.T) {
	s, _, err := deleteSuite(t, 1, "tank")
	s.env.ExecuteWorkflow(Device, DeviceInput{DeviceID: 7, Clone: DeviceClone{GroupID: 3, Version: 2, ServerID: 2}})
	if *err == nil || !strings.Contains((*err).Error(), "moved to server 2") || len(s.calls) != 0 {
		t.Fatalf("delete: %v, calls %v", *err, s.calls)
	}
	if j := join(s.steps); j != "op9 failed" {
		t.Fatalf("operation 9: %s", j)
	}
}
