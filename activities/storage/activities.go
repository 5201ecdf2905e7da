// Package storage holds the agent's activities: the ZFS work of the storage workflows,
// run by the storage worker on the task queue server-<id>. Every activity is safe to
// repeat: a retry after a crash or a lost answer finds the earlier work done and reports
// it, so no second dataset is ever made.
package storage

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
	"go.temporal.io/sdk/activity"
)

// GiB is the unit of vol_size (wire.GiB).
const GiB = wire.GiB

// Activities are the storage worker's activities; one value per agent.
type Activities struct {
	ZFS *zfs.ZFS
	// HeartbeatEvery is how often a running activity tells Temporal it is alive (default 5 s),
	// so a killed agent's work is retried elsewhere within the heartbeat timeout.
	HeartbeatEvery time.Duration
	// ReplicationTLS is the agent's TLS client configuration for pulling from its master
	// (its certificate, the panel's CA); nil when it has no certificate.
	ReplicationTLS func() (*tls.Config, error)
	// ReplicationZFS replaces ZFS for replication in unit tests; nil: ZFS.
	ReplicationZFS ReplicationZFS
	// NoKernelTLS keeps a slave's streams in crypto/tls even where the kernel has TLS
	// (wire.ProtoKernelStream).
	NoKernelTLS bool
	// UnitDir is where container units are written (default DefaultUnitDir).
	UnitDir string
	// Bridge is the server's bridge for VMs and containers (install.sh -n, the agent's
	// --bridge): each container gets a veth interface on it. "": containers share the
	// server's network.
	Bridge string
	// AptDir is where the server's apt sources are (default DefaultAptDir): ctemplates
	// are debootstrapped from the archive they name.
	AptDir string

	// kernel remembers masters that refused kernel TLS.
	kernel kernelDialer

	// rooms keeps each pool's last room listing (see room).
	rooms struct {
		sync.Mutex
		m map[string]*keptRoom
	}
}

// roomFresh is how long a pool's room listing is used again when no dataset changed
// through this agent since: a create then runs one zfs command instead of three, a stats
// report only reads the pool's health. Changes made behind the agent's back (by hand, or
// written blocks) show within this bound. It is longer than the agent's stats period
// (15 s by default), whose listing refreshes it (status), so that a create on an agent
// that reports its stats finds it fresh.
const roomFresh = 20 * time.Second

// keptRoom is a room listing, the dataset changes it saw and when it was read.
type keptRoom struct {
	room    *room
	changes uint64
	at      time.Time
}

// alive runs fn while heartbeating; zfs commands cannot be interrupted, so a cancelled
// activity waits (a bounded while) for its command to end before it returns.
func (a *Activities) alive(ctx context.Context, fn func() error) error {
	every := a.HeartbeatEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	done := make(chan error, 1)
	go func() { done <- fn() }()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return activities.Wrap(err)
		case <-tick.C:
			if activity.IsActivity(ctx) {
				activity.RecordHeartbeat(ctx)
			}
		case <-ctx.Done():
			// Let the command end first, so that whoever undoes this work after the
			// cancellation finds it done rather than racing it.
			select {
			case <-done:
			case <-time.After(time.Minute):
			}
			return ctx.Err()
		}
	}
}

