package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// da is the receiver of the agent's boot-path activities for type-safe calls.
var da *storage.Devices

// DeviceClone is what a device's disk is (agents read it as the provision update's result).
type DeviceClone = wire.DeviceClone

// DeviceInput starts (or continues) a device's entity workflow (agents start it too).
type DeviceInput = wire.DeviceInput

// DeviceLockRequest locks (or unlocks) the device: the device workflow's "lock" update.
type DeviceLockRequest struct {
	Locked bool
}

// DeviceLockResult is the device's lock and disk once the change is made.
type DeviceLockResult struct {
	Locked bool
	Clone  DeviceClone
}

// DeviceRestoreRequest puts device DeviceID's replaced disk back from the erator of
// ServerID (pool Pool): the device workflow's "restore" update, carrying operation
// OperationID (whose row shows its progress and outcome).
type DeviceRestoreRequest struct {
	OperationID uint
	DeviceID    uint
	ServerID    uint
	Pool        string
	From        string // an erator entry; "" the newest of the device's
}

// DeviceRestoreUpdateResult names what was restored and the device's disk now.
type DeviceRestoreUpdateResult struct {
	From    string
	GroupID uint // 0 with Version 0: the restored disk's origin is unknown
	Version int
	Clone   DeviceClone
}

// DeviceDeleteRequest deletes device DeviceID of network NetworkID: its disk on ServerID
// (pool Pool; none when ServerID is 0) goes to the erator and the workflow ends. The
// device workflow's "delete" update, carrying operation OperationID.
type DeviceDeleteRequest struct {
	OperationID uint
	DeviceID    uint
	NetworkID   uint
	ServerID    uint
	Pool        string
}

// DeviceDeleteResult names the disk's erator entry ("" when it had none).
type DeviceDeleteResult struct {
	Trash string
}

// DeviceResult is the device's disk when the workflow ends (idle, or zero once deleted).
type DeviceResult struct {
	Clone DeviceClone
}

// Device limits: an entity workflow ends after deviceIdle without work (the next boot
// that needs work starts it again) and continues as new after deviceUpdates updates, so
// its history stays small.
const (
	deviceIdle    = time.Hour
	deviceUpdates = 200
)

