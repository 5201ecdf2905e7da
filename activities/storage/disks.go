package storage

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
)

// ZFSDisks is the pool as the agent's boot path sees it (boot.Disks): group versions are
// the @v<N> snapshots of <pool>/iscsi/groups/<g>, disks are zvols under /dev/zvol.
type ZFSDisks struct {
	ZFS     *zfs.ZFS
	Pool    string
	DevRoot string // default /dev/zvol

	mu    sync.Mutex
	guids map[string]string // snapshot -> guid; snapshots never change their guid
}

func (z *ZFSDisks) node(dataset string) (string, bool, error) {
	root := z.DevRoot
	if root == "" {
		root = "/dev/zvol"
	}
	p := root + "/" + dataset
	_, err := os.Stat(p)
	if os.IsNotExist(err) {
		return p, false, nil
	}
	return p, err == nil, err
}

// DevicePath is the block device of <pool>/iscsi/devices/<id>.
func (z *ZFSDisks) DevicePath(_ context.Context, id uint) (string, bool, error) {
	return z.node(DeviceDataset(z.Pool, id))
}

// GroupPath is the block device of the group head <pool>/iscsi/groups/<id>.
func (z *ZFSDisks) GroupPath(_ context.Context, id uint) (string, bool, error) {
	return z.node(GroupDataset(z.Pool, id))
}

// VolumePath is the block device of <pool>/iscsi/volumes/<id>.
func (z *ZFSDisks) VolumePath(_ context.Context, id uint) (string, bool, error) {
	return z.node(VolumeDataset(z.Pool, id))
}

// VDiskPath is the block device of <pool>/vdisks/<id>.
func (z *ZFSDisks) VDiskPath(_ context.Context, id uint) (string, bool, error) {
	return z.node(VDiskDataset(z.Pool, id))
}

// Versions lists the group's @v<N> snapshots on this pool with their guids.
func (z *ZFSDisks) Versions(_ context.Context, groupID uint) (map[int]string, error) {
	ds := GroupDataset(z.Pool, groupID)
	kids, err := z.ZFS.Children(ds)
	if errors.Is(err, activities.ErrDatasetNotFound) {
		return map[int]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, k := range kids {
		at := strings.LastIndexByte(k.Name, '@')
		if k.Type != "snapshot" || at < 0 || k.Name[:at] != ds || !strings.HasPrefix(k.Name[at+1:], "v") {
			continue
		}
		n, err := strconv.Atoi(k.Name[at+2:])
		if err != nil || n <= 0 {
			continue
		}
		guid, err := z.guid(k.Name)
		if err != nil {
			return nil, err
		}
		out[n] = guid
	}
	return out, nil
}

func (z *ZFSDisks) guid(snap string) (string, error) {
	z.mu.Lock()
	g, ok := z.guids[snap]
	z.mu.Unlock()
	if ok {
		return g, nil
	}
	g, err := z.ZFS.GUID(snap)
	if err != nil {
		return "", err
	}
	z.mu.Lock()
	if z.guids == nil {
		z.guids = map[string]string{}
	}
	z.guids[snap] = g
	z.mu.Unlock()
	return g, nil
}