// pool reads a pool; a missing one is said plainly, without the command line.
func (a *Activities) pool(name string) (*zfs.Pool, error) {
	p, err := a.ZFS.Pool(name)
	if errors.Is(err, activities.ErrPoolNotFound) {
		return nil, fmt.Errorf("pool %s does not exist on this server: %w", name, activities.ErrPoolNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", name, err)
	}
	return p, nil
}

// PoolInput names a pool.
type PoolInput struct {
	Pool string
}

// PoolStatus is a pool's health and capacity as the panel records it in the server's stats.
type PoolStatus struct {
	Pool        zfs.Pool      `json:"pool"`
	Capacity    uint64        `json:"capacity"`    // bytes usable by datasets (root used + available)
	Available   uint64        `json:"available"`   // bytes still free for datasets
	Provisioned uint64        `json:"provisioned"` // sum of all volumes' sizes (thin provisioning)
	Erator      []EratorEntry `json:"erator"`
	Layout      bool          `json:"layout"` // the guide's file systems exist
}

// Stats is the status as the panel records it for the server: the agent's heartbeat
// and the bootstrap's outcome send the same.
func (st *PoolStatus) Stats() *wire.StatsReport {
	detail, _ := json.Marshal(st)
	return &wire.StatsReport{PoolHealth: st.Pool.Health, PoolSize: int64(st.Capacity), PoolFree: int64(st.Available), Detail: detail}
}

// Status reads a pool's health, capacity and erator. ErrPoolNotFound when it is missing.
func (a *Activities) Status(ctx context.Context, in PoolInput) (*PoolStatus, error) {
	var st *PoolStatus
	err := a.alive(ctx, func() (err error) { st, err = a.status(in.Pool); return err })
	return st, err
}

func (a *Activities) status(pool string) (*PoolStatus, error) {
	changes, at := a.ZFS.Changes(), time.Now()
	p, err := a.pool(pool)
	if err != nil {
		return nil, err
	}
	st := &PoolStatus{Pool: *p, Erator: []EratorEntry{}}
	if p.Health != "ONLINE" && p.Health != "DEGRADED" {
		return st, nil
	}
	// The pool's health is always read; its listing is the kept one while that is fresh
	// and nothing changed through the agent since (a report every 15 s then lists every
	// other time, and does not compete with the operations for the server's CPU).
	// The listing is what a create's size check reads too: it keeps it fresh.
	r := a.keptRoom(pool)
	if r == nil {
		if r, err = a.listRoom(pool, p.Health, changes, at); err != nil {
			return nil, err
		}
	}
	st.Capacity, st.Available, st.Provisioned, st.Layout = r.usable, r.avail, r.provisioned, r.layout
	st.Erator = append(st.Erator, r.erator...)
	return st, nil
}

// BootstrapResult is the pool's status after bootstrap and the file systems it created.
type BootstrapResult struct {
	Status  PoolStatus
	Created []string
}

// Bootstrap checks that the pool exists and is healthy, then creates the guide's layout
// (iscsi/{devices,containers,ctemplates,groups,volumes}, vdisks, erator). Existing file
// systems are kept. ErrPoolNotFound / ErrPoolUnhealthy when the pool cannot be used.
func (a *Activities) Bootstrap(ctx context.Context, in PoolInput) (*BootstrapResult, error) {
	res := &BootstrapResult{Created: []string{}}
	err := a.alive(ctx, func() error {
		p, err := a.pool(in.Pool)
		if err != nil {
			return err
		}
		if p.Health != "ONLINE" {
			return fmt.Errorf("pool %s is %s: %w", in.Pool, p.Health, activities.ErrPoolUnhealthy)
		}
		for _, fs := range Layout(in.Pool) {
			created, err := a.ZFS.CreateFilesystem(fs)
			if err != nil {
				return err
			}
			if created {
				res.Created = append(res.Created, fs)
			}
		}
		st, err := a.status(in.Pool)
		if err != nil {
			return err
		}
		res.Status = *st
		return nil
	})
	return res, err
}

// VolumeInput asks for volume id of size bytes on pool.
type VolumeInput struct {
	Pool     string
	VolumeID uint
	Size     uint64 // bytes
}

// VolumeResult describes the volume after a create or resize.
type VolumeResult struct {
	Dataset       string
	Created       bool   // false when an earlier attempt had made it
	Volsize       uint64 // bytes
	Capacity      uint64 // the pool's usable bytes
	Provisioned   uint64 // all volumes' sizes after the change
	Overcommitted bool   // thin provisioning promises more than the pool holds
}

// room is what a size check needs, read with two commands: the pool's health, then one
// listing of the pool's file systems and volumes for the bytes its datasets can use and
// every volume (whose sizes add up to the provisioning). The stats report (status) reads
// the same and keeps it.
type room struct {
	pool        string
	usable      uint64
	avail       uint64
	provisioned uint64
	volumes     map[string]*zfs.Dataset
	// The stats report's part: the erator's entries, and whether the erator exists.
	erator []EratorEntry
	layout bool
}

// newRoom reads a pool's room from its listing (Tree): the root's bytes, the volumes'
// sizes and the erator's own entries.
func newRoom(pool string, tree []*zfs.Dataset) *room {
	r := &room{pool: pool, volumes: map[string]*zfs.Dataset{}}
	erator := Erator(pool)
	for _, d := range tree {
		switch {
		case d.Name == pool:
			r.usable, r.avail = d.Used+d.Avail, d.Avail
		case d.Type == "volume":
			r.provisioned += d.Volsize
			r.volumes[d.Name] = d
		}
		if d.Name == erator {
			r.layout = true
		}
		if rest, under := strings.CutPrefix(d.Name, erator+"/"); !under || strings.Contains(rest, "/") {
			continue // only the erator's own entries
		}
		if e, ok := ParseEratorName(d.Name); ok {
			e.Used, e.Origin = d.Used, d.Origin
			r.erator = append(r.erator, e)
		}
	}
	return r
}

// keptRoom is the pool's kept room while it is fresh and no dataset changed through the
// agent since (nil otherwise).
func (a *Activities) keptRoom(pool string) *room {
	a.rooms.Lock()
	defer a.rooms.Unlock()
	if k := a.rooms.m[pool]; k != nil && k.changes == a.ZFS.Changes() && time.Since(k.at) < roomFresh {
		return k.room.copy()
	}
	return nil
}

func (a *Activities) room(pool string) (*room, error) {
	if r := a.keptRoom(pool); r != nil {
		return r, nil
	}
	changes, at := a.ZFS.Changes(), time.Now()
	p, err := a.pool(pool)
	if err != nil {
		return nil, err
	}
	if p.Health != "ONLINE" {
		return nil, fmt.Errorf("pool %s is %s: %w", pool, p.Health, activities.ErrPoolUnhealthy)
	}
	return a.listRoom(pool, p.Health, changes, at)
}

// listRoom reads the pool's room from one listing and keeps it while the pool is ONLINE;
// health, changes and at are the pool's health and the agent's dataset changes when the
// health was read, just before.
func (a *Activities) listRoom(pool, health string, changes uint64, at time.Time) (*room, error) {
	tree, err := a.ZFS.Tree(pool)
	if err != nil {
		return nil, err
	}
	r := newRoom(pool, tree)
	if health == "ONLINE" {
		a.keepRoom(pool, r, changes, at)
	}
	return r, nil
}

// keepRoom keeps a room read at at, when the agent's dataset changes numbered changes:
// unless a newer one is kept already.
func (a *Activities) keepRoom(pool string, r *room, changes uint64, at time.Time) {
	a.rooms.Lock()
	defer a.rooms.Unlock()
	if a.rooms.m == nil {
		a.rooms.m = map[string]*keptRoom{}
	}
	if k := a.rooms.m[pool]; k != nil && k.at.After(at) {
		return
	}
	a.rooms.m[pool] = &keptRoom{room: r.copy(), changes: changes, at: at}
}

// created updates the kept room of a pool with a volume this agent just made, when that
// create (the dataset change after before) is the only change since the room was read.
func (a *Activities) created(pool string, before uint64, d *zfs.Dataset) {
	a.rooms.Lock()
	defer a.rooms.Unlock()
	k := a.rooms.m[pool]
	if k == nil || k.changes != before || a.ZFS.Changes() != before+1 {
		return
	}
	k.room.provisioned += d.Volsize
	k.room.volumes[d.Name] = d
	k.changes = before + 1
}

// cloned updates the kept room of a pool with a clone this agent just made of volume
// origin, as created does a new volume: the clone is a volume of its origin's size.
func (a *Activities) cloned(pool string, before uint64, origin, snapshot, name string) {
	a.rooms.Lock()
	var src *zfs.Dataset
	if k := a.rooms.m[pool]; k != nil {
		src = k.room.volumes[origin]
	}
	a.rooms.Unlock()
	if src != nil {
		a.created(pool, before, &zfs.Dataset{Name: name, Type: "volume", Origin: snapshot, Volsize: src.Volsize})
	}
}

func (r *room) copy() *room {
	c := *r
	c.volumes = maps.Clone(r.volumes)
	c.erator = slices.Clone(r.erator)
	return &c
}

// fits refuses a size the pool cannot hold at all (thin or not) and computes the
// provisioning once a volume of previous bytes has the new size.
func (r *room) fits(size, previous uint64, res *VolumeResult) error {
	if size > r.usable {
		return fmt.Errorf("%d GiB is more than pool %s can ever hold (%.1f GiB usable): %w",
			size/GiB, r.pool, float64(r.usable)/GiB, activities.ErrTooLarge)
	}
	res.Capacity = r.usable
	res.Provisioned = r.provisioned - previous + size
	res.Overcommitted = res.Provisioned > r.usable
	return nil
}

// CreateVolume creates <pool>/iscsi/volumes/<id> as a sparse zvol. A volume an earlier
// attempt created is success. ErrTooLarge for a size beyond the pool's capacity.
func (a *Activities) CreateVolume(ctx context.Context, in VolumeInput) (*VolumeResult, error) {
	return a.createZvol(ctx, in.Pool, VolumeDataset(in.Pool, in.VolumeID), in.Size)
}

// VDiskInput asks for vdisk id of size bytes on pool.
type VDiskInput struct {
	Pool    string
	VDiskID uint
	Size    uint64 // bytes
}

// CreateVDisk creates <pool>/vdisks/<id> as a sparse zvol, as CreateVolume does a volume.
func (a *Activities) CreateVDisk(ctx context.Context, in VDiskInput) (*VolumeResult, error) {
	return a.createZvol(ctx, in.Pool, VDiskDataset(in.Pool, in.VDiskID), in.Size)
}

// ResizeVDisk grows a vdisk to size bytes, as ResizeVolume does a volume.
func (a *Activities) ResizeVDisk(ctx context.Context, in VDiskInput) (*VolumeResult, error) {
	return a.resizeZvol(ctx, in.Pool, VDiskDataset(in.Pool, in.VDiskID), in.Size)
}

func (a *Activities) createZvol(ctx context.Context, pool, ds string, size uint64) (*VolumeResult, error) {
	res := &VolumeResult{Dataset: ds}
	err := a.alive(ctx, func() error {
		r, err := a.room(pool)
		if err != nil {
			return err
		}
		if existing := r.volumes[res.Dataset]; existing != nil {
			res.Volsize = existing.Volsize
			return r.fits(existing.Volsize, existing.Volsize, res)
		}
		if err := r.fits(size, 0, res); err != nil {
			return err
		}
		before := a.ZFS.Changes()
		d, created, err := a.ZFS.CreateVolume(res.Dataset, size)
		if err != nil {
			return err
		}
		if created {
			a.created(pool, before, d)
		}
		res.Created, res.Volsize = created, d.Volsize
		return nil
	})
	return res, err
}

// ResizeVolume grows a volume to size bytes; a volume already that large is left alone
// (volumes never shrink). ErrDatasetNotFound when the volume is missing.
func (a *Activities) ResizeVolume(ctx context.Context, in VolumeInput) (*VolumeResult, error) {
	return a.resizeZvol(ctx, in.Pool, VolumeDataset(in.Pool, in.VolumeID), in.Size)
}

func (a *Activities) resizeZvol(ctx context.Context, pool, ds string, size uint64) (*VolumeResult, error) {
	res := &VolumeResult{Dataset: ds}
	err := a.alive(ctx, func() error {
		r, err := a.room(pool)
		if err != nil {
			return err
		}
		d := r.volumes[res.Dataset]
		if d == nil {
			return fmt.Errorf("zvol %s: %w", res.Dataset, activities.ErrDatasetNotFound)
		}
		res.Volsize = d.Volsize
		if d.Volsize >= size {
			return r.fits(d.Volsize, d.Volsize, res)
		}
		if err := r.fits(size, d.Volsize, res); err != nil {
			return err
		}
		if err := a.ZFS.SetVolsize(res.Dataset, size); err != nil {
			return err
		}
		res.Volsize = size
		return nil
	})
	return res, err
}

// TrashInput moves Dataset into the erator as <kind>-<id>-<unix>.
type TrashInput struct {
	Pool    string
	Dataset string
	Kind    string
	ID      uint
	Unix    int64 // the workflow's time, so a retry computes the same name
}

// TrashResult names where the dataset went; Missing is set when there was nothing to move.
type TrashResult struct {
	Trash   string
	Missing bool
}

// Trash renames a dataset into the erator (nothing is destroyed). A retry that finds the
// rename done succeeds; a dataset that never existed is reported as Missing.
func (a *Activities) Trash(ctx context.Context, in TrashInput) (*TrashResult, error) {
	res := &TrashResult{Trash: EratorDataset(in.Pool, in.Kind, in.ID, in.Unix)}
	err := a.alive(ctx, func() error {
		if _, err := a.ZFS.CreateFilesystem(Erator(in.Pool)); err != nil {
			return err
		}
		src, err := a.ZFS.Lookup(in.Dataset)
		if err != nil {
			return err
		}
		if src == nil {
			dst, err := a.ZFS.Lookup(res.Trash)
			if err != nil {
				return err
			}
			res.Missing = dst == nil
			return nil
		}
		return a.ZFS.Rename(in.Dataset, res.Trash)
	})
	return res, err
}

// CloneInput clones volume VolumeID into group GroupID.
type CloneInput struct {
	Pool     string
	VolumeID uint
	GroupID  uint
}

// CloneResult names the group's dataset and its origin snapshot.
type CloneResult struct {
	Dataset string
	Origin  string
	Created bool
}

// CloneVolume snapshots the volume as @group-<gid> and clones it into
// <pool>/iscsi/groups/<gid>. Both steps accept their own earlier results.
func (a *Activities) CloneVolume(ctx context.Context, in CloneInput) (*CloneResult, error) {
	vol := VolumeDataset(in.Pool, in.VolumeID)
	res := &CloneResult{Dataset: GroupDataset(in.Pool, in.GroupID), Origin: vol + "@" + GroupOriginSnapshot(in.GroupID)}
	err := a.alive(ctx, func() error {
		// The origin's guid is not needed: the plain command, as by hand.
		if _, err := a.ZFS.SnapshotOnly(vol, GroupOriginSnapshot(in.GroupID)); err != nil {
			return fmt.Errorf("snapshot volume %d: %w", in.VolumeID, err)
		}
		before := a.ZFS.Changes()
		created, err := a.ZFS.Clone(res.Origin, res.Dataset)
		res.Created = created
		if created {
			// The next create's size check need not list the pool again for it.
			a.cloned(in.Pool, before, vol, res.Origin, res.Dataset)
		}
		return err
	})
	return res, err
}

// SnapshotInput asks for Dataset@Name.
type SnapshotInput struct {
	Dataset string
	Name    string
}

// SnapshotResult is the snapshot and its guid.
type SnapshotResult struct {
	Snapshot string
	GUID     string
	Created  bool
}

// Snapshot takes Dataset@Name; an existing snapshot is success with its guid.
func (a *Activities) Snapshot(ctx context.Context, in SnapshotInput) (*SnapshotResult, error) {
	res := &SnapshotResult{Snapshot: in.Dataset + "@" + in.Name}
	err := a.alive(ctx, func() (err error) {
		res.GUID, res.Created, err = a.ZFS.Snapshot(in.Dataset, in.Name)
		return err
	})
	return res, err
}

// SnapshotWritten takes Dataset@Name as Snapshot does, unless nothing was written to the
// dataset since its newest snapshot: then that snapshot is the answer (Created false). A
// vdisk's periodic backup snapshot so costs nothing while it is idle, and the copy a move
// left behind (never written again) gets none. Safe to repeat.
func (a *Activities) SnapshotWritten(ctx context.Context, in SnapshotInput) (*SnapshotResult, error) {
	st, err := a.replZFS().State(ctx, in.Dataset) // the snapshots and written at once
	if err != nil {
		return nil, activities.Wrap(err)
	}
	if n := len(st.Snaps); n > 0 && st.Written == "0" {
		return &SnapshotResult{Snapshot: in.Dataset + "@" + st.Snaps[n-1].Name, GUID: st.Snaps[n-1].GUID}, nil
	}
	return a.Snapshot(ctx, in)
}

// PurgeInput destroys erator entries deleted before Before (unix seconds); Before 0
// destroys every entry.
type PurgeInput struct {
	Pool   string
	Before int64
}

// Kept is an erator entry the purge left, and why.
type Kept struct {
	Name   string
	Reason string
}

// PurgeResult lists what the purge destroyed and freed, and what it kept.
type PurgeResult struct {
	Destroyed  []string
	Kept       []Kept
	FreedBytes uint64
}

// Purge destroys erator entries older than Before, clones before their origins; an entry
// whose snapshots still have clones outside the purge is kept and reported. It is the
// only activity that destroys data. Repeating it destroys nothing twice.
func (a *Activities) Purge(ctx context.Context, in PurgeInput) (*PurgeResult, error) {
	res := &PurgeResult{Destroyed: []string{}, Kept: []Kept{}}
	err := a.alive(ctx, func() error {
		all, err := a.ZFS.All(in.Pool)
		if err != nil {
			return err
		}
		plan := PlanPurge(all, in.Pool, in.Before)
		for _, d := range plan.Destroy {
			if err := destroyWhenFree(ctx, a.ZFS.Destroy, d.Name); err != nil {
				res.Kept = append(res.Kept, Kept{Name: d.Name, Reason: activities.Message(err)})
				continue
			}
			res.Destroyed = append(res.Destroyed, d.Name)
			res.FreedBytes += d.Used
			if activity.IsActivity(ctx) {
				activity.RecordHeartbeat(ctx, len(res.Destroyed))
			}
		}
		res.Kept = append(res.Kept, plan.Keep...)
		return nil
	})
	return res, err
}

// busyTries bounds how often a purge asks again to destroy a dataset that is busy, with a
// doubling pause from busyPause: a volume just moved into the erator is often held open
// for a moment by udev probing its renamed device node.
var (
	busyTries = 5
	busyPause = 200 * time.Millisecond
)

// destroyWhenFree destroys name (recursively), asking again while it is busy.
func destroyWhenFree(ctx context.Context, destroy func(string, bool) error, name string) error {
	pause := busyPause
	for try := 1; ; try++ {
		err := destroy(name, true)
		if err == nil || !errors.Is(err, activities.ErrBusy) || try == busyTries {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		pause *= 2
	}
}

// Plan is a purge's order of destruction and what it must keep.
type Plan struct {
	Destroy []*zfs.Dataset
	Keep    []Kept
}

// PlanPurge orders the erator entries of pool deleted before `before` (0: every entry,
// whatever the server's clock stamped on them) so that clones go before their origins;
// entries that a dataset outside the purge was cloned from are kept.
func PlanPurge(all []*zfs.Dataset, pool string, before int64) Plan {
	// dependents[X] lists the datasets cloned from a snapshot of X.
	dependents := map[string][]string{}
	exists := map[string]bool{}
	var candidates []*zfs.Dataset
	prefix := Erator(pool) + "/"
	for _, d := range all {
		if d.Type == "snapshot" {
			continue
		}
		exists[d.Name] = true
		if d.Origin != "" {
			if at := strings.IndexByte(d.Origin, '@'); at > 0 {
				dependents[d.Origin[:at]] = append(dependents[d.Origin[:at]], d.Name)
			}
		}
		if !strings.HasPrefix(d.Name, prefix) {
			continue
		}
		if e, ok := ParseEratorName(d.Name); ok && (before == 0 || e.Unix < before) {
			candidates = append(candidates, d)
		}
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].Name < candidates[j].Name })
	var plan Plan
	done := map[string]bool{}
	for progress := true; progress; {
		progress = false
		for _, c := range candidates {
			if done[c.Name] {
				continue
			}
			blocked := false
			for _, dep := range dependents[c.Name] {
				if exists[dep] {
					blocked = true
					break
				}
			}
			if !blocked {
				plan.Destroy = append(plan.Destroy, c)
				done[c.Name], exists[c.Name], progress = true, false, true
			}
		}
	}
	for _, c := range candidates {
		if done[c.Name] {
			continue
		}
		var live []string
		for _, dep := range dependents[c.Name] {
			if exists[dep] {
				live = append(live, dep)
			}
		}
		sort.Strings(live)
		plan.Keep = append(plan.Keep, Kept{Name: c.Name, Reason: "clones depend on it: " + strings.Join(live, ", ")})
	}
	return plan
}

