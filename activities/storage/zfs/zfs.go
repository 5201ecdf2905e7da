// Package zfs is the one small type every zfs/zpool call of the agent goes through. It
// wraps github.com/mistifyio/go-zfs/v3, logs and times each call, turns the commands'
// stderr into the typed errors of package activities, and makes create, rename and
// destroy safe to repeat: an activity retried after a crash finds its own earlier work
// and reports success instead of failing or doing it twice.
package zfs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	gozfs "github.com/mistifyio/go-zfs/v3"
)

// ZFS runs zfs and zpool commands (found on PATH) for the agent.
type ZFS struct {
	Log *slog.Logger
	// changes counts the calls that may have changed which datasets exist or their sizes
	// (creates, clones, renames, destroys, volsize changes, receives), so a caller that
	// keeps a listing can tell whether it still holds.
	changes atomic.Uint64

	snapsOnce sync.Once
	snaps     *snapshotBatcher
}

// mutating are the calls that change which datasets exist or a volume's size.
var mutating = map[string]bool{"create-fs": true, "destroy": true, "rename": true, "set-volsize": true}

// Changes is the number of dataset-changing calls made through z so far (see Changed).
func (z *ZFS) Changes() uint64 { return z.changes.Load() }

// Changed records a change made outside the wrapper's calls (a receive, a promote).
func (z *ZFS) Changed() { z.changes.Add(1) }

// New returns a wrapper that logs to log (slog.Default when nil).
func New(log *slog.Logger) *ZFS {
	if log == nil {
		log = slog.Default()
	}
	return &ZFS{Log: log}
}

// Pool is a pool's health and capacity in bytes.
type Pool struct {
	Name      string `json:"name"`
	Health    string `json:"health"`
	Size      uint64 `json:"size"`
	Allocated uint64 `json:"allocated"`
	Free      uint64 `json:"free"`
}

// Dataset is what the agent needs to know of a file system, volume or snapshot.
type Dataset struct {
	Name       string `json:"name"`
	Type       string `json:"type"` // filesystem, volume, snapshot
	Origin     string `json:"origin,omitempty"`
	Used       uint64 `json:"used"`
	Avail      uint64 `json:"avail"`
	Referenced uint64 `json:"referenced"`
	Written    uint64 `json:"written"`
	Volsize    uint64 `json:"volsize,omitempty"`
}

func fromGo(d *gozfs.Dataset) *Dataset {
	return &Dataset{Name: d.Name, Type: d.Type, Origin: d.Origin, Used: d.Used, Avail: d.Avail,
		Referenced: d.Referenced, Written: d.Written, Volsize: d.Volsize}
}

// stderrTypes maps OpenZFS 2.x messages to typed errors; the first match wins, so the
// more specific phrases come first.
var stderrTypes = []struct {
	phrase string
	err    error
}{
	{"no such pool", activities.ErrPoolNotFound},
	{"dataset does not exist", activities.ErrDatasetNotFound},
	{"parent does not exist", activities.ErrDatasetNotFound},
	{"could not find any snapshots", activities.ErrDatasetNotFound},
	{"dataset already exists", activities.ErrExists},
	{"has dependent clones", activities.ErrHasClones},
	{"out of space", activities.ErrPoolFull},
	{"insufficient space", activities.ErrPoolFull},
	{"is busy", activities.ErrBusy},
}

// Classify maps a zfs/zpool stderr text to a typed error, or nil when none applies.
func Classify(stderr string) error {
	s := strings.ToLower(stderr)
	for _, t := range stderrTypes {
		if strings.Contains(s, t.phrase) {
			return t.err
		}
	}
	return nil
}

// Error is a failed zfs/zpool command: the command line and its stderr, wrapping the
// typed error the stderr maps to (errors.Is works on it).
type Error struct {
	Command string
	Stderr  string
	Typed   error // nil when the stderr matches no known type
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = "failed"
	}
	return e.Command + ": " + msg
}

func (e *Error) Unwrap() error { return e.Typed }

// call runs one go-zfs call, logging and timing it and mapping its error.
func (z *ZFS) call(op, target string, fn func() error) error {
	start := time.Now()
	err := fn()
	if mutating[op] {
		z.changes.Add(1)
	}
	took := time.Since(start)
	if err == nil {
		z.Log.Debug("zfs", "op", op, "target", target, "took", took)
		return nil
	}
	var ge *gozfs.Error
	if errors.As(err, &ge) {
		e := &Error{Command: ge.Debug, Stderr: ge.Stderr, Typed: Classify(ge.Stderr)}
		if strings.TrimSpace(ge.Stderr) == "" && ge.Err != nil {
			e.Stderr = ge.Err.Error() // e.g. the command is not installed
		}
		z.logFailure(e.Typed, "op", op, "target", target, "took", took, "cmd", ge.Debug, "stderr", strings.TrimSpace(ge.Stderr))
		return e
	}
	z.Log.Info("zfs failed", "op", op, "target", target, "took", took, "err", err)
	return fmt.Errorf("%s %s: %w", op, target, err)
}

