package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
)

// Operation states.
const (
	OpQueued    = "queued"
	OpRunning   = "running"
	OpSucceeded = "succeeded"
	OpFailed    = "failed"
	// OpCancelled: an operator cancelled it (in the panel or in Temporal's UI); a create's
	// undo has run before it says so.
	OpCancelled = "cancelled"
)

// finishedStates are the states an operation ends in.
var finishedStates = []string{OpSucceeded, OpFailed, OpCancelled}

// Operation links an object to the workflow that does its long work, with live progress.
type Operation struct {
	ID         uint   `gorm:"primaryKey" json:"id"`
	NetworkID  *uint  `gorm:"index" json:"network_id"`
	Kind       string `gorm:"size:40;not null" json:"kind"`
	ObjectType string `gorm:"size:40;not null" json:"object_type"`
	ObjectID   uint   `gorm:"not null" json:"object_id"`
	WorkflowID string `gorm:"size:200;not null;default:'';index" json:"workflow_id"`
	RunID      string `gorm:"size:100;not null;default:''" json:"run_id"`
	State      string `gorm:"size:20;not null;default:'queued'" json:"state"`
	Step       string `gorm:"size:200;not null;default:''" json:"step"`
	Percent    int    `gorm:"not null;default:0" json:"percent"`
	Message    string `gorm:"size:1000;not null;default:''" json:"message"`
	Error      string `gorm:"size:1000;not null;default:''" json:"error"`
	// A transfer's progress (replication): bytes received so far, the whole stream's
	// estimate and the recent rate in bytes per second; 0 for other kinds.
	Bytes      int64  `gorm:"not null;default:0" json:"bytes"`
	BytesTotal int64  `gorm:"not null;default:0" json:"bytes_total"`
	Rate       int64  `gorm:"not null;default:0" json:"rate"`
	Input      string `gorm:"type:text;not null;default:''" json:"-"`
	// Result is a bulk action's outcome per device (bulk-* kinds), in the order asked,
	// each updated as its device finishes; empty for other kinds.
	Result     []BulkOutcome `gorm:"type:text;serializer:json" json:"result,omitempty"`
	CreatedAt  time.Time     `json:"created_at"`
	UpdatedAt  time.Time     `json:"updated_at"`
	FinishedAt *time.Time    `json:"finished_at"`
}

// Operation kinds, every one declared here. opObjects gives the type of object each acts
// on (newOperation records it from there), and workflows' dispatch table has the workflow
// of each (its test walks OperationKinds).
const (
	OpServerBootstrap = "server-bootstrap"
	OpEratorPurge     = "erator-purge"
	OpVolumeCreate    = "volume-create"
	OpVolumeResize    = "volume-resize"
	OpVolumeDelete    = "volume-delete"
	OpVolumeRestore   = "volume-restore"
	OpGroupCreate     = "group-create"
	OpGroupDelete     = "group-delete"
	OpGroupRestore    = "group-restore"
	OpGroupPublish    = "group-publish"
	OpDeviceRestore   = "device-restore"
	OpDeviceDelete    = "device-delete"
	// Ending a maintenance removes the group head's or the volume's target on the master
	// (its sessions closed) before anything may snapshot or clone that disk.
	OpGroupMaintenanceEnd  = "group-maintenance-end"
	OpVolumeMaintenanceEnd = "volume-maintenance-end"
	OpServerPromote        = "server-promote"
	OpReplicateVolume      = "replicate-volume"
	OpReplicateGroup       = "replicate-group"
	// replicate-vdisk backs a vdisk up on another server of its network (never served there).
	OpReplicateVDisk = "replicate-vdisk"
	// replicate-ctemplate copies a ctemplate's versions from its server to another server
	// of its network, where containers clone them.
	OpReplicateCTemplate = "replicate-ctemplate"
	// A bulk action on devices (models.BulkDevices): one operation, one workflow, that
	// sends the change to each device's workflow in turn, the devices listed in its input.
	OpBulkLock    = "bulk-lock"
	OpBulkUnlock  = "bulk-unlock"
	OpBulkRestore = "bulk-restore"
	OpBulkDelete  = "bulk-delete"
	OpVDiskCreate = "vdisk-create"
	OpVDiskResize = "vdisk-resize"
	OpVDiskDelete = "vdisk-delete"
	// vdisk-attach moves a vdisk to another device (or detaches it): LUN 1 of one target
	// to LUN 1 of another, on the vdisk's server.
	OpVDiskAttach = "vdisk-attach"
	// A rollout of a published version in waves (issue 18): canaries first, then the group.
	OpGroupRollout = "group-rollout"
	// A container's changes run one at a time under one workflow id (container-<id>).
	OpCTemplateDelete = "ctemplate-delete"
	OpContainerCreate = "container-create"
	OpContainerAction = "container-action" // start, stop, restart, kill
	OpContainerDelete = "container-delete"
	// container-rebase puts a container on another version of its ctemplate: a new clone,
	// the old one into the erator.
	OpContainerRebase = "container-rebase"
	// ctemplate-build makes a ctemplate's next version with debootstrap on its server.
	OpCTemplateBuild = "ctemplate-build"
)

