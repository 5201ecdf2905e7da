package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/harness"
)

// operationView is the part of an operation the test reads.
type operationView struct {
	ID       uint   `json:"id"`
	Kind     string `json:"kind"`
	State    string `json:"state"`
	Error    string `json:"error"`
	Message  string `json:"message"`
	ObjectID uint   `json:"object_id"`
}

// waitOperation polls the panel until the operation of kind on object objectID has
// finished, and returns it.
func waitOperation(ctx context.Context, t *testing.T, l *Lab, kind string, objectID uint, within time.Duration) operationView {
	t.Helper()
	deadline := time.Now().Add(within)
	var last operationView
	for {
		var ops []operationView
		if err := l.Panel.Call(ctx, "GET", "operations.json?per_page=100", nil, &ops); err != nil {
			t.Fatal(err)
		}
		for _, op := range ops {
			if op.Kind == kind && op.ObjectID == objectID {
				last = op
			}
		}
		if last.State == "succeeded" || last.State == "failed" {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s of %d not finished after %s: %+v\nagent log:\n%s", kind, objectID, within, last,
				tailString(l.Servers[0].Log("command.log"), 4000))
		}
		time.Sleep(time.Second)
	}
}

// TestLabAgent is the lab's acceptance, through the same StartLab as `task lab`: a
// storage-server VM boots, the agent in it registers with the dev panel on the host using
// its server key, connects to the panel's Temporal, runs the bootstrap workflow's go-zfs
// activity on its pool (the guide's layout appears on the guest's pool) and its pool
// status reaches the panel; then the guide's volume create makes a zvol on it, and a
// device VM, run exactly as `task lab` prints it, netboots that volume from the agent.
func TestLabAgent(t *testing.T) {
	harness.RequirePackages(t, DevicePackages...)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	l, err := StartLab(ctx, 1, t.TempDir(), nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("panel output:\n%s", tailString(l.Panel.Output(), 6000))
			l.Servers[0].dumpLogs(t.Logf)
		}
		l.Stop()
	})
	srv, serverID := l.Servers[0], l.ServerIDs[0]

	// The bootstrap operation succeeds only after the agent ran its activity through Temporal.
	boot := waitOperation(ctx, t, l, "server-bootstrap", serverID, 5*time.Minute)
	if boot.State != "succeeded" {
		t.Fatalf("bootstrap: %+v\nagent log:\n%s", boot, srv.Log("command.log"))
	}
	var stats struct {
		Status     string `json:"status"`
		PoolHealth string `json:"pool_health"`
		PoolSize   int64  `json:"pool_size"`
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := l.Panel.Call(ctx, "GET", "servers/"+srv.Name+"/stats.json", nil, &stats); err != nil {
			t.Fatal(err)
		}
		if stats.PoolHealth == "ONLINE" && stats.PoolSize > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats after bootstrap: %+v", stats)
		}
		time.Sleep(time.Second)
	}
	t.Logf("bootstrap: %s; server status %q, pool %s, %d bytes", boot.Message, stats.Status, stats.PoolHealth, stats.PoolSize)
	// What the agent did through go-zfs is on the guest's pool.
	if out, err := srv.Exec(ctx, "zfs", "list", "-H", "-o", "name", "tank/iscsi"); err != nil || strings.TrimSpace(out) != "tank/iscsi" {
		t.Errorf("the bootstrap's layout is not on the pool: %q %v", out, err)
	}

	// The guide's volume create (its exact body, but for the network id).
	var vol struct {
		ID uint `json:"id"`
	}
	if err := l.Panel.Call(ctx, "POST", "volumes.json", map[string]any{
		"network": l.NetworkID, "Alias": "New Volume 1", "vol_size": "1",
	}, &vol); err != nil {
		t.Fatal(err)
	}
	op := waitOperation(ctx, t, l, "volume-create", vol.ID, 5*time.Minute)
	if op.State != "succeeded" {
		t.Fatalf("volume create: %+v", op)
	}
	ds := fmt.Sprintf("tank/iscsi/volumes/%d", vol.ID)
	if out, err := srv.Exec(ctx, "zfs", "get", "-Hp", "-o", "value", "type", ds); err != nil || strings.TrimSpace(out) != "volume" {
		t.Fatalf("%s on the guest: %q %v", ds, out, err)
	}

	// A device netboots into the lab as `task lab` says it can: the device VM it prints
	// (same boot URL, same arguments), registered through the API and given the volume in
	// maintenance. The volume holds the boot-sector fixture, which prints its marker from
	// LBA 1: the device got there only through the agent's sanboot script and a login to
	// its target at the portal the agent named, on the device's own user network.
	dev := NewDeviceVM(srv.DeviceBootURL())
	marker := fmt.Sprintf("lab-volume-%d", vol.ID)
	if err := MakeBootDisk(filepath.Join(srv.Share, "device-disk.img"), marker, 0); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitZvol(ctx, ds); err != nil {
		t.Fatal(err)
	}
	zvol := "/dev/zvol/" + ds
	if _, err := srv.Exec(ctx, "dd", "if=/mnt/host/device-disk.img", "of="+zvol, "bs=512", "count=2", "conv=notrunc,fsync", "status=none"); err != nil {
		t.Fatal(err)
	}
	var device struct {
		ID uint `json:"id"`
	}
	if err := l.Panel.Call(ctx, "POST", "devices.json", map[string]any{"network": l.NetworkID, "mac": dev.MAC, "name": "lab-device"}, &device); err != nil {
		t.Fatal(err)
	}
	if err := l.Panel.Call(ctx, "POST", fmt.Sprintf("volumes/%d/maintenance.json", vol.ID), map[string]any{"device_id": device.ID}, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("device: %s", dev.Command())
	res, err := dev.Run(ctx, 4*time.Minute)
	if err != nil {
		t.Fatalf("device %s: %v\nagent log:\n%s", dev.MAC, err, tailString(srv.Log("command.log"), 4000))
	}
	if res.Marker != marker {
		t.Fatalf("device booted %q, want %q", res.Marker, marker)
	}
	// The script that booted it named the lab's portal (the log line of the agent's
	// boot path says which portal it puts in its scripts).
	if log := srv.Log("command.log"); !strings.Contains(log, "portal="+srv.DevicePortal()) {
		t.Errorf("the agent's log does not name the portal %s:\n%s", srv.DevicePortal(), tailString(log, 4000))
	}
	t.Logf("device %s booted volume %d from the lab in %s", dev.MAC, vol.ID, res.Took.Round(100*time.Millisecond))
}
