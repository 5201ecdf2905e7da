package workflows

import (
	"fmt"

	"github.com/clusterducks/clusterducks/activities/storage"
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
