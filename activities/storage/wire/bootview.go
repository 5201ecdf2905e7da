package wire

import (
	"context"
	"net/url"
	"strconv"
	"time"
)

// The boot view (DESIGN.md §5): the agent keeps its network's boot state in memory and
// follows it with a watch, GET PathBootView?since=<revision>&net=<digest>&wait=<seconds>.
// The panel answers at once when the agent is behind (devices changed after its revision,
// or a network part whose digest differs from its own), or after wait seconds with no
// change: either answer confirms the view (its lease starts again).

// PathBootView is the watch of a network's boot state.
const PathBootView = "/agent/bootview.json"

// BootDelta is one answer of the watch.
type BootDelta struct {
	// Revision is the network's device revision this answer brings the agent to.
	Revision uint64 `json:"revision"`
	// Full: Devices is every device of the network (the agent's revision was unknown or
	// too old for the panel's log); the agent drops the ones it had.
	Full bool `json:"full"`
	// Digest names the network part; Network is set when it differs from the agent's.
	Digest  string       `json:"digest"`
	Network *BootNetwork `json:"network,omitempty"`
	// Devices changed (or, Full, all of them); Removed are ids of deleted devices.
	Devices []BootDevice `json:"devices,omitempty"`
	Removed []uint       `json:"removed,omitempty"`
	// LeaseSeconds is how long strict groups boot from a view the panel has not
	// confirmed since (the panel's setting).
	LeaseSeconds int `json:"lease_seconds"`
}

// BootNetwork is the part of the boot state that every device of a network shares.
type BootNetwork struct {
	NetworkID      uint `json:"network_id"`
	MasterServerID uint `json:"master_server_id"`
	DefaultMenuID  uint `json:"default_menu_id"`
	// Servers are the network's storage servers, by id.
	Servers []ServerInfo `json:"servers"`
	// Groups carry their ready versions (with holders) and the assigned one, by id.
	Groups []GroupInfo `json:"groups"`
	// Versions are every version of the network's groups (any state), for devices' clones.
	Versions []VersionRef `json:"versions"`
	Menus    []MenuInfo   `json:"menus"`
	// Maintained are the volumes in maintenance and the device that boots each.
	Maintained []Maintained `json:"maintained"`
	// Canaries are the devices a rollout serves its version to instead of their group's
	// assignment, by device id (absent when no rollout is in its canary wave).
	Canaries []Canary `json:"canaries,omitempty"`
}

// Canary is a rollout's canary device and the version it is served.
type Canary struct {
	DeviceID uint `json:"device_id"`
	GroupID  uint `json:"group_id"`
	Version  int  `json:"version"`
}

// VersionRef names a group version by id.
type VersionRef struct {
	ID      uint `json:"id"`
	GroupID uint `json:"group_id"`
	Number  int  `json:"number"`
}

// Maintained is a volume in maintenance and its maintenance device.
type Maintained struct {
	VolumeID uint `json:"volume_id"`
	DeviceID uint `json:"device_id"`
}

// BootDevice is a device row as the boot path reads it; 0 for an unset reference.
type BootDevice struct {
	ID             uint   `json:"id"`
	NetworkID      uint   `json:"network_id"`
	MAC            string `json:"mac"`
	UUID           string `json:"uuid"`
	Locked         bool   `json:"locked"`
	GroupID        uint   `json:"group_id"`
	MenuID         uint   `json:"menu_id"`
	CloneVersionID uint   `json:"clone_version_id"`
	ServerID       uint   `json:"server_id"`
	// Revision is the boot revision of the answer that brought the device (the agent's
	// view stamps it when the panel leaves it zero): DeviceInfo.Revision.
	Revision uint64 `json:"revision,omitempty"`
}

// BootView watches the network's boot state from revision since and network digest net
// (0 and "": a full snapshot), waiting up to wait for a change. The caller's ctx must
// outlast wait.
func (c *Client) BootView(ctx context.Context, since uint64, net string, wait time.Duration) (*BootDelta, error) {
	q := url.Values{}
	q.Set("since", strconv.FormatUint(since, 10))
	q.Set("net", net)
	q.Set("wait", strconv.Itoa(int(wait/time.Second)))
	var out BootDelta
	if err := c.do(ctx, "GET", PathBootView+"?"+q.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
