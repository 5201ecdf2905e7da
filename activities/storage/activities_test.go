package storage

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
	"github.com/clusterducks/clusterducks/activities/storage/zfs/zfstest"
)

const fixtures = "zfs/testdata"

// The recorded pool "tank" is 8 GiB with 1 GiB + 1 GiB + 1 GiB + 1 GiB + 512 MiB of volumes
// (volumes/1, its clone groups/2, devices/3, the erator's device-4, vdisks/6).
func TestCreateVolumeAgainstTheRecordedPool(t *testing.T) {
	a := &Activities{ZFS: zfs.New(nil)}
	ctx := context.Background()
	log := zfstest.Fake(t, fixtures, map[string]string{"zpool get": "out:zpool-get.txt", "zfs list": "out:zfs-list-all.txt"})

	// Volume 1 exists: a retried create reports it, creates nothing.
	res, err := a.CreateVolume(ctx, VolumeInput{Pool: "tank", VolumeID: 1, Size: 1 << 30})
	if err != nil || res.Created || res.Volsize != 1<<30 {
		t.Fatalf("existing volume: %+v %v", res, err)
	}
	if res.Provisioned != 4<<30+512<<20 || res.Capacity == 0 || res.Overcommitted {
		t.Errorf("provisioning: %+v", res)
	}
	// 100 GiB can never fit an 8 GiB pool.
	_, err = a.CreateVolume(ctx, VolumeInput{Pool: "tank", VolumeID: 9, Size: 100 << 30})
	if !errors.Is(err, activities.ErrTooLarge) || !activities.IsType(err, activities.TypeTooLarge) || !strings.Contains(err.Error(), "more than pool tank can ever hold") {
		t.Errorf("too large: %v", err)
	}
	b, _ := os.ReadFile(log)
	if strings.Contains(string(b), "zfs create") {
		t.Errorf("a create ran:\n%s", b)
	}
}

func TestCreateVolumeOvercommitWarns(t *testing.T) {
	a := &Activities{ZFS: zfs.New(nil)}
	zfstest.Fake(t, fixtures, map[string]string{
		"zpool get":  "out:zpool-get.txt",
		"zfs list":   "out:zfs-list-all.txt",
		"zfs create": "out:zfs-get-guid.txt",
	})
	// 7 GiB fits the pool but, with the 4.5 GiB already promised, overcommits it.
	res, err := a.CreateVolume(context.Background(), VolumeInput{Pool: "tank", VolumeID: 9, Size: 7 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || !res.Overcommitted || res.Provisioned != 11<<30+512<<20 {
		t.Errorf("overcommit: %+v", res)
	}
}

func TestPoolMissingIsTyped(t *testing.T) {
	a := &Activities{ZFS: zfs.New(nil)}
	zfstest.Fake(t, fixtures, map[string]string{"zpool get": "err:err-zpool-get-missing.stderr"})
	_, err := a.Bootstrap(context.Background(), PoolInput{Pool: "nopool"})
	if !activities.IsType(err, activities.TypePoolNotFound) || !strings.Contains(err.Error(), "pool nopool does not exist on this server") {
		t.Errorf("bootstrap on a missing pool: %v", err)
	}
}

// A second create soon after the first reuses the pool's listing: one zfs command (the
// create) instead of three, and the first volume counts in the provisioning.
func TestCreateVolumeKeepsTheRoom(t *testing.T) {
	a := &Activities{ZFS: zfs.New(nil)}
	log := zfstest.Fake(t, fixtures, map[string]string{
		"zpool get":  "out:zpool-get.txt",
		"zfs list":   "out:zfs-list-all.txt",
		"zfs create": "out:zfs-get-guid.txt",
	})
	ctx := context.Background()
	if _, err := a.CreateVolume(ctx, VolumeInput{Pool: "tank", VolumeID: 9, Size: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(log)
	res, err := a.CreateVolume(ctx, VolumeInput{Pool: "tank", VolumeID: 10, Size: 1 << 30})
	if err != nil || !res.Created || res.Provisioned != 6<<30+512<<20 {
		t.Fatalf("second create: %+v %v", res, err)
	}
	after, _ := os.ReadFile(log)
	if calls := strings.TrimPrefix(string(after), string(before)); strings.Count(calls, "\n") != 1 || !strings.HasPrefix(calls, "zfs create") {
		t.Errorf("second create ran:\n%s", calls)
	}
	// Any other change through the agent (a rename here) makes the next create read again.
	a.ZFS.Changed()
	before = after
	if _, err := a.CreateVolume(ctx, VolumeInput{Pool: "tank", VolumeID: 11, Size: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	after, _ = os.ReadFile(log)
	if calls := strings.TrimPrefix(string(after), string(before)); !strings.Contains(calls, "zfs list") {
		t.Errorf("create after a change did not list the pool:\n%s", calls)
	}
}