// RestoreInput puts the newest erator entry <kind>-<id>-* back at Target.
type RestoreInput struct {
	Pool   string
	Kind   string
	ID     uint
	Target string
}

// RestoreResult names what was restored.
type RestoreResult struct {
	From string
	To   string
}

// Restore renames the newest erator entry of (kind, id) back to Target. When Target
// exists and the erator has no entry, the restore already happened: success.
// ErrNotInErator when there is nothing to restore, ErrExists when Target is taken.
func (a *Activities) Restore(ctx context.Context, in RestoreInput) (*RestoreResult, error) {
	res := &RestoreResult{To: in.Target}
	err := a.alive(ctx, func() error {
		trash, err := a.ZFS.Children(Erator(in.Pool))
		if err != nil && !errors.Is(err, activities.ErrDatasetNotFound) {
			return err
		}
		var best *EratorEntry
		for _, d := range trash {
			e, ok := ParseEratorName(d.Name)
			if ok && e.Kind == in.Kind && e.ID == in.ID && (best == nil || e.Unix > best.Unix) {
				best = &e
			}
		}
		target, err := a.ZFS.Lookup(in.Target)
		if err != nil {
			return err
		}
		switch {
		case best == nil && target != nil:
			return nil
		case best == nil:
			return fmt.Errorf("%s %d: %w", in.Kind, in.ID, activities.ErrNotInErator)
		case target != nil:
			return fmt.Errorf("restore %s: %s %w", best.Name, in.Target, activities.ErrExists)
		}
		res.From = best.Name
		return a.ZFS.Rename(best.Name, in.Target)
	})
	return res, err
}
