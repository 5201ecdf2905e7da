package storage

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/clusterducks/clusterducks/activities/storage/zfs"
)

// snaps builds a listing, oldest first: "backup-3:g3" is backup-3 with guid g3.
func snaps(specs ...string) []zfs.Snap {
	out := make([]zfs.Snap, 0, len(specs))
	for _, s := range specs {
		var name, guid string
		for i := range s {
			if s[i] == ':' {
				name, guid = s[:i], s[i+1:]
			}
		}
		out = append(out, zfs.Snap{Name: name, GUID: guid})
	}
	return out
}

// series is backup-<from>..backup-<to> with guids g<n>.
func series(from, to int, extra ...string) []string {
	var out []string
	for n := from; n <= to; n++ {
		out = append(out, fmt.Sprintf("backup-%d:g%d", n, n))
	}
	return append(out, extra...)
}

// TestPlanVDiskPrune: the newest keep backup snapshots stay on every server; older ones
// go, unless one is the newest snapshot a backup server shares with the vdisk's server
// (its next incremental's base: kept on every server); snapshots that are not the reconcile's backups (a
// move's) never go.
func TestPlanVDiskPrune(t *testing.T) {
	for _, c := range []struct {
		name        string
		own         []string
		backups     [][]string
		keep        int
		wantOwn     []string
		wantBackups [][]string
	}{
		{"nothing beyond keep", series(1, 3), [][]string{series(1, 3)}, 3, nil, [][]string{nil}},
		{"older ones go everywhere", series(1, 5), [][]string{series(1, 5)}, 3,
			[]string{"backup-1", "backup-2"}, [][]string{{"backup-1", "backup-2"}}},
		{"a lagging backup's base stays on both", series(1, 6), [][]string{series(1, 2), series(1, 6)}, 2,
			[]string{"backup-1", "backup-3", "backup-4"}, [][]string{nil, {"backup-1", "backup-3", "backup-4"}}},
		{"base matched by guid, not name", series(1, 5), [][]string{{"renamed:g2"}}, 2,
			[]string{"backup-1", "backup-3"}, [][]string{nil}},
		{"a move's snapshots stay", append([]string{"move-1:m1"}, series(1, 4)...), [][]string{append([]string{"move-1:m1"}, series(1, 4)...)}, 2,
			[]string{"backup-1", "backup-2"}, [][]string{{"backup-1", "backup-2"}}},
		{"no backup server", series(1, 4), nil, 1, []string{"backup-1", "backup-2", "backup-3"}, [][]string{}},
		{"a backup holding nothing in common", series(5, 8), [][]string{series(1, 3)}, 2,
			[]string{"backup-5", "backup-6"}, [][]string{{"backup-1"}}},
		{"keep below one keeps one", series(1, 3), [][]string{series(1, 3)}, 0,
			[]string{"backup-1", "backup-2"}, [][]string{{"backup-1", "backup-2"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			backups := make([][]zfs.Snap, len(c.backups))
			for i, b := range c.backups {
				backups[i] = snaps(b...)
			}
			own, got := PlanVDiskPrune(snaps(c.own...), backups, c.keep)
			if !reflect.DeepEqual(own, c.wantOwn) || !reflect.DeepEqual(got, c.wantBackups) {
				t.Errorf("destroy %q on its server and %q on the backups; want %q and %q", own, got, c.wantOwn, c.wantBackups)
			}
		})
	}
}

// TestPruneSnapshots: the named snapshots are destroyed, a held one (a transfer under way)
// is kept and said so, one already gone counts as destroyed, and nothing outside the
// replicated roots or by an odd name is touched.
func TestPruneSnapshots(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	for _, n := range []string{"backup-1", "backup-2", "backup-3"} {
		f.snapshot("tank/vdisks/6", n)
	}
	if err := f.Hold(ctx, "clusterducks-slave-3", "tank/vdisks/6@backup-2"); err != nil {
		t.Fatal(err)
	}
	a := &Activities{ReplicationZFS: f}
	res, err := a.PruneSnapshots(ctx, PruneSnapshotsInput{Pool: "tank", Dataset: "vdisks/6", Names: []string{"backup-1", "backup-2", "backup-9"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Destroyed, []string{"backup-1", "backup-9"}) || len(res.Kept) != 1 || res.Kept[0].Name != "backup-2" {
		t.Fatalf("result %+v", res)
	}
	left, _ := f.Snapshots(ctx, "tank/vdisks/6")
	if len(left) != 2 || left[0].Name != "backup-2" || left[1].Name != "backup-3" {
		t.Fatalf("left %+v", left)
	}
	for _, in := range []PruneSnapshotsInput{
		{Pool: "tank", Dataset: "iscsi/devices/3", Names: []string{"backup-3"}},
		{Pool: "tank", Dataset: "vdisks/6", Names: []string{"backup-3 -r"}},
		{Pool: "tank", Dataset: "vdisks/6", Names: []string{"x@y"}},
	} {
		if _, err := a.PruneSnapshots(ctx, in); err == nil {
			t.Errorf("%+v: no error", in)
		}
	}
	if left, _ := f.Snapshots(ctx, "tank/vdisks/6"); len(left) != 2 {
		t.Fatalf("refused prunes destroyed something: %+v", left)
	}
}
