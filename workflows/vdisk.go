package workflows

import (
	"errors"
	"fmt"
	"strings"

	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/workflow"
)

// VDiskCreateInput asks for vdisk VDiskID of SizeGiB on ServerID (its device's server, or
// the network's master), served to device DeviceID (0: none) as its target's LUN 1.
type VDiskCreateInput struct {
	OperationID uint
	VDiskID     uint
	NetworkID   uint
	DeviceID    uint
	ServerID    uint
	Pool        string
	SizeGiB     int64
}

// VDiskCreateResult names the zvol.
type VDiskCreateResult struct {
	Dataset string
}

// VDiskCreate creates the sparse zvol <pool>/vdisks/<id> and, when the vdisk has a device,
// makes it LUN 1 of the device's target. Cancelled or failed after the zvol exists, it
// moves the zvol into the erator (nothing is left behind).
func VDiskCreate(ctx workflow.Context, in VDiskCreateInput) (*VDiskCreateResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	ds := storage.VDiskDataset(in.Pool, in.VDiskID)
	made := storage.TrashInput{Pool: in.Pool, Dataset: ds, Kind: "vdisk", ID: in.VDiskID}
	if err := t.step("create", 10, "creating sparse zvol %s of %d GiB on server %d", ds, in.SizeGiB, in.ServerID); err != nil {
		return nil, err
	}
	var res storage.VolumeResult
	err = create(ctx, in.ServerID, sa.CreateVDisk, storage.VDiskInput{Pool: in.Pool, VDiskID: in.VDiskID, Size: gib(in.SizeGiB)}, &res, made)
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	if in.DeviceID != 0 {
		if err := t.step("attach", 60, "serving %s as LUN 1 of device %d's target", ds, in.DeviceID); err != nil {
			return nil, err
		}
		err := workflow.ExecuteActivity(cancellable(serverCtx(ctx, in.ServerID)), da.AttachVDisk,
			storage.AttachVDiskInput{NetworkID: in.NetworkID, VDiskID: in.VDiskID, To: in.DeviceID, Pool: in.Pool}).Get(ctx, nil)
		if err != nil {
			made.Unix = workflow.Now(ctx).Unix()
			return nil, t.fail(models.Outcome{}, undo(ctx, in.ServerID, made, err))
		}
	}
	if err := t.succeed(models.Outcome{}, "created %s (%d GiB)", ds, in.SizeGiB); err != nil {
		return nil, err
	}
	return &VDiskCreateResult{Dataset: res.Dataset}, nil
}

// VDiskResize grows a vdisk's zvol (never shrinks it) and records the new size. The
// device sees the new size at its next login (its LUN is opened at export).
func VDiskResize(ctx workflow.Context, in VolumeResizeInput) (*VolumeResizeResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	ds := storage.VDiskDataset(in.Pool, in.VolumeID)
	if err := t.step("resize", 10, "growing %s to %d GiB", ds, in.SizeGiB); err != nil {
		return nil, err
	}
	var res storage.VolumeResult
	err = workflow.ExecuteActivity(serverCtx(ctx, in.ServerID), sa.ResizeVDisk,
		storage.VDiskInput{Pool: in.Pool, VDiskID: in.VolumeID, Size: gib(in.SizeGiB)}).Get(ctx, &res)
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	size := int64(res.Volsize / storage.GiB)
	if err := t.succeed(models.Outcome{VolumeSizeGiB: size}, "%s is %d GiB", ds, size); err != nil {
		return nil, err
	}
	return &VolumeResizeResult{SizeGiB: size, Overcommitted: res.Overcommitted}, nil
}

// VDiskAttachInput moves vdisk VDiskID from device From to device To (0: detached).
type VDiskAttachInput struct {
	OperationID uint
	VDiskID     uint
	NetworkID   uint
	From, To    uint
	ServerID    uint
	Pool        string
}

