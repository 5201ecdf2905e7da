package workflows

import (
	"errors"
	"fmt"

	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/workflow"
)

// CTemplateDelete moves a ctemplate's dataset (with its versions) into its server's erator.
func CTemplateDelete(ctx workflow.Context, in DeleteInput) (*DeleteResult, error) {
	in.Kind = "ctemplate"
	return trashObject(ctx, in, storage.CTemplateDataset(in.Pool, in.ObjectID), "")
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
