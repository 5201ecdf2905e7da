package boot

import (
	"context"
	"errors"

	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
)

// Query is what the agent asks the panel about a booting device.
type Query struct {
	ServerID uint   `json:"server_id"`
	MAC      string `json:"mac"`
	UUID     string `json:"uuid"`
	// GroupID is a menu's choice; 0 boots the device's own group.
	GroupID uint `json:"group_id,omitempty"`
}

// Info is the panel's answer: the device (registered on first sight when the network has
// a default group), its group and what the agent needs to carry out the decision.
type Info struct {
	// Registered is false for an unknown MAC the panel did not register; Message says why.
	Registered bool   `json:"registered"`
	Message    string `json:"message,omitempty"`
	// NewlyRegistered: this request registered the device.
	NewlyRegistered bool       `json:"newly_registered,omitempty"`
	Device          DeviceInfo `json:"device"`
	// Group is the group the device boots; nil when it has none (then Menu, or nothing).
	Group *GroupInfo `json:"group,omitempty"`
	// Menu, when set, is shown instead of booting (the device's menu, or the network's
	// default menu for a device without a group).
	Menu *MenuInfo `json:"menu,omitempty"`
	// Volume, when set, is the volume this device maintains: it boots the volume
	// read-write from the master, before any menu or group.
	Volume *VolumeInfo `json:"volume,omitempty"`
	// Servers are the network's storage servers, for redirects.
	Servers []ServerInfo `json:"servers"`
	// MasterServerID holds the group heads.
	MasterServerID uint `json:"master_server_id"`
}

// DeviceInfo is a device as the boot path sees it.
type DeviceInfo struct {
	ID        uint   `json:"id"`
	NetworkID uint   `json:"network_id"`
	MAC       string `json:"mac"`
	UUID      string `json:"uuid"`
	Locked    bool   `json:"locked"`
	// The device's clone: the group and version it was made from and the server that
	// holds it; zero when the device has none.
	CloneGroupID   uint `json:"clone_group_id"`
	CloneVersion   int  `json:"clone_version"`
	CloneVersionID uint `json:"clone_version_id"`
	CloneServerID  uint `json:"clone_server_id"`
}

// GroupInfo is a group's boot settings and versions.
type GroupInfo struct {
	ID          uint   `json:"id"`
	Name        string `json:"name"`
	Strict      bool   `json:"strict_versioning"`
	Lazy        bool   `json:"lazy_locks"`
	Assigned    int    `json:"assigned"` // version number; 0 none
	Maintenance bool   `json:"maintenance"`
	// MaintenanceDevice is the device that boots the head read-write while in maintenance.
	MaintenanceDevice uint          `json:"maintenance_device_id"`
	Versions          []VersionInfo `json:"versions"`
}

// VolumeInfo is a volume in maintenance, as its maintenance device boots it.
type VolumeInfo struct {
	ID uint `json:"id"`
}

// VersionInfo is a ready group version, its guid and the servers known to hold it.
type VersionInfo struct {
	ID      uint   `json:"id"`
	Number  int    `json:"number"`
	GUID    string `json:"guid"`
	Servers []uint `json:"servers"`
}

// MenuInfo is an iPXE menu.
type MenuInfo struct {
	ID      uint        `json:"id"`
	Name    string      `json:"name"`
	Entries []MenuEntry `json:"entries"`
}

// ServerInfo is a storage server of the network.
type ServerInfo struct {
	ID   uint   `json:"id"`
	Name string `json:"name"`
	IP   string `json:"ip"`
}

// Report is what the agent tells the panel after answering a device: what it boots.
type Report struct {
	ServerID     uint   `json:"server_id"`
	DeviceID     uint   `json:"device_id"`
	GroupID      uint   `json:"group_id"`
	Version      int    `json:"version"`
	Action       Action `json:"action"`
	NonCompliant bool   `json:"non_compliant"`
	Reason       string `json:"reason"`
}

// Export is one target the panel wants this agent to export (rebuilt at agent start).
type Export struct {
	Kind      string `json:"kind"` // device, group, volume
	ID        uint   `json:"id"`   // the device, group or volume id
	NetworkID uint   `json:"network_id"`
	UUID      string `json:"uuid"` // the initiator's SMBIOS UUID
}

// Panel is the panel as the agent's boot path sees it.
type Panel interface {
	// Boot identifies the device (registering an unknown MAC into the network's default
	// group) and returns its group, versions and menu.
	Boot(ctx context.Context, q Query) (*Info, error)
	// Booted records what a device was told to boot (last boot, compliance).
	Booted(ctx context.Context, r []Report) error
	// Exports lists the targets this server should export.
	Exports(ctx context.Context, serverID uint) ([]Export, error)
}

// ProvisionRequest asks for a device's clone of a group version on a server, exported to
// the device: the device workflow's unit of work.
type ProvisionRequest struct {
	NetworkID uint `json:"network_id"`
	DeviceID  uint `json:"device_id"`
	GroupID   uint `json:"group_id"`
	ServerID  uint `json:"server_id"`
	Version   int  `json:"version"`
	VersionID uint `json:"version_id"`
	// Reprovision: the device's old clone (on OldServerID) goes to the erator first.
	Reprovision bool   `json:"reprovision"`
	OldServerID uint   `json:"old_server_id"`
	UUID        string `json:"uuid"`
	// Locked is the lock the decision saw. The device workflow refuses to replace the
	// disk of a device locked since (ErrLocked); a locked device whose disk is gone still
	// gets a new one.
	Locked bool `json:"locked"`
}

// Provisioner carries out provisioning: in the agent, the device entity workflow.
type Provisioner interface {
	// Provision returns once the clone exists and is exported, or when ctx ends (the work
	// goes on; asking again joins it). Exactly once per (device, version).
	Provision(ctx context.Context, r ProvisionRequest) error
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
}

// Target is the agent's iSCSI target (an *iscsi.Server).
type Target interface {
	AddTarget(tc iscsi.TargetConfig) error
	RemoveTarget(iqn string) error
}

// ErrUnreachable marks a panel or engine that cannot be reached (network, timeout, 5xx).
var ErrUnreachable = errors.New("unreachable")

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
		AllowedInitiators: []string{InitiatorName(NormalizeUUID(uuid))},
	}
}
