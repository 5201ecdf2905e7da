package workflows

import (
	"fmt"

	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
)

// Start is how an operation runs: workflow WorkflowID (Workflow with Input) on Queue,
// started by the panel's engine, or, with Update set, an update of that (entity)
// workflow, which the engine starts if no run is under way (update-with-start).
type Start struct {
	WorkflowID string
	Queue      string
	Workflow   any
	Input      any
	// First is the run's first step, which the engine records on the operation as it
	// attaches the run (the run itself no longer does: see tracker.begin); nil for a
	// workflow that records its own.
	First *models.WorkflowProgress
	// Again: the id may run again once its previous run has ended (a second delete after
	// a restore, a bootstrap at each agent start); otherwise an id runs once.
	Again bool
	// Update names the update that carries the operation, UpdateID its id (from the
	// operation, so a repeated start joins the first) and UpdateArg its argument.
	Update    string
	UpdateID  string
	UpdateArg any
}

// recorded is what an operation's workflow is built from: the operation's id, network and
// object, and the input recorded with it.
type recorded struct {
	ID, Network, Object uint
	models.OperationInput
}

// dispatch is the workflow of each operation kind (models.OperationKinds), built from the
// recorded operation alone. Every kind has an entry (dispatch_test.go).
var dispatch = map[string]func(r recorded) (Start, error){
	models.OpServerBootstrap: func(r recorded) (Start, error) {
		return Start{WorkflowID: ServerBootstrapID(r.Object), Workflow: ServerBootstrap, Again: true,
			Input: ServerBootstrapInput{OperationID: r.ID, ServerID: r.ServerID, Pool: r.Pool}}, nil
	},
	models.OpEratorPurge: func(r recorded) (Start, error) {
		return Start{WorkflowID: EratorPurgeID(r.Object), Workflow: EratorPurge, Again: true,
			Input: EratorPurgeInput{OperationID: r.ID, ServerID: r.ServerID, Pool: r.Pool, Before: r.Before}}, nil
	},
	models.OpVolumeCreate: func(r recorded) (Start, error) {
		in := VolumeCreateInput{OperationID: r.ID, VolumeID: r.Object, ServerID: r.ServerID, Pool: r.Pool, SizeGiB: r.SizeGiB}
		return Start{WorkflowID: VolumeCreateID(r.Object), Workflow: VolumeCreate, Input: in, First: progressOf(in.firstStep())}, need(r.SizeGiB > 0, "vol_size")
	},
	models.OpVolumeResize: func(r recorded) (Start, error) {
		in := VolumeResizeInput{OperationID: r.ID, VolumeID: r.Object, ServerID: r.ServerID, Pool: r.Pool, SizeGiB: r.SizeGiB}
		return Start{WorkflowID: VolumeResizeID(r.Object, r.SizeGiB), Workflow: VolumeResize, Input: in}, need(r.SizeGiB > 0, "vol_size")
	},
	models.OpVolumeDelete:  deleting("volume", VolumeDeleteID, VolumeDelete),
	models.OpVolumeRestore: restoring("volume", VolumeRestoreID),
	models.OpGroupCreate: func(r recorded) (Start, error) {
		in := GroupCreateInput{OperationID: r.ID, GroupID: r.Object, VolumeID: r.VolumeID, ServerID: r.ServerID, Pool: r.Pool}
		return Start{WorkflowID: GroupCreateID(r.Object), Workflow: GroupCreate, Input: in, First: progressOf(in.firstStep())}, need(r.VolumeID != 0, "volume_id")
	},
	models.OpGroupDelete:  deleting("group", GroupDeleteID, GroupDelete),
	models.OpGroupRestore: restoring("group", GroupRestoreID),
	models.OpGroupPublish: func(r recorded) (Start, error) {
		in := GroupPublishInput{OperationID: r.ID, GroupID: r.Object, VersionID: r.VersionID, Number: r.Number, ServerID: r.ServerID, Pool: r.Pool}
		return Start{WorkflowID: GroupPublishID(r.Object, r.Number), Workflow: GroupPublish, Input: in, First: progressOf(in.firstStep())}, need(r.VersionID != 0 && r.Number > 0, "version_id and number")
	},
	models.OpGroupRollout: func(r recorded) (Start, error) {
		in := RolloutInput{OperationID: r.ID, RolloutID: r.RolloutID, GroupID: r.Object, VersionID: r.VersionID, Number: r.Number}
		return Start{WorkflowID: RolloutID(r.Object, r.Number), Workflow: Rollout, Input: in}, need(r.RolloutID != 0 && r.VersionID != 0 && r.Number > 0, "rollout_id, version_id and number")
	},
	models.OpGroupMaintenanceEnd:  maintenanceEnd("group"),
	models.OpVolumeMaintenanceEnd: maintenanceEnd("volume"),
	models.OpServerPromote: func(r recorded) (Start, error) {
		return Start{WorkflowID: ServerPromoteID(r.Object), Workflow: ServerPromote, Again: true,
			Input: ServerPromoteInput{OperationID: r.ID, NetworkID: r.Network, ServerID: r.Object}}, nil
	},
	models.OpReplicateVolume: replicating(ReplicateVolume),
	models.OpReplicateGroup:  replicating(ReplicateGroup),
	models.OpReplicateVDisk:  replicating(ReplicateVDisk),
	models.OpBulkLock:        bulking(models.OpBulkLock),
	models.OpBulkUnlock:      bulking(models.OpBulkUnlock),
	models.OpBulkRestore:     bulking(models.OpBulkRestore),
	models.OpBulkDelete:      bulking(models.OpBulkDelete),
	models.OpVDiskCreate: func(r recorded) (Start, error) {
		in := VDiskCreateInput{OperationID: r.ID, VDiskID: r.Object, NetworkID: r.Network, DeviceID: r.DeviceID, ServerID: r.ServerID, Pool: r.Pool, SizeGiB: r.SizeGiB}
		return Start{WorkflowID: VDiskCreateID(r.Object), Workflow: VDiskCreate, Input: in}, need(r.SizeGiB > 0, "size")
	},
	models.OpVDiskResize: func(r recorded) (Start, error) {
		in := VolumeResizeInput{OperationID: r.ID, VolumeID: r.Object, ServerID: r.ServerID, Pool: r.Pool, SizeGiB: r.SizeGiB}
		return Start{WorkflowID: VDiskResizeID(r.Object, r.SizeGiB), Workflow: VDiskResize, Input: in}, need(r.SizeGiB > 0, "size")
	},
	models.OpVDiskAttach: func(r recorded) (Start, error) {
		in := VDiskAttachInput{OperationID: r.ID, VDiskID: r.Object, NetworkID: r.Network, From: r.FromDeviceID, To: r.DeviceID, ServerID: r.ServerID, Pool: r.Pool}
		return Start{WorkflowID: VDiskAttachID(r.Object), Workflow: VDiskAttach, Again: true, Input: in}, nil
	},
	models.OpVDiskDelete:     deleting("vdisk", VDiskDeleteID, VDiskDelete),
	models.OpCTemplateDelete: deleting("ctemplate", CTemplateDeleteID, CTemplateDelete),
	models.OpContainerCreate: func(r recorded) (Start, error) {
		if r.Container == nil {
			return Start{}, need(false, "container")
		}
		in := ContainerCreateInput{OperationID: r.ID, ServerID: r.ServerID, Container: r.containerInput()}
		return Start{WorkflowID: ContainerID(r.Object), Workflow: ContainerCreate, Again: true, Input: in}, need(r.Container.Version > 0, "ctemplate version")
	},
	models.OpCTemplateBuild: func(r recorded) (Start, error) {
		in := CTemplateBuildInput{OperationID: r.ID, ServerID: r.ServerID, Build: storage.BuildCTemplateInput{
			Pool: r.Pool, CTemplateID: r.Object, Version: r.Number, Suite: r.Suite}}
		return Start{WorkflowID: CTemplateBuildID(r.Object, r.Number), Workflow: CTemplateBuild, Input: in}, need(r.Number > 0 && r.Suite != "", "number and suite")
	},
	models.OpReplicateCTemplate: replicating(ReplicateCTemplate),
	models.OpContainerRebase: func(r recorded) (Start, error) {
		if r.Container == nil {
			return Start{}, need(false, "container")
		}
		in := ContainerRebaseInput{OperationID: r.ID, ServerID: r.ServerID, Container: r.containerInput(), From: r.FromVersion}
		return Start{WorkflowID: ContainerID(r.Object), Workflow: ContainerRebase, Again: true, Input: in},
			need(r.Container.Version > r.FromVersion && r.FromVersion > 0, "ctemplate version and from_version")
	},
	models.OpContainerAction: func(r recorded) (Start, error) {
		in := ContainerActInput{OperationID: r.ID, ContainerID: r.Object, ServerID: r.ServerID, Action: r.Action}
		return Start{WorkflowID: ContainerID(r.Object), Workflow: ContainerAct, Again: true, Input: in}, need(r.Action != "", "action")
	},
	models.OpContainerDelete: deleting("container", ContainerID, ContainerDelete),
	// A device's operations are updates of its entity workflow, in order with its
	// provisionings and lock changes.
	models.OpDeviceRestore: func(r recorded) (Start, error) {
		return DeviceUpdate(r.Object, UpdateRestore, RestoreUpdateID(r.ID),
			DeviceRestoreRequest{OperationID: r.ID, DeviceID: r.Object, ServerID: r.ServerID, Pool: r.Pool, From: r.From}), nil
	},
	models.OpDeviceDelete: func(r recorded) (Start, error) {
		return DeviceUpdate(r.Object, UpdateDelete, DeleteUpdateID(r.ID),
			DeviceDeleteRequest{OperationID: r.ID, DeviceID: r.Object, NetworkID: r.Network, ServerID: r.ServerID, Pool: r.Pool}), nil
	},
}

