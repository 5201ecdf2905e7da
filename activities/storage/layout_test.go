package storage

import (
	"reflect"
	"testing"

	"github.com/clusterducks/clusterducks/activities/storage/zfs"
)

func TestNamesComeFromIDs(t *testing.T) {
	cases := []struct{ got, want string }{
		{VolumeDataset("tank", 7), "tank/iscsi/volumes/7"},
		{GroupDataset("tank", 3), "tank/iscsi/groups/3"},
		{DeviceDataset("tank", 9), "tank/iscsi/devices/9"},
		{EratorDataset("tank", "volume", 7, 1700000000), "tank/erator/volume-7-1700000000"},
		{VersionSnapshot(2), "v2"},
		{GroupOriginSnapshot(3), "group-3"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	want := []string{"tank/iscsi", "tank/iscsi/devices", "tank/iscsi/containers", "tank/iscsi/ctemplates",
		"tank/iscsi/groups", "tank/iscsi/volumes", "tank/vdisks", "tank/erator"}
	if got := Layout("tank"); !reflect.DeepEqual(got, want) {
		t.Errorf("Layout = %v", got)
	}
}

func TestParseEratorName(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
		want EratorEntry
	}{
		{"tank/erator/volume-7-1700000000", true, EratorEntry{Name: "tank/erator/volume-7-1700000000", Kind: "volume", ID: 7, Unix: 1700000000}},
		{"tank/erator/group-3-5", true, EratorEntry{Name: "tank/erator/group-3-5", Kind: "group", ID: 3, Unix: 5}},
		{"tank/erator", false, EratorEntry{}},
		{"tank/erator/volume-x-1", false, EratorEntry{}},
		{"tank/erator/volume-7-1@snap", false, EratorEntry{}},
		{"tank/iscsi/volumes/7", false, EratorEntry{}},
		{"tank/erator/a-b-c-d", false, EratorEntry{}},
	}
	for _, c := range cases {
		got, ok := ParseEratorName(c.name)
		if ok != c.ok || got != c.want {
			t.Errorf("ParseEratorName(%q) = %+v %v", c.name, got, ok)
		}
	}
}

func TestPlanPurgeOrder(t *testing.T) {
	ds := func(name, typ, origin string, used uint64) *zfs.Dataset {
		return &zfs.Dataset{Name: name, Type: typ, Origin: origin, Used: used}
	}
	all := []*zfs.Dataset{
		ds("tank", "filesystem", "", 0),
		ds("tank/erator", "filesystem", "", 0),
		// A trashed volume with a trashed group cloned from it: group first, then volume.
		ds("tank/erator/volume-1-100", "volume", "", 10),
		ds("tank/erator/volume-1-100@group-2", "snapshot", "", 0),
		ds("tank/erator/group-2-150", "volume", "tank/erator/volume-1-100@group-2", 5),
		// A trashed volume that a live group still uses: kept.
		ds("tank/erator/volume-3-100", "volume", "", 7),
		ds("tank/erator/volume-3-100@group-4", "snapshot", "", 0),
		ds("tank/iscsi/groups/4", "volume", "tank/erator/volume-3-100@group-4", 1),
		// Too recent: untouched.
		ds("tank/erator/volume-5-900", "volume", "", 3),
	}
	plan := PlanPurge(all, "tank", 500)
	var order []string
	for _, d := range plan.Destroy {
		order = append(order, d.Name)
	}
	if want := []string{"tank/erator/group-2-150", "tank/erator/volume-1-100"}; !reflect.DeepEqual(order, want) {
		t.Errorf("destroy order = %v, want %v", order, want)
	}
	if len(plan.Keep) != 1 || plan.Keep[0].Name != "tank/erator/volume-3-100" || plan.Keep[0].Reason != "clones depend on it: tank/iscsi/groups/4" {
		t.Errorf("keep = %+v", plan.Keep)
	}
	// Before 0: every entry, the recent one too (the live group's origin is still kept).
	all0 := PlanPurge(all, "tank", 0)
	order = nil
	for _, d := range all0.Destroy {
		order = append(order, d.Name)
	}
	if want := []string{"tank/erator/group-2-150", "tank/erator/volume-1-100", "tank/erator/volume-5-900"}; !reflect.DeepEqual(order, want) {
		t.Errorf("before 0: destroy order = %v, want %v", order, want)
	}
	if len(all0.Keep) != 1 || all0.Keep[0].Name != "tank/erator/volume-3-100" {
		t.Errorf("before 0: keep = %+v", all0.Keep)
	}
}