// opObjects maps each operation kind to the type of object it acts on (Operation.ObjectType).
var opObjects = map[string]string{
	OpServerBootstrap: "server",
	OpEratorPurge:     "server",
	OpVolumeCreate:    "volume",
	OpVolumeResize:    "volume",
	OpVolumeDelete:    "volume",
	OpVolumeRestore:   "volume",
	OpGroupCreate:     "group",
	OpGroupDelete:     "group",
	OpGroupRestore:    "group",
	OpGroupPublish:    "group",
	OpDeviceRestore:   "device",
	OpDeviceDelete:    "device",

	OpGroupMaintenanceEnd:  "group",
	OpVolumeMaintenanceEnd: "volume",
	OpServerPromote:        "server",
	// A replication acts on the dataset; the slave it goes to is the input's server.
	OpReplicateVolume: "volume",
	OpReplicateGroup:  "group",
	OpReplicateVDisk:  "vdisk",
	// A bulk action's object is its first device; the input lists them all.
	OpBulkLock:     "device",
	OpBulkUnlock:   "device",
	OpBulkRestore:  "device",
	OpBulkDelete:   "device",
	OpVDiskCreate:  "vdisk",
	OpVDiskResize:  "vdisk",
	OpVDiskDelete:  "vdisk",
	OpVDiskAttach:  "vdisk",
	OpGroupRollout: "group",

	OpCTemplateDelete: "ctemplate",
	OpContainerCreate: "container",
	OpContainerAction: "container",
	OpContainerDelete: "container",
	OpContainerRebase: "container",
	OpCTemplateBuild:  "ctemplate",

	OpReplicateCTemplate: "ctemplate",
}

// IsBulk reports whether kind is a bulk action on devices (its input lists them).
func IsBulk(kind string) bool {
	switch kind {
	case OpBulkLock, OpBulkUnlock, OpBulkRestore, OpBulkDelete:
		return true
	}
	return false
}

// inDeviceWorkflow reports whether an operation runs as an update of its device's entity
// workflow (one run, many operations), rather than as a workflow of its own.
func (op *Operation) inDeviceWorkflow() bool {
	return op.Kind == OpDeviceRestore || op.Kind == OpDeviceDelete
}

