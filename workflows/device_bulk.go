package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// BulkDevicesInput is bulk operation OperationID (kind Kind) on Devices of network NetworkID.
type BulkDevicesInput struct {
	OperationID uint
	NetworkID   uint
	Kind        string
	Devices     []models.BulkDevice
}

// BulkDevicesResult counts the devices done and names those that failed.
type BulkDevicesResult struct {
	Done   int
	Failed []uint
}

// bulkActions is the device action of each bulk kind.
var bulkActions = []struct{ kind, action string }{
	{models.OpBulkLock, models.BulkLock}, {models.OpBulkUnlock, models.BulkUnlock},
	{models.OpBulkRestore, models.BulkRestore}, {models.OpBulkDelete, models.BulkDelete},
}

// bulkCtx runs one device's part: BulkDevice waits (heartbeating) for as long as the
// device's workflow takes, a restore or a delete waiting for its server's agent included.
func bulkCtx(ctx workflow.Context) workflow.Context {
	o := workflow.GetActivityOptions(panelCtx(ctx))
	o.StartToCloseTimeout = storageWait
	o.HeartbeatTimeout = 30 * time.Second
	return workflow.WithActivityOptions(ctx, o)
}

// BulkDevices is a bulk action on devices as one operation: each device's part goes to
// that device's workflow (BulkDevice: a lock change, a restore, a deleted disk's move to
// the erator, in order with its provisionings), at most models.BulkLimit at once, each
// outcome recorded on the operation as it ends (n/N). It ends succeeded, or failed naming
// the devices that failed. Cancelled, it starts no more devices, lets those under way
// finish (their workflows do not undo a change half made) and ends cancelled.
func BulkDevices(ctx workflow.Context, in BulkDevicesInput) (*BulkDevicesResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	action := ""
	for _, b := range bulkActions {
		if b.kind == in.Kind {
			action = b.action
		}
	}
	if action == "" || len(in.Devices) == 0 {
		return nil, t.fail(models.Outcome{}, fmt.Errorf("bulk operation %d: kind %q with %d devices", in.OperationID, in.Kind, len(in.Devices)))
	}
	if err := t.step("devices", 0, "%s: 0/%d devices", action, len(in.Devices)); err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	// The parts under way finish even when the operation is cancelled.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	type part struct {
		dev uint
		f   workflow.Future
	}
	var pending []part
	res := &BulkDevicesResult{}
	var failures []string
	next, cancelled := 0, false
	for len(pending) > 0 || (!cancelled && next < len(in.Devices)) {
		for !cancelled && next < len(in.Devices) && len(pending) < models.BulkLimit {
			d := in.Devices[next]
			next++
			f := workflow.ExecuteActivity(bulkCtx(dctx), pa.BulkDevice, panel.BulkDeviceInput{OperationID: in.OperationID,
				NetworkID: in.NetworkID, Action: action, Device: d, UpdateID: BulkUpdateID(in.OperationID, d.ID)})
			pending = append(pending, part{dev: d.ID, f: f})
		}
		sel := workflow.NewSelector(dctx)
		finished := -1
		for i, p := range pending {
			sel.AddFuture(p.f, func(workflow.Future) { finished = i })
		}
		if !cancelled {
			sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) { cancelled = true })
		}
		sel.Select(dctx)
		if finished < 0 {
			continue
		}
		p := pending[finished]
		pending = slices.Delete(pending, finished, finished+1)
		var out panel.BulkDeviceResult
		if err := p.f.Get(dctx, &out); err != nil {
			out = panel.BulkDeviceResult{Failed: true, Error: failureText(err)}
		}
		if out.Failed {
			res.Failed = append(res.Failed, p.dev)
			failures = append(failures, fmt.Sprintf("device %d: %s", p.dev, out.Error))
			continue
		}
		res.Done++
	}
	if cancelled {
		return res, t.fail(models.Outcome{}, temporal.NewCanceledError())
	}
	if len(res.Failed) > 0 {
		slices.Sort(res.Failed)
		ids := make([]string, len(res.Failed))
		for i, id := range res.Failed {
			ids[i] = fmt.Sprint(id)
		}
		t.cur.Message = fmt.Sprintf("%d/%d devices done", res.Done, len(in.Devices))
		return res, t.fail(models.Outcome{}, fmt.Errorf("%d of %d devices failed (devices %s): %s",
			len(res.Failed), len(in.Devices), strings.Join(ids, ", "), strings.Join(failures, "; ")))
	}
	return res, t.succeed(models.Outcome{}, "%s: %d/%d devices done", action, res.Done, len(in.Devices))
}