// logFailure logs a failed command: at Info as "zfs failed", unless its error is a routine
// answer — a dataset that does not exist or already exists is what every idempotent step
// probes for (a create checks first, a delete finds it gone), and the agent's log would
// otherwise cry failure on every healthy run.
func (z *ZFS) logFailure(typed error, args ...any) {
	if errors.Is(typed, activities.ErrDatasetNotFound) || errors.Is(typed, activities.ErrExists) {
		z.Log.Debug("zfs answered", args...)
		return
	}
	z.Log.Info("zfs failed", args...)
}

// Pool returns a pool's health and capacity; ErrPoolNotFound when there is no such pool.
func (z *ZFS) Pool(name string) (*Pool, error) {
	var p *gozfs.Zpool
	err := z.call("pool", name, func() (err error) { p, err = gozfs.GetZpool(name); return })
	if err != nil {
		return nil, err
	}
	return &Pool{Name: p.Name, Health: p.Health, Size: p.Size, Allocated: p.Allocated, Free: p.Free}, nil
}

// Get returns a dataset; ErrDatasetNotFound when it does not exist.
func (z *ZFS) Get(name string) (*Dataset, error) {
	var d *gozfs.Dataset
	err := z.call("get", name, func() (err error) { d, err = gozfs.GetDataset(name); return })
	if err != nil {
		return nil, err
	}
	return fromGo(d), nil
}

// Lookup is Get that reports a missing dataset as nil, nil.
func (z *ZFS) Lookup(name string) (*Dataset, error) {
	d, err := z.Get(name)
	if errors.Is(err, activities.ErrDatasetNotFound) {
		return nil, nil
	}
	return d, err
}

// Children lists the datasets directly under name (file systems, volumes and snapshots).
func (z *ZFS) Children(name string) ([]*Dataset, error) {
	var out []*Dataset
	err := z.call("children", name, func() error {
		d, err := gozfs.GetDataset(name)
		if err != nil {
			return err
		}
		kids, err := d.Children(1)
		for _, k := range kids {
			out = append(out, fromGo(k))
		}
		return err
	})
	return out, err
}

// All lists every dataset of a pool, snapshots included (for clone dependencies).
func (z *ZFS) All(pool string) ([]*Dataset, error) {
	var out []*Dataset
	err := z.call("list", pool, func() error {
		ds, err := gozfs.Datasets(pool)
		for _, d := range ds {
			out = append(out, fromGo(d))
		}
		return err
	})
	return out, err
}

// listProps are the columns Tree asks for: go-zfs's own list, so that both read the same
// recorded outputs.
const listProps = "name,origin,used,available,mountpoint,compression,type,volsize,quota,referenced,written,logicalused,usedbydataset"

// Tree lists a pool's file systems and volumes, the pool's root first, in one command and
// without the snapshots: what a pool's capacity, provisioning and erator need. A pool's
// snapshots (every version of every group, every backup) outnumber its datasets, and a
// listing with them costs seconds on a busy server.
func (z *ZFS) Tree(pool string) ([]*Dataset, error) {
	out, err := z.run(context.Background(), "list", "-rHp", "-t", "filesystem,volume", "-o", listProps, pool)
	if err != nil {
		return nil, err
	}
	return parseTree(out)
}