// Device is the entity workflow device-<id>. Its "provision" update (from the agent's boot
// path, with update-with-start) makes the device's disk a clone of a group version on a
// server, exported to the device; its "lock" update (from the API and the dashboard)
// locks or unlocks the device; its "restore" update (from the panel's engine, for a
// device-restore operation) swaps the disk with one from the erator; its "delete" update
// (from the engine, for a device-delete operation) moves the disk to the erator and ends
// the workflow, refusing the updates queued behind it. Updates are handled
// one at a time, in order: a lock set while a reprovisioning runs takes effect when it
// ends, a reprovisioning asked for after the lock is refused (the device keeps its disk),
// and a restore never interleaves with a reprovisioning of the same disk. A version the
// disk already is returns at once: exactly once per (device, version). Reprovisioning
// unexports the old disk and renames it into the erator (restorable) before the clone.
func Device(ctx workflow.Context, in DeviceInput) (*DeviceResult, error) {
	st := in.Clone
	mu := workflow.NewMutex(ctx)
	handled := 0
	// restores are the restores accepted and not ended yet, oldest first; tracked is the
	// restore or delete holding the mutex (its step answers the progress query).
	var restores []*deviceRestore
	var tracked *tracker
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Step, error) {
		if tracked == nil {
			return Step{}, nil
		}
		return tracked.cur, nil
	}); err != nil {
		return nil, err
	}
	// deleting: a delete was accepted; the updates that get the mutex after it are refused
	// (their device is gone), whichever of them waited first. deleted: the disk went to
	// the erator; the run ends.
	deleting, deleted := false, false
	gone := func() error {
		if !deleting {
			return nil
		}
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("device %d was deleted", in.DeviceID), "NotFound", nil)
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateProvision,
		func(ctx workflow.Context, r wire.ProvisionRequest) (DeviceClone, error) {
			if err := mu.Lock(ctx); err != nil {
				return st, err
			}
			defer mu.Unlock()
			handled++
			if err := gone(); err != nil {
				return st, err
			}
			want := DeviceClone{GroupID: r.GroupID, Version: r.Version, ServerID: r.ServerID}
			if st == want {
				return st, nil
			}
			old := st
			if old.ServerID == 0 && r.Reprovision {
				old.ServerID = r.OldServerID
			}
			if err := provisionDevice(ctx, in.DeviceID, old.ServerID, r); err != nil {
				return st, err
			}
			st = want
			return st, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(r wire.ProvisionRequest) error {
			if r.DeviceID != in.DeviceID || r.ServerID == 0 || r.GroupID == 0 || r.Version <= 0 {
				return fmt.Errorf("provision: device %d, server %d, group %d, version %d: invalid for device %d",
					r.DeviceID, r.ServerID, r.GroupID, r.Version, in.DeviceID)
			}
			return nil
		}})
	if err != nil {
		return nil, err
	}
	err = workflow.SetUpdateHandler(ctx, UpdateLock,
		func(ctx workflow.Context, r DeviceLockRequest) (DeviceLockResult, error) {
			if err := mu.Lock(ctx); err != nil {
				return DeviceLockResult{}, err
			}
			defer mu.Unlock()
			handled++
			if err := gone(); err != nil {
				return DeviceLockResult{Clone: st}, err
			}
			in := panel.SetDeviceLockInput{DeviceID: in.DeviceID, Locked: r.Locked}
			if err := workflow.ExecuteActivity(panelCtx(ctx), pa.SetDeviceLock, in).Get(ctx, nil); err != nil {
				return DeviceLockResult{Clone: st}, fmt.Errorf("lock device %d: %w", in.DeviceID, err)
			}
			return DeviceLockResult{Locked: r.Locked, Clone: st}, nil
		})
	if err != nil {
		return nil, err
	}
	// No validator: a rejected update leaves no trace in the history, while the handler
	// fails the operation on its row (see restoreDevice).
	err = workflow.SetUpdateHandler(ctx, UpdateRestore,
		func(ctx workflow.Context, r DeviceRestoreRequest) (DeviceRestoreUpdateResult, error) {
			handled++
			t := newUpdateTracker(ctx, r.OperationID)
			// A restore asked again while the same one is under way (a double click, two
			// tabs) joins it: run twice, the second would swap the disks back.
			for _, p := range restores {
				if p.from == r.From {
					return p.join(ctx, t)
				}
			}
			p := &deviceRestore{opID: r.OperationID, from: r.From}
			restores = append(restores, p)
			defer func() {
				p.done = true
				restores = slices.DeleteFunc(restores, func(q *deviceRestore) bool { return q == p })
			}()
			if mu.IsLocked() {
				if err := t.step("waiting", 0, "waiting for device %d's provisioning or lock change under way", in.DeviceID); err != nil {
					p.err = err
					return DeviceRestoreUpdateResult{Clone: st}, err
				}
			}
			if err := mu.Lock(ctx); err != nil {
				p.err = err
				return DeviceRestoreUpdateResult{Clone: st}, err
			}
			defer mu.Unlock()
			if err := gone(); err != nil {
				p.err = t.fail(models.Outcome{}, err)
				return DeviceRestoreUpdateResult{}, p.err
			}
			tracked = t
			defer func() { tracked = nil }()
			p.res, p.err = restoreDevice(ctx, t, in.DeviceID, st, r)
			if p.err != nil {
				return DeviceRestoreUpdateResult{Clone: st}, p.err
			}
			st = p.res.Clone
			return p.res, nil
		})
	if err != nil {
		return nil, err
	}
	// No validator: like a restore, a delete reports on its operation's row.
	err = workflow.SetUpdateHandler(ctx, UpdateDelete,
		func(ctx workflow.Context, r DeviceDeleteRequest) (DeviceDeleteResult, error) {
			handled++
			// Marks the first history with a delete: runs recorded before never reach here.
			since(ctx, VersionDeviceDelete)
			deleting = true
			t := newUpdateTracker(ctx, r.OperationID)
			if mu.IsLocked() {
				if err := t.step("waiting", 0, "waiting for device %d's provisioning or lock change under way", in.DeviceID); err != nil {
					return DeviceDeleteResult{}, err
				}
			}
			if err := mu.Lock(ctx); err != nil {
				return DeviceDeleteResult{}, err
			}
			defer mu.Unlock()
			if deleted {
				// Another operation deleted it first (the device row goes once, so rare).
				return DeviceDeleteResult{}, t.succeed(models.Outcome{}, "device %d was already deleted", in.DeviceID)
			}
			tracked = t
			defer func() { tracked = nil }()
			res, err := deleteDevice(ctx, t, in.DeviceID, st, r)
			if err != nil {
				return res, err
			}
			st, deleted = DeviceClone{}, true
			return res, nil
		})
	if err != nil {
		return nil, err
	}
	for {
		before := handled
		more, err := workflow.AwaitWithTimeout(ctx, deviceIdle, func() bool { return handled >= deviceUpdates || deleted })
		if err != nil {
			return nil, err
		}
		if more {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return nil, err
			}
			if deleted {
				// Ends once the updates that waited behind the delete have answered (refused).
				return &DeviceResult{}, nil
			}
			return nil, workflow.NewContinueAsNewError(ctx, Device, DeviceInput{DeviceID: in.DeviceID, Clone: st})
		}
		if handled == before && workflow.AllHandlersFinished(ctx) {
			return &DeviceResult{Clone: st}, nil
		}
	}
}

