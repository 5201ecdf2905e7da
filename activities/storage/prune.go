package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// VDiskBackupKeep is how many backup snapshots of a vdisk the reconcile keeps, on the
// server the vdisk lives on and on each server holding a backup: a week of daily
// changes, or the last hours of a busy disk.
const VDiskBackupKeep = 7

// VDiskBackupPrefix names the reconcile's backup snapshots of vdisks (backup-<unix>);
// only these are pruned (a move's snapshots and hand-made ones stay).
const VDiskBackupPrefix = "backup-"

// PlanVDiskPrune chooses the backup snapshots to destroy of one vdisk: own is the
// snapshots on the server it lives on, backups those on each server holding a backup
// (oldest first, as Snapshots lists them). On every server the newest keep backup
// snapshots stay, and so does any snapshot whose guid is the newest one a backup
// server shares with the vdisk's server: the base of that server's next incremental.
// The result lists names to destroy on the own server and on each backup server, in
// the order given.
func PlanVDiskPrune(own []zfs.Snap, backups [][]zfs.Snap, keep int) (ownDestroy []string, backupDestroy [][]string) {
	keep = max(keep, 1)
	base := map[string]bool{}
	for _, b := range backups {
		have := map[string]bool{}
		for _, s := range b {
			have[s.GUID] = true
		}
		for i := len(own) - 1; i >= 0; i-- {
			if have[own[i].GUID] {
				base[own[i].GUID] = true
				break
			}
		}
	}
	choose := func(snaps []zfs.Snap) []string {
		var backupsSeen int
		var out []string
		for i := len(snaps) - 1; i >= 0; i-- {
			s := snaps[i]
			if !strings.HasPrefix(s.Name, VDiskBackupPrefix) {
				continue
			}
			if backupsSeen++; backupsSeen <= keep || base[s.GUID] {
				continue
			}
			out = append(out, s.Name)
		}
		// Oldest first, as listed.
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return out
	}
	ownDestroy = choose(own)
	backupDestroy = make([][]string, len(backups))
	for i, b := range backups {
		backupDestroy[i] = choose(b)
	}
	return ownDestroy, backupDestroy
}

// PruneSnapshotsInput names snapshots of one dataset (relative to Pool) to destroy.
type PruneSnapshotsInput struct {
	Pool    string
	Dataset string
	Names   []string
}

// PruneSnapshotsResult is what was destroyed and what was kept, and why.
type PruneSnapshotsResult struct {
	Destroyed []string
	Kept      []Kept
}

// PruneSnapshots destroys the named snapshots of a replicated dataset (never the dataset):
// one held (a transfer under way holds its snapshots) or with clones is kept and
// reported, one already gone counts as destroyed. Safe to repeat.
func (a *Activities) PruneSnapshots(ctx context.Context, in PruneSnapshotsInput) (*PruneSnapshotsResult, error) {
	if !replicated(in.Dataset) {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("prune %s: not a replicated dataset", in.Dataset), TypeReplicationRefused, nil)
	}
	z := a.replZFS()
	res := &PruneSnapshotsResult{Destroyed: []string{}, Kept: []Kept{}}
	for _, name := range in.Names {
		if !snapName.MatchString(name) {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("prune %s@%q: not a snapshot name", in.Dataset, name), TypeReplicationRefused, nil)
		}
		err := z.DestroySnapshot(ctx, in.Pool+"/"+in.Dataset+"@"+name)
		switch {
		case err == nil:
			res.Destroyed = append(res.Destroyed, name)
		case errors.Is(err, activities.ErrBusy), errors.Is(err, activities.ErrHasClones):
			res.Kept = append(res.Kept, Kept{Name: name, Reason: activities.Message(err)})
		default:
			return res, activities.Wrap(err)
		}
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, len(res.Destroyed))
		}
	}
	return res, nil
}
