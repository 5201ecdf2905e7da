package boot

import (
	"context"
	"errors"

	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// Panel is the panel as the agent's boot path sees it.
type Panel interface {
	// Boot identifies the device (registering an unknown MAC into the network's default
	// group) and returns its group, versions and menu.
	Boot(ctx context.Context, q wire.Query) (*wire.Info, error)
	// Booted records what a device was told to boot (last boot, compliance).
	Booted(ctx context.Context, r []wire.Report) error
	// Exports lists the targets this server should export.
	Exports(ctx context.Context) ([]wire.Export, error)
}

// The agent's panel client is the boot path's panel.
var _ Panel = (*wire.Client)(nil)

// Provisioner carries out provisioning: in the agent, the device entity workflow.
type Provisioner interface {
	// Provision returns once the clone exists and is exported, or when ctx ends (the work
	// goes on; asking again joins it). Exactly once per (device, version).
	Provision(ctx context.Context, r wire.ProvisionRequest) error
}

// Disks is this server's local storage as the boot path sees it.
type Disks interface {
	// Versions lists the versions of a group this server holds: number → guid.
	Versions(ctx context.Context, groupID uint) (map[int]string, error)
	// DevicePath, GroupPath and VolumePath name the block device (or file) of a disk and
	// say whether it exists.
	DevicePath(ctx context.Context, deviceID uint) (string, bool, error)
	GroupPath(ctx context.Context, groupID uint) (string, bool, error)
	VolumePath(ctx context.Context, volumeID uint) (string, bool, error)
	// VDiskPath names the block device of a vdisk (<pool>/vdisks/<id>).
	VDiskPath(ctx context.Context, vdiskID uint) (string, bool, error)
}

// Target is the agent's iSCSI target (an *iscsi.Server).
type Target interface {
	// AddTarget adds tc, or does nothing when the same target is there. tc's slices and
	// CHAP are the caller's (the boot service passes the same ones at every boot): it
	// copies what it keeps and changes none of them.
	AddTarget(tc iscsi.TargetConfig) error
	RemoveTarget(iqn string) error
	// AddLUN and RemoveLUN change a running target's LUNs (a device's vdisk is LUN 1).
	AddLUN(iqn string, number uint64, lc iscsi.LUNConfig) error
	RemoveLUN(iqn string, number uint64) error
	// Sessions counts the sessions logged in to a target now.
	Sessions(iqn string) int
	// LUNPath is the path behind a LUN of an exported target, if it is exported with it.
	LUNPath(iqn string, number uint64) (string, bool)
}

// ErrLocked is a provisioning the device workflow refused: the device was locked after
// the boot decision was made, so it keeps its disk. Asking again decides anew.
var ErrLocked = errors.New("the device is locked: it keeps its disk")

// TargetConfig is the one definition of a disk's target: the agent's hot path and the
// export activities build it here, so adding it again is always a no-op.
func TargetConfig(iqn, path, uuid string, readOnly bool) iscsi.TargetConfig {
	// Without a UUID the ACL names no real initiator: an empty list would admit everyone.
	return iscsi.TargetConfig{
		IQN:               iqn,
		LUNs:              []iscsi.LUNConfig{{Path: path, ReadOnly: readOnly}},
		AllowedInitiators: []string{InitiatorName(wire.NormalizeUUID(uuid))},
	}
}