// provisionDevice does one (re)provisioning: old disk out (unexport, erator), new clone in
// (clone; the device's vdisk brought over when it lives on another server; export), then
// the panel's record.
func provisionDevice(ctx workflow.Context, deviceID, oldServer uint, r wire.ProvisionRequest) error {
	// The plan marks the vdisk that moves with the clone (the API refuses its changes
	// meanwhile); a provisioning that fails after it ends the move here, one that
	// succeeds with the clone's record.
	guard := since(ctx, VersionDeviceVDiskMoving)
	var plan panel.DevicePlanResult
	if err := workflow.ExecuteActivity(panelCtx(ctx), pa.DevicePlan,
		panel.DevicePlanInput{DeviceID: deviceID, ServerID: r.ServerID, OldServerID: oldServer, MarkVDiskMoving: guard}).Get(ctx, &plan); err != nil {
		return fmt.Errorf("device %d: %w", deviceID, err)
	}
	err := provisionPlanned(ctx, deviceID, oldServer, r, &plan)
	if err != nil && guard && plan.VDisk != nil {
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		if eerr := workflow.ExecuteActivity(panelCtx(dctx), pa.EndVDiskMove, panel.EndVDiskMoveInput{VDiskID: plan.VDisk.ID}).Get(dctx, nil); eerr != nil {
			err = errors.Join(err, fmt.Errorf("vdisk %d still marked moving: %w", plan.VDisk.ID, eerr))
		}
	}
	return err
}

// provisionPlanned is provisionDevice once planned.
func provisionPlanned(ctx workflow.Context, deviceID, oldServer uint, r wire.ProvisionRequest, plan *panel.DevicePlanResult) error {
	if plan.Locked && !r.Locked && oldServer != 0 {
		// Locked after the boot path decided to replace the disk: the lock wins, the disk stays.
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("device %d is locked: it keeps its disk", deviceID),
			activities.TypeDeviceLocked, nil)
	}
	uuid := plan.UUID
	if uuid == "" {
		uuid = r.UUID
	}
	target := func(pool string) storage.ExportInput {
		return storage.ExportInput{Kind: "device", ID: deviceID, NetworkID: plan.NetworkID, UUID: uuid, Pool: pool}
	}
	trash := func(serverID uint, pool string) error {
		if err := workflow.ExecuteActivity(serverCtx(ctx, serverID), da.UnexportTarget, target(pool)).Get(ctx, nil); err != nil {
			return fmt.Errorf("unexport the old disk: %w", err)
		}
		in := storage.TrashInput{Pool: pool, Dataset: storage.DeviceDataset(pool, deviceID), Kind: "device", ID: deviceID,
			Unix: workflow.Now(ctx).Unix()}
		if err := workflow.ExecuteActivity(serverCtx(ctx, serverID), sa.Trash, in).Get(ctx, nil); err != nil {
			return fmt.Errorf("move the old disk to the erator: %w", err)
		}
		return nil
	}
	if oldServer != 0 && plan.OldPool != "" {
		if err := trash(oldServer, plan.OldPool); err != nil {
			return err
		}
	}
	clone := storage.CloneDeviceInput{Pool: plan.Pool, GroupID: r.GroupID, Version: r.Version, DeviceID: deviceID}
	err := workflow.ExecuteActivity(serverCtx(ctx, r.ServerID), da.CloneDevice, clone).Get(ctx, nil)
	if activities.IsType(err, activities.TypeExists) {
		// A disk the panel did not know of (made by hand, or a record lost): keep it in
		// the erator and clone again.
		if err = trash(r.ServerID, plan.Pool); err == nil {
			err = workflow.ExecuteActivity(serverCtx(ctx, r.ServerID), da.CloneDevice, clone).Get(ctx, nil)
		}
	}
	if err != nil {
		return fmt.Errorf("clone v%d for device %d: %w", r.Version, deviceID, err)
	}
	moved := uint(0)
	if plan.VDisk != nil && since(ctx, VersionDeviceMoveVDisk) {
		// The device boots here from now on: its data disk comes along before its target
		// is exported (the export serves it as LUN 1).
		if err := moveVDisk(ctx, plan.NetworkID, deviceID, *plan.VDisk, r.ServerID, plan.Pool); err != nil {
			return fmt.Errorf("device %d: %w", deviceID, err)
		}
		moved = plan.VDisk.ID
	}
	if err := workflow.ExecuteActivity(serverCtx(ctx, r.ServerID), da.ExportTarget, target(plan.Pool)).Get(ctx, nil); err != nil {
		err = fmt.Errorf("export device %d: %w", deviceID, err)
		if moved != 0 {
			err = returnVDisk(ctx, err, plan.NetworkID, deviceID, *plan.VDisk, r.ServerID, plan.Pool)
		}
		return err
	}
	rec := panel.RecordCloneInput{NetworkID: plan.NetworkID, DeviceID: deviceID, GroupID: r.GroupID, Version: r.Version, ServerID: r.ServerID,
		VDiskID: moved}
	if err := workflow.ExecuteActivity(panelCtx(ctx), pa.RecordClone, rec).Get(ctx, nil); err != nil {
		return errors.Join(fmt.Errorf("record device %d's clone", deviceID), err)
	}
	return nil
}