// VDiskAttach moves a vdisk's LUN 1 from one device's target to another's on the vdisk's
// server. The agent refuses while the device it leaves is booted (logged in to its
// target): the operation fails and the vdisk stays where it was.
func VDiskAttach(ctx workflow.Context, in VDiskAttachInput) (*storage.AttachVDiskResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("detaching vdisk %d from device %d", in.VDiskID, in.From)
	if in.To != 0 {
		what = fmt.Sprintf("attaching vdisk %d to device %d as LUN 1", in.VDiskID, in.To)
	}
	if err := t.step("attach", 20, "%s", what); err != nil {
		return nil, err
	}
	var res storage.AttachVDiskResult
	err = workflow.ExecuteActivity(serverCtx(ctx, in.ServerID), da.AttachVDisk, storage.AttachVDiskInput{
		NetworkID: in.NetworkID, VDiskID: in.VDiskID, From: in.From, To: in.To, Pool: in.Pool}).Get(ctx, &res)
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	if err := t.succeed(models.Outcome{}, "%s: done", what); err != nil {
		return nil, err
	}
	return &res, nil
}

// VDiskDelete moves a (detached) vdisk's zvol into its server's erator.
func VDiskDelete(ctx workflow.Context, in DeleteInput) (*DeleteResult, error) {
	in.Kind = "vdisk"
	return trashObject(ctx, in, storage.VDiskDataset(in.Pool, in.ObjectID), VDiskCreateID(in.ObjectID))
}

// vdiskRel is a vdisk's dataset relative to the pools (vdisks/<id>), as replication names it.
func vdiskRel(id uint) string { return strings.TrimPrefix(storage.VDiskDataset("", id), "/") }

// moveVDisk brings device deviceID's vdisk v to server serverID (pool) before the device
// boots there. LUN 1 leaves the device's target on v's server first (refused while the
// device is logged in there): from then on no write reaches that copy, so the snapshot
// taken next holds every write. The new server pulls it through the replication
// endpoint, incrementally from the newest snapshot of it that it holds by guid (a move
// back, a backup), verified by guid, and is told to serve it as LUN 1 of the device's
// target; the export that follows serves it. The old copy stays, unserved: the base of
// the next move's increment. Never served by two servers, a repeat (a retried
// provisioning) moves the few blocks written since. A move that fails after LUN 1 left
// gives it back to v's server (returnVDisk), where the panel still places it.
func moveVDisk(ctx workflow.Context, networkID, deviceID uint, v models.VDiskPlace, serverID uint, pool string) (err error) {
	err = workflow.ExecuteActivity(serverCtx(ctx, v.ServerID), da.AttachVDisk,
		storage.AttachVDiskInput{NetworkID: networkID, VDiskID: v.ID, From: deviceID, Pool: v.Pool}).Get(ctx, nil)
	if err != nil {
		return fmt.Errorf("stop serving vdisk %d on server %d: %w", v.ID, v.ServerID, err)
	}
	defer func() {
		if err != nil {
			err = returnVDisk(ctx, err, networkID, deviceID, v, serverID, pool)
		}
	}()
	name := fmt.Sprintf("move-%d", workflow.Now(ctx).Unix())
	var snap storage.SnapshotResult
	err = workflow.ExecuteActivity(serverCtx(ctx, v.ServerID), sa.Snapshot,
		storage.SnapshotInput{Dataset: storage.VDiskDataset(v.Pool, v.ID), Name: name}).Get(ctx, &snap)
	if err != nil {
		return fmt.Errorf("snapshot vdisk %d on server %d: %w", v.ID, v.ServerID, err)
	}
	err = workflow.ExecuteActivity(replicateCtx(ctx, serverID), sa.Replicate, storage.ReplicateInput{
		MasterAddr: v.Addr, Master: wire.AgentIdentity{NetworkID: networkID, ServerID: v.ServerID}, Pool: pool,
		Dataset: vdiskRel(v.ID), Snapshot: name, GUID: snap.GUID, StallSeconds: replicateStall}).Get(ctx, nil)
	if err != nil {
		return fmt.Errorf("move vdisk %d from server %d to server %d: %w", v.ID, v.ServerID, serverID, err)
	}
	err = workflow.ExecuteActivity(serverCtx(ctx, serverID), da.AttachVDisk,
		storage.AttachVDiskInput{NetworkID: networkID, VDiskID: v.ID, To: deviceID, Pool: pool}).Get(ctx, nil)
	if err != nil {
		return fmt.Errorf("serve vdisk %d on server %d: %w", v.ID, serverID, err)
	}
	return nil
}

