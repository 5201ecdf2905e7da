package panel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workflows"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"gorm.io/gorm"
)

// Engine starts the workflow behind each Operation the store records (models.Engine).
type Engine struct {
	Client client.Client
	DB     *gorm.DB
	Log    *slog.Logger
	// LockWait bounds how long a lock change waits for a provisioning under way (default LockWait).
	LockWait time.Duration
}

// start is one workflow to start: its id, function, input and how a repeated id behaves.
type start struct {
	id    string
	fn    any
	input any
	// again: the id may run again once the previous run has ended (a second delete after
	// a restore, a new bootstrap at each agent start). Otherwise an id runs once.
	again bool
}

// placement is the master server (and its pool) of a network.
func (e *Engine) placement(ctx context.Context, networkID uint) (*models.Server, error) {
	var n models.Network
	if err := e.DB.WithContext(ctx).Take(&n, networkID).Error; err != nil {
		return nil, fmt.Errorf("network %d: %w", networkID, err)
	}
	if n.MasterServerID == nil {
		return nil, fmt.Errorf("network %d has no master server", networkID)
	}
	var s models.Server
	if err := e.DB.WithContext(ctx).Take(&s, *n.MasterServerID).Error; err != nil {
		return nil, fmt.Errorf("master server of network %d: %w", networkID, err)
	}
	return &s, nil
}

// plan maps an operation to its workflow.
func (e *Engine) plan(ctx context.Context, op *models.Operation) (*start, error) {
	db := e.DB.WithContext(ctx)
	var networkID uint
	if op.NetworkID != nil {
		networkID = *op.NetworkID
	}
	id := op.ObjectID
	switch op.Kind {
	case models.OpServerBootstrap, models.OpEratorPurge:
		var s models.Server
		if err := db.Take(&s, id).Error; err != nil {
			return nil, fmt.Errorf("server %d: %w", id, err)
		}
		if op.Kind == models.OpServerBootstrap {
			return &start{id: workflows.ServerBootstrapID(id), fn: workflows.ServerBootstrap, again: true,
				input: workflows.ServerBootstrapInput{OperationID: op.ID, ServerID: s.ID, Pool: s.Pool}}, nil
		}
		var req models.PurgeRequest
		if err := json.Unmarshal([]byte(op.Input), &req); err != nil {
			return nil, fmt.Errorf("purge input: %w", err)
		}
		return &start{id: workflows.EratorPurgeID(id), fn: workflows.EratorPurge, again: true,
			input: workflows.EratorPurgeInput{OperationID: op.ID, ServerID: s.ID, Pool: s.Pool, Before: req.Before}}, nil
	}
	m, err := e.placement(ctx, networkID)
	if err != nil {
		return nil, err
	}
	switch op.Kind {
	case models.OpVolumeCreate:
		var v models.Volume
		if err := db.Take(&v, id).Error; err != nil {
			return nil, fmt.Errorf("volume %d: %w", id, err)
		}
		return &start{id: workflows.VolumeCreateID(id), fn: workflows.VolumeCreate,
			input: workflows.VolumeCreateInput{OperationID: op.ID, VolumeID: id, ServerID: m.ID, Pool: m.Pool, SizeGiB: v.SizeGiB}}, nil
	case models.OpVolumeResize:
		var in struct {
			Size int64 `json:"vol_size"`
		}
		if err := json.Unmarshal([]byte(op.Input), &in); err != nil || in.Size <= 0 {
			return nil, fmt.Errorf("resize input %q: %v", op.Input, err)
		}
		return &start{id: workflows.VolumeResizeID(id, in.Size), fn: workflows.VolumeResize,
			input: workflows.VolumeResizeInput{OperationID: op.ID, VolumeID: id, ServerID: m.ID, Pool: m.Pool, SizeGiB: in.Size}}, nil
	case models.OpVolumeDelete:
		return &start{id: workflows.VolumeDeleteID(id), fn: workflows.VolumeDelete, again: true,
			input: workflows.DeleteInput{OperationID: op.ID, Kind: "volume", ObjectID: id, ServerID: m.ID, Pool: m.Pool}}, nil
	case models.OpVolumeRestore, models.OpGroupRestore:
		kind, wid := "volume", workflows.VolumeRestoreID(id)
		if op.Kind == models.OpGroupRestore {
			kind, wid = "group", workflows.GroupRestoreID(id)
		}
		return &start{id: wid, fn: workflows.Restore, again: true,
			input: workflows.RestoreInput{OperationID: op.ID, Kind: kind, ObjectID: id, ServerID: m.ID, Pool: m.Pool}}, nil
	case models.OpGroupCreate:
		var g models.Group
		if err := db.Take(&g, id).Error; err != nil {
			return nil, fmt.Errorf("group %d: %w", id, err)
		}
		return &start{id: workflows.GroupCreateID(id), fn: workflows.GroupCreate,
			input: workflows.GroupCreateInput{OperationID: op.ID, GroupID: id, VolumeID: g.VolumeID, ServerID: m.ID, Pool: m.Pool}}, nil
	case models.OpGroupDelete:
		return &start{id: workflows.GroupDeleteID(id), fn: workflows.GroupDelete, again: true,
			input: workflows.DeleteInput{OperationID: op.ID, Kind: "group", ObjectID: id, ServerID: m.ID, Pool: m.Pool}}, nil
	case models.OpGroupPublish:
		var pv models.PublishVersion
		if err := json.Unmarshal([]byte(op.Input), &pv); err != nil || pv.VersionID == 0 {
			return nil, fmt.Errorf("publish input %q: %v", op.Input, err)
		}
		return &start{id: workflows.GroupPublishID(id, pv.Number), fn: workflows.GroupPublish,
			input: workflows.GroupPublishInput{OperationID: op.ID, GroupID: id, VersionID: pv.VersionID, Number: pv.Number, ServerID: m.ID, Pool: m.Pool}}, nil
	}
	return nil, fmt.Errorf("no workflow for operations of kind %q", op.Kind)
}

