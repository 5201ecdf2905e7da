package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dsProps and poolProps are the property lists go-zfs v3 asks for on Linux
// (utils_notsolaris.go): the fixtures must be recorded with exactly these.
const (
	dsProps   = "name,origin,used,available,mountpoint,compression,type,volsize,quota,referenced,written,logicalused,usedbydataset"
	poolProps = "name,health,allocated,size,free,readonly,dedupratio,fragmentation,freeing,leaked"
)

// fixtureDir is where the ZFS wrapper's parse tests read recorded outputs from.
const fixtureDir = "../../activities/storage/zfs/testdata"

// TestStorageServers boots two storage servers at once (as the replication tests do) and
// checks that each has OpenZFS loaded, an ONLINE pool, its own identity, working
// forwards in both directions, and that go-zfs parses the guest's real output.
// With CLUSTERDUCKS_LAB_RECORD=1 it also writes the go-zfs command outputs as fixtures.
func TestStorageServers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	start := time.Now()
	servers, err := StartServers(ctx, []Options{{Logf: t.Logf}, {Logf: t.Logf, Pool: "data"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		t.Cleanup(func() {
			if t.Failed() {
				s.dumpLogs(t.Logf)
			}
			if err := s.Stop(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Logf("two servers ready %s after start (image %s, kernel %s, zfs %s)",
		time.Since(start).Round(100*time.Millisecond), filepath.Base(servers[0].Image.Root),
		servers[0].Image.KernelVersion, servers[0].Image.ZFSVersion)

	probe, err := BuildStatic(ctx, "./test/lab/zfsprobe", "zfsprobe")
	if err != nil {
		t.Fatal(err)
	}

	for _, s := range servers {
		t.Run(s.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			if v, err := s.Exec(ctx, "cat", "/sys/module/zfs/version"); err != nil || strings.TrimSpace(v) == "" {
				t.Fatalf("zfs module not loaded: %q %v", v, err)
			}
			health, err := s.Exec(ctx, "zpool", "list", "-H", "-o", "health", s.Pool)
			if err != nil || strings.TrimSpace(health) != "ONLINE" {
				t.Fatalf("pool %s health %q, %v", s.Pool, health, err)
			}
			// Real servers have AES; the lab shows it to its guests on a QEMU that runs it
			// on the host's AES-NI (qemu.go), and fetches one when the host's is older.
			if flags, err := s.Exec(ctx, "grep", "-m1", "^flags", "/proc/cpuinfo"); err != nil || !slices.Contains(strings.Fields(flags), "aes") {
				t.Errorf("the guest has no AES (QEMU %s, -cpu %s; the lab's log says why): %v", s.emu.Version, s.emu.CPU, err)
			}
			uuid, err := s.Exec(ctx, "cat", "/sys/class/dmi/id/product_uuid")
			if err != nil || !strings.EqualFold(strings.TrimSpace(uuid), s.UUID) {
				t.Errorf("guest uuid %q, want %s (%v)", uuid, s.UUID, err)
			}
			for _, p := range DefaultGuestPorts {
				if s.Addr(p) == "" {
					t.Errorf("guest port %d not forwarded", p)
				}
			}
			var exitErr *ExecError
			if _, err := s.Exec(ctx, "sh", "-c", "echo oops >&2; exit 3"); !errors.As(err, &exitErr) ||
				exitErr.ExitCode != 3 || strings.TrimSpace(exitErr.Stderr) != "oops" {
				t.Errorf("failing command: %v", err)
			}
			if out, err := s.ExecInput(ctx, []byte("hello"), "cat"); err != nil || out != "hello" {
				t.Errorf("stdin: %q %v", out, err)
			}

			makeLayout(ctx, t, s)
			if err := s.Install(ctx, probe, "/usr/local/bin/zfsprobe"); err != nil {
				t.Fatal(err)
			}
			checkGoZFS(ctx, t, s)
			checkGuestReachesHost(ctx, t, s)
			checkRawOutputs(ctx, t, s, s == servers[0] && os.Getenv("CLUSTERDUCKS_LAB_RECORD") == "1")
		})
	}
}

// makeLayout builds a small copy of the design's dataset layout: a sparse volume, a
// group cloned from it with a version, a device cloned from that, a vdisk, a container
// template, and something in the erator.
func makeLayout(ctx context.Context, t *testing.T, s *Server) {
	t.Helper()
	p := s.Pool
	script := strings.NewReplacer("P", p).Replace(`set -e
zfs create -p P/iscsi/volumes
zfs create -p P/iscsi/groups
zfs create -p P/iscsi/devices
zfs create -p P/iscsi/ctemplates
zfs create -p P/vdisks
zfs create -p P/erator
zfs create -s -V 1G P/iscsi/volumes/1
udevadm settle
dd if=/dev/urandom of=/dev/zvol/P/iscsi/volumes/1 bs=1M count=4 conv=fsync status=none
zfs snapshot P/iscsi/volumes/1@base
zfs clone P/iscsi/volumes/1@base P/iscsi/groups/2
zfs snapshot P/iscsi/groups/2@v1
zfs clone P/iscsi/groups/2@v1 P/iscsi/devices/3
zfs clone P/iscsi/groups/2@v1 P/iscsi/devices/4
zfs rename P/iscsi/devices/4 P/erator/device-4-1700000000
zfs create -o compression=lz4 -o quota=1073741824 P/iscsi/ctemplates/5
head -c 1000000 /dev/zero >/P/iscsi/ctemplates/5/zeros
zfs create -s -V 512M P/vdisks/6
udevadm settle
sync
`)
	if out, err := s.Exec(ctx, "sh", "-c", script); err != nil {
		t.Fatalf("layout: %v\n%s", err, out)
	}
	if _, err := s.Exec(ctx, "test", "-b", "/dev/zvol/"+p+"/iscsi/devices/3"); err != nil {
		t.Errorf("zvol device link missing: %v", err)
	}
}

// probeReport is the part of zfsprobe's output the test looks at.
type probeReport struct {
	Pools []struct{ Name string }
	Pool  struct {
		Name   string
		Health string
		Size   uint64
	}
	Datasets    []struct{ Name string }
	Filesystems []struct{ Name string }
	Volumes     []struct {
		Name    string
		Volsize uint64
	}
	Snapshots []struct{ Name string }
	Dataset   struct {
		Name    string
		Origin  string
		Type    string
		Volsize uint64
	}
	Children []struct{ Name string }
	GUID     string
}

// checkGoZFS runs go-zfs itself in the guest against the real pool.
func checkGoZFS(ctx context.Context, t *testing.T, s *Server) {
	t.Helper()
	p := s.Pool
	out, err := s.Exec(ctx, "/usr/local/bin/zfsprobe", "-pool", p, "-dataset", p+"/iscsi/groups/2")
	if err != nil {
		t.Fatalf("go-zfs in the guest: %v", err)
	}
	var r probeReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("zfsprobe output: %v\n%s", err, out)
	}
	if len(r.Pools) != 1 || r.Pools[0].Name != p || r.Pool.Health != "ONLINE" || r.Pool.Size == 0 {
		t.Errorf("pools %+v pool %+v", r.Pools, r.Pool)
	}
	if len(r.Volumes) != 5 || len(r.Snapshots) != 2 || len(r.Filesystems) != 9 || len(r.Datasets) != 16 {
		t.Errorf("go-zfs saw %d volumes, %d snapshots, %d filesystems, %d datasets; want 5, 2, 9, 16",
			len(r.Volumes), len(r.Snapshots), len(r.Filesystems), len(r.Datasets))
	}
	for _, v := range r.Volumes {
		if v.Volsize == 0 {
			t.Errorf("volume %s volsize 0", v.Name)
		}
	}
	if r.Dataset.Origin != p+"/iscsi/volumes/1@base" || r.Dataset.Type != "volume" || r.Dataset.Volsize != 1<<30 {
		t.Errorf("GetDataset: %+v", r.Dataset)
	}
	if _, err := strconv.ParseUint(r.GUID, 10, 64); err != nil {
		t.Errorf("guid %q: %v", r.GUID, err)
	}
}

// checkGuestReachesHost serves HTTP on host loopback and fetches it from the guest
// through 10.0.2.2, the path the agent takes to the panel and Temporal.
func checkGuestReachesHost(ctx context.Context, t *testing.T, s *Server) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from the host")
	})}
	go srv.Serve(l) //nolint:errcheck
	defer srv.Close()
	url := GuestURL("http://" + l.Addr().String() + "/")
	out, err := s.Exec(ctx, "/usr/local/bin/zfsprobe", "-fetch", url)
	if err != nil || out != "hello from the host" {
		t.Errorf("guest fetching %s: %q %v", url, out, err)
	}
}

