package workflows

import (
	"errors"
	"fmt"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/workflow"
)

// CTemplateDelete moves a ctemplate's dataset (with its versions) into its server's erator.
func CTemplateDelete(ctx workflow.Context, in DeleteInput) (*DeleteResult, error) {
	in.Kind = "ctemplate"
	return trashObject(ctx, in, storage.CTemplateDataset(in.Pool, in.ObjectID), "")
}

// CTemplateBuildInput is a ctemplate version to build with debootstrap on ServerID.
type CTemplateBuildInput struct {
	OperationID uint
	ServerID    uint
	Build       storage.BuildCTemplateInput
}

// buildRun bounds one debootstrap: minutes on a server, much longer in an emulated VM. A
// failed build is tried again twice (a mirror's hiccup), not for a day.
const buildRun = 2 * time.Hour

// CTemplateBuild builds a ctemplate's version on its server: debootstrap of the suite
// from the archive in the server's apt sources into the ctemplate's dataset, then the
// version's snapshot. The agent undoes a failed build itself (nothing is left).
func CTemplateBuild(ctx workflow.Context, in CTemplateBuildInput) (*storage.BuildCTemplateResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	b := in.Build
	if err := t.step("debootstrap", 10, "building %s into %s@%s with debootstrap from the server's apt sources",
		b.Suite, storage.CTemplateDataset(b.Pool, b.CTemplateID), storage.VersionSnapshot(b.Version)); err != nil {
		return nil, err
	}
	o := workflow.GetActivityOptions(serverCtx(ctx, in.ServerID))
	o.StartToCloseTimeout = buildRun
	o.RetryPolicy.MaximumAttempts = 3
	var res storage.BuildCTemplateResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, o), sa.BuildCTemplate, b).Get(ctx, &res); err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	if err := t.succeed(models.Outcome{}, "%s built from %s", res.Snapshot, res.Mirror); err != nil {
		return nil, err
	}
	if since(ctx, VersionCTemplateBuildReplicate) {
		// The version is recorded: bring it to the network's other servers, as a publish does.
		replicateTo(ctx, panel.QueueReplicationInput{Kind: ReplicateCTemplate, ObjectID: b.CTemplateID, Snapshot: storage.VersionSnapshot(b.Version)})
	}
	return &res, nil
}

// ContainerCreateInput is container Container.ContainerID to make on ServerID.
type ContainerCreateInput struct {
	OperationID uint
	ServerID    uint
	Container   storage.ContainerInput
}

// ContainerCreate clones the ctemplate version, writes the container's unit and starts
// it, on the container's server. Failed or cancelled, it removes the unit and moves the
// clone into the erator: nothing is left running or half made.
func ContainerCreate(ctx workflow.Context, in ContainerCreateInput) (*storage.ContainerResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	c := in.Container
	ds := storage.ContainerDataset(c.Pool, c.ContainerID)
	if err := t.step("create", 10, "cloning ctemplate %d v%d into %s and starting %s on server %d",
		c.CTemplateID, c.Version, ds, storage.ContainerUnit(c.ContainerID), in.ServerID); err != nil {
		return nil, err
	}
	var res storage.ContainerResult
	err = workflow.ExecuteActivity(cancellable(serverCtx(ctx, in.ServerID)), sa.CreateContainer, c).Get(ctx, &res)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		if rerr := workflow.ExecuteActivity(serverCtx(dctx, in.ServerID), sa.RemoveContainer,
			storage.RemoveContainerInput{ContainerID: c.ContainerID}).Get(dctx, nil); rerr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", rerr))
		}
		made := storage.TrashInput{Pool: c.Pool, Dataset: ds, Kind: "container", ID: c.ContainerID, Unix: workflow.Now(ctx).Unix()}
		return nil, t.fail(models.Outcome{}, undo(ctx, in.ServerID, made, err))
	}
	if err := t.succeed(models.Outcome{}, "%s runs %s", res.Dataset, res.Unit); err != nil {
		return nil, err
	}
	return &res, nil
}

// ContainerActInput is a start, stop, restart or kill of a container.
type ContainerActInput struct {
	OperationID uint
	ContainerID uint
	ServerID    uint
	Action      string
}

// ContainerAct starts, stops, restarts or kills a container's machine through systemd.
func ContainerAct(ctx workflow.Context, in ContainerActInput) (*ContainerActResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	unit := storage.ContainerUnit(in.ContainerID)
	if err := t.step(in.Action, 20, "%s %s on server %d", in.Action, unit, in.ServerID); err != nil {
		return nil, err
	}
	var st ContainerActResult
	err = workflow.ExecuteActivity(serverCtx(ctx, in.ServerID), sa.ContainerAction,
		storage.ContainerActionInput{ContainerID: in.ContainerID, Action: in.Action}).Get(ctx, &st)
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	if err := t.succeed(models.Outcome{}, "%s: %s (%s)", in.Action, st.ActiveState, st.SubState); err != nil {
		return nil, err
	}
	return &st, nil
}

