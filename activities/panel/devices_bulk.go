package panel

import (
	"context"
	"errors"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// DeviceUpdater sends one device's part of a bulk action to the device's entity workflow
// (as an update, in order with its provisionings) and waits for it: the panel's engine.
// failure is the device's own refusal or failure (final); err is the engine's trouble
// (the activity retries, and the update id makes the repeat join the first).
type DeviceUpdater interface {
	BulkUpdate(ctx context.Context, in BulkDeviceInput) (failure string, err error)
}

// BulkDeviceInput is one device of bulk operation OperationID: Action (lock, unlock,
// restore, delete) on Device, as update UpdateID of its workflow.
type BulkDeviceInput struct {
	OperationID uint
	NetworkID   uint
	Action      string
	Device      models.BulkDevice
	UpdateID    string
}

// BulkDeviceResult is how the device's part ended.
type BulkDeviceResult struct {
	Failed bool
	Error  string
}

// bulkHeartbeat is how often BulkDevice tells Temporal it still waits for the device.
const bulkHeartbeat = 5 * time.Second

// BulkDevice does one device's part of a bulk action and records its outcome on the
// operation (progress n/N). Repeating it joins the same update and records the same outcome.
func (a *Activities) BulkDevice(ctx context.Context, in BulkDeviceInput) (*BulkDeviceResult, error) {
	if a.Devices == nil {
		return nil, temporal.NewNonRetryableApplicationError("this panel worker has no workflow engine to reach devices", "NoEngine", nil)
	}
	hctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		t := time.NewTicker(bulkHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, in.Device.ID)
			}
		}
	}()
	failure, err := a.Devices.BulkUpdate(ctx, in)
	if err != nil {
		if ctx.Err() != nil {
			return nil, errors.Join(ctx.Err(), err)
		}
		return nil, err
	}
	out := models.BulkOutcome{ID: in.Device.ID, State: models.BulkDone}
	if failure != "" {
		out.State, out.Error = models.BulkFailed, failure
	}
	if err := models.RecordBulkOutcome(ctx, a.DB, in.OperationID, out); err != nil {
		return nil, err
	}
	return &BulkDeviceResult{Failed: failure != "", Error: failure}, nil
}