// rawCommand is one command go-zfs (or the wrapper) runs, recorded as a fixture.
type rawCommand struct {
	file string // fixture name; errors are recorded as <file> holding stderr
	args []string
	fail bool // the command is expected to fail (typed-error fixtures)
}

func rawCommands(p string) []rawCommand {
	return []rawCommand{
		{"zpool-list-names.txt", []string{"zpool", "list", "-Ho", "name"}, false},
		{"zpool-get.txt", []string{"zpool", "get", "-Hp", poolProps, p}, false},
		{"zpool-list.txt", []string{"zpool", "list", "-Hp", p}, false},
		{"zpool-list-props.txt", []string{"zpool", "list", "-Hp", "-o", "name,size,allocated,free,fragmentation,capacity,health", p}, false},
		{"zpool-status.txt", []string{"zpool", "status", p}, false},
		{"zpool-status-P.txt", []string{"zpool", "status", "-P", p}, false},
		{"zfs-list-all.txt", []string{"zfs", "list", "-rHp", "-t", "all", "-o", dsProps, p}, false},
		{"zfs-list-filesystem.txt", []string{"zfs", "list", "-rHp", "-t", "filesystem", "-o", dsProps, p}, false},
		{"zfs-list-volume.txt", []string{"zfs", "list", "-rHp", "-t", "volume", "-o", dsProps, p}, false},
		{"zfs-list-snapshot.txt", []string{"zfs", "list", "-rHp", "-t", "snapshot", "-o", dsProps, p}, false},
		{"zfs-list-dataset.txt", []string{"zfs", "list", "-Hp", "-o", dsProps, p + "/iscsi/groups/2"}, false},
		{"zfs-list-children.txt", []string{"zfs", "list", "-d", "1", "-t", "all", "-Hp", "-o", dsProps, p + "/iscsi"}, false},
		{"zfs-get-guid.txt", []string{"zfs", "get", "-H", "guid", p + "/iscsi/groups/2@v1"}, false},
		{"zfs-get-Hp-guid-value.txt", []string{"zfs", "get", "-Hp", "-o", "value", "guid", p + "/iscsi/groups/2@v1"}, false},
		{"err-zfs-list-missing.stderr", []string{"zfs", "list", "-Hp", "-o", dsProps, p + "/iscsi/volumes/999"}, true},
		{"err-zfs-create-exists.stderr", []string{"zfs", "create", "-s", "-V", "1073741824", p + "/iscsi/volumes/1"}, true},
		{"err-zfs-create-no-parent.stderr", []string{"zfs", "create", "-s", "-V", "1073741824", p + "/nothere/7"}, true},
		{"err-zfs-create-out-of-space.stderr", []string{"zfs", "create", "-V", "1099511627776", p + "/iscsi/volumes/big"}, true},
		{"err-zfs-destroy-has-clones.stderr", []string{"zfs", "destroy", p + "/iscsi/groups/2@v1"}, true},
		{"err-zfs-snapshot-exists.stderr", []string{"zfs", "snapshot", p + "/iscsi/groups/2@v1"}, true},
		{"err-zfs-rename-exists.stderr", []string{"zfs", "rename", p + "/iscsi/devices/3", p + "/iscsi/groups/2"}, true},
		{"err-zpool-get-missing.stderr", []string{"zpool", "get", "-Hp", poolProps, "nopool"}, true},
	}
}

