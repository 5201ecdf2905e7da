package panel

import (
	"context"
	"errors"

	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/temporal"
)

// ReplicationPlanInput names what a replication brings to a slave.
type ReplicationPlanInput struct {
	NetworkID uint
	SlaveID   uint
	Kind      string // "volume" or "group"
	ObjectID  uint
	Snapshot  string // "" the newest
}

// ReplicationPlanResult is the master, the pools and the dataset chain (models.ReplicationPlan).
type ReplicationPlanResult = models.ReplicationPlan

// ReplicationPlan reads what a replication needs (models.PlanReplication). Read-only.
func (a *Activities) ReplicationPlan(ctx context.Context, in ReplicationPlanInput) (*ReplicationPlanResult, error) {
	p, err := models.PlanReplication(ctx, a.DB, in.NetworkID, in.SlaveID, in.Kind, in.ObjectID, in.Snapshot)
	var ve *models.ValidationError
	if errors.Is(err, models.ErrNotFound) || errors.As(err, &ve) {
		// A deleted object or a server that is no slave: no retry changes that.
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), "NotFound", err)
	}
	return p, err
}

// RecordVersionCopyInput is a slave's verified group version (models.VersionCopyInput).
type RecordVersionCopyInput = models.VersionCopyInput

// RecordVersionCopyResult is empty.
type RecordVersionCopyResult struct{}

// RecordVersionCopy records that a server holds a version, only when its guid is the
// master's (a mismatch is not retried). Repeating it changes nothing.
func (a *Activities) RecordVersionCopy(ctx context.Context, in RecordVersionCopyInput) (*RecordVersionCopyResult, error) {
	err := models.RecordVersionCopy(ctx, a.DB, in)
	if errors.Is(err, models.ErrGUIDMismatch) {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), "GUIDMismatch", err)
	}
	return &RecordVersionCopyResult{}, err
}