// returnVDisk undoes a vdisk move that failed (cause): LUN 1 of the device's target leaves
// serverID (pool) and is the vdisk on v's server again, so the device's next export
// there (a boot that falls back to the old server) serves its data disk. It runs even
// when the workflow is cancelled, and returns cause with what it could not undo.
func returnVDisk(ctx workflow.Context, cause error, networkID, deviceID uint, v models.VDiskPlace, serverID uint, pool string) error {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if err := workflow.ExecuteActivity(serverCtx(dctx, serverID), da.AttachVDisk,
		storage.AttachVDiskInput{NetworkID: networkID, VDiskID: v.ID, From: deviceID, Pool: pool}).Get(dctx, nil); err != nil {
		return errors.Join(cause, fmt.Errorf("vdisk %d left on server %d: %w", v.ID, serverID, err))
	}
	if err := workflow.ExecuteActivity(serverCtx(dctx, v.ServerID), da.AttachVDisk,
		storage.AttachVDiskInput{NetworkID: networkID, VDiskID: v.ID, To: deviceID, Pool: v.Pool}).Get(dctx, nil); err != nil {
		return errors.Join(cause, fmt.Errorf("vdisk %d not given back to server %d: %w", v.ID, v.ServerID, err))
	}
	return cause
}

// pruneVDiskBackups destroys the backup snapshots of each vdisk among targets that
// storage.PlanVDiskPrune names (beyond the newest storage.VDiskBackupKeep; never a backup
// server's newest common base), on the server the vdisk lives on and on its backup
// servers, from the listings the reconcile read through list. A vdisk one of whose
// servers did not answer is left for the next round (that server's base is unknown); a
// held snapshot (a transfer under way) is kept by the activity. It returns how many
// snapshots were destroyed; a failure is logged, never returned.
func pruneVDiskBackups(ctx workflow.Context, targets []models.ReplicaTarget, list func(serverID uint, pool, ds string) workflow.Future) int {
	type place struct {
		serverID uint
		pool     string
	}
	type vdisk struct {
		id      uint
		own     place
		backups []place
	}
	var order []*vdisk
	byID := map[uint]*vdisk{}
	for _, t := range targets {
		if t.Kind != ReplicateVDisk {
			continue
		}
		v := byID[t.ObjectID]
		if v == nil {
			v = &vdisk{id: t.ObjectID, own: place{t.MasterID, t.MasterPool}}
			byID[t.ObjectID] = v
			order = append(order, v)
		}
		v.backups = append(v.backups, place{t.SlaveID, t.SlavePool})
	}
	type prune struct {
		vdisk uint
		at    place
		f     workflow.Future
	}
	var prunes []prune
	for _, v := range order {
		ds := vdiskRel(v.id)
		var own storage.SnapshotsResult
		if err := list(v.own.serverID, v.own.pool, ds).Get(ctx, &own); err != nil || !own.Exists {
			continue
		}
		backups := make([][]zfs.Snap, 0, len(v.backups))
		for _, b := range v.backups {
			var s storage.SnapshotsResult
			if err := list(b.serverID, b.pool, ds).Get(ctx, &s); err != nil {
				break
			}
			backups = append(backups, s.Snapshots)
		}
		if len(backups) < len(v.backups) {
			continue
		}
		ownNames, backupNames := storage.PlanVDiskPrune(own.Snapshots, backups, storage.VDiskBackupKeep)
		start := func(at place, names []string) {
			if len(names) > 0 {
				prunes = append(prunes, prune{v.id, at, workflow.ExecuteActivity(snapshotsCtx(ctx, at.serverID), sa.PruneSnapshots,
					storage.PruneSnapshotsInput{Pool: at.pool, Dataset: ds, Names: names})})
			}
		}
		start(v.own, ownNames)
		for i, b := range v.backups {
			start(b, backupNames[i])
		}
	}
	destroyed := 0
	for _, p := range prunes {
		var res storage.PruneSnapshotsResult
		if err := p.f.Get(ctx, &res); err != nil {
			workflow.GetLogger(ctx).Warn("vdisk backups not pruned", "vdisk", p.vdisk, "server", p.at.serverID, "error", err)
			continue
		}
		destroyed += len(res.Destroyed)
	}
	return destroyed
}
