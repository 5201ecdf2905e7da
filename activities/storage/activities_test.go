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
	ran := since(t, log)
	res, err := a.CreateVolume(ctx, VolumeInput{Pool: "tank", VolumeID: 10, Size: 1 << 30})
	if err != nil || !res.Created || res.Provisioned != 6<<30+512<<20 {
		t.Fatalf("second create: %+v %v", res, err)
	}
	if calls := ran(); strings.Count(calls, "\n") != 1 || !strings.HasPrefix(calls, "zfs create") {
		t.Errorf("second create ran:\n%s", calls)
	}
	// Any other change through the agent (a rename here) makes the next create read again.
	a.ZFS.Changed()
	if _, err := a.CreateVolume(ctx, VolumeInput{Pool: "tank", VolumeID: 11, Size: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if calls := ran(); !strings.Contains(calls, "zfs list") {
		t.Errorf("create after a change did not list the pool:\n%s", calls)
	}
}

// since returns a function that gives the fake zfs's commands logged since its last call
// (the first: since since).
func since(t *testing.T, log string) func() string {
	t.Helper()
	seen, _ := os.ReadFile(log)
	return func() string {
		now, _ := os.ReadFile(log)
		calls := strings.TrimPrefix(string(now), string(seen))
		seen = now
		return calls
	}
}

// The stats report reads the pool with two commands (its health, one listing of its file
// systems and volumes) and keeps that listing for the next create's size check.
func TestStatusListsOnceAndKeepsTheRoom(t *testing.T) {
	a := &Activities{ZFS: zfs.New(nil)}
	log := zfstest.Fake(t, fixtures, map[string]string{
		"zpool get":  "out:zpool-get.txt",
		"zfs list":   "out:zfs-list-all.txt",
		"zfs create": "out:zfs-get-guid.txt",
	})
	ctx := context.Background()
	ran := since(t, log)
	st, err := a.Status(ctx, PoolInput{Pool: "tank"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Capacity != 5799936+7795605504 || st.Available != 7795605504 || st.Provisioned != 4<<30+512<<20 || !st.Layout {
		t.Errorf("status: %+v", st)
	}
	if len(st.Erator) != 1 || st.Erator[0].Kind != "device" || st.Erator[0].ID != 4 || st.Erator[0].Origin != "tank/iscsi/groups/2@v1" {
		t.Errorf("erator: %+v", st.Erator)
	}
	if calls := ran(); strings.Count(calls, "\n") != 2 || !strings.Contains(calls, "zfs list -rHp -t filesystem,volume") {
		t.Errorf("status ran:\n%s", calls)
	}
	res, err := a.CreateVolume(ctx, VolumeInput{Pool: "tank", VolumeID: 9, Size: 1 << 30})
	if err != nil || !res.Created || res.Provisioned != 5<<30+512<<20 {
		t.Fatalf("create: %+v %v", res, err)
	}
	if calls := ran(); calls != "zfs create -p -s -V 1073741824 tank/iscsi/volumes/9\n" {
		t.Errorf("create after the stats ran:\n%s", calls)
	}
	// The next report reads the pool's health and the kept listing, with the new volume.
	again, err := a.Status(ctx, PoolInput{Pool: "tank"})
	if err != nil || again.Provisioned != 5<<30+512<<20 || len(again.Erator) != 1 || !again.Layout {
		t.Fatalf("second status: %+v %v", again, err)
	}
	if calls := ran(); !strings.HasPrefix(calls, "zpool get") || strings.Count(calls, "\n") != 1 {
		t.Errorf("second status ran:\n%s", calls)
	}
	// A change the agent cannot account for (a rename) makes the next report list again.
	a.ZFS.Changed()
	if _, err := a.Status(ctx, PoolInput{Pool: "tank"}); err != nil {
		t.Fatal(err)
	}
	if calls := ran(); !strings.Contains(calls, "zfs list") {
		t.Errorf("status after a change did not list the pool:\n%s", calls)
	}
}

// A group's origin snapshot is the plain command (its guid is not needed); one an earlier
// attempt took is success.
func TestCloneVolumeTakesThePlainSnapshot(t *testing.T) {
	a := &Activities{ZFS: zfs.New(nil)}
	log := zfstest.Fake(t, fixtures, map[string]string{
		"zfs snapshot": "err:err-zfs-snapshot-exists.stderr",
		"zfs clone":    "out:zfs-get-guid.txt",
	})
	res, err := a.CloneVolume(context.Background(), CloneInput{Pool: "tank", VolumeID: 1, GroupID: 7})
	if err != nil || !res.Created || res.Origin != "tank/iscsi/volumes/1@group-7" || res.Dataset != "tank/iscsi/groups/7" {
		t.Fatalf("clone: %+v %v", res, err)
	}
	b, _ := os.ReadFile(log)
	if want := "zfs snapshot tank/iscsi/volumes/1@group-7\nzfs clone -p tank/iscsi/volumes/1@group-7 tank/iscsi/groups/7\n"; string(b) != want {
		t.Errorf("commands:\n%s\nwant:\n%s", b, want)
	}
}

// A group cloned through the agent counts in the kept room (its origin's size): the next
// create runs one command, and its provisioning includes the clone.
func TestCloneKeepsTheRoom(t *testing.T) {
	a := &Activities{ZFS: zfs.New(nil)}
	log := zfstest.Fake(t, fixtures, map[string]string{
		"zpool get":    "out:zpool-get.txt",
		"zfs list":     "out:zfs-list-all.txt",
		"zfs create":   "out:zfs-get-guid.txt",
		"zfs snapshot": "out:zfs-get-guid.txt",
		"zfs clone":    "out:zfs-get-guid.txt",
	})
	ctx := context.Background()
	if _, err := a.CreateVolume(ctx, VolumeInput{Pool: "tank", VolumeID: 9, Size: 2 << 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CloneVolume(ctx, CloneInput{Pool: "tank", VolumeID: 9, GroupID: 7}); err != nil {
		t.Fatal(err)
	}
	ran := since(t, log)
	res, err := a.CreateVolume(ctx, VolumeInput{Pool: "tank", VolumeID: 10, Size: 1 << 30})
	if err != nil || !res.Created || res.Provisioned != 4<<30+512<<20+2<<30+2<<30+1<<30 {
		t.Fatalf("create after the clone: %+v %v", res, err)
	}
	if calls := ran(); calls != "zfs create -p -s -V 1073741824 tank/iscsi/volumes/10\n" {
		t.Errorf("create after the clone ran:\n%s", calls)
	}
}