// OperationKinds lists every operation kind, sorted.
func OperationKinds() []string {
	kinds := make([]string, 0, len(opObjects))
	for k := range opObjects {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return kinds
}

// OperationInput is what an operation's workflow starts from, recorded on the row
// (Operation.Input) by the transaction that records the operation: the server the work
// runs on and its pool, and the parameters of its kind. The engine starts the workflow
// from it alone (workflows.Plan), so the workflow does what was decided with the row.
// The JSON names are those of the inputs recorded before (resize, publish, purge, device
// restore and delete), so older rows decode into it.
type OperationInput struct {
	ServerID uint   `json:"server_id,omitempty"`
	Pool     string `json:"pool,omitempty"`
	SizeGiB  int64  `json:"vol_size,omitempty"`  // volume-create, volume-resize
	VolumeID uint   `json:"volume_id,omitempty"` // group-create: the volume it clones
	// group-publish. Number follows VersionID: PublishGroup finds a version's operation
	// by `"version_id":<id>,`.
	VersionID uint   `json:"version_id,omitempty"`
	Number    int    `json:"number,omitempty"`
	Before    int64  `json:"before,omitempty"` // erator-purge: unix seconds
	From      string `json:"from,omitempty"`   // device-restore: an erator entry
	// Retry counts the runs an operator asked for again (RetryOperation): its workflow id
	// may then run once more.
	Retry int `json:"retry,omitempty"`
	// replicate-volume, -group, -vdisk, -ctemplate: the newest snapshot wanted ("" the newest).
	Snapshot string `json:"snapshot,omitempty"`
	// bulk-*: the devices, each with the server (and pool) its disk is on (none for a
	// lock change), in the order asked.
	Devices []BulkDevice `json:"devices,omitempty"`
	// vdisk-attach: the device it goes to (0: detached) and the one it leaves (0: none).
	DeviceID     uint `json:"device_id,omitempty"`
	FromDeviceID uint `json:"from_device_id,omitempty"`
	// group-rollout: the rollout row (with VersionID and Number).
	RolloutID uint `json:"rollout_id,omitempty"`
	// container-action: start, stop, restart or kill; container-create: what it makes.
	Action    string         `json:"action,omitempty"`
	Container *ContainerSpec `json:"container,omitempty"`
	// container-rebase: the version the container leaves (Container says the new one).
	FromVersion int `json:"from_version,omitempty"`
	// ctemplate-build: the suite debootstrap builds (Number is the version it makes).
	Suite string `json:"suite,omitempty"`
}

// BulkDevice is one device of a bulk action's input.
type BulkDevice struct {
	ID       uint   `json:"id"`
	ServerID uint   `json:"server_id,omitempty"`
	Pool     string `json:"pool,omitempty"`
}

// errNoServer: an operation's rows name no server for its work to run on (yet).
var errNoServer = errors.New("no server to run on")

// completeInput fills in what in does not say yet, from the rows op acts on: the server
// (a server's operations run on it, a volume's or group's on the network's master, a
// device's on the server its caller names) with its pool, a new volume's size and a new
// group's volume. Without a server it returns errNoServer, with what is missing.
func completeInput(tx *gorm.DB, op *Operation, in *OperationInput) error {
	if IsBulk(op.Kind) {
		// Each device's server is in the list; the bulk workflow itself runs on the panel.
		if len(in.Devices) == 0 {
			return fmt.Errorf("%s %d: the input lists no devices", op.Kind, op.ObjectID)
		}
		return nil
	}
	switch opObjects[op.Kind] {
	case "server":
		in.ServerID = op.ObjectID
	case "volume", "group":
		if in.ServerID == 0 && op.NetworkID != nil {
			var n Network
			if err := tx.Take(&n, *op.NetworkID).Error; err != nil {
				return fmt.Errorf("network %d: %w", *op.NetworkID, err)
			}
			if n.MasterServerID == nil {
				return fmt.Errorf("network %d has no master server: %w", n.ID, errNoServer)
			}
			in.ServerID = *n.MasterServerID
		}
	case "vdisk":
		// A vdisk's work runs where its zvol lives.
		if in.ServerID == 0 {
			var v VDisk
			if err := tx.Take(&v, op.ObjectID).Error; err != nil {
				return fmt.Errorf("vdisk %d: %w", op.ObjectID, err)
			}
			if v.ServerID == nil {
				return fmt.Errorf("vdisk %d has no server: %w", v.ID, errNoServer)
			}
			in.ServerID = *v.ServerID
		}
	case "ctemplate":
		if in.ServerID == 0 {
			var t CTemplate
			if err := tx.Take(&t, op.ObjectID).Error; err != nil {
				return fmt.Errorf("ctemplate %d: %w", op.ObjectID, err)
			}
			if t.ServerID == nil {
				return fmt.Errorf("ctemplate %d has no server: %w", t.ID, errNoServer)
			}
			in.ServerID = *t.ServerID
		}
	case "container":
		if err := containerInput(tx, op, in); err != nil {
			return err
		}
	}
	if in.ServerID == 0 {
		return fmt.Errorf("%s %d: %w", op.Kind, op.ObjectID, errNoServer)
	}
	if in.Pool == "" {
		var s Server
		if err := tx.Take(&s, in.ServerID).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("server %d does not exist: %w", in.ServerID, errNoServer)
		} else if err != nil {
			return fmt.Errorf("server %d: %w", in.ServerID, err)
		}
		in.Pool = s.Pool
	}
	switch {
	case op.Kind == OpVolumeCreate && in.SizeGiB == 0:
		var v Volume
		if err := tx.Take(&v, op.ObjectID).Error; err != nil {
			return fmt.Errorf("volume %d: %w", op.ObjectID, err)
		}
		in.SizeGiB = v.SizeGiB
	case op.Kind == OpVDiskCreate && in.SizeGiB == 0:
		var v VDisk
		if err := tx.Take(&v, op.ObjectID).Error; err != nil {
			return fmt.Errorf("vdisk %d: %w", op.ObjectID, err)
		}
		in.SizeGiB = v.SizeGiB
		in.DeviceID = ptrOr(v.DeviceID, 0)
	case op.Kind == OpGroupCreate && in.VolumeID == 0:
		var g Group
		if err := tx.Take(&g, op.ObjectID).Error; err != nil {
			return fmt.Errorf("group %d: %w", op.ObjectID, err)
		}
		in.VolumeID = g.VolumeID
	}
	return nil
}

