package models

import (
	"context"
	"fmt"
	"time"
)

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

// Progress is one report of an operation's progress.
type Progress struct {
	State   string // OpRunning, OpSucceeded, OpFailed; empty keeps the state
	Step    string
	Percent int
	Message string
	Error   string
}

// ReportProgress records an operation's step and percent, as the workflow engine does while it
// runs; a finished state (succeeded, failed) also stamps FinishedAt. Repeating a report is
// harmless, and a finished operation is never changed again.
func ReportProgress(ctx context.Context, s *Store, id uint, p Progress) error {
	if p.Percent < 0 || p.Percent > 100 {
		return Invalid("percent", "must be between 0 and 100")
	}
	upd := map[string]any{"step": p.Step, "percent": p.Percent, "message": p.Message, "error": p.Error, "updated_at": time.Now()}
	switch p.State {
	case "":
	case OpRunning:
		upd["state"] = p.State
	case OpSucceeded, OpFailed:
		upd["state"] = p.State
		upd["finished_at"] = time.Now()
	default:
		return Invalid("state", "must be running, succeeded or failed")
	}
	res := s.DB.WithContext(ctx).Model(&Operation{}).Where("id = ? AND state IN ?", id, []string{OpQueued, OpRunning}).Updates(upd)
	if res.Error != nil {
		return fmt.Errorf("report progress of operation %d: %w", id, res.Error)
	}
	return nil
}

// Finished reports whether an operation has ended.
func (op *Operation) Finished() bool { return op.State == OpSucceeded || op.State == OpFailed }