// containerInput is what a container operation's recorded spec makes on its server.
func (r recorded) containerInput() storage.ContainerInput {
	c := r.Container
	return storage.ContainerInput{Pool: r.Pool, ContainerID: r.Object, CTemplateID: c.CTemplateID, Version: c.Version, MemoryMB: c.MemoryMB,
		CPUQuotaPercent: c.CPUQuotaPercent, TasksMax: c.TasksMax, DiskQuotaGiB: c.DiskQuotaGiB, Autostart: c.Autostart, Command: c.Command}
}

// bulking is a bulk action on devices (kind): one workflow per operation, over the
// devices its input lists.
func bulking(kind string) func(recorded) (Start, error) {
	return func(r recorded) (Start, error) {
		return Start{WorkflowID: BulkDevicesID(r.ID), Workflow: BulkDevices,
			Input: BulkDevicesInput{OperationID: r.ID, NetworkID: r.Network, Kind: kind, Devices: r.Devices}}, need(len(r.Devices) > 0, "devices")
	}
}

// maintenanceEnd is the end of a group's or a volume's (kind) maintenance.
func maintenanceEnd(kind string) func(recorded) (Start, error) {
	return func(r recorded) (Start, error) {
		return Start{WorkflowID: MaintenanceEndID(kind, r.Object), Workflow: MaintenanceEnd, Again: true,
			Input: MaintenanceEndInput{OperationID: r.ID, Kind: kind, ID: r.Object, NetworkID: r.Network, ServerID: r.ServerID, Pool: r.Pool}}, nil
	}
}