// StartInput is the input op's workflow starts from: the one recorded with it. A row
// recorded without its server (by a panel from before inputs were recorded, or a delete
// queued while its network had no master) is completed here from the rows it acts on,
// and the completion recorded, so every later start of it runs the same.
func StartInput(ctx context.Context, db *gorm.DB, op *Operation) (*OperationInput, error) {
	var in OperationInput
	if op.Input != "" {
		if err := json.Unmarshal([]byte(op.Input), &in); err != nil {
			return nil, fmt.Errorf("operation %d's input %q: %w", op.ID, op.Input, err)
		}
	}
	if in.Pool != "" || IsBulk(op.Kind) {
		return &in, nil
	}
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := completeInput(tx, op, &in); err != nil {
			return err
		}
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		op.Input = string(b)
		return tx.Model(&Operation{}).Where("id = ?", op.ID).Update("input", op.Input).Error
	})
	if err != nil {
		return nil, fmt.Errorf("operation %d (%s): %w", op.ID, op.Kind, err)
	}
	return &in, nil
}

// StatsStaleAfter is how old a master's last stats may be for new work to be accepted on
// it: agents report every 15 s (api.AgentGateway.StatsEvery), so this is several missed
// reports in a row, not one slow one.
var StatsStaleAfter = 2 * time.Minute

// preflight refuses work on a network whose master cannot take it: no master, a master
// whose agent has never reported or has not reported for StatsStaleAfter, or one whose
// last stats say its pool is missing or unhealthy. The guide's promise ("if the tunnel
// connection and server pool are ok, it will be created; if not, check your server
// stats") is kept here: only a master that drops out mid-operation leaves work waiting.
func preflight(tx *gorm.DB, n *Network) error {
	if n.MasterServerID == nil {
		return Conflict("network_id", "network %d has no master server: add a server and select it as the master on the network's page", n.ID)
	}
	var m Server
	if err := tx.Take(&m, *n.MasterServerID).Error; err != nil {
		return Conflict("network_id", "network %d has no master server: select one on the network's page", n.ID)
	}
	if m.StatsAt == nil {
		return Conflict("network_id", "the master server %q has never reported: its agent has not connected yet; run install.sh on it (or start its agent) and check its status on the server's page before trying again", m.Name)
	}
	if age := time.Since(*m.StatsAt); age > StatsStaleAfter {
		return Conflict("network_id", "the master server %q last reported %s ago (at %s): check that its agent is running and reaches the panel (the server's page shows its stats) before trying again",
			m.Name, age.Round(time.Second), m.StatsAt.UTC().Format(time.RFC3339))
	}
	if m.PoolHealth != "" && m.PoolHealth != "ONLINE" {
		return Conflict("network_id", "the master server %q reports pool %q as %s: check the server's stats and make the pool healthy before trying again", m.Name, m.Pool, m.PoolHealth)
	}
	return nil
}

