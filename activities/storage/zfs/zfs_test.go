package zfs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage/zfs/zfstest"
)

// fixture reads a file recorded in the storage lab's guest (see testdata/README.md).
func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return string(b)
}

// fakeCommands answers zfs and zpool calls with the recorded fixtures (see zfstest.Fake).
func fakeCommands(t *testing.T, answers map[string]string) (logFile string) {
	t.Helper()
	return zfstest.Fake(t, "testdata", answers)
}

func TestClassifyRecordedStderr(t *testing.T) {
	cases := []struct {
		file string
		want error
	}{
		{"err-zfs-list-missing.stderr", activities.ErrDatasetNotFound},
		{"err-zfs-create-exists.stderr", activities.ErrExists},
		{"err-zfs-create-no-parent.stderr", activities.ErrDatasetNotFound},
		{"err-zfs-create-out-of-space.stderr", activities.ErrPoolFull},
		{"err-zfs-destroy-has-clones.stderr", activities.ErrHasClones},
		{"err-zfs-snapshot-exists.stderr", activities.ErrExists},
		{"err-zfs-rename-exists.stderr", activities.ErrExists},
		{"err-zpool-get-missing.stderr", activities.ErrPoolNotFound},
		{"", nil},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			text := ""
			if c.file != "" {
				text = fixture(t, c.file)
			}
			if got := Classify(text); got != c.want {
				t.Errorf("Classify(%q) = %v, want %v", text, got, c.want)
			}
		})
	}
	if got := Classify("cannot destroy 'tank/x': dataset is busy"); got != activities.ErrBusy {
		t.Errorf("busy: %v", got)
	}
}

func TestParseRecordedOutputs(t *testing.T) {
	fakeCommands(t, map[string]string{
		"zpool get": "out:zpool-get.txt",
		"zfs list":  "out:zfs-list-dataset.txt",
	})
	z := New(nil)
	p, err := z.Pool("tank")
	if err != nil {
		t.Fatal(err)
	}
	if p.Health != "ONLINE" || p.Size != 8053063680 || p.Free != 8046940160 || p.Allocated != 6123520 {
		t.Errorf("pool = %+v", p)
	}
	d, err := z.Get("tank/iscsi/groups/2")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "tank/iscsi/groups/2" || d.Origin != "tank/iscsi/volumes/1@base" || d.Type != "volume" {
		t.Errorf("dataset = %+v", d)
	}
}

func TestParseRecordedLists(t *testing.T) {
	fakeCommands(t, map[string]string{"zfs list": "out:zfs-list-all.txt"})
	all, err := New(nil).All("tank")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Dataset{}
	for _, d := range all {
		byName[d.Name] = d
	}
	want := map[string]string{
		"tank/iscsi/volumes/1":            "volume",
		"tank/iscsi/volumes/1@base":       "snapshot",
		"tank/iscsi/groups/2@v1":          "snapshot",
		"tank/erator/device-4-1700000000": "volume",
		"tank/iscsi/ctemplates/5":         "filesystem",
	}
	for name, typ := range want {
		if d := byName[name]; d == nil || d.Type != typ {
			t.Errorf("%s: %+v, want type %s", name, d, typ)
		}
	}
	if v := byName["tank/iscsi/volumes/1"]; v == nil || v.Volsize != 1<<30 {
		t.Errorf("volumes/1 volsize: %+v", v)
	}
	if d := byName["tank/erator/device-4-1700000000"]; d == nil || d.Origin != "tank/iscsi/groups/2@v1" {
		t.Errorf("erator clone origin: %+v", d)
	}
}

func TestChildrenExcludeTheParent(t *testing.T) {
	fakeCommands(t, map[string]string{"zfs list": "out:zfs-list-children.txt"})
	kids, err := New(nil).Children("tank/iscsi")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kids {
		if k.Name == "tank/iscsi" || !strings.HasPrefix(k.Name, "tank/iscsi/") {
			t.Errorf("unexpected child %q", k.Name)
		}
	}
	if len(kids) != 4 {
		t.Errorf("children = %d, want the 4 file systems recorded under tank/iscsi", len(kids))
	}
}

func TestTypedErrorsFromCommands(t *testing.T) {
	fakeCommands(t, map[string]string{
		"zfs list":    "err:err-zfs-list-missing.stderr",
		"zpool get":   "err:err-zpool-get-missing.stderr",
		"zfs create":  "err:err-zfs-create-out-of-space.stderr",
		"zfs destroy": "err:err-zfs-list-missing.stderr",
	})
	z := New(nil)
	if _, err := z.Get("tank/iscsi/volumes/999"); !errors.Is(err, activities.ErrDatasetNotFound) {
		t.Errorf("Get missing: %v", err)
	}
	if d, err := z.Lookup("tank/iscsi/volumes/999"); d != nil || err != nil {
		t.Errorf("Lookup missing: %v %v", d, err)
	}
	if _, err := z.Pool("nopool"); !errors.Is(err, activities.ErrPoolNotFound) {
		t.Errorf("Pool missing: %v", err)
	}
	_, _, err := z.CreateVolume("tank/iscsi/volumes/big", 1<<40)
	if !errors.Is(err, activities.ErrPoolFull) {
		t.Errorf("CreateVolume out of space: %v", err)
	}
	var ze *Error
	if !errors.As(err, &ze) || !strings.Contains(ze.Command, "create") || !strings.Contains(err.Error(), "out of space") {
		t.Errorf("error %v does not name the command and its stderr", err)
	}
	// A destroy of something already gone is success.
	if err := z.Destroy("tank/iscsi/volumes/999", true); err != nil {
		t.Errorf("Destroy missing: %v", err)
	}
}