// deviceRestore is a restore the device workflow has accepted, for restores that join it.
type deviceRestore struct {
	opID uint
	from string
	done bool
	res  DeviceRestoreUpdateResult
	err  error
}

// join waits for the restore p under way and ends the joining operation (t) as p ended.
func (p *deviceRestore) join(ctx workflow.Context, t *tracker) (DeviceRestoreUpdateResult, error) {
	if err := t.step("waiting", 0, "the same restore runs as operation %d", p.opID); err != nil {
		return DeviceRestoreUpdateResult{}, err
	}
	if err := workflow.Await(ctx, func() bool { return p.done }); err != nil {
		return DeviceRestoreUpdateResult{}, err
	}
	if p.err != nil {
		return p.res, t.fail(models.Outcome{}, p.err)
	}
	if err := t.succeed(models.Outcome{}, "the same restore ran as operation %d: restored %s (v%d)",
		p.opID, p.res.From, p.res.Version); err != nil {
		return p.res, err
	}
	return p.res, nil
}

// restoreDevice puts a replaced disk back, as the device workflow's "restore" update with
// the device's disk cur (zero: unknown, a fresh run): the device's target is removed, its
// current disk goes to the erator (so the swap loses nothing either), the chosen entry
// becomes its disk again, is exported, and the panel records the version it was cloned
// from. It reports on operation r.OperationID through t and returns the disk now. Nothing
// to restore leaves the disk as it was, exported again. A disk moved to another server
// since the restore was asked (a reprovisioning ahead of it) fails the operation: the
// entry the restore names is on the old server.
func restoreDevice(ctx workflow.Context, t *tracker, deviceID uint, cur DeviceClone, r DeviceRestoreRequest) (DeviceRestoreUpdateResult, error) {
	out := DeviceRestoreUpdateResult{Clone: cur}
	if r.DeviceID != deviceID || r.ServerID == 0 || r.Pool == "" {
		return out, t.fail(models.Outcome{}, fmt.Errorf("restore: device %d, server %d, pool %q: invalid for device %d",
			r.DeviceID, r.ServerID, r.Pool, deviceID))
	}
	if cur.ServerID != 0 && cur.ServerID != r.ServerID {
		return out, t.fail(models.Outcome{}, fmt.Errorf("device %d's disk moved to server %d after the restore was asked on server %d: ask again",
			deviceID, cur.ServerID, r.ServerID))
	}
	var plan panel.DevicePlanResult
	if err := workflow.ExecuteActivity(panelCtx(ctx), pa.DevicePlan, panel.DevicePlanInput{DeviceID: deviceID, ServerID: r.ServerID}).Get(ctx, &plan); err != nil {
		return out, t.fail(models.Outcome{}, err)
	}
	target := storage.ExportInput{Kind: "device", ID: deviceID, NetworkID: plan.NetworkID, UUID: plan.UUID, Pool: r.Pool}
	if err := t.step("unexport", 20, "removing device %d's target", deviceID); err != nil {
		return out, err
	}
	if err := workflow.ExecuteActivity(serverCtx(ctx, r.ServerID), da.UnexportTarget, target).Get(ctx, nil); err != nil {
		return out, t.fail(models.Outcome{}, err)
	}
	if err := t.step("restore", 50, "restoring device %d's disk from the erator", deviceID); err != nil {
		return out, err
	}
	var res storage.RestoreDeviceResult
	if err := workflow.ExecuteActivity(serverCtx(ctx, r.ServerID), da.RestoreDevice, storage.RestoreDeviceInput{
		Pool: r.Pool, DeviceID: deviceID, From: r.From, Unix: workflow.Now(ctx).Unix()}).Get(ctx, &res); err != nil {
		if activities.IsType(err, activities.TypeNotInErator) {
			// Refused before any rename: the disk is the one it was; give it its target back.
			dctx, _ := workflow.NewDisconnectedContext(ctx)
			if xerr := workflow.ExecuteActivity(serverCtx(dctx, r.ServerID), da.ExportTarget, target).Get(dctx, nil); xerr != nil {
				err = errors.Join(err, fmt.Errorf("export the disk again: %w", xerr))
			}
		}
		return out, t.fail(models.Outcome{}, err)
	}
	if err := t.step("export", 80, "exporting device %d's restored disk", deviceID); err != nil {
		return out, err
	}
	if err := workflow.ExecuteActivity(serverCtx(ctx, r.ServerID), da.ExportTarget, target).Get(ctx, nil); err != nil {
		return out, t.fail(models.Outcome{}, err)
	}
	// The disk is now the restored one: later provisionings compare against it. Of an
	// unknown origin, it matches no version (the next provisioning replaces it, into the
	// erator) and the panel keeps its record.
	out = DeviceRestoreUpdateResult{From: res.From, GroupID: res.GroupID, Version: res.Version, Clone: DeviceClone{ServerID: r.ServerID}}
	if res.GroupID != 0 && res.Version > 0 {
		out.Clone = DeviceClone{GroupID: res.GroupID, Version: res.Version, ServerID: r.ServerID}
		rec := panel.RecordCloneInput{NetworkID: plan.NetworkID, DeviceID: deviceID, GroupID: res.GroupID, Version: res.Version, ServerID: r.ServerID}
		if err := workflow.ExecuteActivity(panelCtx(ctx), pa.RecordClone, rec).Get(ctx, nil); err != nil {
			return out, t.fail(models.Outcome{}, err)
		}
	}
	if err := t.succeed(models.Outcome{}, "restored %s as device %d's disk (v%d)", res.From, deviceID, res.Version); err != nil {
		return out, err
	}
	return out, nil
}

