// Package bootview is the agent's own view of its network's boot state (DESIGN.md §5):
// devices, groups, versions and their holders, menus. It follows the panel's watch
// (wire.PathBootView) from the last revision it has, is written under the agent's state
// directory, and answers a known device's boot query from memory, the way the panel
// would (models.BootLookup, api.BootInfo), with no round trip and no database.
//
// What it cannot answer goes to the panel: an unknown MAC (registration), a device whose
// UUID the panel has not recorded yet, a menu's choice of another group.
package bootview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// Watcher is the panel's watch (a *wire.Client).
type Watcher interface {
	BootView(ctx context.Context, since uint64, net string, wait time.Duration) (*wire.BootDelta, error)
}

var _ Watcher = (*wire.Client)(nil)

// Config is what a view is built from.
type Config struct {
	Panel Watcher
	// Path is the view's file (empty: in memory only).
	Path string
	// Wait is how long one watch waits for a change (default 20 s; at most a third of the
	// lease, so a quiet panel still confirms the view in time).
	Wait   time.Duration
	Logger *slog.Logger
	// Lease is the lease until the panel sends its own (default 60 s).
	Lease time.Duration
}

// View is the agent's view of its network's boot state. Safe for concurrent use.
type View struct {
	cfg Config
	log *slog.Logger

	mu         sync.RWMutex
	st         file
	byMAC      map[string]*wire.BootDevice
	byID       map[uint]*wire.BootDevice
	groups     map[uint]*wire.GroupInfo
	versions   map[uint]wire.VersionRef
	menus      map[uint]*wire.MenuInfo
	maintained map[uint]uint        // device id -> volume id
	canaries   map[uint]wire.Canary // device id -> the rollout's version it is served
	dirty      bool

	full, deltas, failures, answered, passed atomic.Uint64
}

// file is the view as written under the agent's state directory.
type file struct {
	Revision uint64             `json:"revision"`
	Digest   string             `json:"digest"`
	Network  *wire.BootNetwork  `json:"network"`
	Devices  []*wire.BootDevice `json:"devices"`
	// Confirmed is when the panel last confirmed the view; a restarted agent keeps it, so
	// strict groups do not get a fresh lease from a restart.
	Confirmed    time.Time `json:"confirmed"`
	LeaseSeconds int       `json:"lease_seconds"`
}

// Open loads the view from cfg.Path (a missing or unreadable file is an empty view:
// the first watch fills it).
func Open(cfg Config) (*View, error) {
	if cfg.Panel == nil {
		return nil, errors.New("bootview: Panel is required")
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 20 * time.Second
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	v := &View{cfg: cfg, log: cfg.Logger}
	v.index()
	if cfg.Path == "" {
		return v, nil
	}
	b, err := os.ReadFile(cfg.Path)
	if os.IsNotExist(err) {
		return v, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bootview: %w", err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		v.log.Warn("bootview: the saved view is unreadable; starting empty", "path", cfg.Path, "err", err)
		return v, nil
	}
	v.st = f
	v.index()
	return v, nil
}

// index rebuilds the lookup maps from v.st. Callers hold mu (or own v).
func (v *View) index() {
	v.byMAC, v.byID = map[string]*wire.BootDevice{}, map[uint]*wire.BootDevice{}
	for _, d := range v.st.Devices {
		v.byMAC[d.MAC], v.byID[d.ID] = d, d
	}
	v.indexNetwork()
}

func (v *View) indexNetwork() {
	v.groups, v.versions, v.menus, v.maintained = map[uint]*wire.GroupInfo{}, map[uint]wire.VersionRef{}, map[uint]*wire.MenuInfo{}, map[uint]uint{}
	v.canaries = map[uint]wire.Canary{}
	n := v.st.Network
	if n == nil {
		return
	}
	for i := range n.Groups {
		v.groups[n.Groups[i].ID] = &n.Groups[i]
	}
	for _, r := range n.Versions {
		v.versions[r.ID] = r
	}
	for i := range n.Menus {
		v.menus[n.Menus[i].ID] = &n.Menus[i]
	}
	for _, m := range n.Maintained {
		v.maintained[m.DeviceID] = m.VolumeID
	}
	for _, c := range n.Canaries {
		v.canaries[c.DeviceID] = c
	}
}

// Apply brings the view to a watch's answer and confirms it now.
func (v *View) Apply(d *wire.BootDelta) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if d.Network != nil {
		v.st.Network = d.Network
		v.indexNetwork()
	}
	if d.Full {
		v.byMAC, v.byID = map[string]*wire.BootDevice{}, map[uint]*wire.BootDevice{}
		v.full.Add(1)
	} else if len(d.Devices)+len(d.Removed) > 0 || d.Network != nil {
		v.deltas.Add(1)
	}
	for i := range d.Devices {
		dev := d.Devices[i]
		if dev.Revision == 0 {
			// The device changed at or before this answer's revision (the provisioning's
			// update id needs only that it grows with each change).
			dev.Revision = d.Revision
		}
		if old, ok := v.byID[dev.ID]; ok && old.MAC != dev.MAC {
			delete(v.byMAC, old.MAC)
		}
		v.byID[dev.ID], v.byMAC[dev.MAC] = &dev, &dev
	}
	for _, id := range d.Removed {
		if old, ok := v.byID[id]; ok {
			delete(v.byMAC, old.MAC)
			delete(v.byID, id)
		}
	}
	if d.Full || len(d.Devices)+len(d.Removed) > 0 {
		v.st.Devices = v.st.Devices[:0]
		for _, dev := range v.byID {
			v.st.Devices = append(v.st.Devices, dev)
		}
		sort.Slice(v.st.Devices, func(i, j int) bool { return v.st.Devices[i].ID < v.st.Devices[j].ID })
	}
	v.st.Revision, v.st.Digest = d.Revision, d.Digest
	v.st.Confirmed = time.Now()
	if d.LeaseSeconds > 0 {
		v.st.LeaseSeconds = d.LeaseSeconds
	}
	v.dirty = true
}

