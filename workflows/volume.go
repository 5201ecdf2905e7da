package workflows

import (
	"fmt"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/workflow"
)

// VolumeCreateInput asks for volume VolumeID of SizeGiB on the network's master.
type VolumeCreateInput struct {
	OperationID uint
	VolumeID    uint
	ServerID    uint // the network's master
	Pool        string
	SizeGiB     int64
}

// firstStep is VolumeCreate's first step (begin).
func (in VolumeCreateInput) firstStep() Step {
	return Step{Step: "create", Percent: 10, Message: fmt.Sprintf("creating thin zvol %s of %d GiB on server %d",
		storage.VolumeDataset(in.Pool, in.VolumeID), in.SizeGiB, in.ServerID)}
}

// VolumeCreateResult names the zvol and whether the pool is overcommitted.
type VolumeCreateResult struct {
	Dataset       string
	Overcommitted bool
	Warning       string
}

// VolumeCreate creates the thin zvol <pool>/iscsi/volumes/<id>. A size the pool can never
// hold fails the operation with a clear error; a size that overcommits the pool (thin
// provisioning) succeeds with a warning. Cancelled after the zvol exists (the volume was
// deleted while pending), it moves the zvol into the erator. Created, it is queued for
// replication to every slave.
func VolumeCreate(ctx workflow.Context, in VolumeCreateInput) (*VolumeCreateResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	ds := storage.VolumeDataset(in.Pool, in.VolumeID)
	if err := t.begin(in.firstStep()); err != nil {
		return nil, err
	}
	var res storage.VolumeResult
	err = create(ctx, in.ServerID, sa.CreateVolume, storage.VolumeInput{Pool: in.Pool, VolumeID: in.VolumeID, Size: gib(in.SizeGiB)},
		&res, storage.TrashInput{Pool: in.Pool, Dataset: ds, Kind: "volume", ID: in.VolumeID})
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	out := &VolumeCreateResult{Dataset: res.Dataset, Overcommitted: res.Overcommitted}
	if res.Overcommitted {
		out.Warning = fmt.Sprintf("thin provisioning overcommits pool %s: its volumes may grow to %.1f GiB, it holds %.1f GiB",
			in.Pool, float64(res.Provisioned)/storage.GiB, float64(res.Capacity)/storage.GiB)
	}
	msg := fmt.Sprintf("created %s (%d GiB)", ds, in.SizeGiB)
	if out.Warning != "" {
		msg += "; warning: " + out.Warning
	}
	if err := t.succeed(models.Outcome{}, "%s", msg); err != nil {
		return nil, err
	}
	if since(ctx, VersionVolumeReplicate) {
		replicateTo(ctx, panel.QueueReplicationInput{Kind: ReplicateVolume, ObjectID: in.VolumeID})
	}
	return out, nil
}

// VolumeResizeInput grows volume VolumeID to SizeGiB.
type VolumeResizeInput struct {
	OperationID uint
	VolumeID    uint
	ServerID    uint
	Pool        string
	SizeGiB     int64
}

// VolumeResizeResult is the size after the resize.
type VolumeResizeResult struct {
	SizeGiB       int64
	Overcommitted bool
}

// VolumeResize grows a volume's zvol (never shrinks it) and records the new size.
func VolumeResize(ctx workflow.Context, in VolumeResizeInput) (*VolumeResizeResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	ds := storage.VolumeDataset(in.Pool, in.VolumeID)
	if err := t.step("resize", 10, "growing %s to %d GiB", ds, in.SizeGiB); err != nil {
		return nil, err
	}
	var res storage.VolumeResult
	err = workflow.ExecuteActivity(serverCtx(ctx, in.ServerID), sa.ResizeVolume,
		storage.VolumeInput{Pool: in.Pool, VolumeID: in.VolumeID, Size: gib(in.SizeGiB)}).Get(ctx, &res)
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	size := int64(res.Volsize / storage.GiB)
	msg := fmt.Sprintf("%s is %d GiB", ds, size)
	if res.Overcommitted {
		msg += fmt.Sprintf("; warning: thin provisioning overcommits pool %s (%.1f GiB promised, %.1f GiB usable)",
			in.Pool, float64(res.Provisioned)/storage.GiB, float64(res.Capacity)/storage.GiB)
	}
	if err := t.succeed(models.Outcome{VolumeSizeGiB: size}, "%s", msg); err != nil {
		return nil, err
	}
	return &VolumeResizeResult{SizeGiB: size, Overcommitted: res.Overcommitted}, nil
}

// DeleteInput deletes (moves into the erator) a volume or a group.
type DeleteInput struct {
	OperationID uint
	Kind        string // "volume" or "group"
	ObjectID    uint
	ServerID    uint
	Pool        string
}

// DeleteResult names where the dataset went ("" when there was none).
type DeleteResult struct {
	Trash string
}