// deleteDevice moves a deleted device's disk to the erator of its server, as the device
// workflow's "delete" update with the device's disk cur (zero: unknown, a fresh run): its
// target is removed and the disk renamed to <pool>/erator/device-<id>-<unix>, as a
// reprovisioning does with the disk it replaces. It reports on operation r.OperationID
// through t. A disk already gone (a repeat, a disk removed by hand) is success, as is a
// device without one. A disk moved to another server since the delete was recorded fails
// the operation: the request names the old server.
func deleteDevice(ctx workflow.Context, t *tracker, deviceID uint, cur DeviceClone, r DeviceDeleteRequest) (DeviceDeleteResult, error) {
	var out DeviceDeleteResult
	if r.DeviceID != deviceID || (r.ServerID != 0 && r.Pool == "") {
		return out, t.fail(models.Outcome{}, fmt.Errorf("delete: device %d, server %d, pool %q: invalid for device %d",
			r.DeviceID, r.ServerID, r.Pool, deviceID))
	}
	if cur.ServerID != 0 && cur.ServerID != r.ServerID {
		return out, t.fail(models.Outcome{}, fmt.Errorf("device %d's disk moved to server %d after the delete was recorded on server %d",
			deviceID, cur.ServerID, r.ServerID))
	}
	if r.ServerID == 0 {
		return out, t.succeed(models.Outcome{}, "device %d had no disk", deviceID)
	}
	if err := t.step("unexport", 30, "removing device %d's target", deviceID); err != nil {
		return out, err
	}
	target := storage.ExportInput{Kind: "device", ID: deviceID, NetworkID: r.NetworkID, Pool: r.Pool}
	if err := workflow.ExecuteActivity(serverCtx(ctx, r.ServerID), da.UnexportTarget, target).Get(ctx, nil); err != nil {
		return out, t.fail(models.Outcome{}, err)
	}
	if err := t.step("erator", 60, "moving device %d's disk to the erator", deviceID); err != nil {
		return out, err
	}
	in := storage.TrashInput{Pool: r.Pool, Dataset: storage.DeviceDataset(r.Pool, deviceID), Kind: "device", ID: deviceID,
		Unix: workflow.Now(ctx).Unix()}
	var res storage.TrashResult
	if err := workflow.ExecuteActivity(serverCtx(ctx, r.ServerID), sa.Trash, in).Get(ctx, &res); err != nil {
		return out, t.fail(models.Outcome{}, err)
	}
	if res.Missing {
		return out, t.succeed(models.Outcome{}, "device %d's disk %s was already gone", deviceID, in.Dataset)
	}
	out.Trash = res.Trash
	return out, t.succeed(models.Outcome{}, "moved device %d's disk to %s", deviceID, res.Trash)
}

