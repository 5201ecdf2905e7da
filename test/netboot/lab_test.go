package netboot

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/lab"
	storagetest "github.com/clusterducks/clusterducks/test/storage"
	"github.com/clusterducks/clusterducks/workflows"
	enumspb "go.temporal.io/api/enums/v1"
)

// TestLabNetboot is the real netboot end to end: the panel (process, PostgreSQL, the
// in-process Temporal), a storage-server VM running `clusterducks agent` on OpenZFS with
// our iSCSI target and boot endpoint in it, and device VMs that PXE-boot through iPXE,
// whose disks are ZFS clones made by the device workflow. Each group version carries its
// own marker; the test asserts which version each device booted.
func TestLabNetboot(t *testing.T) {
	harness.RequirePackages(t, Packages...)
	e := storagetest.Start(t)

	// The guide's sequence up to a group, with the agent's boot path reachable from the
	// device VMs: they see the host's loopback forwards of the guest's ports at 10.0.2.2.
	client := e.Must(http.StatusCreated, "POST", "/clients.json", map[string]any{"Name": "netboot"})
	network := e.Must(http.StatusCreated, "POST", "/networks.json", map[string]any{"Name": "netboot", "Client": storagetest.ID(client, "id")})
	networkID := storagetest.ID(network, "id")
	e.Must(http.StatusCreated, "POST", "/tunnels.json", map[string]any{"Alias": "tunnel", "network": networkID, "IP": "4.2.2.1"})
	server := e.Must(http.StatusCreated, "POST", "/servers.json", map[string]any{"Name": "netboot-master", "network": networkID, "IP": lab.GuestIP, "Pool": e.VM.Pool})
	serverID := storagetest.ID(server, "id")
	if err := os.WriteFile(filepath.Join(e.VM.Share, "netboot.key"), []byte(server["key"].(string)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	portal := "10.0.2.2:" + portOf(t, e.VM.Addr(lab.PortISCSI))
	bootURL := "http://10.0.2.2:" + portOf(t, e.VM.Addr(lab.PortBoot)) + "/boot.ipxe"
	e.Guest("sh", "-c", fmt.Sprintf("mkdir -p /run/cd && setsid /usr/local/bin/clusterducks agent --panel %s --key /mnt/host/netboot.key "+
		"--iscsi-listen :%d --iscsi-portal %s --boot-listen :%d --state /run/cd >>/mnt/host/agent-netboot.log 2>&1 </dev/null & echo $! >/run/agent-netboot.pid",
		lab.GuestURL(e.URL), lab.PortISCSI, portal, lab.PortBoot))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", tailOf(e.VM.Log("agent-netboot.log"), 6000))
		}
	})
	e.WaitStats("netboot-master", "ONLINE")
	var bootOp models.Operation
	if err := e.DB.Where("kind = ? AND object_id = ?", models.OpServerBootstrap, serverID).Order("id DESC").Take(&bootOp).Error; err != nil {
		t.Fatal(err)
	}
	e.WaitOK(bootOp.ID)
	vol := e.Must(http.StatusAccepted, "POST", "/volumes.json", map[string]any{"network": networkID, "Alias": "base", "vol_size": 1})
	e.WaitOK(storagetest.OpID(vol))
	volumeID := storagetest.ID(vol, "id")
	pool := e.VM.Pool
	boot := func(d Device) string {
		t.Helper()
		res, err := Boot(context.Background(), bootURL, d, 4*time.Minute)
		if err != nil {
			t.Fatalf("device %s: %v", d.MAC, err)
		}
		t.Logf("device %s booted %q in %s", d.MAC, res.Marker, res.Took.Round(time.Millisecond))
		return res.Marker
	}

	// First install: "the OS" goes into the new volume, and an installer device registered
	// through the API boots the volume read-write while it is in maintenance.
	installed := "volume-installed"
	img := filepath.Join(e.VM.Share, "volume.img")
	if err := MakeDisk(img, installed, 0); err != nil {
		t.Fatal(err)
	}
	e.WaitZvol(fmt.Sprintf("%s/iscsi/volumes/%d", pool, volumeID))
	e.Guest("dd", "if=/mnt/host/volume.img", fmt.Sprintf("of=/dev/zvol/%s/iscsi/volumes/%d", pool, volumeID), "bs=512", "count=2", "conv=notrunc,fsync", "status=none")
	devM := DeviceN(100)
	installer := e.Must(http.StatusCreated, "POST", "/devices.json", map[string]any{"network": networkID, "mac": devM.MAC, "name": "installer"})
	installerID := storagetest.ID(installer, "id")
	e.Must(http.StatusOK, "POST", fmt.Sprintf("/volumes/%d/maintenance.json", volumeID), map[string]any{"device_id": installerID})
	expect(t, boot(devM), installed, "the installer device in volume maintenance")
	e.WaitOK(storagetest.OpID(e.Must(http.StatusAccepted, "DELETE", fmt.Sprintf("/volumes/%d/maintenance.json", volumeID), nil)))

	grp := e.Must(http.StatusAccepted, "POST", "/groups.json", map[string]any{"network": networkID, "Name": "desktops", "VolumeID": volumeID})
	e.WaitOK(storagetest.OpID(grp))
	groupID := storagetest.ID(grp, "id")
	e.Must(http.StatusOK, "PUT", fmt.Sprintf("/networks/%d.json", networkID), map[string]any{"default_group_id": groupID})
	e.Must(http.StatusOK, "PUT", fmt.Sprintf("/groups/%d.json", groupID), map[string]any{"strict_versioning": true, "lazy_locks": false})

	// Group maintenance: the installer boots the group head, a clone of the installed volume.
	e.Must(http.StatusOK, "POST", fmt.Sprintf("/groups/%d/maintenance.json", groupID), map[string]any{"device_id": installerID})
	time.Sleep(1500 * time.Millisecond) // the panel reuses a network's boot state for up to 1 s
	expect(t, boot(devM), installed, "the installer device in group maintenance")
	// Versions are never torn: the installer still writes when the maintenance ends.
	written, bs := endMaintenanceUnderWrites(t, e, networkID, groupID, devM, 1)
	head := fmt.Sprintf("/dev/zvol/%s/iscsi/groups/%d", pool, groupID)
	// publish installs "the OS" of version n into the group head, then publishes it.
	publish := func(n int) {
		t.Helper()
		img := filepath.Join(e.VM.Share, fmt.Sprintf("head-v%d.img", n))
		if err := MakeDisk(img, Marker(groupID, n), 0); err != nil {
			t.Fatal(err)
		}
		e.Guest("dd", "if=/mnt/host/"+filepath.Base(img), "of="+head, "bs=512", "count=2", "conv=notrunc,fsync", "status=none")
		res := e.Must(http.StatusAccepted, "POST", fmt.Sprintf("/groups/%d/publish.json", groupID), map[string]any{"version": n})
		e.WaitOK(storagetest.OpID(res))
	}
	device := func(d Device) models.Device {
		t.Helper()
		var row models.Device
		if err := e.DB.Where("network_id = ? AND mac = ?", networkID, d.MAC).Take(&row).Error; err != nil {
			t.Fatalf("device %s: %v", d.MAC, err)
		}
		return row
	}
	erator := func(prefix string) []string {
		var out []string
		for _, ds := range e.Datasets(pool + "/erator") {
			if strings.HasPrefix(ds, pool+"/erator/"+prefix) {
				out = append(out, ds)
			}
		}
		return out
	}
	publish(1)
	tornBlocks(t, e, groupID, 1, written, bs)

	devA, devB, devC := DeviceN(101), DeviceN(102), DeviceN(103)
	// A new device registers into the default group and boots a clone of the assigned v1.
	expect(t, boot(devA), Marker(groupID, 1), "new device A")
	dA := device(devA)
	if dA.GroupID == nil || *dA.GroupID != groupID {
		t.Fatalf("device A not in the default group: %+v", dA)
	}
	if origin := e.Prop(fmt.Sprintf("%s/iscsi/devices/%d", pool, dA.ID), "origin"); origin != fmt.Sprintf("%s/iscsi/groups/%d@v1", pool, groupID) {
		t.Fatalf("device A's disk has origin %q", origin)
	}
	expect(t, boot(devB), Marker(groupID, 1), "new device B")
	dB := device(devB)
	e.Must(http.StatusOK, "PUT", fmt.Sprintf("/devices/%d.json", dB.ID), map[string]any{"locked": true})
	// The lock went through B's device workflow, after its provisioning.
	if got := updatesOf(t, workflows.DeviceWorkflowID(dB.ID)); strings.Join(got, ",") != workflows.UpdateProvision+","+workflows.UpdateLock {
		t.Fatalf("device B's workflow handled %v, want its provisioning then the lock", got)
	}
	expect(t, boot(devC), Marker(groupID, 1), "new device C")

	// Publish v2 with strict versioning on and lazy locks off.
	publish(2)
	expect(t, boot(devA), Marker(groupID, 2), "unlocked device A after v2")
	if trash := erator(fmt.Sprintf("device-%d-", dA.ID)); len(trash) != 1 {
		t.Fatalf("device A's old clone is not in the erator: %v", trash)
	}
	expect(t, boot(devB), Marker(groupID, 1), "locked device B after v2")

	// Lazy locks on: the unlocked device C keeps its clone.
	e.Must(http.StatusOK, "PUT", fmt.Sprintf("/groups/%d.json", groupID), map[string]any{"lazy_locks": true})
	expect(t, boot(devC), Marker(groupID, 1), "unlocked device C with lazy locks")

	// Non-strict: the newest version this server holds, even when v2 is pinned.
	publish(3)
	e.Must(http.StatusOK, "POST", fmt.Sprintf("/groups/%d/assign.json", groupID), map[string]any{"version": 2})
	e.Must(http.StatusOK, "PUT", fmt.Sprintf("/groups/%d.json", groupID), map[string]any{"strict_versioning": false, "lazy_locks": false})
	time.Sleep(1500 * time.Millisecond) // the panel reuses a network's boot state for up to 1 s
	expect(t, boot(devC), Marker(groupID, 3), "unlocked device C, non-strict")

	// Four devices at once: A (reprovisioned to v3), locked B, C, and a new device D.
	devs := []Device{devA, devB, devC, DeviceN(104)}
	want := []string{Marker(groupID, 3), Marker(groupID, 1), Marker(groupID, 3), Marker(groupID, 3)}
	bootAll(t, bootURL, devs, want, 4*time.Minute)
	t.Logf("erator: %v", erator("device-"))

	// Reprovisioning lost nothing: A's v2 disk comes back from the erator through the API
	// (A locked first, or non-strict would reprovision it to v3 again at once).
	e.Must(http.StatusOK, "PUT", fmt.Sprintf("/devices/%d.json", dA.ID), map[string]any{"locked": true})
	res := e.Must(http.StatusAccepted, "POST", fmt.Sprintf("/devices/%d/restore.json", dA.ID), nil)
	e.WaitOK(storagetest.OpID(res))
	expect(t, boot(devA), Marker(groupID, 2), "device A after restoring its v2 disk")
	if a := device(devA); a.CloneVersionID == nil {
		t.Fatalf("restored device has no clone version: %+v", a)
	}

	// Deleting a provisioned device through the API moves its disk into the server's
	// erator (through its device workflow), and the operation ends succeeded.
	dC := device(devC)
	disk := fmt.Sprintf("%s/iscsi/devices/%d", pool, dC.ID)
	before := erator(fmt.Sprintf("device-%d-", dC.ID))
	del := e.Must(http.StatusAccepted, "DELETE", fmt.Sprintf("/devices/%d.json", dC.ID), nil)
	if op := e.WaitOK(storagetest.OpID(del)); op.Kind != models.OpDeviceDelete || op.WorkflowID != workflows.DeviceWorkflowID(dC.ID) {
		t.Fatalf("delete operation %+v", op)
	}
	after := erator(fmt.Sprintf("device-%d-", dC.ID))
	if len(after) != len(before)+1 || slices.Contains(e.Datasets(pool+"/iscsi/devices"), disk) {
		t.Fatalf("after deleting device C, its erator entries are %v (before %v) and %s is still there: %v",
			after, before, disk, e.Datasets(pool+"/iscsi/devices"))
	}
	t.Logf("device C's disk went to the erator: %v", after)
}

// updatesOf lists the updates a workflow accepted, in order.
func updatesOf(t *testing.T, wid string) []string {
	t.Helper()
	c := harness.TemporalClient(t)
	it := c.GetWorkflowHistory(context.Background(), wid, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []string
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", wid, err)
		}
		if a := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes(); a != nil {
			out = append(out, a.GetAcceptedRequest().GetInput().GetName())
		}
	}
	return out
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("address %q has no port", addr)
	}
	return addr[i+1:]
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