// deleting is the delete of a volume or a group (kind): workflow fn under id.
func deleting(kind string, id func(uint) string, fn any) func(recorded) (Start, error) {
	return func(r recorded) (Start, error) {
		return Start{WorkflowID: id(r.Object), Workflow: fn, Again: true,
			Input: DeleteInput{OperationID: r.ID, Kind: kind, ObjectID: r.Object, ServerID: r.ServerID, Pool: r.Pool}}, nil
	}
}

// restoring is the restore of a volume or a group (kind) from the erator, under id.
func restoring(kind string, id func(uint) string) func(recorded) (Start, error) {
	return func(r recorded) (Start, error) {
		return Start{WorkflowID: id(r.Object), Workflow: Restore, Again: true,
			Input: RestoreInput{OperationID: r.ID, Kind: kind, ObjectID: r.Object, ServerID: r.ServerID, Pool: r.Pool}}, nil
	}
}

// replicating is the replication of a volume or group (kind) to the slave the operation
// names (its input's server): one workflow per slave and dataset, run again at each
// trigger once the previous run has ended.
func replicating(kind string) func(recorded) (Start, error) {
	return func(r recorded) (Start, error) {
		return Start{WorkflowID: ReplicateID(r.ServerID, kind, r.Object), Workflow: Replicate, Again: true,
			Input: ReplicateInput{NetworkID: r.Network, SlaveID: r.ServerID, Kind: kind, ObjectID: r.Object, Snapshot: r.Snapshot, OperationID: r.ID}}, nil
	}
}

// need is the error of a recorded input that lacks what its kind needs.
func need(ok bool, what string) error {
	if ok {
		return nil
	}
	return fmt.Errorf("the recorded input has no %s", what)
}

// Plan is the workflow of operation op, from the input recorded with it
// (models.StartInput): no row is read again.
func Plan(op *models.Operation, in *models.OperationInput) (*Start, error) {
	build, ok := dispatch[op.Kind]
	if !ok {
		return nil, fmt.Errorf("no workflow for operations of kind %q", op.Kind)
	}
	if !models.IsBulk(op.Kind) && (in.ServerID == 0 || in.Pool == "") {
		return nil, fmt.Errorf("operation %d (%s): the recorded input names no server and pool", op.ID, op.Kind)
	}
	r := recorded{ID: op.ID, Object: op.ObjectID, OperationInput: *in}
	if op.NetworkID != nil {
		r.Network = *op.NetworkID
	}
	s, err := build(r)
	if err != nil {
		return nil, fmt.Errorf("operation %d (%s): %w", op.ID, op.Kind, err)
	}
	s.Queue = PanelQueue
	return &s, nil
}

// DeviceUpdate is update name (id updateID, argument arg) of device deviceID's entity
// workflow, started if no run is under way.
func DeviceUpdate(deviceID uint, name, updateID string, arg any) Start {
	return Start{WorkflowID: DeviceWorkflowID(deviceID), Queue: PanelQueue, Workflow: Device, Input: DeviceInput{DeviceID: deviceID},
		Update: name, UpdateID: updateID, UpdateArg: arg}
}

// CreateBefore names, for a delete of kind on objectID, the create workflow that delete
// cancels and the storage activity that makes the object on the server. A delete whose
// create never started that activity has nothing on the server to move: the panel's
// engine then ends both without waiting for the agent.
func CreateBefore(kind string, objectID uint) (workflowID, activity string, ok bool) {
	switch kind {
	case models.OpVolumeDelete:
		return VolumeCreateID(objectID), "CreateVolume", true
	case models.OpGroupDelete:
		return GroupCreateID(objectID), "CloneVolume", true
	}
	return "", "", false
}