// insertQueued inserts a row of network n within its limit and after the master's
// preflight, with its operation and audit event, inside the caller's transaction.
func insertQueued(tx *gorm.DB, a *Actor, n *Network, q queued) (*Operation, error) {
	if err := checkLimit(tx, q.row, n.ID, q.max, q.what, q.limit); err != nil {
		return nil, err
	}
	if err := preflight(tx, n); err != nil {
		return nil, err
	}
	if err := tx.Create(q.row).Error; err != nil {
		return nil, err
	}
	op, err := newOperation(tx, n.ID, q.kind, q.id(), OperationInput{})
	if err != nil {
		return nil, err
	}
	return op, audit(tx, a, &n.ID, "create", q.object, q.id(), q.label)
}

// queueDelete marks a row deleting and records its delete operation; a row already being
// deleted returns the operation under way, so a repeated DELETE starts nothing new.
func queueDelete(tx *gorm.DB, a *Actor, row any, state *string, networkID, id uint, object, kind, label string) (*Operation, error) {
	var op Operation
	if *state == StateDeleting {
		err := tx.Where("object_type = ? AND object_id = ? AND kind = ?", object, id, kind).Order("id DESC").Take(&op).Error
		return &op, err
	}
	*state = StateDeleting
	if err := tx.Model(row).Update("state", StateDeleting).Error; err != nil {
		return nil, err
	}
	created, err := newOperation(tx, networkID, kind, id, OperationInput{})
	if err != nil {
		return nil, err
	}
	return created, audit(tx, a, &networkID, "delete", object, id, label)
}

// WorkflowProgress is a step of a running operation, as its workflow reports it. Rows are matched by OperationID and also by
// (WorkflowID, RunID), so a repeated request that joined the same workflow shows the
// same progress.
type WorkflowProgress struct {
	OperationID uint
	WorkflowID  string
	RunID       string
	Step        string
	Percent     int
	Message     string
}

func opRows(tx *gorm.DB, id uint, wid, rid string) *gorm.DB {
	q := tx.Model(&Operation{}).Where("state NOT IN ?", finishedStates)
	if wid != "" && rid != "" {
		return q.Where("id = ? OR (workflow_id = ? AND run_id = ?)", id, wid, rid)
	}
	return q.Where("id = ?", id)
}

// RecordProgress (the workflow engine's ReportProgress) marks an operation running at a step. A finished operation is left as it
// is, so a late or repeated progress write never undoes a result.
func RecordProgress(ctx context.Context, db *gorm.DB, p WorkflowProgress) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if p.WorkflowID != "" {
			// The workflow can report before the engine has written its ids on the row.
			if err := tx.Model(&Operation{}).Where("id = ? AND workflow_id = ''", p.OperationID).
				Updates(map[string]any{"workflow_id": p.WorkflowID, "run_id": p.RunID}).Error; err != nil {
				return err
			}
		}
		return opRows(tx, p.OperationID, p.WorkflowID, p.RunID).Updates(stepColumns(p)).Error
	})
}

// stepColumns are an operation's columns while it runs at step p: only its end reaches
// 100 %.
func stepColumns(p WorkflowProgress) map[string]any {
	return map[string]any{"state": OpRunning, "step": trunc(p.Step, 200), "percent": min(max(p.Percent, 0), 99),
		"message": trunc(p.Message, 1000)}
}

// Outcome ends an operation and applies its result to the object, in one transaction.
type Outcome struct {
	WorkflowProgress
	Failed bool
	// Cancelled (with Failed): the workflow was cancelled; the operation ends cancelled.
	Cancelled bool
	Error     string // why it failed, for people
	// Results of particular kinds.
	VolumeSizeGiB int64  // volume-resize: the size now
	VersionID     uint   // group-publish: the version row
	GUID          string // group-publish: the snapshot's guid
	Bytes         int64  // replicate: the bytes received in total, every attempt together
	Stats         *StatsReport
}

