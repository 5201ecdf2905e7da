package storage

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
)

// RootFS receives ctemplate versions: a root file system tarball streamed from the panel
// (through the tunnel) is unpacked into <pool>/iscsi/ctemplates/<id> while its SHA-256 is
// computed; only a tarball whose checksum matches becomes snapshot @v<N>. It is not a
// Temporal activity: the upload is one HTTP request that streams its body.
type RootFS struct {
	ZFS *zfs.ZFS
	Log *slog.Logger

	mu   sync.Mutex
	busy map[uint]bool
}

// RootFSInput names the version an upload makes.
type RootFSInput struct {
	Pool        string
	CTemplateID uint
	Version     int
	SHA256      string // hex, lower case
	Limit       int64  // bytes of tarball at most
}

// Receive unpacks body into the ctemplate's dataset and takes snapshot @v<Version> once
// the body's SHA-256 matches. On any failure (checksum, size, a broken tarball, a client
// that went away) it leaves nothing: a dataset it created is destroyed (it never held a
// version), an existing one is rolled back to its newest version. ErrChecksum, ErrTooLarge,
// ErrExists (that version exists), ErrBusy (an upload of the ctemplate is under way).
func (r *RootFS) Receive(ctx context.Context, in RootFSInput, body io.Reader) (*wire.RootFSResult, error) {
	r.mu.Lock()
	if r.busy == nil {
		r.busy = map[uint]bool{}
	}
	if r.busy[in.CTemplateID] {
		r.mu.Unlock()
		return nil, fmt.Errorf("an upload of ctemplate %d is under way: %w", in.CTemplateID, activities.ErrBusy)
	}
	r.busy[in.CTemplateID] = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.busy, in.CTemplateID)
		r.mu.Unlock()
	}()
	log := r.Log
	if log == nil {
		log = slog.Default()
	}

	ds := CTemplateDataset(in.Pool, in.CTemplateID)
	snap := VersionSnapshot(in.Version)
	res := &wire.RootFSResult{Dataset: ds, Snapshot: ds + "@" + snap}
	prev, err := r.prepare(ctx, ds, snap)
	if err != nil {
		return nil, err
	}
	mp, err := r.ZFS.Property(ctx, ds, "mountpoint")
	if err != nil {
		return nil, err
	}
	start := time.Now()
	err = unpack(ctx, mp, body, in, res)
	if err == nil {
		_, _, err = r.ZFS.Snapshot(ds, snap)
	}
	if err != nil {
		// The request's context may be what ended: undo with one of our own.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		if uerr := r.undo(uctx, ds, prev); uerr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", uerr))
		}
		log.Warn("ctemplate upload refused", "dataset", ds, "version", in.Version, "bytes", res.Bytes, "err", err)
		return nil, err
	}
	log.Info("ctemplate version received", "snapshot", res.Snapshot, "bytes", res.Bytes, "took", time.Since(start).Round(time.Millisecond))
	return res, nil
}

// prepare makes the dataset ready to receive snapshot snap: created when missing (prev
// ""), else emptied down to its newest version (prev names it; "" when it has none).
func (r *RootFS) prepare(ctx context.Context, ds, snap string) (prev string, err error) {
	d, err := r.ZFS.Lookup(ds)
	if err != nil {
		return "", err
	}
	if d == nil {
		if _, err := r.ZFS.CreateFilesystem(ds); err != nil {
			return "", err
		}
		return "", nil
	}
	snaps, err := r.ZFS.Snapshots(ctx, ds)
	if err != nil {
		return "", err
	}
	if slices.ContainsFunc(snaps, func(s zfs.Snap) bool { return s.Name == snap }) {
		return "", fmt.Errorf("%s@%s: %w", ds, snap, activities.ErrExists)
	}
	if len(snaps) > 0 {
		prev = ds + "@" + snaps[len(snaps)-1].Name
	}
	// A new version is a whole new root file system: start from an empty directory.
	if err := r.undo(ctx, ds, prev); err != nil {
		return "", err
	}
	if prev == "" {
		return "", nil
	}
	mp, err := r.ZFS.Property(ctx, ds, "mountpoint")
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir(mp)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(mp, e.Name())); err != nil {
			return "", err
		}
	}
	return prev, nil
}

// undo leaves the ctemplate as its newest version prev left it, or destroys a dataset that
// has no version (nothing references it: it holds only a refused upload).
func (r *RootFS) undo(ctx context.Context, ds, prev string) error {
	if prev != "" {
		return r.ZFS.Rollback(ctx, prev)
	}
	return r.ZFS.Destroy(ds, true)
}

// unpack streams body through the SHA-256 and tar into dir; the whole body is read (tar
// stops at the archive's end marker) so the checksum covers every byte sent.
func unpack(ctx context.Context, dir string, body io.Reader, in RootFSInput, res *wire.RootFSResult) error {
	h := sha256.New()
	counted := &countingReader{r: io.LimitReader(body, in.Limit+1), ctx: ctx}
	raw := bufio.NewReaderSize(io.TeeReader(counted, h), 64<<10)
	var tarIn io.Reader = raw
	if magic, _ := raw.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		tarIn = zr
	}
	cmd := exec.CommandContext(ctx, "tar", "-x", "-p", "--numeric-owner", "-f", "-", "-C", dir)
	cmd.Stdin = tarIn
	var stderr strings.Builder
	cmd.Stderr = &stderr
	tarErr := cmd.Run()
	// What tar left unread still counts (and must be read, or the sender blocks).
	_, drainErr := io.Copy(io.Discard, raw)
	res.Bytes = counted.n.Load()
	if res.Bytes > in.Limit {
		return fmt.Errorf("the tarball is larger than %d bytes: %w", in.Limit, activities.ErrTooLarge)
	}
	if drainErr != nil {
		return fmt.Errorf("reading the upload after %d bytes: %w", res.Bytes, drainErr)
	}
	res.SHA256 = hex.EncodeToString(h.Sum(nil))
	if res.SHA256 != in.SHA256 {
		return fmt.Errorf("the tarball's SHA-256 is %s, not %s: %w", res.SHA256, in.SHA256, activities.ErrChecksum)
	}
	if tarErr != nil {
		return fmt.Errorf("tar: %v: %s", tarErr, strings.TrimSpace(stderr.String()))
	}
	return nil
}