// ContainerActResult is the unit's state after the action.
type ContainerActResult struct {
	ActiveState string `json:"active_state"`
	SubState    string `json:"sub_state"`
}

// ContainerDelete stops the container's machine and removes its unit, then moves its
// clone into its server's erator.
func ContainerDelete(ctx workflow.Context, in DeleteInput) (*DeleteResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	if err := t.step("stop", 10, "stopping %s and removing its unit", storage.ContainerUnit(in.ObjectID)); err != nil {
		return nil, err
	}
	err = workflow.ExecuteActivity(serverCtx(ctx, in.ServerID), sa.RemoveContainer,
		storage.RemoveContainerInput{ContainerID: in.ObjectID}).Get(ctx, nil)
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	in.Kind = "container"
	return trashObject(ctx, in, storage.ContainerDataset(in.Pool, in.ObjectID), "")
}

// ContainerRebaseInput moves container Container.ContainerID from version From of its
// ctemplate to Container.Version, on ServerID.
type ContainerRebaseInput struct {
	OperationID uint
	ServerID    uint
	Container   storage.ContainerInput
	From        int
}

// ContainerRebase puts a container on a newer version of its ctemplate: its machine
// stopped, its clone moved into the erator, a new clone of the version made in its place
// with the same unit and limits, and started. If the new clone cannot be made or started,
// the new one goes into the erator, the old one comes back from it and runs again: a
// failed rebase leaves the container as it was.
func ContainerRebase(ctx workflow.Context, in ContainerRebaseInput) (*storage.ContainerResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	c := in.Container
	ds := storage.ContainerDataset(c.Pool, c.ContainerID)
	unit := storage.ContainerUnit(c.ContainerID)
	sctx := serverCtx(ctx, in.ServerID)
	if err := t.step("stop", 10, "stopping %s to move it from ctemplate %d v%d to v%d", unit, c.CTemplateID, in.From, c.Version); err != nil {
		return nil, err
	}
	if err := workflow.ExecuteActivity(sctx, sa.ContainerAction, storage.ContainerActionInput{ContainerID: c.ContainerID, Action: "stop"}).Get(ctx, nil); err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	if err := t.step("trash", 30, "moving the v%d clone %s into the erator", in.From, ds); err != nil {
		return nil, err
	}
	unix := workflow.Now(ctx).Unix()
	old := storage.TrashInput{Pool: c.Pool, Dataset: ds, Kind: "container", ID: c.ContainerID, Unix: unix}
	if err := workflow.ExecuteActivity(sctx, sa.Trash, old).Get(ctx, nil); err != nil {
		// The old clone is still in place: start it again.
		return nil, t.fail(models.Outcome{}, restartOld(ctx, in, err, 0))
	}
	if err := t.step("clone", 50, "cloning ctemplate %d v%d into %s and starting %s", c.CTemplateID, c.Version, ds, unit); err != nil {
		return nil, err
	}
	var res storage.ContainerResult
	if err := workflow.ExecuteActivity(sctx, sa.CreateContainer, c).Get(ctx, &res); err != nil {
		return nil, t.fail(models.Outcome{}, restartOld(ctx, in, err, unix))
	}
	if err := t.succeed(models.Outcome{}, "%s runs ctemplate %d v%d; the v%d clone is in the erator", unit, c.CTemplateID, c.Version, in.From); err != nil {
		return nil, err
	}
	return &res, nil
}

// restartOld undoes a rebase that failed with cause. When the old clone was moved into
// the erator at oldUnix (0: it was not), whatever was made of the new one goes there
// under a time one second older, so that Restore (which takes the newest entry) brings
// back the old one; then the old version's unit is written and started again.
func restartOld(ctx workflow.Context, in ContainerRebaseInput, cause error, oldUnix int64) error {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	sctx := serverCtx(dctx, in.ServerID)
	c := in.Container
	ds := storage.ContainerDataset(c.Pool, c.ContainerID)
	if oldUnix != 0 {
		made := storage.TrashInput{Pool: c.Pool, Dataset: ds, Kind: "container", ID: c.ContainerID, Unix: oldUnix - 1}
		if err := workflow.ExecuteActivity(sctx, sa.RemoveContainer, storage.RemoveContainerInput{ContainerID: c.ContainerID}).Get(dctx, nil); err != nil {
			return errors.Join(cause, fmt.Errorf("undo: %w", err))
		}
		if err := workflow.ExecuteActivity(sctx, sa.Trash, made).Get(dctx, nil); err != nil {
			return errors.Join(cause, fmt.Errorf("undo: %w", err))
		}
		if err := workflow.ExecuteActivity(sctx, sa.Restore, storage.RestoreInput{Pool: c.Pool, Kind: "container", ID: c.ContainerID, Target: ds}).Get(dctx, nil); err != nil {
			return errors.Join(cause, fmt.Errorf("undo: %w", err))
		}
	}
	c.Version = in.From
	if err := workflow.ExecuteActivity(sctx, sa.CreateContainer, c).Get(dctx, nil); err != nil {
		return errors.Join(cause, fmt.Errorf("undo: restart v%d: %w", in.From, err))
	}
	return cause
}