// FinishOperation records an operation's end and its effect on the object: a volume or
// group becomes ready, failed or deleted, a version records its guid, a server its stats.
// Repeating it with the same outcome changes nothing.
func FinishOperation(ctx context.Context, db *gorm.DB, o Outcome) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var op Operation
		if err := tx.Take(&op, o.OperationID).Error; err != nil {
			return fmt.Errorf("operation %d: %w", o.OperationID, err)
		}
		if err := applyOutcome(tx, &op, &o); err != nil {
			return err
		}
		now := time.Now()
		upd := map[string]any{"finished_at": now, "message": trunc(o.Message, 1000)}
		switch {
		case o.Failed && o.Cancelled:
			upd["state"], upd["step"], upd["error"] = OpCancelled, trunc(o.Step, 200), trunc(o.Error, 1000)
		case o.Failed:
			upd["state"], upd["step"], upd["error"] = OpFailed, trunc(o.Step, 200), trunc(o.Error, 1000)
		default:
			upd["state"], upd["step"], upd["percent"], upd["error"] = OpSucceeded, "done", 100, ""
			if o.Bytes > 0 { // the watcher's last sample may be seconds old
				upd["bytes"] = o.Bytes
			}
		}
		if o.WorkflowID != "" {
			if err := tx.Model(&Operation{}).Where("id = ? AND workflow_id = ''", op.ID).
				Updates(map[string]any{"workflow_id": o.WorkflowID, "run_id": o.RunID}).Error; err != nil {
				return err
			}
		}
		return opRows(tx, op.ID, o.WorkflowID, o.RunID).Updates(upd).Error
	})
}

func applyOutcome(tx *gorm.DB, op *Operation, o *Outcome) error {
	setState := func(model any, state string) error {
		return tx.Model(model).Where("id = ?", op.ObjectID).Update("state", state).Error
	}
	// A create or restore only settles a pending object: a delete that started meanwhile
	// (and cancelled it) has the last word.
	settle := func(model any, state string) error {
		return tx.Model(model).Where("id = ? AND state = ?", op.ObjectID, StatePending).Update("state", state).Error
	}
	ok := !o.Failed
	switch op.Kind {
	case OpVolumeCreate:
		return settle(&Volume{}, pick(ok, StateReady, StateFailed))
	case OpVolumeRestore:
		// A failed restore leaves the volume where it was: in the erator.
		return settle(&Volume{}, pick(ok, StateReady, StateDeleted))
	case OpVolumeResize:
		if ok && o.VolumeSizeGiB > 0 {
			return tx.Model(&Volume{}).Where("id = ?", op.ObjectID).Update("size_gib", o.VolumeSizeGiB).Error
		}
	case OpVolumeDelete:
		return setState(&Volume{}, pick(ok, StateDeleted, StateFailed))
	case OpGroupCreate:
		return settle(&Group{}, pick(ok, StateReady, StateFailed))
	case OpVDiskCreate:
		return settle(&VDisk{}, pick(ok, StateReady, StateFailed))
	case OpVDiskResize:
		if ok && o.VolumeSizeGiB > 0 {
			return tx.Model(&VDisk{}).Where("id = ?", op.ObjectID).Update("size_gib", o.VolumeSizeGiB).Error
		}
	case OpVDiskDelete:
		if ok {
			// Deleted, it no longer counts as any device's disk.
			return tx.Model(&VDisk{}).Where("id = ?", op.ObjectID).Updates(map[string]any{"state": StateDeleted, "device_id": nil}).Error
		}
		return setState(&VDisk{}, StateFailed)
	case OpVDiskAttach:
		if ok {
			return applyVDiskAttach(tx, op)
		}
	case OpCTemplateDelete:
		return setState(&CTemplate{}, pick(ok, StateDeleted, StateFailed))
	case OpContainerCreate:
		return settle(&Container{}, pick(ok, StateReady, StateFailed))
	case OpContainerDelete:
		return setState(&Container{}, pick(ok, StateDeleted, StateFailed))
	case OpContainerRebase:
		if ok {
			return applyContainerRebase(tx, op)
		}
	case OpCTemplateBuild:
		return applyCTemplateBuild(tx, op, ok)
	case OpGroupRestore:
		return settle(&Group{}, pick(ok, StateReady, StateDeleted))
	case OpGroupDelete:
		return setState(&Group{}, pick(ok, StateDeleted, StateFailed))
	case OpGroupPublish:
		if o.VersionID == 0 {
			return nil
		}
		upd := map[string]any{"state": pick(ok, StateReady, StateFailed)}
		if ok {
			upd["guid"] = o.GUID
		}
		return tx.Model(&GroupVersion{}).Where("id = ? AND group_id = ?", o.VersionID, op.ObjectID).Updates(upd).Error
	case OpServerBootstrap:
		if o.Stats != nil {
			return recordStats(tx, op.ObjectID, o.Stats)
		}
	case OpBulkLock, OpBulkUnlock, OpBulkRestore, OpBulkDelete:
		if o.Failed {
			return endBulkOutcomes(tx, op, o.Cancelled)
		}
	}
	return nil
}

