package models

import (
	"context"
	"fmt"
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

// Finished reports whether an operation has ended.
func (op *Operation) Finished() bool { return op.State == OpSucceeded || op.State == OpFailed }