// lease is the panel's lease, or the configured one until it says. Callers hold mu.
func (v *View) lease() time.Duration {
	if v.st.LeaseSeconds > 0 {
		return time.Duration(v.st.LeaseSeconds) * time.Second
	}
	return v.cfg.Lease
}

// Provisioned records a device's new clone in the view (the panel's record reaches the
// view through the watch soon after), so that its next boot does not provision again.
func (v *View) Provisioned(deviceID, versionID, serverID uint) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if d, ok := v.byID[deviceID]; ok {
		c := *d // answers may hold the old row: change a copy
		c.CloneVersionID, c.ServerID = versionID, serverID
		v.byID[c.ID], v.byMAC[c.MAC] = &c, &c
		for i := range v.st.Devices {
			if v.st.Devices[i].ID == c.ID {
				v.st.Devices[i] = &c
			}
		}
		v.dirty = true
	}
}

// Run follows the panel's watch until ctx ends, resuming from the view's revision after
// any error; the view is written at most once a second.
func (v *View) Run(ctx context.Context) {
	go v.flushLoop(ctx)
	backoff := time.Second
	for ctx.Err() == nil {
		v.mu.RLock()
		since, digest, lease := v.st.Revision, v.st.Digest, v.lease()
		if v.st.Network == nil {
			since, digest = 0, ""
		}
		v.mu.RUnlock()
		wait := min(v.cfg.Wait, max(lease/3, time.Second))
		wctx, cancel := context.WithTimeout(ctx, wait+15*time.Second)
		d, err := v.cfg.Panel.BootView(wctx, since, digest, wait)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			v.failures.Add(1)
			if wire.IsStatus(err, http.StatusUnauthorized) {
				v.log.Error("bootview: the panel refuses this server's key", "err", err)
			} else {
				v.log.Warn("bootview: watch", "err", err, "retry_in", backoff)
			}
			// Jittered, so that a panel back after an outage is not asked by every agent at once.
			pause := backoff/2 + rand.N(backoff)
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
			backoff = min(backoff*2, 15*time.Second)
			continue
		}
		backoff = time.Second
		v.Apply(d)
	}
	if err := v.Flush(); err != nil {
		v.log.Warn("bootview", "err", err)
	}
}

func (v *View) flushLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := v.Flush(); err != nil {
				v.log.Warn("bootview", "err", err)
			}
		}
	}
}

// Flush writes the view's file if it changed since the last write.
func (v *View) Flush() error {
	v.mu.Lock()
	if !v.dirty || v.cfg.Path == "" {
		v.mu.Unlock()
		return nil
	}
	b, err := json.Marshal(&v.st)
	v.dirty = false
	v.mu.Unlock()
	if err == nil {
		err = writeFile(v.cfg.Path, b)
	}
	if err != nil {
		v.mu.Lock()
		v.dirty = true
		v.mu.Unlock()
		return fmt.Errorf("bootview: %w", err)
	}
	return nil
}

// writeFile replaces path atomically: a crash leaves the old view or the new one.
func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Stats is the view's state, for the agent's metrics and tests.
type Stats struct {
	Revision uint64
	Devices  int
	// Age is the time since the panel last confirmed the view (0: never); Lease its bound
	// for strict groups.
	Age, Lease time.Duration
	// FullLoads counts full snapshots received, Deltas the answers that changed something,
	// Failures the watches that failed.
	FullLoads, Deltas, Failures uint64
	// Answered counts boot queries answered from the view, Passed those sent to the panel.
	Answered, Passed uint64
}

// Stats returns the view's counters.
func (v *View) Stats() Stats {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := Stats{Revision: v.st.Revision, Devices: len(v.byID), Lease: v.lease(),
		FullLoads: v.full.Load(), Deltas: v.deltas.Load(), Failures: v.failures.Load(),
		Answered: v.answered.Load(), Passed: v.passed.Load()}
	if !v.st.Confirmed.IsZero() {
		s.Age = time.Since(v.st.Confirmed)
	}
	return s
}