func pick[T any](cond bool, a, b T) T {
	if cond {
		return a
	}
	return b
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// SettleRepeat ends a repeated operation whose workflow already ran (failed when errText
// is set), without applying the outcome to the object a second time.
func SettleRepeat(ctx context.Context, db *gorm.DB, opID uint, message, errText string) error {
	upd := map[string]any{"message": trunc(message, 1000), "state": OpSucceeded, "step": "done", "percent": 100, "finished_at": time.Now()}
	if errText != "" {
		upd["state"], upd["error"], upd["percent"] = OpFailed, trunc(errText, 1000), 0
	}
	return opRows(db.WithContext(ctx), opID, "", "").Updates(upd).Error
}

// QueuedOperations lists operations no engine has taken yet (oldest first), for a panel
// to start at boot.
func QueuedOperations(ctx context.Context, db *gorm.DB, limit int) ([]Operation, error) {
	var ops []Operation
	err := db.WithContext(ctx).Where("state = ? AND workflow_id = ''", OpQueued).Order("id").Limit(limit).Find(&ops).Error
	return ops, err
}

// AttachUpdate records the entity workflow run that carries an operation as one of its
// updates (a device's restore runs in device-<id>). Unlike AttachWorkflow it never takes
// over another operation's end: one run carries many operations, each ending on its own.
// The update may have reported first (naming the workflow, not the run); the run is then
// added. Safe to repeat.
func AttachUpdate(ctx context.Context, db *gorm.DB, opID uint, workflowID, runID string) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&Operation{}).Where("id = ? AND workflow_id = ''", opID).
			Updates(map[string]any{"workflow_id": workflowID, "run_id": runID, "message": ""})
		if res.Error != nil || res.RowsAffected > 0 {
			return res.Error
		}
		return tx.Model(&Operation{}).Where("id = ? AND workflow_id = ? AND run_id = ''", opID, workflowID).
			Update("run_id", runID).Error
	})
}

// AttachWorkflow records which workflow run carries an operation and, with first, the
// step the run began with (marking the operation running): workflows that leave their
// first step to the engine (workflows.Start.First). An operation that joined a run which
// has already reported its end (a repeat arriving in the last moment of the run) takes
// that end over, since the run will not report again.
func AttachWorkflow(ctx context.Context, db *gorm.DB, opID uint, workflowID, runID string, first *WorkflowProgress) error {
	upd := map[string]any{"workflow_id": workflowID, "run_id": runID, "message": ""}
	if first != nil {
		// Only a queued operation starts running: one ended meanwhile (cancelled) keeps
		// its end.
		for col, v := range stepColumns(*first) {
			upd[col] = gorm.Expr("CASE WHEN state = ? THEN ? ELSE "+col+" END", OpQueued, v)
		}
	}
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&Operation{}).Where("id = ? AND workflow_id = ''", opID).Updates(upd).Error; err != nil {
			return err
		}
		var done Operation
		err := tx.Where("workflow_id = ? AND run_id = ? AND id <> ? AND state IN ?", workflowID, runID, opID,
			finishedStates).Order("id").Limit(1).Find(&done).Error
		if err != nil || done.ID == 0 {
			return err
		}
		return opRows(tx, opID, "", "").Updates(map[string]any{"state": done.State, "step": done.Step, "percent": done.Percent,
			"message": done.Message, "error": done.Error, "finished_at": done.FinishedAt}).Error
	})
}

