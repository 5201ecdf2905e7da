package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// FileDisks is a file-backed stand-in for a ZFS pool, for `clusterducks dev` on machines
// without OpenZFS and for tests and benchmarks of the boot path on the host. Under Root:
//
//	groups/<g>          a group head
//	groups/<g>@v<N>     version N of group g (a copy taken at publish)
//	devices/<d>         device d's disk; devices/<d>.origin holds the version it came from
//	volumes/<v>         a volume
//	erator/device-<d>-<unix>  a replaced device disk
//
// A clone is a full copy: the images these tests boot are small.
type FileDisks struct {
	Root string
}

// NewFileDisks creates the layout under root.
func NewFileDisks(root string) (*FileDisks, error) {
	for _, d := range []string{"groups", "devices", "volumes", "erator"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}
	return &FileDisks{Root: root}, nil
}

// GroupVersionPath is the file of version n of group g.
func (f *FileDisks) GroupVersionPath(g uint, n int) string {
	return filepath.Join(f.Root, "groups", fmt.Sprintf("%d@v%d", g, n))
}

// Versions lists the versions of a group present as files (the guid is the empty string:
// files have none).
func (f *FileDisks) Versions(_ context.Context, groupID uint) (map[int]string, error) {
	ents, err := os.ReadDir(filepath.Join(f.Root, "groups"))
	if err != nil {
		return nil, err
	}
	prefix := fmt.Sprintf("%d@v", groupID)
	out := map[int]string{}
	for _, e := range ents {
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), prefix)); err == nil && strings.HasPrefix(e.Name(), prefix) && n > 0 {
			out[n] = ""
		}
	}
	return out, nil
}

func exists(p string) (string, bool, error) {
	_, err := os.Stat(p)
	if os.IsNotExist(err) {
		return p, false, nil
	}
	return p, err == nil, err
}

// DevicePath is devices/<id>.
func (f *FileDisks) DevicePath(_ context.Context, id uint) (string, bool, error) {
	return exists(filepath.Join(f.Root, "devices", strconv.FormatUint(uint64(id), 10)))
}

// GroupPath is groups/<id>.
func (f *FileDisks) GroupPath(_ context.Context, id uint) (string, bool, error) {
	return exists(filepath.Join(f.Root, "groups", strconv.FormatUint(uint64(id), 10)))
}

// VolumePath is volumes/<id>.
func (f *FileDisks) VolumePath(_ context.Context, id uint) (string, bool, error) {
	return exists(filepath.Join(f.Root, "volumes", strconv.FormatUint(uint64(id), 10)))
}

// VDiskPath is vdisks/<id>.
func (f *FileDisks) VDiskPath(_ context.Context, id uint) (string, bool, error) {
	return exists(filepath.Join(f.Root, "vdisks", strconv.FormatUint(uint64(id), 10)))
}

// Publish copies the group head to version n (like zfs snapshot @v<n>).
func (f *FileDisks) Publish(groupID uint, n int) error {
	head, _, _ := f.GroupPath(context.Background(), groupID)
	return copyFile(head, f.GroupVersionPath(groupID, n))
}

// Origin returns the version a device's disk was cloned from, 0 if none.
func (f *FileDisks) Origin(deviceID uint) int {
	p, _, _ := f.DevicePath(context.Background(), deviceID)
	_, n := readOrigin(p + ".origin")
	return n
}

// readOrigin reads a disk's .origin file, <g>@v<N> (Clone writes it); 0, 0 if none.
func readOrigin(path string) (uint, int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0
	}
	g, v, ok := strings.Cut(strings.TrimSpace(string(b)), "@v")
	gid, err1 := strconv.ParseUint(g, 10, 32)
	n, err2 := strconv.Atoi(v)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0
	}
	return uint(gid), n
}

// Clone makes device d's disk a copy of group g version n. An existing disk from the same
// version is kept (a retry); another is moved to the erator first, restorable.
func (f *FileDisks) Clone(g uint, n int, d uint) (trashed string, err error) {
	dst, ok, err := f.DevicePath(context.Background(), d)
	if err != nil {
		return "", err
	}
	want := fmt.Sprintf("%d@v%d", g, n)
	if ok {
		b, _ := os.ReadFile(dst + ".origin")
		if strings.TrimSpace(string(b)) == want {
			return "", nil
		}
		trashed = filepath.Join(f.Root, "erator", fmt.Sprintf("device-%d-%d", d, time.Now().UnixNano()))
		if err := os.Rename(dst, trashed); err != nil {
			return "", err
		}
		os.Rename(dst+".origin", trashed+".origin") //nolint:errcheck
	}
	if err := copyFile(f.GroupVersionPath(g, n), dst+".tmp"); err != nil {
		return trashed, err
	}
	if err := os.WriteFile(dst+".origin", []byte(want), 0o644); err != nil {
		return trashed, err
	}
	return trashed, os.Rename(dst+".tmp", dst)
}

