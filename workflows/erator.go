package workflows

import (
	"fmt"
	"strings"

	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/workflow"
)

// EratorPurgeInput purges a server's erator of entries deleted before Before (unix s; 0:
// every entry).
type EratorPurgeInput struct {
	OperationID uint
	ServerID    uint
	Pool        string
	Before      int64
}

// EratorPurgeResult is what the purge destroyed and freed, and what it kept.
type EratorPurgeResult = storage.PurgeResult

// EratorPurge destroys old erator entries, clones before their origins, and reports the
// bytes it freed; an entry that live datasets were cloned from is kept, with the reason.
// It is the only workflow that destroys data.
func EratorPurge(ctx workflow.Context, in EratorPurgeInput) (*EratorPurgeResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("erator entries of pool %s deleted before %d", in.Pool, in.Before)
	if in.Before == 0 {
		what = "every erator entry of pool " + in.Pool
	}
	if err := t.step("purge", 10, "destroying %s", what); err != nil {
		return nil, err
	}
	var res storage.PurgeResult
	err = workflow.ExecuteActivity(serverCtx(ctx, in.ServerID), sa.Purge,
		storage.PurgeInput{Pool: in.Pool, Before: in.Before}).Get(ctx, &res)
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	msg := fmt.Sprintf("freed %d bytes: destroyed %d (%s)", res.FreedBytes, len(res.Destroyed), strings.Join(res.Destroyed, ", "))
	if len(res.Kept) > 0 {
		kept := make([]string, len(res.Kept))
		for i, k := range res.Kept {
			kept[i] = k.Name + ": " + k.Reason
		}
		msg += fmt.Sprintf("; kept %d (%s)", len(res.Kept), strings.Join(kept, "; "))
	}
	if err := t.succeed(models.Outcome{}, "%s", msg); err != nil {
		return nil, err
	}
	return &res, nil
}

// RestoreInput puts a deleted volume or group back from the erator.
type RestoreInput struct {
	OperationID uint
	Kind        string // "volume" or "group"
	ObjectID    uint
	ServerID    uint
	Pool        string
}

// RestoreResult names what was restored.
type RestoreResult struct {
	From string
	To   string
}

// Restore renames the newest erator entry of the object back to its dataset name.
func Restore(ctx workflow.Context, in RestoreInput) (*RestoreResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	target := storage.VolumeDataset(in.Pool, in.ObjectID)
	if in.Kind == "group" {
		target = storage.GroupDataset(in.Pool, in.ObjectID)
	}
	if err := t.step("restore", 10, "restoring %s from the erator", target); err != nil {
		return nil, err
	}
	var res storage.RestoreResult
	err = workflow.ExecuteActivity(serverCtx(ctx, in.ServerID), sa.Restore,
		storage.RestoreInput{Pool: in.Pool, Kind: in.Kind, ID: in.ObjectID, Target: target}).Get(ctx, &res)
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	from := res.From
	if from == "" {
		from = "(already restored)"
	}
	if err := t.succeed(models.Outcome{}, "restored %s to %s", from, res.To); err != nil {
		return nil, err
	}
	return &RestoreResult{From: res.From, To: res.To}, nil
}