// Start starts the operation's workflow, or joins the run already under way for the same
// object (the id comes from the object): a retried request or a double click never
// starts a second one. A device restore is an update of the device's workflow instead
// (restoreDevice). Safe to repeat.
func (e *Engine) Start(ctx context.Context, op *models.Operation) error {
	if op.Kind == models.OpDeviceRestore {
		return e.restoreDevice(ctx, op)
	}
	p, err := e.plan(ctx, op)
	if err != nil {
		return err
	}
	opts := client.StartWorkflowOptions{
		ID:                       p.id,
		TaskQueue:                workflows.PanelQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		// A running run is joined (conflict policy); a finished one that may not run again
		// comes back as an error, so the repeat can be answered with its outcome.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		Memo: map[string]any{
			"operation": op.ID, "kind": op.Kind, "object": op.ObjectType + " " + strconv.FormatUint(uint64(op.ObjectID), 10),
			"network": op.NetworkID,
		},
	}
	if p.again {
		opts.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	}
	run, err := e.Client.ExecuteWorkflow(ctx, opts, p.fn, p.input)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &started):
		// The id ran before and may not run again: this request is a repeat of it.
		return e.adopt(ctx, op, p.id, started.RunId)
	case err != nil:
		return fmt.Errorf("start %s: %w", p.id, err)
	}
	return models.AttachWorkflow(ctx, e.DB, op.ID, run.GetID(), run.GetRunID())
}

// adopt points a repeated operation at the run that already did the work and, when that
// run has ended, copies its outcome.
func (e *Engine) adopt(ctx context.Context, op *models.Operation, wid, rid string) error {
	desc, err := e.Client.DescribeWorkflowExecution(ctx, wid, rid)
	if err != nil {
		return fmt.Errorf("describe %s: %w", wid, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	rid = info.GetExecution().GetRunId()
	if err := models.AttachWorkflow(ctx, e.DB, op.ID, wid, rid); err != nil {
		return err
	}
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return models.SettleRepeat(ctx, e.DB, op.ID, "the same request already ran as workflow "+wid, "")
	default:
		return models.SettleRepeat(ctx, e.DB, op.ID, "the same request already ran as workflow "+wid,
			"workflow "+wid+" ended "+info.GetStatus().String())
	}
}

// ResumeQueued starts the operations that were recorded while no engine could take
// them (Temporal down, or a panel without one); it runs once at the panel's start.
func (e *Engine) ResumeQueued(ctx context.Context) {
	ops, err := models.QueuedOperations(ctx, e.DB, 1000)
	if err != nil {
		e.Log.Warn("list queued operations", "err", err)
		return
	}
	for i := range ops {
		if err := e.Start(ctx, &ops[i]); err != nil {
			e.Log.Warn("start queued operation", "operation", ops[i].ID, "kind", ops[i].Kind, "err", err)
		}
	}
	if len(ops) > 0 {
		e.Log.Info("started queued operations", "count", len(ops))
	}
}
