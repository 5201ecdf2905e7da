package netboot

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/workflows"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
)

// StartWorker runs the agent's storage activities that publishing and a rollout's
// rollback use, on the server's task queue, over the agent's file disks and its target:
// Snapshot (a publish: the group head copied to @v<N>), UnexportTarget and ExportTarget
// of a device, and RestoreDevice (the erator's disk put back, boot.FileDisks.Restore).
// Provisioning stays the boot service's (boot.LocalProvisioner). Stopped with the test.
func (a *HostAgent) StartWorker(t testing.TB, c client.Client) {
	t.Helper()
	w := worker.New(c, workflows.ServerQueue(a.ServerID), worker.Options{})
	w.RegisterActivityWithOptions(a.snapshot, activity.RegisterOptions{Name: "Snapshot"})
	w.RegisterActivityWithOptions(a.exportTarget, activity.RegisterOptions{Name: "ExportTarget"})
	w.RegisterActivityWithOptions(a.unexportTarget, activity.RegisterOptions{Name: "UnexportTarget"})
	w.RegisterActivityWithOptions(a.restoreDevice, activity.RegisterOptions{Name: "RestoreDevice"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
}

// snapshot publishes <pool>/iscsi/groups/<g>@v<N> as groups/<g>@v<N>. Files have no guid.
func (a *HostAgent) snapshot(_ context.Context, in storage.SnapshotInput) (*storage.SnapshotResult, error) {
	_, id, ok := strings.Cut(in.Dataset, "/iscsi/groups/")
	g, err := strconv.ParseUint(id, 10, 32)
	n, err2 := strconv.Atoi(strings.TrimPrefix(in.Name, "v"))
	if !ok || err != nil || err2 != nil || !strings.HasPrefix(in.Name, "v") {
		return nil, fmt.Errorf("snapshot %s@%s: only group versions are file disks", in.Dataset, in.Name)
	}
	if err := a.Disks.Publish(uint(g), n); err != nil {
		return nil, err
	}
	return &storage.SnapshotResult{Snapshot: in.Dataset + "@" + in.Name}, nil
}

func deviceTarget(in storage.ExportInput) (string, error) {
	if in.Kind != "device" {
		return "", fmt.Errorf("export of a %s: only device disks are file disks here", in.Kind)
	}
	return wire.DeviceIQN(in.NetworkID, in.ID), nil
}

func (a *HostAgent) exportTarget(ctx context.Context, in storage.ExportInput) (*storage.ExportResult, error) {
	iqn, err := deviceTarget(in)
	if err != nil {
		return nil, err
	}
	path, ok, err := a.Disks.DevicePath(ctx, in.ID)
	if err != nil || !ok {
		return nil, fmt.Errorf("device %d has no disk: %v", in.ID, err)
	}
	if err := a.Svc.Unexport(iqn); err != nil {
		return nil, err
	}
	if err := a.Svc.Export(iqn, wire.Export{Kind: "device", ID: in.ID, NetworkID: in.NetworkID, UUID: in.UUID}, path); err != nil {
		return nil, err
	}
	return &storage.ExportResult{IQN: iqn, Path: path}, nil
}

func (a *HostAgent) unexportTarget(ctx context.Context, in storage.ExportInput) (*storage.ExportResult, error) {
	iqn, err := deviceTarget(in)
	if err != nil {
		return nil, err
	}
	path, _, _ := a.Disks.DevicePath(ctx, in.ID)
	return &storage.ExportResult{IQN: iqn, Path: path}, a.Svc.Unexport(iqn)
}

// restoreDevice names the erator entries as a pool's would (<pool>/erator/<name>).
func (a *HostAgent) restoreDevice(_ context.Context, in storage.RestoreDeviceInput) (*storage.RestoreDeviceResult, error) {
	from := ""
	if in.From != "" {
		from = in.From[strings.LastIndex(in.From, "/")+1:]
	}
	res, err := a.Disks.Restore(in.DeviceID, from, in.Unix)
	if errors.Is(err, boot.ErrNothingToRestore) {
		return nil, activities.Wrap(fmt.Errorf("%w: %w", activities.ErrNotInErator, err))
	}
	if err != nil {
		return nil, err
	}
	out := &storage.RestoreDeviceResult{From: storage.Erator(in.Pool) + "/" + res.From, GroupID: res.GroupID, Version: res.Version}
	if res.Version > 0 {
		out.Origin = fmt.Sprintf("%s@v%d", storage.GroupDataset(in.Pool, res.GroupID), res.Version)
	}
	return out, nil
}
