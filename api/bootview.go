package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strconv"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// The watch of a network's boot state (wire.PathBootView): agents answer known devices
// from their own view and follow the panel's changes with it.

const (
	// defaultBootLease is how long strict groups boot from an agent's unconfirmed view.
	defaultBootLease = 60 * time.Second
	// bootViewPoll is how often a waiting watch looks for a change: a change reaches
	// the agents within about twice this (the network part is cached as long).
	bootViewPoll = 200 * time.Millisecond
	// maxBootViewWait bounds a watch's wait.
	maxBootViewWait = 60 * time.Second
	// bootChangesKept is how long the change log keeps a change: an agent away longer
	// reloads its whole view.
	bootChangesKept = 24 * time.Hour
)

// viewNet is a network part with its digest, cached for bootViewPoll.
type viewNet struct {
	net    *wire.BootNetwork
	digest string
	at     time.Time
}

// bootNet returns the network part of the view and its digest, loaded at most once per
// bootViewPoll for all the network's watchers.
func (b *BootAgents) bootNet(ctx context.Context, networkID uint) (*viewNet, error) {
	b.vmu.Lock()
	if b.views == nil {
		b.views = map[uint]*viewNet{}
	}
	v := b.views[networkID]
	b.vmu.Unlock()
	if v != nil && time.Since(v.at) < bootViewPoll {
		return v, nil
	}
	nb, err := models.LoadNetworkBoot(ctx, b.Store.DB, networkID)
	if err != nil {
		return nil, err
	}
	n := BootNetwork(nb)
	raw, err := json.Marshal(n)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	v = &viewNet{net: n, digest: hex.EncodeToString(sum[:16]), at: time.Now()}
	b.vmu.Lock()
	b.views[networkID] = v
	prune := time.Since(b.pruned) > time.Hour
	if prune {
		b.pruned = time.Now()
	}
	b.vmu.Unlock()
	if prune {
		// Housekeeping rides on the watch: no watcher, no log growth worth pruning.
		if err := models.PruneBootChanges(ctx, b.Store.DB, bootChangesKept); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// bootView answers the watch: at once when the agent is behind, else when something
// changes or the wait ends.
func (b *BootAgents) bootView(c *fiber.Ctx, keys *Agents) error {
	srv, err := b.server(c, keys)
	if err != nil {
		return err
	}
	since, err := strconv.ParseUint(c.Query("since", "0"), 10, 64)
	if err != nil {
		return models.Invalid("since", "must be a revision number")
	}
	waitS, err := strconv.Atoi(c.Query("wait", "0"))
	if err != nil || waitS < 0 {
		return models.Invalid("wait", "must be a number of seconds")
	}
	wait := min(time.Duration(waitS)*time.Second, maxBootViewWait)
	digest := c.Query("net")
	ctx := c.UserContext()
	deadline := time.Now().Add(wait)
	lease := b.Lease
	if lease <= 0 {
		lease = defaultBootLease
	}
	for {
		rev, floor, err := models.BootRevisionOf(ctx, b.Store.DB, srv.NetworkID)
		if err != nil {
			return err
		}
		vn, err := b.bootNet(ctx, srv.NetworkID)
		if err != nil {
			return err
		}
		if rev != since || vn.digest != digest || !time.Now().Before(deadline) {
			d := &wire.BootDelta{Revision: rev, Digest: vn.digest, LeaseSeconds: int(lease / time.Second)}
			if vn.digest != digest {
				d.Network = vn.net
			}
			ids, all, err := models.BootDevicesChanged(ctx, b.Store.DB, srv.NetworkID, since, rev, floor)
			if err != nil {
				return err
			}
			if all {
				d.Full, ids = true, nil
			} else if ids == nil {
				ids = []uint{}
			}
			devs, err := models.BootDevices(ctx, b.Store.DB, srv.NetworkID, ids)
			if err != nil {
				return err
			}
			revOf, err := models.DeviceBootRevisions(ctx, b.Store.DB, srv.NetworkID, floor, ids)
			if err != nil {
				return err
			}
			found := map[uint]bool{}
			for _, dv := range devs {
				found[dv.ID] = true
				bd := BootDevice(&dv)
				bd.Revision = revOf(dv.ID)
				d.Devices = append(d.Devices, bd)
			}
			for _, id := range ids {
				if !found[id] {
					d.Removed = append(d.Removed, id)
				}
			}
			return c.JSON(d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(bootViewPoll):
		}
	}
}

// BootDevice is a device row in the view's wire format.
func BootDevice(d *models.Device) wire.BootDevice {
	out := wire.BootDevice{ID: d.ID, NetworkID: d.NetworkID, MAC: d.MAC, UUID: d.UUID, Locked: d.Locked}
	deref := func(p *uint) uint {
		if p == nil {
			return 0
		}
		return *p
	}
	out.GroupID, out.MenuID = deref(d.GroupID), deref(d.MenuID)
	out.CloneVersionID, out.ServerID = deref(d.CloneVersionID), deref(d.ServerID)
	return out
}

// BootNetwork is a network's boot-wide state in the view's wire format, in a fixed order
// (its digest names it).
func BootNetwork(nb *models.NetworkBoot) *wire.BootNetwork {
	n := &wire.BootNetwork{NetworkID: nb.Network.ID, Servers: []wire.ServerInfo{}, Groups: []wire.GroupInfo{},
		Versions: []wire.VersionRef{}, Menus: []wire.MenuInfo{}, Maintained: []wire.Maintained{}}
	if nb.Network.MasterServerID != nil {
		n.MasterServerID = *nb.Network.MasterServerID
	}
	if nb.Network.DefaultMenuID != nil {
		n.DefaultMenuID = *nb.Network.DefaultMenuID
	}
	for _, s := range nb.Servers {
		n.Servers = append(n.Servers, wire.ServerInfo{ID: s.ID, Name: s.Name, IP: s.IP})
	}
	for _, id := range sortedKeys(nb.Groups) {
		gb := nb.Groups[id]
		n.Groups = append(n.Groups, *groupInfo(&gb.Group, gb.Versions, gb.Holders, gb.Assigned))
	}
	for _, id := range sortedKeys(nb.Versions) {
		v := nb.Versions[id]
		n.Versions = append(n.Versions, wire.VersionRef{ID: v.ID, GroupID: v.GroupID, Number: v.Number})
	}
	for _, id := range sortedKeys(nb.Menus) {
		m := nb.Menus[id]
		n.Menus = append(n.Menus, *menuInfo(&m))
	}
	for _, dev := range sortedKeys(nb.Maintained) {
		n.Maintained = append(n.Maintained, wire.Maintained{VolumeID: nb.Maintained[dev].ID, DeviceID: dev})
	}
	for _, dev := range sortedKeys(nb.Canaries) {
		v := nb.Canaries[dev]
		n.Canaries = append(n.Canaries, wire.Canary{DeviceID: dev, GroupID: v.GroupID, Version: v.Number})
	}
	return n
}

func sortedKeys[V any](m map[uint]V) []uint {
	keys := make([]uint, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