// checkRawOutputs runs each command go-zfs runs and checks the shape go-zfs relies on:
// tab-separated lines with one field per requested property, numbers where numbers are
// expected. With record set, it writes them as fixtures with a README naming each command.
func checkRawOutputs(ctx context.Context, t *testing.T, s *Server, record bool) {
	t.Helper()
	p := s.Pool
	version, _ := s.Exec(ctx, "cat", "/sys/module/zfs/version")
	var readme strings.Builder
	readme.WriteString(`# Recorded zfs/zpool outputs

Recorded inside a storage lab VM (Debian bookworm, OpenZFS from its contrib component)
by ` + "`CLUSTERDUCKS_LAB_RECORD=1 go test ./test/lab -run TestStorageServers`" + `, after
test/lab/lab_test.go's makeLayout built this layout on pool ` + "`" + p + "`" + `:

    ` + p + `/iscsi/volumes/1            sparse 1 GiB zvol, 4 MiB written, snapshot @base
    ` + p + `/iscsi/groups/2             clone of volumes/1@base, snapshot @v1
    ` + p + `/iscsi/devices/3            clone of groups/2@v1
    ` + p + `/erator/device-4-1700000000 clone of groups/2@v1, renamed into the erator
    ` + p + `/iscsi/ctemplates/5         filesystem, lz4, quota 1 GiB
    ` + p + `/vdisks/6                   sparse 512 MiB zvol

Files ending in .txt hold the command's stdout (exit 0); files ending in .stderr hold the
stderr of a command that failed (the exit status is given below). The property lists are
go-zfs v3's on Linux. OpenZFS module ` + strings.TrimSpace(version) + `, kernel ` + s.Image.KernelVersion + `.

| file | command | exit |
|---|---|---|
`)
	var rows []string
	for _, c := range rawCommands(p) {
		out, err := s.Exec(ctx, c.args[0], c.args[1:]...)
		var exitErr *ExecError
		code := 0
		switch {
		case err == nil && c.fail:
			t.Errorf("%s: succeeded, expected a failure", strings.Join(c.args, " "))
			continue
		case err != nil && !c.fail:
			t.Errorf("%v", err)
			continue
		case err != nil && !errors.As(err, &exitErr):
			t.Errorf("%v", err)
			continue
		case err != nil:
			code = exitErr.ExitCode
			out = exitErr.Stderr
		}
		checkShape(t, c, out, p)
		rows = append(rows, fmt.Sprintf("| %s | `%s` | %d |", c.file, strings.Join(c.args, " "), code))
		if record {
			if err := os.MkdirAll(fixtureDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(fixtureDir, c.file), []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if record {
		text := readme.String() + strings.Join(rows, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(fixtureDir, "README.md"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %d fixtures in %s", len(rows), fixtureDir)
	}
}

// checkShape checks what the parsers rely on.
func checkShape(t *testing.T, c rawCommand, out, pool string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if strings.TrimSpace(out) == "" {
		t.Errorf("%s: empty output", c.file)
		return
	}
	switch {
	case c.fail:
		if !strings.HasPrefix(out, "cannot ") && !strings.Contains(out, "no such pool") {
			t.Errorf("%s: unexpected stderr %q", c.file, out)
		}
	case strings.HasPrefix(c.file, "zfs-list-"):
		for _, l := range lines {
			f := strings.Split(l, "\t")
			if len(f) != 13 {
				t.Errorf("%s: %d fields in %q", c.file, len(f), l)
				continue
			}
			// used, available, volsize, quota, referenced, written, logicalused, usedbydataset
			for _, i := range []int{2, 3, 7, 8, 9, 10, 11, 12} {
				if _, err := strconv.ParseUint(f[i], 10, 64); err != nil && f[i] != "-" {
					t.Errorf("%s: field %d of %q is %q", c.file, i, f[0], f[i])
				}
			}
		}
	case c.file == "zpool-get.txt":
		if len(lines) != 10 {
			t.Errorf("%s: %d lines", c.file, len(lines))
		}
		for _, l := range lines {
			if f := strings.Split(l, "\t"); len(f) != 4 || f[0] != pool {
				t.Errorf("%s: line %q", c.file, l)
			}
		}
	case c.file == "zpool-status.txt":
		if !strings.Contains(out, "state: ONLINE") {
			t.Errorf("%s: %q", c.file, out)
		}
	}
}
