package panel

import (
	"context"
	"errors"
	"fmt"

	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/temporal"
)

// DevicePlanInput names a device and the servers its provisioning touches.
type DevicePlanInput struct {
	DeviceID    uint
	ServerID    uint // where the new clone goes
	OldServerID uint // where the old clone is (0: none)
	// MarkVDiskMoving: a vdisk that moves with the clone is marked moving
	// (models.MarkVDiskMoving) before the plan is answered, so the API refuses changes of
	// it until the move ends; one with a change of its own under way stops the plan.
	MarkVDiskMoving bool
}

// DevicePlanResult is what the device workflow needs from the database: the device's
// network and UUID (its targets' ACL) and the servers' pools.
type DevicePlanResult struct {
	NetworkID uint
	UUID      string
	Pool      string
	OldPool   string
	// Locked: the device is locked (its disk is not replaced).
	Locked bool
	// VDisk is the device's vdisk when it lives on another server than ServerID (it
	// moves first); nil: none, or already there.
	VDisk *models.VDiskPlace
}

// TypeVDiskBusy: the device's vdisk has a change of its own under way (a resize, an
// attachment): its move, and so the provisioning, waits for a later boot.
const TypeVDiskBusy = "VDiskBusy"

// DevicePlan reads the device and the servers' pools (models.PlanDevice), and marks the
// vdisk that moves with the clone when asked (MarkVDiskMoving). Safe to repeat.
func (a *Activities) DevicePlan(ctx context.Context, in DevicePlanInput) (*DevicePlanResult, error) {
	p, err := models.PlanDevice(ctx, a.DB, in.DeviceID, in.ServerID, in.OldServerID)
	if errors.Is(err, models.ErrNotFound) {
		// A deleted device: no retry brings it back, and its workflow must not wait for ever.
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), "NotFound", err)
	}
	if err != nil {
		return nil, err
	}
	if in.MarkVDiskMoving && p.VDisk != nil {
		err := models.MarkVDiskMoving(ctx, a.DB, p.VDisk.ID, in.DeviceID, in.ServerID)
		var conflict *models.ConflictError
		if errors.As(err, &conflict) {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("device %d: %s", in.DeviceID, conflict.Msg), TypeVDiskBusy, err)
		}
		if err != nil {
			return nil, fmt.Errorf("device %d: mark vdisk %d moving: %w", in.DeviceID, p.VDisk.ID, err)
		}
	}
	return &DevicePlanResult{NetworkID: p.NetworkID, UUID: p.UUID, Pool: p.Pool, OldPool: p.OldPool, Locked: p.Locked, VDisk: p.VDisk}, nil
}

// RecordCloneInput is a device's new clone: version Version of GroupID on ServerID.
type RecordCloneInput struct {
	NetworkID uint
	DeviceID  uint
	GroupID   uint
	Version   int
	ServerID  uint
	// VDiskID is the device's vdisk that moved to ServerID with the clone (0: none): its
	// server is recorded in the same transaction.
	VDiskID uint
}

// RecordCloneResult is empty.
type RecordCloneResult struct{}

// RecordClone stores the device's clone version and server (and its vdisk's, when it
// moved with it). Repeating it changes nothing.
func (a *Activities) RecordClone(ctx context.Context, in RecordCloneInput) (*RecordCloneResult, error) {
	v, err := models.VersionByNumber(ctx, a.DB, in.GroupID, in.Version)
	if err != nil {
		return nil, err
	}
	return &RecordCloneResult{}, models.RecordMovedClone(ctx, a.DB, in.NetworkID, in.DeviceID, v.ID, in.ServerID, in.VDiskID)
}

// EndVDiskMoveInput names a vdisk whose move failed.
type EndVDiskMoveInput struct {
	VDiskID uint
}

// EndVDiskMoveResult is empty.
type EndVDiskMoveResult struct{}

// EndVDiskMove clears the move of a vdisk whose device's provisioning failed
// (models.EndVDiskMove); a move that succeeded ends with RecordClone. Safe to repeat.
func (a *Activities) EndVDiskMove(ctx context.Context, in EndVDiskMoveInput) (*EndVDiskMoveResult, error) {
	return &EndVDiskMoveResult{}, models.EndVDiskMove(ctx, a.DB, in.VDiskID)
}

// SetDeviceLockInput locks or unlocks a device.
type SetDeviceLockInput struct {
	DeviceID uint
	Locked   bool
}

// SetDeviceLockResult is empty.
type SetDeviceLockResult struct{}

// SetDeviceLock writes a device's lock; the device workflow calls it so a lock change
// takes its place among the device's provisionings. Repeating it changes nothing.
func (a *Activities) SetDeviceLock(ctx context.Context, in SetDeviceLockInput) (*SetDeviceLockResult, error) {
	err := models.SetDeviceLock(ctx, a.DB, in.DeviceID, in.Locked)
	if errors.Is(err, models.ErrNotFound) {
		// A deleted device: no retry brings it back.
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("device %d: %v", in.DeviceID, err), "NotFound", err)
	}
	return &SetDeviceLockResult{}, err
}
