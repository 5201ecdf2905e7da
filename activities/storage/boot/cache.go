package boot

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// Cache is the agent's local knowledge of the boot path: the panel's last answer for
// every device that booted here, and the targets exported. It lives in memory and is
// written to one JSON file (atomically, by Flush) so that after an agent restart devices of
// non-strict groups still boot while the panel is unreachable.
type Cache struct {
	path string

	mu      sync.Mutex
	devices map[string]*cachedInfo // by MAC
	exports map[string]wire.Export // by IQN
	dirty   bool
}

type cachedInfo struct {
	Info *wire.Info `json:"info"`
	At   time.Time  `json:"at"`
}

type cacheFile struct {
	Devices map[string]*cachedInfo `json:"devices"`
	Exports map[string]wire.Export `json:"exports"`
}

// OpenCache loads the cache file at path (a missing file is an empty cache). An empty path
// keeps the cache in memory only.
func OpenCache(path string) (*Cache, error) {
	c := &Cache{path: path, devices: map[string]*cachedInfo{}, exports: map[string]wire.Export{}}
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("boot cache: %w", err)
	}
	var f cacheFile
	if err := json.Unmarshal(b, &f); err != nil {
		// A torn or foreign file must not stop the agent: start empty, the panel refills it.
		return c, nil
	}
	for k, v := range f.Devices {
		if v != nil && v.Info != nil {
			c.devices[k] = v
		}
	}
	for k, v := range f.Exports {
		c.exports[k] = v
	}
	return c, nil
}

// Put records the panel's answer for a device.
func (c *Cache) Put(mac string, info *wire.Info) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.devices[mac] = &cachedInfo{Info: info, At: time.Now()}
	c.dirty = true
}

// SetClone records a device's new clone in its cached answer, so that a device provisioned
// just before the panel went away still boots its clone.
func (c *Cache) SetClone(mac string, groupID uint, version int, versionID, serverID uint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ci, ok := c.devices[mac]
	if !ok {
		return
	}
	info := *ci.Info // answers are shared read-only: change a copy
	info.Device.CloneGroupID, info.Device.CloneVersion = groupID, version
	info.Device.CloneVersionID, info.Device.CloneServerID = versionID, serverID
	c.devices[mac] = &cachedInfo{Info: &info, At: ci.At}
	c.dirty = true
}

// Get returns the last answer for a device and when it was received.
func (c *Cache) Get(mac string) (*wire.Info, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ci, ok := c.devices[mac]
	if !ok {
		return nil, time.Time{}, false
	}
	return ci.Info, ci.At, true
}

// Exported records that a target is exported (or, with remove, that it no longer is).
func (c *Cache) Exported(iqn string, e wire.Export, remove bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.exports[iqn]; remove == !ok || (!remove && old == e) {
		return
	}
	if remove {
		delete(c.exports, iqn)
	} else {
		c.exports[iqn] = e
	}
	c.dirty = true
}

// Exports lists the recorded exports, sorted by IQN.
func (c *Cache) Exports() []wire.Export {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.exports))
	for k := range c.exports {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]wire.Export, 0, len(keys))
	for _, k := range keys {
		out = append(out, c.exports[k])
	}
	return out
}

// Flush writes the cache file if anything changed since the last flush.
func (c *Cache) Flush() error {
	c.mu.Lock()
	if !c.dirty || c.path == "" {
		c.mu.Unlock()
		return nil
	}
	b, err := json.Marshal(cacheFile{Devices: c.devices, Exports: c.exports})
	c.dirty = false
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("boot cache: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("boot cache: %w", err)
	}
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		c.markDirty()
		return fmt.Errorf("boot cache: %w", err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		c.markDirty()
		return fmt.Errorf("boot cache: %w", err)
	}
	return nil
}

func (c *Cache) markDirty() {
	c.mu.Lock()
	c.dirty = true
	c.mu.Unlock()
}