// parseTree reads Tree's output (listProps, tab separated, -p numbers); snapshots, should
// any come, are left out.
func parseTree(out string) ([]*Dataset, error) {
	var ds []*Dataset
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != strings.Count(listProps, ",")+1 {
			return nil, fmt.Errorf("zfs list: %d columns in %q", len(f), line)
		}
		if f[6] != gozfs.DatasetFilesystem && f[6] != gozfs.DatasetVolume {
			continue
		}
		d := &Dataset{Name: f[0], Type: f[6]}
		if f[1] != "-" {
			d.Origin = f[1]
		}
		for _, n := range []struct {
			to  *uint64
			col int
		}{{&d.Used, 2}, {&d.Avail, 3}, {&d.Volsize, 7}, {&d.Referenced, 9}, {&d.Written, 10}} {
			if f[n.col] == "-" || f[n.col] == "" {
				continue
			}
			v, err := strconv.ParseUint(f[n.col], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("zfs list: %s of %s: %w", strings.Split(listProps, ",")[n.col], f[0], err)
			}
			*n.to = v
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// SnapshotOnly takes dataset@snap with the plain command, when its guid is not needed (a
// group's origin): the same one command as by hand, where Snapshot's channel program also
// reads the guid. An existing snapshot is success (created false). The kernel takes it
// again in the next txg when the dataset got another snapshot in this one.
func (z *ZFS) SnapshotOnly(dataset, snap string) (created bool, err error) {
	_, err = z.run(context.Background(), "snapshot", dataset+"@"+snap)
	if errors.Is(err, activities.ErrExists) {
		return false, nil
	}
	return err == nil, err
}

// CreateFilesystem creates a file system and its missing parents. An existing file
// system is success (created false).
func (z *ZFS) CreateFilesystem(name string) (created bool, err error) {
	err = z.call("create-fs", name, func() error {
		_, err := gozfs.CreateFilesystem(name, nil)
		return err
	})
	if errors.Is(err, activities.ErrExists) {
		d, gerr := z.Get(name)
		if gerr != nil {
			return false, gerr
		}
		if d.Type != gozfs.DatasetFilesystem {
			return false, fmt.Errorf("%s exists as a %s: %w", name, d.Type, activities.ErrExists)
		}
		return false, nil
	}
	return err == nil, err
}

// CreateVolume creates a sparse (thin) volume of size bytes, with one command: the
// volume's size is the size asked (the panel asks whole GiB, a multiple of every
// volblocksize), so it is not read back. An existing volume is success (created false)
// whatever its size: the caller compares Volsize.
func (z *ZFS) CreateVolume(name string, size uint64) (*Dataset, bool, error) {
	// -s is refreservation=none: no space is reserved.
	_, err := z.run(context.Background(), "create", "-p", "-s", "-V", fmt.Sprint(size), name)
	z.changes.Add(1)
	if errors.Is(err, activities.ErrExists) {
		got, gerr := z.Get(name)
		if gerr != nil {
			return nil, false, gerr
		}
		if got.Type != gozfs.DatasetVolume {
			return nil, false, fmt.Errorf("%s exists as a %s: %w", name, got.Type, activities.ErrExists)
		}
		return got, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return &Dataset{Name: name, Type: gozfs.DatasetVolume, Volsize: size}, true, nil
}

// SetVolsize sets a volume's size in bytes; setting the current size again is harmless.
func (z *ZFS) SetVolsize(name string, size uint64) error {
	return z.call("set-volsize", name, func() error {
		return (&gozfs.Dataset{Name: name}).SetProperty("volsize", fmt.Sprint(size))
	})
}

// GUID returns a dataset's or snapshot's guid.
func (z *ZFS) GUID(name string) (string, error) {
	var v string
	err := z.call("guid", name, func() (err error) {
		v, err = (&gozfs.Dataset{Name: name}).GetProperty("guid")
		return err
	})
	return v, err
}

// Snapshot takes dataset@snap and returns its guid. An existing snapshot is success:
// its guid is returned (created false). Both happen in one command, a channel program
// (`zfs program`), where OpenZFS runs them in the kernel: a command costs far more than
// either step on a busy server. Snapshots asked for meanwhile on the same pool share the
// program (see snapshotBatcher). Where channel programs are refused, two commands do it.
func (z *ZFS) Snapshot(dataset, snap string) (guid string, created bool, err error) {
	z.snapsOnce.Do(func() { z.snaps = newSnapshotBatcher(z, snapshotWindow) })
	return z.snaps.snapshot(dataset, snap)
}

// snapshotWindow is how long a lone snapshot request waits for others to share its
// program: none. A lone publish runs at once (a wait of a few milliseconds showed in
// every publish's time); the requests of a burst that arrive while its first program
// runs share the next one, which is where a burst's batching comes from.
const snapshotWindow = 0

// snapshotAlone takes one snapshot with snapshotLua; errAgain when the dataset got
// another snapshot in the same txg.
func (z *ZFS) snapshotAlone(dataset, snap string) (guid string, created bool, err error) {
	full := dataset + "@" + snap
	pool, _, _ := strings.Cut(dataset, "/")
	// The program is read from standard input (zfs program reads its script file to EOF).
	out, _, err := z.runIn(context.Background(), strings.NewReader(snapshotLua), "program", "-j", pool, "/dev/stdin", full)
	if err == nil {
		guid, created, err = parseSnapshotProgram([]byte(out))
		if err == nil {
			return guid, created, nil
		}
		if errors.Is(err, activities.ErrDatasetNotFound) {
			return "", false, fmt.Errorf("%s: %w", dataset, err)
		}
		if errors.Is(err, errAgain) {
			return "", false, err
		}
	}
	if errors.Is(err, activities.ErrPoolNotFound) {
		return "", false, err
	}
	programRefused.Do(func() { z.Log.Info("zfs program refused: snapshots take two commands", "target", full, "err", err) })
	return z.snapshotTwoCommands(dataset, snap)
}

func (z *ZFS) snapshotTwoCommands(dataset, snap string) (guid string, created bool, err error) {
	if created, err = z.SnapshotOnly(dataset, snap); err != nil {
		return "", false, err
	}
	guid, err = z.GUID(dataset + "@" + snap)
	return guid, created, err
}

// SnapshotProgram is snapshotLua, for a benchmark that runs the agent's program by hand.
const SnapshotProgram = snapshotLua

// snapshotLua takes the snapshot named by its argument (EEXIST is not an error: a retry)
// and returns whether it made it and the snapshot's guid. Errors come back as an errno.
const snapshotLua = `args = ...
snap = args["argv"][1]
err = zfs.sync.snapshot(snap)
if err ~= 0 and err ~= 17 then
	return {errno = err}
end
return {created = (err == 0), guid = zfs.get_prop(snap, "guid")}
`

// programRefused says once per process that channel programs are not used.
var programRefused sync.Once

// parseSnapshotProgram reads snapshotLua's answer as `zfs program -j` prints it. The
// guid is a 64-bit unsigned number that Lua holds as a signed one.
func parseSnapshotProgram(out []byte) (guid string, created bool, err error) {
	var v struct {
		Return programAnswer `json:"return"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", false, fmt.Errorf("zfs program: %w: %q", err, out)
	}
	return v.Return.result()
}

// Clone clones snapshot into dest. An existing dest that is a clone of the same snapshot
// is success (created false); any other existing dest is ErrExists.
func (z *ZFS) Clone(snapshot, dest string) (created bool, err error) {
	// One command: go-zfs would read the clone back, which nobody here needs.
	_, err = z.run(context.Background(), "clone", "-p", snapshot, dest)
	z.changes.Add(1)
	if errors.Is(err, activities.ErrExists) {
		d, gerr := z.Get(dest)
		if gerr != nil {
			return false, gerr
		}
		if d.Origin != snapshot {
			return false, fmt.Errorf("%s exists and is not a clone of %s: %w", dest, snapshot, activities.ErrExists)
		}
		return false, nil
	}
	return err == nil, err
}

// Rename moves src to dst (dst's parent must exist). When src is gone and dst exists, the
// rename already happened (a retried activity): success. When both exist: ErrExists.
func (z *ZFS) Rename(src, dst string) error {
	err := z.call("rename", src+" -> "+dst, func() error {
		_, err := (&gozfs.Dataset{Name: src}).Rename(dst, false, false)
		return err
	})
	if err == nil {
		return nil
	}
	if errors.Is(err, activities.ErrDatasetNotFound) || errors.Is(err, activities.ErrExists) {
		srcThere, serr := z.Lookup(src)
		if serr != nil {
			return serr
		}
		dstThere, derr := z.Lookup(dst)
		if derr != nil {
			return derr
		}
		switch {
		case srcThere == nil && dstThere != nil:
			return nil
		case srcThere != nil && dstThere != nil:
			return fmt.Errorf("rename %s: %s %w", src, dst, activities.ErrExists)
		}
	}
	return err
}

// Destroy destroys a dataset (with its snapshots when recursive, never dependent clones).
// A dataset that is already gone is success. Only the erator purge calls it.
func (z *ZFS) Destroy(name string, recursive bool) error {
	flags := gozfs.DestroyDefault
	if recursive {
		flags = gozfs.DestroyRecursive
	}
	err := z.call("destroy", name, func() error {
		return (&gozfs.Dataset{Name: name}).Destroy(flags)
	})
	if errors.Is(err, activities.ErrDatasetNotFound) {
		return nil
	}
	return err
}

// SetProperty sets a dataset's property; setting the value it has is harmless.
func (z *ZFS) SetProperty(name, prop, value string) error {
	return z.call("set-"+prop, name, func() error {
		return (&gozfs.Dataset{Name: name}).SetProperty(prop, value)
	})
}
