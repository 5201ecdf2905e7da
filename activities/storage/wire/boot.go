package wire

import (
	"fmt"
	"strconv"
	"time"
)

// The boot path (DESIGN.md §5): an agent asks the panel about a netbooting device
// (Query -> Info), reports what it told the device (Report), rebuilds its targets from
// the panel's list (Export), and records a clone it made without a workflow
// (ProvisionRequest).

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
	// Revision is the boot revision at (or after) the device's last change: every
	// recorded clone raises it, a boot asked again before anything changed sees the same.
	Revision uint64 `json:"revision,omitempty"`
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
	// Canary: this device is a canary of a rollout: Assigned is the version rolled out
	// to it alone, which it takes even under lazy locks (never when locked).
	Canary bool `json:"canary,omitempty"`
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

// MenuEntry is one entry of an iPXE menu. Its JSON keys are its Go names, as shipped.
type MenuEntry struct {
	Type    string // MenuGroup, MenuLocal or MenuChain
	Label   string
	GroupID uint   // type group
	URL     string // type chain
}

// Menu entry types, as the panel's menus spell them.
const (
	MenuGroup = "group"
	MenuLocal = "local"
	MenuChain = "chain"
)

// ServerInfo is a storage server of the network.
type ServerInfo struct {
	ID   uint   `json:"id"`
	Name string `json:"name"`
	IP   string `json:"ip"`
	// Tunnel is where the server's agent dials its network's selected tunnel (host:port),
	// "" while the network has no tunnel that has started (only in /agent/server.json).
	Tunnel string `json:"tunnel,omitempty"`
	// MaxProvisions and MaxLogins are the server's admission bounds as set in the panel
	// (0: the agent's default; only in /agent/server.json).
	MaxProvisions int `json:"boot_max_provisions,omitempty"`
	MaxLogins     int `json:"boot_max_logins,omitempty"`
}

// The admission bounds of a server that sets none.
const (
	DefaultMaxProvisions = 32
	DefaultMaxLogins     = 256
)

// Action is what a booting device is told to do.
type Action string

const (
	// BootClone sanboots the device's existing clone as it is.
	BootClone Action = "boot-clone"
	// Provision makes a new clone of the decided version on this server (the old clone,
	// if any, goes to the erator first) and then boots it.
	Provision Action = "provision"
	// Redirect chains to another server's boot endpoint.
	Redirect Action = "redirect"
	// Wait is the reboot loop: nothing can boot the device now; the script says why.
	Wait Action = "wait"
	// Maintenance boots the group head read-write (the device is the group's maintenance device).
	Maintenance Action = "maintenance"
)

// Report is what the agent tells the panel after answering a device: what it boots; and,
// for a boot it watched, later again with how the boot ended (Result).
type Report struct {
	ServerID     uint   `json:"server_id"`
	DeviceID     uint   `json:"device_id"`
	GroupID      uint   `json:"group_id"`
	Version      int    `json:"version"`
	Action       Action `json:"action"`
	NonCompliant bool   `json:"non_compliant"`
	Reason       string `json:"reason"`
	// BootID names a sanboot answer the agent watches; its result report carries the same
	// id, so the panel updates that boot's history row. "" from agents that do not watch.
	BootID string `json:"boot_id,omitempty"`
	// At is when the agent served the script (its clock).
	At time.Time `json:"at,omitzero"`
	// Result is how the watched boot ended (ResultUp, ResultFailed, ResultUnknown); "" in
	// the report sent when the script is served. UpMS is the time from the script to up,
	// Why the observation that decided it.
	Result string `json:"result,omitempty"`
	UpMS   int64  `json:"up_ms,omitempty"`
	Why    string `json:"why,omitempty"`
}

// Results of a watched boot.
const (
	ResultUp      = "up"      // checked in, or its session stayed up past the bound with reads
	ResultFailed  = "failed"  // asked for a boot script again, or its session dropped, before the bound
	ResultUnknown = "unknown" // nothing decided it within the watch (no login, an idle session, the agent stopped)
)

// Booted reports whether the device was given a disk to boot (its clone, new or old).
func (r Report) Booted() bool { return r.Action == BootClone || r.Action == Provision }

// Export is one target the panel wants this agent to export (rebuilt at agent start);
// its IQN is named from its kind and ids.
type Export struct {
	Kind      string `json:"kind"` // device, group, volume
	ID        uint   `json:"id"`   // the device, group or volume id
	NetworkID uint   `json:"network_id"`
	UUID      string `json:"uuid"` // the initiator's SMBIOS UUID
	// VDiskID is a device's vdisk, served as LUN 1 of its target (0: none).
	VDiskID uint `json:"vdisk_id,omitempty"`
}

// IQNPrefix is the naming authority of every target the agents export.
const IQNPrefix = "iqn.2026-11.dev.clusterducks"

// DeviceIQN names the target of a device's own disk. Names come from ids only.
func DeviceIQN(networkID, deviceID uint) string {
	return IQNPrefix + ":n" + strconv.FormatUint(uint64(networkID), 10) + ".device" + strconv.FormatUint(uint64(deviceID), 10)
}

// GroupHeadIQN names the target of a group head exported read-write to its maintenance device.
func GroupHeadIQN(networkID, groupID uint) string {
	return fmt.Sprintf("%s:n%d.group%d", IQNPrefix, networkID, groupID)
}

// VolumeIQN names the target of a volume exported to a maintenance device (first install).
func VolumeIQN(networkID, volumeID uint) string {
	return fmt.Sprintf("%s:n%d.volume%d", IQNPrefix, networkID, volumeID)
}

// IQN names the export's target; "" for a kind other than device, group or volume.
func (e Export) IQN() string {
	switch e.Kind {
	case "device":
		return DeviceIQN(e.NetworkID, e.ID)
	case "group":
		return GroupHeadIQN(e.NetworkID, e.ID)
	case "volume":
		return VolumeIQN(e.NetworkID, e.ID)
	}
	return ""
}

// ProvisionRequest asks for a device's clone of a group version on a server, exported to
// the device: the device workflow's unit of work (its UpdateProvision argument), and the
// clone an agent records with the panel when no workflow runs (PathClone).
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
	// disk of a device locked since; a locked device whose disk is gone still gets a new one.
	Locked bool `json:"locked"`
	// Revision is the device's boot revision the decision saw (DeviceInfo.Revision): it
	// makes the update id of each provisioning its own (ProvisionUpdateID).
	Revision uint64 `json:"revision,omitempty"`
}
