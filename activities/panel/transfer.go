package panel

import (
	"context"
	"fmt"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
)

// WatchTransferInput names a running transfer: the pending activity of type Activity in
// workflow run (WorkflowID, RunID), whose heartbeats carry a storage.ReplicateProgress,
// and the operation that shows it between percents From and To.
type WatchTransferInput struct {
	OperationID uint
	WorkflowID  string
	RunID       string
	Activity    string // "Replicate"
	Label       string // what is received, for the message: "iscsi/volumes/5@group-7 from server 1"
	From, To    int
	// EverySeconds is how often the heartbeats are read; 0: 2.
	EverySeconds int
}

// WatchTransferResult is empty: the watcher ends when its workflow cancels it.
type WatchTransferResult struct{}

// rateWindow is how far back the rate looks: recent enough to show a cut or a limit,
// long enough not to jump with each heartbeat.
const rateWindow = 10 * time.Second

type sample struct {
	at    time.Time
	bytes int64
}

// WatchTransfer copies a running transfer's progress (bytes, percent, rate) from its
// heartbeats onto its operation until the workflow cancels it, every EverySeconds. A
// workflow's activity cannot see the heartbeats of another one; the panel reads them
// from Temporal (DescribeWorkflowExecution). It never moves the operation's percent back
// (models.RecordTransferProgress), so a late write is harmless; safe to repeat.
func (a *Activities) WatchTransfer(ctx context.Context, in WatchTransferInput) (*WatchTransferResult, error) {
	every := 2 * time.Second
	if in.EverySeconds > 0 {
		every = time.Duration(in.EverySeconds) * time.Second
	}
	c := activity.GetClient(ctx)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var seen []sample
	var last models.TransferProgress
	for {
		activity.RecordHeartbeat(ctx)
		if prog, ok := transferProgress(ctx, c, in); ok {
			now := time.Now()
			seen = append(seen, sample{now, prog.Bytes})
			for len(seen) > 2 && now.Sub(seen[1].at) >= rateWindow {
				seen = seen[1:]
			}
			p := transferRow(in, prog, seen)
			if p != last {
				if err := models.RecordTransferProgress(ctx, a.DB, p); err != nil && ctx.Err() == nil {
					activity.GetLogger(ctx).Warn("transfer progress not recorded", "operation", in.OperationID, "error", err)
				}
				last = p
			}
		}
		select {
		case <-ctx.Done():
			return &WatchTransferResult{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// transferProgress reads the newest heartbeat of the watched activity; false while it has
// none (not started, or between attempts before the first beat).
func transferProgress(ctx context.Context, c client.Client, in WatchTransferInput) (storage.ReplicateProgress, bool) {
	var prog storage.ReplicateProgress
	if c == nil {
		return prog, false
	}
	d, err := c.DescribeWorkflowExecution(ctx, in.WorkflowID, in.RunID)
	if err != nil {
		return prog, false
	}
	for _, pa := range d.GetPendingActivities() {
		if pa.GetActivityType().GetName() != in.Activity || pa.GetHeartbeatDetails() == nil {
			continue
		}
		if converter.GetDefaultDataConverter().FromPayloads(pa.GetHeartbeatDetails(), &prog) == nil {
			return prog, true
		}
	}
	return prog, false
}

// transferRow is the operation's row for a heartbeat: the percent of this dataset's
// stream received (what earlier attempts received counts: a resumed stream's estimate is
// only what is left) placed between From and To, and the rate over the samples.
func transferRow(in WatchTransferInput, prog storage.ReplicateProgress, seen []sample) models.TransferProgress {
	// An estimate (zfs send -nP) may fall short: never less than what came.
	total := max(prog.Bytes-prog.Done+prog.Size, prog.Bytes)
	pct := in.From
	if total > 0 && in.To > in.From {
		pct = in.From + int(int64(in.To-in.From)*prog.Bytes/total)
		pct = min(pct, in.To-1)
	}
	var rate int64
	if n := len(seen); n >= 2 {
		if dt := seen[n-1].at.Sub(seen[0].at).Seconds(); dt > 0 {
			// A retry restarts from the last heartbeat that reached Temporal: the count
			// may step back once.
			rate = max(0, int64(float64(seen[n-1].bytes-seen[0].bytes)/dt))
		}
	}
	msg := fmt.Sprintf("receiving %s: %s of ~%s, %s/s", in.Label, size(prog.Bytes), size(total), size(rate))
	return models.TransferProgress{
		WorkflowProgress: models.WorkflowProgress{OperationID: in.OperationID, WorkflowID: in.WorkflowID, RunID: in.RunID,
			Step: "transfer", Percent: pct, Message: msg},
		Bytes: prog.Bytes, BytesTotal: total, Rate: rate,
	}
}

// size is a byte count for people (binary units).
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
