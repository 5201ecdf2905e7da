// Package panel holds the panel worker's activities: the database writes of the storage
// workflows (operation progress and results, server stats). They run on the task queue
// "panel" and are safe to repeat: a finished operation is never changed again.
package panel

import (
	"context"

	"github.com/clusterducks/clusterducks/activities/panel/agentclient"
	"github.com/clusterducks/clusterducks/models"
	"gorm.io/gorm"
)

// Activities are the panel worker's database activities; one value per panel process.
type Activities struct {
	DB *gorm.DB
	// Agents reaches agents through their tunnels (the health check); nil in a panel
	// that checks none.
	Agents *agentclient.Client
	// Store records and launches operations (replication fan-out); nil in tests that
	// need only the database writes.
	Store *models.Store
	// Devices sends a bulk action's changes to the devices' workflows (BulkDevice); nil
	// in tests that need only the database writes.
	Devices DeviceUpdater
}

// ProgressInput is a step of a running operation.
type ProgressInput = models.WorkflowProgress

// ProgressResult is empty: progress has no answer.
type ProgressResult struct{}

// Progress records an operation's step and percent (the dashboard and
// /api/v0.9.2/operations/<id>.json show it). Repeating it is harmless.
func (a *Activities) Progress(ctx context.Context, in ProgressInput) (*ProgressResult, error) {
	return &ProgressResult{}, models.RecordProgress(ctx, a.DB, in)
}

// FinishInput is how an operation ended and what it changed.
type FinishInput = models.Outcome

// FinishResult is empty.
type FinishResult struct{}

// Finish ends an operation (succeeded or failed, with 100 % on success) and applies its
// result to the object in the same transaction. Repeating it changes nothing.
func (a *Activities) Finish(ctx context.Context, in FinishInput) (*FinishResult, error) {
	return &FinishResult{}, models.FinishOperation(ctx, a.DB, in)
}