// VolumeDelete moves a volume's zvol into the erator.
func VolumeDelete(ctx workflow.Context, in DeleteInput) (*DeleteResult, error) {
	in.Kind = "volume"
	return trashObject(ctx, in, storage.VolumeDataset(in.Pool, in.ObjectID), VolumeCreateID(in.ObjectID))
}

// GroupDelete moves a group's clone (with its version snapshots) into the erator.
func GroupDelete(ctx workflow.Context, in DeleteInput) (*DeleteResult, error) {
	in.Kind = "group"
	return trashObject(ctx, in, storage.GroupDataset(in.Pool, in.ObjectID), GroupCreateID(in.ObjectID))
}

// trashObject first cancels the object's create, if it still runs (its own undo then
// takes care of what it made), then renames the dataset to <pool>/erator/<kind>-<id>-<unix>.
// Nothing is destroyed: the erator purge does that, and a restore can undo it.
func trashObject(ctx workflow.Context, in DeleteInput, ds, createID string) (*DeleteResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	// The create has normally finished long ago; the request is then a no-op (not found).
	// "" : the create ran under the delete's own id (a container's changes share one).
	if createID != "" {
		_ = workflow.RequestCancelExternalWorkflow(ctx, createID, "").Get(ctx, nil)
	}
	if err := t.step("trash", 20, "moving %s into the erator", ds); err != nil {
		return nil, err
	}
	var res storage.TrashResult
	err = workflow.ExecuteActivity(serverCtx(ctx, in.ServerID), sa.Trash, storage.TrashInput{
		Pool: in.Pool, Dataset: ds, Kind: in.Kind, ID: in.ObjectID, Unix: workflow.Now(ctx).Unix(),
	}).Get(ctx, &res)
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	slaves := ""
	// Volumes, groups and ctemplates are replicated, and vdisks backed up (containers not).
	if (in.Kind == "volume" || in.Kind == "group") && since(ctx, VersionDeleteSlaves) ||
		in.Kind == "vdisk" && since(ctx, VersionDeleteVDiskBackups) ||
		in.Kind == ReplicateCTemplate && since(ctx, VersionDeleteCTemplateCopies) {
		if err := t.step("slaves", 60, "moving the slaves' copies of %s %d into their erators", in.Kind, in.ObjectID); err != nil {
			return nil, err
		}
		slaves = trashOnSlaves(ctx, in)
	}
	if res.Missing {
		if err := t.succeed(models.Outcome{}, "%s did not exist: nothing to move%s", ds, slaves); err != nil {
			return nil, err
		}
		return &DeleteResult{}, nil
	}
	if err := t.succeed(models.Outcome{}, "moved %s to %s%s", ds, res.Trash, slaves); err != nil {
		return nil, err
	}
	return &DeleteResult{Trash: res.Trash}, nil
}

// slaveTrashWait bounds moving a slave's copy: a slave that is away keeps its copy (the
// operation says so) rather than holding the delete for a day.
const slaveTrashWait = 10 * time.Minute

// trashOnSlaves moves every slave's copy of the deleted volume or group into that slave's
// erator, all slaves at once, after cancelling a transfer still bringing it there. It
// returns what to add to the operation's message: the slaves whose copy stayed.
func trashOnSlaves(ctx workflow.Context, in DeleteInput) string {
	var list panel.SlavesOfResult
	if err := workflow.ExecuteActivity(panelCtx(ctx), pa.SlavesOf, panel.SlavesOfInput{Kind: in.Kind, ObjectID: in.ObjectID}).Get(ctx, &list); err != nil {
		return fmt.Sprintf("; the slaves' copies were not moved: %s", failureText(err))
	}
	futures := make([]workflow.Future, len(list.Slaves))
	for i, s := range list.Slaves {
		// Not found (no transfer under way) is the usual answer.
		_ = workflow.RequestCancelExternalWorkflow(ctx, ReplicateID(s.ID, in.Kind, in.ObjectID), "").Get(ctx, nil)
		o := workflow.GetActivityOptions(serverCtx(ctx, s.ID))
		o.ScheduleToCloseTimeout = slaveTrashWait
		sctx := workflow.WithActivityOptions(ctx, o)
		ds := dataset(in.Kind, s.Pool, in.ObjectID)
		futures[i] = workflow.ExecuteActivity(sctx, sa.Trash, storage.TrashInput{Pool: s.Pool, Dataset: ds, Kind: in.Kind, ID: in.ObjectID, Unix: workflow.Now(ctx).Unix()})
	}
	var kept []string
	for i, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			kept = append(kept, fmt.Sprintf("server %d (%s)", list.Slaves[i].ID, failureText(err)))
		}
	}
	switch {
	case len(list.Slaves) == 0:
		return ""
	case len(kept) == 0:
		return fmt.Sprintf("; the copies on %d slaves too", len(list.Slaves))
	}
	return fmt.Sprintf("; copies left on %s: move them with the erator once the slave answers", strings.Join(kept, ", "))
}
