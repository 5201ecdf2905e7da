package models

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// WorkflowView is what the workflow engine itself knows of an operation's run: its
// status and the activity it waits on, with who polls that activity's server queue. The
// engine fills it (Engine.Inspect); the store turns it into words (OperationWait).
type WorkflowView struct {
	// Status is the run's status: running, completed, failed, cancelled, terminated,
	// timed out, continued as new ("" when the engine does not know the run).
	Status string
	Reason string // why it was terminated, when it says
	// Pending is the oldest pending activity that no worker has picked up yet.
	Pending          string // its activity type ("" when none waits)
	PendingSince     time.Time
	PendingAttempt   int32
	PendingLastError string
	// Pollers is how many workers polled the server's queue recently; LastPoll the latest.
	Pollers  int
	LastPoll *time.Time
}

// OperationWait says, for people, what a running operation waits for.
type OperationWait struct {
	Text     string     `json:"text"`
	ServerID uint       `json:"server_id,omitempty"`
	Server   string     `json:"server,omitempty"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
	Since    time.Time  `json:"since"`
	Age      string     `json:"age"`
}

// agentWaitAfter is how long an activity may sit unpicked before the panel says the
// operation waits for its agent: a polling worker takes an activity within milliseconds.
const agentWaitAfter = 5 * time.Second

// OperationStatus loads an operation the actor may see with what it waits for, asking
// the engine for its run. A run that ended without recording its end (cancelled or
// terminated in Temporal's UI, timed out) is recorded as ended here, so the panel shows
// what Temporal shows.
func (s *Store) OperationStatus(ctx context.Context, a *Actor, id uint) (*Operation, *OperationWait, error) {
	op, err := s.Operation(ctx, a, id)
	if err != nil || op.Finished() || s.Engine == nil || op.WorkflowID == "" {
		return op, nil, err
	}
	view, err := s.Engine.Inspect(ctx, op)
	if err != nil || view == nil {
		// The engine being unreachable must not hide the operation itself.
		return op, nil, nil //nolint:nilerr
	}
	if err := s.settleEnded(ctx, op, view); err != nil {
		return nil, nil, err
	}
	if op.Finished() {
		return op, nil, nil
	}
	return op, s.waitFor(ctx, op, view), nil
}

// settleEnded records the end of a run that ended without saying so to the panel. A
// device's own operations are updates of a long-lived workflow and end with their update.
func (s *Store) settleEnded(ctx context.Context, op *Operation, v *WorkflowView) error {
	if op.inDeviceWorkflow() {
		return nil
	}
	o := Outcome{WorkflowProgress: WorkflowProgress{OperationID: op.ID, Step: op.Step, Percent: op.Percent}, Failed: true}
	switch v.Status {
	case "cancelled":
		o.Cancelled, o.Error = true, "cancelled in Temporal"
	case "terminated":
		o.Cancelled, o.Error = true, "terminated in Temporal (no undo ran: check the server's datasets)"
		if v.Reason != "" {
			o.Error += ": " + v.Reason
		}
	case "timed out", "failed":
		o.Error = "the workflow " + v.Status + " in Temporal"
	default:
		return nil
	}
	if err := FinishOperation(ctx, s.DB, o); err != nil {
		return err
	}
	fresh, err := s.Operation(ctx, nil, op.ID)
	if err != nil {
		return err
	}
	*op = *fresh
	return nil
}

// waitFor turns an activity nobody picked up into "waiting for server X's agent".
func (s *Store) waitFor(ctx context.Context, op *Operation, v *WorkflowView) *OperationWait {
	if v.Pending == "" || time.Since(v.PendingSince) < agentWaitAfter {
		return nil
	}
	var in OperationInput
	_ = json.Unmarshal([]byte(op.Input), &in)
	w := &OperationWait{ServerID: in.ServerID, Since: v.PendingSince, Age: time.Since(v.PendingSince).Round(time.Second).String()}
	var srv Server
	if in.ServerID != 0 && s.DB.WithContext(ctx).Take(&srv, in.ServerID).Error == nil {
		w.Server = srv.Name
		w.LastSeen = srv.StatsAt
	}
	if v.LastPoll != nil && (w.LastSeen == nil || v.LastPoll.After(*w.LastSeen)) {
		w.LastSeen = v.LastPoll
	}
	seen := "never seen"
	if w.LastSeen != nil {
		seen = "last seen " + time.Since(*w.LastSeen).Round(time.Second).String() + " ago, at " + w.LastSeen.UTC().Format(time.RFC3339)
	}
	who := fmt.Sprintf("server %q's agent", w.Server)
	if w.Server == "" {
		who = "a worker"
	}
	w.Text = fmt.Sprintf("waiting for %s (%s) for %s: %s has not been picked up", who, seen, w.Age, v.Pending)
	if v.PendingAttempt > 1 && v.PendingLastError != "" {
		w.Text += fmt.Sprintf("; attempt %d, last error: %s", v.PendingAttempt, v.PendingLastError)
	}
	return w
}

// CancelOperation cancels a running operation's workflow: a create then runs its undo
// (which waits for the server's agent if it is away) and ends the operation cancelled. An
// operation no engine took yet ends cancelled at once. Repeating it changes nothing.
func (s *Store) CancelOperation(ctx context.Context, a *Actor, id uint) (*Operation, error) {
	op, err := s.Operation(ctx, a, id)
	if err != nil {
		return nil, err
	}
	if op.Finished() {
		return nil, Conflict("state", "operation %d has already ended (%s): there is nothing to cancel", op.ID, op.State)
	}
	if op.inDeviceWorkflow() {
		return nil, Conflict("kind", "operation %d (%s) runs inside device %d's workflow and cannot be cancelled alone", op.ID, op.Kind, op.ObjectID)
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		return audit(tx, a, op.NetworkID, "cancel", "operation", op.ID, op.Kind)
	})
	if err != nil {
		return nil, err
	}
	if op.WorkflowID == "" || s.Engine == nil {
		o := Outcome{WorkflowProgress: WorkflowProgress{OperationID: op.ID, Step: op.Step}, Failed: true, Cancelled: true, Error: "cancelled before it started"}
		if err := FinishOperation(ctx, s.DB, o); err != nil {
			return nil, err
		}
		return s.Operation(ctx, nil, op.ID)
	}
	if err := s.Engine.Cancel(ctx, op); err != nil {
		return nil, Unavailable("", err, "the workflow engine did not take the cancel of operation %d", op.ID)
	}
	msg := "cancelling: the workflow undoes what it made (on the server, once its agent answers) and then ends the operation cancelled"
	s.DB.WithContext(ctx).Model(&Operation{}).Where("id = ? AND state IN ?", op.ID, []string{OpQueued, OpRunning}).Update("message", msg)
	return s.Operation(ctx, nil, op.ID)
}

// retryable are the kinds an operator may run again once they failed or were cancelled,
// with the state their object returns to (from failed) before the new run.
var retryable = map[string]string{
	OpVolumeCreate:    StatePending,
	OpGroupCreate:     StatePending,
	OpVolumeDelete:    StateDeleting,
	OpGroupDelete:     StateDeleting,
	OpVolumeResize:    "",
	OpGroupPublish:    "",
	OpEratorPurge:     "",
	OpServerBootstrap: "",
	// A bulk action runs again for the devices it did not do (failed or never reached).
	OpBulkLock:    "",
	OpBulkUnlock:  "",
	OpBulkRestore: "",
	OpBulkDelete:  "",
}

// RetryOperation runs a failed or cancelled operation again as a new operation with the
// same input (the workflow id may then run once more): the object goes back to pending
// (or deleting) and the network's master must be able to take the work, as for a create.
func (s *Store) RetryOperation(ctx context.Context, a *Actor, id uint) (*Operation, error) {
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		old, err := getScoped[Operation](ctx, tx, a.scopeNetworkOwned, id, "operation")
		if err != nil {
			return err
		}
		if old.State != OpFailed && old.State != OpCancelled {
			return Conflict("state", "operation %d is %s: only a failed or cancelled operation can be retried", old.ID, old.State)
		}
		state, ok := retryable[old.Kind]
		if !ok {
			return Conflict("kind", "a %s cannot be retried: start it again from its object's page", old.Kind)
		}
		if old.NetworkID == nil {
			return Conflict("network_id", "operation %d belongs to no network", old.ID)
		}
		n, err := a.lockNetwork(tx, *old.NetworkID, "network_id")
		if err != nil {
			return err
		}
		if old.ObjectType != "server" && !IsBulk(old.Kind) {
			if err := preflight(tx, n); err != nil {
				return err
			}
		}
		if err := resetForRetry(tx, old, state); err != nil {
			return err
		}
		var in OperationInput
		if err := json.Unmarshal([]byte(old.Input), &in); err != nil {
			return fmt.Errorf("operation %d's input: %w", old.ID, err)
		}
		in.Retry++
		if IsBulk(old.Kind) {
			op, err = retryBulk(tx, old, in)
		} else {
			op, err = newOperation(tx, n.ID, old.Kind, old.ObjectID, in)
		}
		if err != nil {
			return err
		}
		return audit(tx, a, &n.ID, "retry", "operation", old.ID, fmt.Sprintf("%s as operation %d", old.Kind, op.ID))
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return op, nil
}

// resetForRetry puts the object of a failed operation back in the state its new run
// starts from; an object that moved on meanwhile (deleted, ready) refuses the retry.
func resetForRetry(tx *gorm.DB, op *Operation, state string) error {
	var model any
	switch op.ObjectType {
	case "volume":
		model = &Volume{}
	case "group":
		model = &Group{}
	}
	if op.Kind == OpGroupPublish {
		var in OperationInput
		_ = json.Unmarshal([]byte(op.Input), &in)
		return tx.Model(&GroupVersion{}).Where("id = ? AND state = ?", in.VersionID, StateFailed).Update("state", StatePending).Error
	}
	if state == "" || model == nil {
		return nil
	}
	res := tx.Model(model).Where("id = ? AND state = ?", op.ObjectID, StateFailed).Update("state", state)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return Conflict("state", "%s %d is no longer failed: there is nothing to retry", op.ObjectType, op.ObjectID)
	}
	return nil
}

// SettleUnmade ends a delete (operation deleteOpID) whose object's create never ran on
// the server, and that create (the run wid/rid), in one transaction: the create ends
// cancelled, the delete succeeds and the object is deleted, with nothing in the erator.
// Repeating it changes nothing.
func SettleUnmade(ctx context.Context, db *gorm.DB, deleteOpID uint, wid, rid, reason string) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := time.Now()
		if err := opRows(tx, 0, wid, rid).Updates(map[string]any{"state": OpCancelled, "error": trunc(reason, 1000),
			"message": "cancelled by the delete before it ran", "finished_at": now}).Error; err != nil {
			return err
		}
		var op Operation
		if err := tx.Take(&op, deleteOpID).Error; err != nil {
			return fmt.Errorf("operation %d: %w", deleteOpID, err)
		}
		o := Outcome{WorkflowProgress: WorkflowProgress{OperationID: op.ID}}
		if err := applyOutcome(tx, &op, &o); err != nil {
			return err
		}
		return opRows(tx, op.ID, "", "").Updates(map[string]any{"state": OpSucceeded, "step": "done", "percent": 100, "error": "",
			"message": trunc(reason+": nothing to move, no agent needed", 1000), "finished_at": now}).Error
	})
}

// retryBulk records the retry of a failed or cancelled bulk operation: the same action for
// the devices it did not do (a restore done twice would swap the disks back).
func retryBulk(tx *gorm.DB, old *Operation, in OperationInput) (*Operation, error) {
	var devs []BulkDevice
	var outcomes []BulkOutcome
	for _, d := range in.Devices {
		for _, o := range old.Result {
			if o.ID == d.ID && o.State != BulkDone {
				devs = append(devs, d)
				outcomes = append(outcomes, BulkOutcome{ID: o.ID, Name: o.Name, State: BulkQueued})
			}
		}
	}
	if len(devs) == 0 {
		return nil, Conflict("state", "operation %d did every device: there is nothing to retry", old.ID)
	}
	in.Devices = devs
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	op := &Operation{NetworkID: old.NetworkID, Kind: old.Kind, ObjectType: old.ObjectType, ObjectID: devs[0].ID, State: OpQueued,
		Step: "queued", Message: fmt.Sprintf("0/%d devices", len(devs)), Input: string(b), Result: outcomes}
	if err := tx.Create(op).Error; err != nil {
		return nil, fmt.Errorf("record operation: %w", err)
	}
	return op, nil
}