// DeviceRestoreInput restores device DeviceID's disk on ServerID from the erator.
type DeviceRestoreInput struct {
	OperationID uint
	DeviceID    uint
	ServerID    uint
	Pool        string
	From        string // an erator entry; "" the newest of the device's
}

// DeviceRestoreResult names what was restored and its version.
type DeviceRestoreResult struct {
	From    string
	GroupID uint
	Version int
}

// DeviceRestore puts a replaced disk back: the device's target is removed, its current
// disk goes to the erator (so the swap loses nothing either), the chosen entry becomes its
// disk again, is exported, and the panel records the version it was cloned from.
//
// Shipped, and no longer started: a restore now runs as the device workflow's "restore"
// update (restoreDevice), in order with the device's provisionings and lock changes. It
// stays registered, unchanged, for the runs already under way when the panel was
// upgraded (testdata/device-restore.json replays one).
func DeviceRestore(ctx workflow.Context, in DeviceRestoreInput) (*DeviceRestoreResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	var plan panel.DevicePlanResult
	if err := workflow.ExecuteActivity(panelCtx(ctx), pa.DevicePlan, panel.DevicePlanInput{DeviceID: in.DeviceID, ServerID: in.ServerID}).Get(ctx, &plan); err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	target := storage.ExportInput{Kind: "device", ID: in.DeviceID, NetworkID: plan.NetworkID, UUID: plan.UUID, Pool: in.Pool}
	if err := t.step("unexport", 20, "removing device %d's target", in.DeviceID); err != nil {
		return nil, err
	}
	if err := workflow.ExecuteActivity(serverCtx(ctx, in.ServerID), da.UnexportTarget, target).Get(ctx, nil); err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	if err := t.step("restore", 50, "restoring device %d's disk from the erator", in.DeviceID); err != nil {
		return nil, err
	}
	var res storage.RestoreDeviceResult
	if err := workflow.ExecuteActivity(serverCtx(ctx, in.ServerID), da.RestoreDevice, storage.RestoreDeviceInput{
		Pool: in.Pool, DeviceID: in.DeviceID, From: in.From, Unix: workflow.Now(ctx).Unix()}).Get(ctx, &res); err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	if err := t.step("export", 80, "exporting device %d's restored disk", in.DeviceID); err != nil {
		return nil, err
	}
	if err := workflow.ExecuteActivity(serverCtx(ctx, in.ServerID), da.ExportTarget, target).Get(ctx, nil); err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	if res.GroupID != 0 && res.Version > 0 {
		rec := panel.RecordCloneInput{NetworkID: plan.NetworkID, DeviceID: in.DeviceID, GroupID: res.GroupID, Version: res.Version, ServerID: in.ServerID}
		if err := workflow.ExecuteActivity(panelCtx(ctx), pa.RecordClone, rec).Get(ctx, nil); err != nil {
			return nil, t.fail(models.Outcome{}, err)
		}
	}
	if err := t.succeed(models.Outcome{}, "restored %s as device %d's disk (v%d)", res.From, in.DeviceID, res.Version); err != nil {
		return nil, err
	}
	return &DeviceRestoreResult{From: res.From, GroupID: res.GroupID, Version: res.Version}, nil
}
