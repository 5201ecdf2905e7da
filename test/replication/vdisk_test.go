package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/iscsi/initiator"
	"github.com/clusterducks/clusterducks/test/lab"
	storagetest "github.com/clusterducks/clusterducks/test/storage"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
)

// vdiskMoves is issue 14's vdisk move on the rig after the guide (group groupID holds v2
// on both servers): a device's clone on the master with a vdisk of 4 MiB of data and a
// marker; its provisioning on the slave (a redirect) moves the vdisk there before its
// target is exported, and the master stops serving it; a provisioning back on the master
// moves it back incrementally (the old copy's snapshot is the base, by guid); written
// again, it is snapshotted by the reconcile and its backup on the slave follows.
func vdiskMoves(t *testing.T, r *Rig, groupID uint) {
	e, slave := r.E, r.Slaves[0]
	const uuid = "6b2f3c1e-0000-4000-8000-00000000a014"
	d := e.Must(http.StatusCreated, "POST", "/devices.json", map[string]any{"network": r.NetworkID, "mac": "52:54:00:14:00:01",
		"name": "mover", "group_id": groupID, "uuid": uuid})
	devID := storagetest.ID(d, "id")
	// Each provisioning is decided at the device's boot revision, as an agent's is: its
	// update id is its own, so the move back to the master is not answered with the
	// first provisioning's result.
	agent := wire.NewClient(e.URL, r.masterKey)
	provision := func(serverID, oldServerID uint) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		info, err := agent.Boot(ctx, wire.Query{ServerID: r.MasterID, MAC: "52:54:00:14:00:01", UUID: uuid})
		if err != nil || info.Device.ID != devID {
			t.Fatalf("boot info of device %d: %+v %v", devID, info, err)
		}
		req := wire.ProvisionRequest{NetworkID: r.NetworkID, DeviceID: devID, GroupID: groupID, Version: 2, ServerID: serverID,
			UUID: uuid, Reprovision: oldServerID != 0, OldServerID: oldServerID, Revision: info.Device.Revision}
		h, err := temporalclient.UpdateDevice(ctx, r.TC, devID, wire.UpdateProvision, wire.ProvisionUpdateID(req), req)
		if err != nil {
			t.Fatalf("provision on server %d: %v", serverID, err)
		}
		var out wire.DeviceClone
		if err := h.Get(ctx, &out); err != nil || out.ServerID != serverID {
			t.Fatalf("provision on server %d: %+v %v", serverID, out, err)
		}
	}
	iqn := wire.DeviceIQN(r.NetworkID, devID)
	// lun1 logs in to the device's target on vm as the device and reads (after writing
	// data, when given) LUN 1's first block; a target that is not there is an error.
	lun1 := func(vm *lab.Server, data []byte) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := initiator.Dial(ctx, vm.Addr(lab.PortISCSI), initiator.Options{InitiatorName: boot.InitiatorName(uuid), TargetName: iqn})
		if err != nil {
			return nil, err
		}
		defer s.Close()
		defer s.Logout(ctx) //nolint:errcheck
		if data != nil {
			if err := s.Write(ctx, 1, 0, 512, data, true); err != nil {
				return nil, fmt.Errorf("write LUN 1: %w", err)
			}
		}
		buf := make([]byte, 512)
		if err := s.Read(ctx, 1, 0, 512, buf); err != nil {
			return nil, fmt.Errorf("read LUN 1: %w", err)
		}
		return buf, nil
	}
	marker := func(s string) []byte { return append([]byte(s), make([]byte, 512-len(s))...) }
	servers := func() (dev, vd uint) {
		var dr models.Device
		var vr models.VDisk
		e.DB.Take(&dr, devID)
		e.DB.Where("device_id = ?", devID).Take(&vr)
		if dr.ServerID == nil || vr.ServerID == nil {
			return 0, 0
		}
		return *dr.ServerID, *vr.ServerID
	}

	provision(r.MasterID, 0)
	v := e.Must(http.StatusAccepted, "POST", "/vdisks.json", map[string]any{"network": r.NetworkID, "name": "data", "size": 1, "device": devID})
	e.WaitOK(storagetest.OpID(v))
	vid := storagetest.ID(v, "id")
	mds := fmt.Sprintf("%s/vdisks/%d", r.Master.Pool, vid)
	sds := fmt.Sprintf("%s/vdisks/%d", slave.Pool, vid)
	r.Fill(mds, 1, 4) // data that does not compress, past the marker's block
	first := marker(fmt.Sprintf("vdisk %d written on the master", vid))
	if got, err := lun1(r.Master, first); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("LUN 1 on the master: %q %v", bytes.TrimRight(got, "\x00"), err)
	}

	// The redirect: the device's clone goes to the slave, and its vdisk with it.
	base := r.Proxy.Bytes()
	began := time.Now()
	provision(r.SlaveIDs[0], r.MasterID)
	there := r.Proxy.Bytes() - base
	t.Logf("vdisk %d moved to the slave with the device's clone in %s (%d bytes from the master)", vid, time.Since(began).Round(time.Second), there)
	if dev, vd := servers(); dev != r.SlaveIDs[0] || vd != r.SlaveIDs[0] {
		t.Fatalf("after the move: device on %d, vdisk on %d; want both on the slave %d", dev, vd, r.SlaveIDs[0])
	}
	if got, err := lun1(slave, nil); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("LUN 1 on the slave: %q %v; want the master's marker", bytes.TrimRight(got, "\x00"), err)
	}
	var rejected *initiator.ErrLoginRejected
	if _, err := lun1(r.Master, nil); !errors.As(err, &rejected) {
		t.Fatalf("the master still serves the device's target: %v", err)
	}
	if there < 4<<20 {
		t.Errorf("%d bytes crossed for a vdisk holding 4 MiB of random data", there)
	}
	snaps := strings.Fields(e.GuestOn(slave, "zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-s", "createtxg", sds))
	if len(snaps) != 1 || !strings.Contains(snaps[0], "@move-") {
		t.Fatalf("the slave's snapshots of the vdisk: %v", snaps)
	}
	_, snap, _ := strings.Cut(snaps[0], "@")
	if mg, sg := r.Prop(r.Master, mds+"@"+snap, "guid"), r.Prop(slave, sds+"@"+snap, "guid"); mg != sg || mg == "" {
		t.Errorf("%s: master's guid %s, slave's %s", snap, mg, sg)
	}

	// Written on the slave, then back: only what changed crosses.
	second := marker(fmt.Sprintf("vdisk %d written on the slave", vid))
	if got, err := lun1(slave, second); err != nil || !bytes.Equal(got, second) {
		t.Fatalf("write on the slave: %q %v", bytes.TrimRight(got, "\x00"), err)
	}
	back := r.SlaveProxies[0].Bytes()
	began = time.Now()
	provision(r.MasterID, r.SlaveIDs[0])
	back = r.SlaveProxies[0].Bytes() - back
	t.Logf("vdisk %d moved back in %s (%d bytes from the slave)", vid, time.Since(began).Round(time.Second), back)
	if dev, vd := servers(); dev != r.MasterID || vd != r.MasterID {
		t.Fatalf("after the move back: device on %d, vdisk on %d; want both on the master %d", dev, vd, r.MasterID)
	}
	if got, err := lun1(r.Master, nil); err != nil || !bytes.Equal(got, second) {
		t.Fatalf("LUN 1 on the master after the move back: %q %v; want the slave's marker", bytes.TrimRight(got, "\x00"), err)
	}
	if _, err := lun1(slave, nil); !errors.As(err, &rejected) {
		t.Fatalf("the slave still serves the device's target: %v", err)
	}
	if back > 2<<20 {
		t.Errorf("%d bytes came back for one written block: not incremental", back)
	}

	// Backups: written on the master, the vdisk gets a snapshot there at the reconcile and
	// the slave's copy (never served, as seen above) follows it by guid.
	third := marker(fmt.Sprintf("vdisk %d written on the master again", vid))
	if got, err := lun1(r.Master, third); err != nil || !bytes.Equal(got, third) {
		t.Fatalf("write on the master: %q %v", bytes.TrimRight(got, "\x00"), err)
	}
	e.GuestOn(r.Master, "zpool", "sync", r.Master.Pool) // "written" counts what reached the pool
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rec, op := r.Reconcile(ctx, t, "vdisk", models.OpReplicateVDisk, vid)
	snaps = strings.Fields(e.GuestOn(r.Master, "zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-s", "createtxg", mds))
	_, newest, _ := strings.Cut(snaps[len(snaps)-1], "@")
	if !strings.HasPrefix(newest, "backup-") {
		t.Fatalf("the master's snapshots of the vdisk after the reconcile: %v", snaps)
	}
	if mg, sg := r.Prop(r.Master, mds+"@"+newest, "guid"), r.Prop(slave, sds+"@"+newest, "guid"); mg != sg || mg == "" {
		t.Errorf("backup %s: master's guid %s, slave's %s", newest, mg, sg)
	}
	if _, err := lun1(slave, nil); !errors.As(err, &rejected) {
		t.Errorf("the slave serves its backup: %v", err)
	}
	t.Logf("reconcile %+v; backup %s of vdisk %d on the slave (operation %d)", rec, newest, vid, op.ID)
}
