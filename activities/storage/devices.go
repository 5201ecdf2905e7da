package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
)

// Devices are the agent's activities of the boot path: cloning a device's disk from a
// group version and exporting or unexporting targets on the agent's own iSCSI target.
// One value per agent; the methods are safe to repeat.
type Devices struct {
	ZFS *zfs.ZFS
	// Exports is the agent's boot service: it owns the iSCSI target and records what is
	// exported for a restart.
	Exports Exporter
	// DevRoot is where zvols appear as block devices (default /dev/zvol).
	DevRoot string
	// NodeWait bounds the wait for a new zvol's device node (udev), default 60 s.
	NodeWait time.Duration
}

// Exporter adds and removes the agent's targets (boot.Service).
type Exporter interface {
	Export(iqn string, e wire.Export, path string) error
	Unexport(iqn string) error
	// AttachVDisk serves vdisk (0: none) as LUN 1 of the device's target, now and at every
	// later export; leaving a booted device is activities.ErrDeviceBooted.
	AttachVDisk(ctx context.Context, networkID, deviceID, vdisk uint, leaving bool) error
}

func (d *Devices) devRoot() string {
	if d.DevRoot != "" {
		return d.DevRoot
	}
	return "/dev/zvol"
}

// zvolPath is the block device of a zvol dataset.
func (d *Devices) zvolPath(dataset string) string { return d.devRoot() + "/" + dataset }

// CloneDeviceInput clones group GroupID's version Version into device DeviceID's disk.
type CloneDeviceInput struct {
	Pool     string
	GroupID  uint
	Version  int
	DeviceID uint
}

// CloneDeviceResult names the device's disk, its origin and its block device.
type CloneDeviceResult struct {
	Dataset string
	Origin  string
	Path    string
	Created bool
}

// CloneDevice clones <pool>/iscsi/groups/<g>@v<N> into <pool>/iscsi/devices/<d> and waits
// for its block device. A disk an earlier attempt cloned from the same version is success;
// a disk from another version is ErrExists (the workflow trashes it first).
func (d *Devices) CloneDevice(ctx context.Context, in CloneDeviceInput) (*CloneDeviceResult, error) {
	res := &CloneDeviceResult{Dataset: DeviceDataset(in.Pool, in.DeviceID),
		Origin: GroupDataset(in.Pool, in.GroupID) + "@" + VersionSnapshot(in.Version)}
	res.Path = d.zvolPath(res.Dataset)
	// A disk just renamed into the erator may still have its /dev/zvol link under the
	// device's name until udev handles the rename: opening that path now would serve the
	// old disk. Let udev finish first, and again after the clone.
	d.settle(ctx)
	// Where the name's link leads before the clone exists is the old disk's zvol (renamed
	// into the erator, its link not moved yet): the new disk is a different one.
	stale := ""
	if cur, err := d.ZFS.Lookup(res.Dataset); err == nil && cur == nil {
		if t, err := filepath.EvalSymlinks(res.Path); err == nil {
			stale = t
		}
	}
	created, err := d.ZFS.Clone(res.Origin, res.Dataset)
	if err != nil {
		return nil, activities.Wrap(fmt.Errorf("clone device %d: %w", in.DeviceID, err))
	}
	res.Created = created
	d.settle(ctx)
	if err := d.waitNode(ctx, res.Path, res.Dataset, stale); err != nil {
		return nil, err
	}
	return res, nil
}

