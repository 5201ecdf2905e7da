package zfs

import (
	"errors"
	"slices"
	"testing"

	"github.com/clusterducks/clusterducks/activities"
)

func TestSendArgs(t *testing.T) {
	for _, c := range []struct {
		in   SendArgs
		want []string
	}{
		{SendArgs{Snapshot: "tank/iscsi/volumes/5@group-7"}, []string{"send", "-c", "tank/iscsi/volumes/5@group-7"}},
		{SendArgs{Snapshot: "tank/iscsi/groups/7@v2", From: "tank/iscsi/volumes/5@group-7"}, []string{"send", "-c", "-I", "tank/iscsi/volumes/5@group-7", "tank/iscsi/groups/7@v2"}},
		{SendArgs{Snapshot: "tank/iscsi/groups/7@v2", From: "tank/iscsi/groups/7@v1", Raw: true}, []string{"send", "-w", "-I", "tank/iscsi/groups/7@v1", "tank/iscsi/groups/7@v2"}},
		{SendArgs{Snapshot: "ignored", From: "ignored", Token: "1-abc"}, []string{"send", "-t", "1-abc"}},
	} {
		if got := c.in.args(); !slices.Equal(got, c.want) {
			t.Errorf("%+v: %v, want %v", c.in, got, c.want)
		}
	}
}

func TestParseSnaps(t *testing.T) {
	out := "tank/iscsi/groups/7@v1\t111\t20\ntank/iscsi/groups/7@v2\t222\t31\n\n"
	got := parseSnaps(out)
	want := []Snap{{Name: "v1", GUID: "111", CreateTXG: 20}, {Name: "v2", GUID: "222", CreateTXG: 31}}
	if !slices.Equal(got, want) {
		t.Errorf("%+v", got)
	}
}

// The stderr of OpenZFS 2.1's send and receive, as a master or slave sees it.
func TestClassifyStream(t *testing.T) {
	for _, c := range []struct {
		stderr string
		want   error
	}{
		{"cannot resume send: 'tank/iscsi/groups/7@v2' used in the initial send no longer exists", ErrStaleToken},
		{"cannot resume send: 'tank/iscsi/groups/7@v2' is no longer the same snapshot used in the initial send", ErrStaleToken},
		{"cannot receive new filesystem stream: destination sat/iscsi/volumes/5 contains partially-complete state from \"zfs receive -s\".", ErrNotResumable},
		{"cannot receive: out of space", activities.ErrPoolFull},
		{"cannot open 'tank/iscsi/volumes/9': dataset does not exist", activities.ErrDatasetNotFound},
	} {
		if got := classifyStream(c.stderr); !errors.Is(got, c.want) {
			t.Errorf("%q: %v, want %v", c.stderr, got, c.want)
		}
	}
}