// newOperation records an Operation of a kind for an object inside the inserting
// transaction, with its workflow's input: in, completed from the rows (completeInput). An
// operation with no server to run on yet is recorded all the same and waits (StartInput
// completes it once the network has a master).
func newOperation(tx *gorm.DB, networkID uint, kind string, objectID uint, in OperationInput) (*Operation, error) {
	object, ok := opObjects[kind]
	if !ok {
		return nil, fmt.Errorf("record operation: undeclared kind %q", kind)
	}
	nid := networkID
	op := &Operation{NetworkID: &nid, Kind: kind, ObjectType: object, ObjectID: objectID, State: OpQueued, Step: "queued"}
	if err := completeInput(tx, op, &in); err != nil && !errors.Is(err, errNoServer) {
		return nil, fmt.Errorf("record operation: %w", err)
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	op.Input = string(b)
	if err := tx.Create(op).Error; err != nil {
		return nil, fmt.Errorf("record operation: %w", err)
	}
	return op, nil
}

// launch hands committed operations to the engine. Without an engine, or if the engine
// cannot take it now, the operation stays queued with a message: nothing is lost, and a
// repeated start is safe because workflow ids come from the object.
func (s *Store) launch(ctx context.Context, op *Operation) {
	if op == nil {
		return
	}
	msg := ""
	if s.Engine == nil {
		msg = "queued: this panel has no workflow engine yet; the operation will run once one is configured"
	} else if err := s.Engine.Start(ctx, op); err != nil {
		msg = "queued: the workflow engine did not take the operation yet: " + err.Error()
	}
	if msg != "" {
		op.Message = msg
		s.DB.WithContext(ctx).Model(&Operation{}).Where("id = ? AND state = ?", op.ID, OpQueued).Update("message", msg)
	}
	if fresh, err := s.Operation(ctx, nil, op.ID); err == nil {
		*op = *fresh
	}
}

// Operation loads an operation; a nil actor (internal callers) sees all.
func (s *Store) Operation(ctx context.Context, a *Actor, id uint) (*Operation, error) {
	scope := func(db *gorm.DB) *gorm.DB { return db }
	if a != nil && !a.SuperAdmin() {
		scope = func(db *gorm.DB) *gorm.DB { return db.Where("network_id IN (?)", a.VisibleNetworkIDs(db)) }
	}
	return getScoped[Operation](ctx, s.DB, scope, id, "operation")
}

// ListOperations lists the operations the actor may see, newest first.
func (s *Store) ListOperations(ctx context.Context, a *Actor, p Page) ([]Operation, int64, error) {
	return listScoped[Operation](ctx, s.DB, func(db *gorm.DB) *gorm.DB { return a.scopeNetworkOwned(db).Order("id DESC") }, p)
}

// ObjectOperations lists the latest operations (newest first, at most limit) of one object
// the actor may see: what the object's dashboard page follows live.
func (s *Store) ObjectOperations(ctx context.Context, a *Actor, objectType string, objectID uint, limit int) ([]Operation, error) {
	if limit < 1 || limit > 100 {
		limit = 10
	}
	ops := []Operation{}
	q := a.scopeNetworkOwned(s.DB.WithContext(ctx).Model(&Operation{}))
	err := q.Where("object_type = ? AND object_id = ?", objectType, objectID).Order("id DESC").Limit(limit).Find(&ops).Error
	if err != nil {
		return nil, fmt.Errorf("list operations: %w", err)
	}
	return ops, nil
}

// Finished reports whether an operation has ended.
func (op *Operation) Finished() bool { return slices.Contains(finishedStates, op.State) }