// settle waits for udev to process the events queued so far (zvol links follow renames
// and clones asynchronously). Without udevadm (a file-backed pool) it does nothing.
func (d *Devices) settle(ctx context.Context) {
	if d.DevRoot != "" {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	exec.CommandContext(sctx, "udevadm", "settle", "--timeout=50").Run() //nolint:errcheck
}

// waitNode waits until the zvol's link exists and leads to the zvol of that dataset (and
// not to stale, the old disk's device, when given).
// Renames and clones reach /dev/zvol asynchronously (OpenZFS creates and renames minors
// in a task queue, then udev moves the links): right after a reprovision the device's
// link can still lead to its old disk, now in the erator. The zvol itself says which
// dataset it is (BLKZNAME), so the link is only trusted once they agree.
func (d *Devices) waitNode(ctx context.Context, path, dataset, stale string) error {
	wait := d.NodeWait
	if wait <= 0 {
		wait = time.Minute
	}
	deadline := time.Now().Add(wait)
	last := "missing"
	for {
		name, err := zvolName(path)
		if err == nil && stale != "" {
			if t, lerr := filepath.EvalSymlinks(path); lerr != nil || t == stale {
				// The old disk's zvol can still carry the name until OpenZFS renames its minor.
				name = "the old disk"
			}
		}
		switch {
		case err == nil && (name == dataset || d.DevRoot != ""):
			return nil
		case errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EINVAL):
			// Not a zvol (a file-backed pool): existence is all there is to check.
			return nil
		case err == nil:
			last = "the zvol of " + name
		case !os.IsNotExist(err):
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is %s, not %s, after %s", path, last, dataset, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// blkzname is OpenZFS's BLKZNAME ioctl, _IOR(0x12, 125, char[256]): a zvol's dataset name.
const blkzname = 2<<30 | 256<<16 | 0x12<<8 | 125

// zvolName asks the block device at path which dataset it is.
func zvolName(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var buf [256]byte
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), blkzname, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
		return "", errno
	}
	n := bytes.IndexByte(buf[:], 0)
	if n < 0 {
		n = len(buf)
	}
	return string(buf[:n]), nil
}

// ExportInput exports a disk as a target admitting one device's initiator.
type ExportInput struct {
	Kind      string // device, group, volume
	ID        uint
	NetworkID uint
	UUID      string
	Pool      string
}

// ExportResult names the target.
type ExportResult struct {
	IQN  string
	Path string
}

func (d *Devices) target(in ExportInput) (iqn, dataset string, err error) {
	iqn = in.export().IQN()
	switch in.Kind {
	case "device":
		return iqn, DeviceDataset(in.Pool, in.ID), nil
	case "group":
		return iqn, GroupDataset(in.Pool, in.ID), nil
	case "volume":
		return iqn, VolumeDataset(in.Pool, in.ID), nil
	}
	return "", "", errors.New("export: kind must be device, group or volume")
}

// export is the target as the panel lists it.
func (in ExportInput) export() wire.Export {
	return wire.Export{Kind: in.Kind, ID: in.ID, NetworkID: in.NetworkID, UUID: in.UUID}
}

// ExportTarget exports the disk on this agent's target (read-write, ACL = the device's
// iPXE initiator name), replacing a target of that name (its sessions end). Safe to repeat.
func (d *Devices) ExportTarget(ctx context.Context, in ExportInput) (*ExportResult, error) {
	iqn, ds, err := d.target(in)
	if err != nil {
		return nil, err
	}
	res := &ExportResult{IQN: iqn, Path: d.zvolPath(ds)}
	d.settle(ctx)
	if err := d.waitNode(ctx, res.Path, ds, ""); err != nil {
		return nil, err
	}
	// Replace whatever target has the name: it may hold the disk this one replaced.
	if err := d.Exports.Unexport(iqn); err != nil {
		return nil, fmt.Errorf("export %s: %w", iqn, err)
	}
	if err := d.Exports.Export(iqn, in.export(), res.Path); err != nil {
		return nil, fmt.Errorf("export %s: %w", iqn, err)
	}
	return res, nil
}

// UnexportTarget removes the disk's target (ending its sessions); a target that is not
// exported is success.
func (d *Devices) UnexportTarget(ctx context.Context, in ExportInput) (*ExportResult, error) {
	iqn, ds, err := d.target(in)
	if err != nil {
		return nil, err
	}
	if err := d.Exports.Unexport(iqn); err != nil {
		return nil, fmt.Errorf("unexport %s: %w", iqn, err)
	}
	return &ExportResult{IQN: iqn, Path: d.zvolPath(ds)}, nil
}

// RestoreDeviceInput puts a device's disk back from the erator: From (a dataset under
// <pool>/erator), or when empty the newest device-<id>-* entry older than Unix. The
// current disk, if any, goes to the erator as device-<id>-<Unix> first (nothing is lost).
type RestoreDeviceInput struct {
	Pool     string
	DeviceID uint
	From     string
	Unix     int64 // the workflow's time: names the current disk's erator entry
}

// RestoreDeviceResult names what was restored and the group version it was cloned from.
type RestoreDeviceResult struct {
	From    string
	Origin  string // <pool>/iscsi/groups/<g>@v<N>, "" when unknown
	GroupID uint
	Version int
}

// RestoreDevice swaps the device's disk with an erator entry. A retry that finds the swap
// done (the entry gone, the disk there) reports the disk's origin.
func (d *Devices) RestoreDevice(ctx context.Context, in RestoreDeviceInput) (*RestoreDeviceResult, error) {
	disk := DeviceDataset(in.Pool, in.DeviceID)
	res := &RestoreDeviceResult{From: in.From}
	if res.From == "" {
		trash, err := d.ZFS.Children(Erator(in.Pool))
		if err != nil && !errors.Is(err, activities.ErrDatasetNotFound) {
			return nil, activities.Wrap(err)
		}
		var best *EratorEntry
		for _, t := range trash {
			e, ok := ParseEratorName(t.Name)
			if ok && e.Kind == "device" && e.ID == in.DeviceID && e.Unix < in.Unix && (best == nil || e.Unix > best.Unix) {
				best = &e
			}
		}
		if best == nil {
			return nil, activities.Wrap(fmt.Errorf("device %d: %w", in.DeviceID, activities.ErrNotInErator))
		}
		res.From = best.Name
	}
	if e, ok := ParseEratorName(res.From); !ok || e.Kind != "device" || e.ID != in.DeviceID || !strings.HasPrefix(res.From, Erator(in.Pool)+"/") {
		return nil, activities.Wrap(fmt.Errorf("%s is not an erator entry of device %d: %w", res.From, in.DeviceID, activities.ErrNotInErator))
	}
	from, err := d.ZFS.Lookup(res.From)
	if err != nil {
		return nil, activities.Wrap(err)
	}
	if from != nil {
		if cur, err := d.ZFS.Lookup(disk); err != nil {
			return nil, activities.Wrap(err)
		} else if cur != nil {
			if err := d.ZFS.Rename(disk, EratorDataset(in.Pool, "device", in.DeviceID, in.Unix)); err != nil {
				return nil, activities.Wrap(err)
			}
		}
		if err := d.ZFS.Rename(res.From, disk); err != nil {
			return nil, activities.Wrap(err)
		}
	}
	now, err := d.ZFS.Get(disk)
	if err != nil {
		return nil, activities.Wrap(err)
	}
	res.Origin = now.Origin
	res.GroupID, res.Version = parseVersionOrigin(in.Pool, now.Origin)
	return res, nil
}

// parseVersionOrigin reads <pool>/iscsi/groups/<g>@v<N>.
func parseVersionOrigin(pool, origin string) (uint, int) {
	rest, ok := strings.CutPrefix(origin, pool+"/iscsi/groups/")
	if !ok {
		return 0, 0
	}
	g, v, ok := strings.Cut(rest, "@v")
	if !ok {
		return 0, 0
	}
	gid, err1 := strconv.ParseUint(g, 10, 32)
	n, err2 := strconv.Atoi(v)
	if err1 != nil || err2 != nil {
		return 0, 0
	}
	return uint(gid), n
}

// AttachVDiskInput moves vdisk VDiskID from device From (0: none) to device To (0: none),
// both of network NetworkID, on this server.
type AttachVDiskInput struct {
	NetworkID uint
	VDiskID   uint
	From, To  uint
	Pool      string
}

// AttachVDiskResult names the vdisk's block device.
type AttachVDiskResult struct {
	Path string
}

// AttachVDisk makes the vdisk LUN 1 of device To's target and no longer of device From's:
// refused (DeviceBooted) while From is logged in to its target. The vdisk's zvol must be
// here. Safe to repeat: a retry after From was left finds nothing to refuse.
func (d *Devices) AttachVDisk(ctx context.Context, in AttachVDiskInput) (*AttachVDiskResult, error) {
	res := &AttachVDiskResult{Path: d.zvolPath(VDiskDataset(in.Pool, in.VDiskID))}
	if in.To != 0 {
		d.settle(ctx)
		if err := d.waitNode(ctx, res.Path, VDiskDataset(in.Pool, in.VDiskID), ""); err != nil {
			return nil, err
		}
	}
	if in.From != 0 && in.From != in.To {
		if err := d.Exports.AttachVDisk(ctx, in.NetworkID, in.From, 0, true); err != nil {
			return nil, activities.Wrap(err)
		}
	}
	if in.To != 0 {
		if err := d.Exports.AttachVDisk(ctx, in.NetworkID, in.To, in.VDiskID, false); err != nil {
			return nil, err
		}
	}
	return res, nil
}