// Trash lists the erator's entries.
func (f *FileDisks) Trash() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(f.Root, "erator"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".origin") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// ErrNothingToRestore is Restore's answer when the erator holds no disk of the device
// from before the restore.
var ErrNothingToRestore = errors.New("no disk of the device in the erator to restore")

// RestoreResult is what Restore put back: the erator entry (a name under erator/) and the
// group version the disk was cloned from (0, 0 when unknown).
type RestoreResult struct {
	From    string
	GroupID uint
	Version int
}

// Restore puts device d's replaced disk back from the erator, as the agent's
// RestoreDevice does on a pool: from (an entry's name), or when empty the newest
// device-<d>-* entry older than unix (seconds). The current disk, if any, goes to the
// erator first (nothing is lost). A repeat that finds from gone and the disk there
// reports the disk's origin.
func (f *FileDisks) Restore(d uint, from string, unix int64) (*RestoreResult, error) {
	erator := filepath.Join(f.Root, "erator")
	prefix := fmt.Sprintf("device-%d-", d)
	if from == "" {
		names, err := f.Trash()
		if err != nil {
			return nil, err
		}
		bestAt := int64(-1)
		for _, n := range names {
			stamp, err := strconv.ParseInt(strings.TrimPrefix(n, prefix), 10, 64)
			if !strings.HasPrefix(n, prefix) || err != nil {
				continue
			}
			// Clone names its entries in nanoseconds, Restore in seconds.
			at := stamp
			if at < 1e12 {
				at *= 1e9
			}
			if at < unix*1e9 && at > bestAt {
				from, bestAt = n, at
			}
		}
		if from == "" {
			return nil, fmt.Errorf("device %d: %w", d, ErrNothingToRestore)
		}
	}
	if !strings.HasPrefix(from, prefix) || strings.ContainsRune(from, '/') {
		return nil, fmt.Errorf("%s is not an erator entry of device %d: %w", from, d, ErrNothingToRestore)
	}
	disk, _, err := f.DevicePath(context.Background(), d)
	if err != nil {
		return nil, err
	}
	src := filepath.Join(erator, from)
	if _, ok, err := exists(src); err != nil {
		return nil, err
	} else if ok {
		if _, cur, err := exists(disk); err != nil {
			return nil, err
		} else if cur {
			old := filepath.Join(erator, fmt.Sprintf("device-%d-%d", d, unix))
			if err := os.Rename(disk, old); err != nil {
				return nil, err
			}
			os.Rename(disk+".origin", old+".origin") //nolint:errcheck // a disk of unknown origin has none
		}
		os.Remove(disk + ".origin")              //nolint:errcheck
		os.Rename(src+".origin", disk+".origin") //nolint:errcheck
		if err := os.Rename(src, disk); err != nil {
			return nil, err
		}
	} else if _, cur, _ := exists(disk); !cur {
		return nil, fmt.Errorf("%s: %w", from, ErrNothingToRestore)
	}
	res := &RestoreResult{From: from}
	res.GroupID, res.Version = readOrigin(disk + ".origin")
	return res, nil
}

// copyFile copies src to dst keeping it sparse: only src's data extents are read
// (SEEK_DATA/SEEK_HOLE), and zero blocks within them become holes, as a ZFS clone shares
// them.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	size := st.Size()
	buf := make([]byte, 64<<10)
	for off := int64(0); off < size; {
		data, err := in.Seek(off, seekData)
		if err != nil {
			break // ENXIO: no data after off
		}
		hole, err := in.Seek(data, seekHole)
		if err != nil {
			hole = size
		}
		for p := data; p < hole; {
			n, rerr := in.ReadAt(buf[:min(int64(len(buf)), hole-p)], p)
			if n > 0 && !allZero(buf[:n]) {
				if _, err := out.WriteAt(buf[:n], p); err != nil {
					out.Close()
					return err
				}
			}
			p += int64(n)
			if rerr != nil && rerr != io.EOF {
				out.Close()
				return rerr
			}
			if n == 0 {
				break
			}
		}
		off = hole
	}
	if err := out.Truncate(size); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// lseek whences of Linux for sparse files.
const (
	seekData = 3
	seekHole = 4
)

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// LocalProvisioner provisions on FileDisks directly, without the device workflow: for
// `dev` without Temporal and for host-side tests of the boot path. Record, when set, is
// told about each new clone (the panel's record of the device's clone).
type LocalProvisioner struct {
	Disks  *FileDisks
	Target Target // the old disk's target is removed before it goes to the erator
	Record func(ctx context.Context, r wire.ProvisionRequest) error
}

// Provision clones the version for the device (replacing an older clone).
func (p *LocalProvisioner) Provision(ctx context.Context, r wire.ProvisionRequest) error {
	if r.Reprovision && p.Target != nil {
		if err := p.Target.RemoveTarget(wire.DeviceIQN(r.NetworkID, r.DeviceID)); err != nil {
			return err
		}
	}
	if _, err := p.Disks.Clone(r.GroupID, r.Version, r.DeviceID); err != nil {
		return err
	}
	if p.Record != nil {
		return p.Record(ctx, r)
	}
	return nil
}