func TestCreateIsSafeToRepeat(t *testing.T) {
	log := fakeCommands(t, map[string]string{
		"zfs create":   "err:err-zfs-create-exists.stderr",
		"zfs list":     "out:zfs-list-volume-1.txt",
		"zfs snapshot": "err:err-zfs-snapshot-exists.stderr",
		"zfs get":      "out:zfs-get-guid.txt",
	})
	z := New(nil)
	d, created, err := z.CreateVolume("tank/iscsi/volumes/1", 1<<30)
	if err != nil || created || d.Name != "tank/iscsi/volumes/1" || d.Volsize != 1<<30 {
		t.Fatalf("CreateVolume on an existing volume = %+v, %v, %v", d, created, err)
	}
	guid, created, err := z.Snapshot("tank/iscsi/groups/2", "v1")
	if err != nil || created || guid == "" {
		t.Fatalf("Snapshot existing = %q %v %v", guid, created, err)
	}
	b, _ := os.ReadFile(log)
	if n := strings.Count(string(b), "zfs create"); n != 1 {
		t.Errorf("zfs create ran %d times", n)
	}
}

func TestCloneRunsZFSClone(t *testing.T) {
	log := fakeCommands(t, map[string]string{
		"zfs clone": "out:zfs-get-guid.txt", // any exit-0 output
		"zfs list":  "out:zfs-list-dataset.txt",
	})
	created, err := New(nil).Clone("tank/iscsi/volumes/1@base", "tank/iscsi/groups/2")
	if err != nil || !created {
		t.Fatalf("Clone = %v, %v", created, err)
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "zfs clone -p tank/iscsi/volumes/1@base tank/iscsi/groups/2") {
		t.Errorf("calls:\n%s", b)
	}
}

func TestCloneExistingOfTheSameOriginIsSuccess(t *testing.T) {
	fakeCommands(t, map[string]string{
		"zfs clone": "err:err-zfs-create-exists.stderr",
		"zfs list":  "out:zfs-list-dataset.txt", // groups/2, origin volumes/1@base
	})
	z := New(nil)
	if created, err := z.Clone("tank/iscsi/volumes/1@base", "tank/iscsi/groups/2"); err != nil || created {
		t.Errorf("same origin: %v %v", created, err)
	}
	if _, err := z.Clone("tank/iscsi/volumes/1@other", "tank/iscsi/groups/2"); !errors.Is(err, activities.ErrExists) {
		t.Errorf("another origin: %v", err)
	}
}

// TestRoutineProbesNotLoggedAsFailures: a lookup of a dataset that does not exist is an
// answer the idempotent steps ask for; only real failures are logged as "zfs failed".
func TestRoutineProbesNotLoggedAsFailures(t *testing.T) {
	fakeCommands(t, map[string]string{
		"zfs list":   "err:err-zfs-list-missing.stderr",
		"zfs get":    "err:err-zfs-list-missing.stderr",
		"zfs create": "err:err-zfs-create-out-of-space.stderr",
	})
	var logged strings.Builder
	z := New(slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if d, err := z.Lookup("tank/iscsi/volumes/999"); d != nil || err != nil {
		t.Fatalf("Lookup missing: %v %v", d, err)
	}
	if _, err := z.Property(context.Background(), "tank/iscsi/volumes/999", "guid"); !errors.Is(err, activities.ErrDatasetNotFound) {
		t.Fatalf("Property missing: %v", err)
	}
	if strings.Contains(logged.String(), "zfs failed") {
		t.Errorf("a routine probe was logged as a failure:\n%s", logged.String())
	}
	if _, _, err := z.CreateVolume("tank/iscsi/volumes/big", 1<<40); !errors.Is(err, activities.ErrPoolFull) {
		t.Fatalf("CreateVolume out of space: %v", err)
	}
	if !strings.Contains(logged.String(), "zfs failed") {
		t.Errorf("a real failure was not logged:\n%s", logged.String())
	}
}

// A snapshot is taken and its guid read in one command, a channel program; the guid Lua
// holds as a signed number is the unsigned one zfs get prints.
func TestSnapshotByChannelProgram(t *testing.T) {
	z := New(nil)
	log := zfstest.Fake(t, "testdata", map[string]string{"zfs program": "out:zfs-program-snapshot.json"})
	guid, created, err := z.Snapshot("tank/iscsi/groups/2", "v3")
	if err != nil || !created || guid != "13340518007570725222" {
		t.Fatalf("Snapshot = %q %v %v", guid, created, err)
	}
	calls, _ := os.ReadFile(log)
	if n := strings.Count(string(calls), "\n"); n != 1 || !strings.Contains(string(calls), "zfs program -j tank /dev/stdin tank/iscsi/groups/2@v3") {
		t.Errorf("calls:\n%s", calls)
	}
}

func TestParseSnapshotProgram(t *testing.T) {
	if _, created, err := parseSnapshotProgram([]byte(`{"return": {"created": false, "guid": 42}}`)); err != nil || created {
		t.Errorf("existing snapshot: %v %v", created, err)
	}
	if _, _, err := parseSnapshotProgram([]byte(`{"return": {"errno": 2}}`)); !errors.Is(err, activities.ErrDatasetNotFound) {
		t.Errorf("ENOENT: %v", err)
	}
	if _, _, err := parseSnapshotProgram([]byte(`{"return": {"errno": 28}}`)); err == nil || !strings.Contains(err.Error(), "errno 28") {
		t.Errorf("ENOSPC: %v", err)
	}
	if _, _, err := parseSnapshotProgram([]byte(`oops`)); err == nil {
		t.Error("garbage parsed")
	}
}
