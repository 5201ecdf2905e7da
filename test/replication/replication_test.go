package replication

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/lab"
	storagetest "github.com/clusterducks/clusterducks/test/storage"
	"github.com/clusterducks/clusterducks/workflows"
	"gorm.io/gorm"
)

func TestMain(m *testing.M) { harness.MainPostgresTemporal(m) }

// TestReplication is issue 12's acceptance on one master and one slave booted once: the
// guide's group with v1 and v2 reaches the slave as a clone of its volume, verified by
// guid; then a 100 MiB volume is cut three ways mid-transfer and still arrives whole
// with less than 1.2× its stream on the wire.
func TestReplication(t *testing.T) {
	r := StartRig(t, 1)
	e, slave := r.E, r.Slaves[0]
	var srv models.Server
	if err := e.DB.Take(&srv, r.MasterID).Error; err != nil || srv.Role != models.ServerMaster || !strings.HasPrefix(srv.ReplicationAddr, lab.GuestHostIP+":") {
		t.Fatalf("master row %+v %v: want the master role and the advertised replication address", srv, err)
	}
	mp, sp := r.Master.Pool, slave.Pool
	var volumeID, groupID uint // the guide's

	t.Run("guide", func(t *testing.T) {
		e.T = t
		// "The OS": 48 MiB that does not compress, then a group and two versions.
		volumeID, groupID = r.Volume("base", 48)
		gds := fmt.Sprintf("%s/iscsi/groups/%d", mp, groupID)
		for n := 1; n <= 2; n++ {
			r.Fill(gds, 100+8*n, 4)
			res := e.Must(http.StatusAccepted, "POST", fmt.Sprintf("/groups/%d/publish.json", groupID), map[string]any{"note": fmt.Sprintf("v%d", n)})
			e.WaitOK(storagetest.OpID(res))
		}
		// Each publish queued the version's replication to the slave (a run per slave and
		// group: v2's joins v1's, which then catches up); this start joins it too.

		began := time.Now()
		res, err := r.Replicate(t, 0, workflows.ReplicateGroup, groupID, "v2")()
		if err != nil {
			t.Fatalf("replicate: %v", err)
		}
		t.Logf("group with its origin replicated in %s: %+v (%d bytes through the proxy)", time.Since(began).Round(time.Second), res, r.Proxy.Bytes())

		sgds := fmt.Sprintf("%s/iscsi/groups/%d", sp, groupID)
		svds := fmt.Sprintf("%s/iscsi/volumes/%d", sp, volumeID)
		var vs []models.GroupVersion
		if err := e.DB.Where("group_id = ?", groupID).Order("number").Find(&vs).Error; err != nil || len(vs) != 2 {
			t.Fatalf("versions %+v %v", vs, err)
		}
		for _, v := range vs {
			mg := r.Prop(r.Master, fmt.Sprintf("%s@v%d", gds, v.Number), "guid")
			sg := r.Prop(slave, fmt.Sprintf("%s@v%d", sgds, v.Number), "guid")
			if mg != v.GUID || sg != mg {
				t.Errorf("v%d: panel guid %s, master %s, slave %s", v.Number, v.GUID, mg, sg)
			}
		}
		if o := r.Prop(slave, sgds, "origin"); o != fmt.Sprintf("%s@group-%d", svds, groupID) {
			t.Errorf("slave's group origin %q: not a clone of its own volume's snapshot", o)
		}
		// A clone holds only what differs from its origin: the two 4 MiB writes, not the 48 MiB.
		mu, _ := strconv.ParseInt(r.Prop(r.Master, gds, "used"), 10, 64)
		su, _ := strconv.ParseInt(r.Prop(slave, sgds, "used"), 10, 64)
		vref, _ := strconv.ParseInt(r.Prop(slave, svds, "referenced"), 10, 64)
		t.Logf("group used: master %d, slave %d; slave volume referenced %d", mu, su, vref)
		if su > mu+mu/4+(1<<20) || su > vref/2 {
			t.Errorf("slave's group uses %d bytes (master %d, volume %d): the clone relationship is lost", su, mu, vref)
		}
		var got []models.VersionCopy
		e.DB.Where("server_id = ?", r.SlaveIDs[0]).Order("version_id").Find(&got)
		if len(got) != 2 || got[0].VersionID != vs[0].ID || got[1].GUID != vs[1].GUID {
			t.Errorf("version copies %+v", got)
		}
		// The master holds the slave's newest base, v2, and nothing older of the group.
		holds := e.GuestOn(r.Master, "zfs", "holds", "-H", gds+"@v1", gds+"@v2")
		if !strings.Contains(holds, gds+"@v2\tclusterducks-slave-") || strings.Contains(holds, gds+"@v1\t") {
			t.Errorf("master's holds:\n%s", holds)
		}
		checkReplicationMetrics(t, "http://"+r.Master.Addr(lab.PortBoot)+"/metrics", r.SlaveIDs[0], r.Proxy.Bytes(), cutSends(r.Master, r.SlaveIDs[0]))
		// The guests' kernels have TLS: the streams' records were sealed and opened there
		// (wire.ProtoKernelStream), zfs send's pipe spliced and zfs receive reading the socket.
		if log := slave.Log("agent-1.log"); !strings.Contains(log, "kernel_tls=true") {
			t.Errorf("the slave received no stream through kernel TLS; its log ends:\n%s", log[max(0, len(log)-4000):])
		}
	})
	if t.Failed() {
		return
	}

	// A device redirected to the slave takes its vdisk along, and back (vdisk_test.go).
	t.Run("vdisk", func(t *testing.T) {
		e.T = t
		vdiskMoves(t, r, groupID)
	})
	if t.Failed() {
		return
	}

	// A ctemplate's version reaches the slave, where a container may then clone it
	// (ctemplate_test.go).
	t.Run("ctemplate", func(t *testing.T) {
		e.T = t
		ctemplateReplicates(t, r)
	})
	if t.Failed() {
		return
	}

	// The satellite site (strict versioning across real servers, with a real iPXE boot): a
	// device that reaches only the slave stays in its boot loop while the slave lacks the
	// group's assigned version, and boots it from the slave once the version has arrived
	// there through a real transfer and been verified.
	t.Run("satellite", func(t *testing.T) {
		e.T = t
		harness.RequirePackages(t, lab.DevicePackages...)
		// The master is where the satellite's device cannot go: its iSCSI IP becomes the
		// device's own address on its user network (10.0.2.15), where nothing answers, so
		// a redirect to the master fails inside the device and sends no packet anywhere.
		e.Must(http.StatusOK, "PATCH", fmt.Sprintf("/servers/%d.json", r.MasterID), map[string]any{"ip": "10.0.2.15"})
		defer e.Must(http.StatusOK, "PATCH", fmt.Sprintf("/servers/%d.json", r.MasterID), map[string]any{"ip": "192.168.1.10"})
		grp := e.Must(http.StatusAccepted, "POST", "/groups.json", map[string]any{"network": r.NetworkID, "Name": "satellite",
			"VolumeID": volumeID, "strict_versioning": true, "lazy_locks": false})
		e.WaitOK(storagetest.OpID(grp))
		gid := storagetest.ID(grp, "id")
		// v1 of the group is the boot-sector fixture, which prints its marker from LBA 1.
		marker := fmt.Sprintf("satellite-g%d-v1", gid)
		if err := lab.MakeBootDisk(filepath.Join(r.Master.Share, "satellite.img"), marker, 0); err != nil {
			t.Fatal(err)
		}
		head := fmt.Sprintf("%s/iscsi/groups/%d", mp, gid)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		if err := r.Master.WaitZvol(ctx, head); err != nil {
			t.Fatal(err)
		}
		e.GuestOn(r.Master, "dd", "if=/mnt/host/satellite.img", "of=/dev/zvol/"+head, "bs=512", "count=2", "conv=notrunc,fsync", "status=none")

		// The link to the slave is cut: v1 is published (and assigned) on the master only.
		r.Proxy.Cut(true)
		pub := e.Must(http.StatusAccepted, "POST", fmt.Sprintf("/groups/%d/publish.json", gid), map[string]any{"note": "v1"})
		e.WaitOK(storagetest.OpID(pub))
		dev := lab.NewDeviceVM(slave.DeviceBootURL())
		d := e.Must(http.StatusCreated, "POST", "/devices.json", map[string]any{"network": r.NetworkID, "mac": dev.MAC, "name": "satellite", "group_id": gid})
		devID := storagetest.ID(d, "id")
		type outcome struct {
			res *lab.DeviceResult
			err error
		}
		booted := make(chan outcome, 1)
		go func() {
			res, err := dev.Run(ctx, 12*time.Minute)
			booted <- outcome{res, err}
		}()
		// It asks the slave, which sends it to the master, which it cannot reach; it asks
		// the slave again: twice is a loop.
		var loops []models.BootHistory
		deadline := time.Now().Add(6 * time.Minute)
		for len(loops) < 2 {
			select {
			case o := <-booted:
				t.Fatalf("the device ended while the slave lacks v1: %+v %v", o.res, o.err)
			case <-time.After(2 * time.Second):
			}
			if time.Now().After(deadline) {
				t.Fatalf("the device's boots at the slave: %+v", loops)
			}
			e.DB.Where("device_id = ? AND server_id = ? AND outcome = ?", devID, r.SlaveIDs[0], models.BootOutcomeNotBooted).Order("id").Find(&loops)
		}
		if !strings.Contains(loops[0].Reason, "does not hold the assigned v1") {
			t.Errorf("the slave's answer while it lacks v1: %q", loops[0].Reason)
		}
		var copies int64
		e.DB.Model(&models.VersionCopy{}).Joins("JOIN group_versions ON group_versions.id = version_copies.version_id").
			Where("group_versions.group_id = ? AND version_copies.server_id = ?", gid, r.SlaveIDs[0]).Count(&copies)
		if copies != 0 {
			t.Fatalf("the slave holds %d versions of the group across a cut link", copies)
		}

		// The link is back: the publish's replication (retried all along) brings v1 to the
		// slave; the same device, still looping, boots it there.
		r.Proxy.Cut(false)
		released := time.Now()
		o := <-booted
		if o.err != nil {
			t.Fatalf("the device after v1 reached the slave: %v", o.err)
		}
		if o.res.Marker != marker {
			t.Fatalf("the device booted %q, want %q", o.res.Marker, marker)
		}
		// The agent reports its boots in the background: the record follows the boot. Each
		// look reads into a new value: GORM adds the primary key of a non-zero destination
		// to the query, so a reused one would read the first row seen for ever.
		for end := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
			var last models.BootHistory
			err := e.DB.Where("device_id = ?", devID).Order("id DESC").Take(&last).Error
			if err == nil && last.ServerID == r.SlaveIDs[0] && last.Version == 1 && last.Outcome == models.BootOutcomeBooted {
				break
			}
			if time.Now().After(end) {
				var all []models.BootHistory
				e.DB.Where("device_id = ?", devID).Order("id").Find(&all)
				t.Errorf("the device's last boot: %+v %v; all its boots: %+v", last, err, all)
				break
			}
		}
		e.DB.Model(&models.VersionCopy{}).Joins("JOIN group_versions ON group_versions.id = version_copies.version_id").
			Where("group_versions.group_id = ? AND version_copies.server_id = ?", gid, r.SlaveIDs[0]).Count(&copies)
		if copies != 1 {
			t.Errorf("the slave's verified copies of the group: %d, want 1", copies)
		}
		t.Logf("device at the satellite: %d boot loops while the link was cut; booted v1 from the slave %s after the link came back (device ran %s)",
			len(loops), time.Since(released).Round(time.Second), o.res.Took.Round(time.Second))
	})
	if t.Failed() {
		return
	}

	t.Run("faults", func(t *testing.T) {
		e.T = t
		vid, gid := r.Volume("big", 100)
		vds := fmt.Sprintf("%s/iscsi/volumes/%d", mp, vid)
		snap := fmt.Sprintf("group-%d", gid)
		size := r.SendSize(t, r.Master, vds+"@"+snap)
		// Slow enough to cut it three times: 4 MiB/s.
		if err := e.DB.Model(&models.Server{}).Where("id = ?", r.SlaveIDs[0]).Update("bandwidth_limit", 4<<20).Error; err != nil {
			t.Fatal(err)
		}
		// The transfer's operation, as a trigger records one: its row shows the progress.
		op := models.Operation{NetworkID: &r.NetworkID, Kind: models.OpReplicateVolume, ObjectType: "volume", ObjectID: vid,
			State: models.OpQueued, Step: "queued", Input: fmt.Sprintf(`{"server_id":%d}`, r.SlaveIDs[0])}
		if err := e.DB.Create(&op).Error; err != nil {
			t.Fatal(err)
		}
		base := r.Proxy.Bytes()
		began := time.Now()
		wait := r.ReplicateTo(t, workflows.ReplicateInput{SlaveID: r.SlaveIDs[0], Kind: workflows.ReplicateVolume, ObjectID: vid,
			Snapshot: snap, OperationID: op.ID})
		rows := watchOperation(e.DB, op.ID)
		at := func(frac float64) {
			t.Helper()
			deadline := time.Now().Add(10 * time.Minute)
			for float64(r.Proxy.Bytes()-base) < frac*float64(size) {
				if time.Now().After(deadline) {
					t.Fatalf("the transfer never reached %.0f%% (%d of %d bytes)", frac*100, r.Proxy.Bytes()-base, size)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		at(0.2)
		t.Logf("cut 1 at %d bytes: the slave's agent is killed", r.Proxy.Bytes()-base)
		e.KillAgentOn(slave, 1)
		time.Sleep(2 * time.Second)
		r.StartSlave(0)
		at(0.45)
		t.Logf("cut 2 at %d bytes: the TCP connection is dropped (%d dropped)", r.Proxy.Bytes()-base, r.Proxy.Drop())
		at(0.7)
		t.Logf("cut 3 at %d bytes: the master's agent is killed", r.Proxy.Bytes()-base)
		e.KillAgentOn(r.Master, 1)
		time.Sleep(2 * time.Second)
		r.StartMaster()
		res, err := wait()
		seen := rows()
		if err != nil {
			t.Fatalf("replicate after the cuts: %v", err)
		}
		onWire := r.Proxy.Bytes() - base
		// While it ran, the operation carried the bytes, a percent that moved and a rate.
		var moving []int
		var rate int64
		for _, o := range seen {
			if o.State == models.OpRunning && o.Step == "transfer" && o.Bytes > 0 && o.BytesTotal > 0 {
				if len(moving) == 0 || o.Percent != moving[len(moving)-1] {
					moving = append(moving, o.Percent)
				}
				rate = max(rate, o.Rate)
			}
		}
		t.Logf("the operation's transfer percents while it ran: %v; highest rate %d B/s", moving, rate)
		if len(moving) < 3 || !slices.IsSorted(moving) || rate <= 0 || rate > 8<<20 {
			t.Errorf("operation %d: transfer percents %v, rate %d B/s: want a percent that moves forward and a rate under the limit's burst", op.ID, moving, rate)
		}
		// The compressed stream's estimate (size) is not what crosses: the operation ends
		// with what the workflow received in total.
		if got := e.WaitOK(op.ID); got.Bytes != res.Bytes || got.Percent != 100 {
			t.Errorf("operation %d ended at %d %% with %d bytes received; the workflow received %d", op.ID, got.Percent, got.Bytes, res.Bytes)
		}
		t.Logf("volume of %d stream bytes replicated in %s through 3 cuts: %d bytes on the wire (%.3f×), result %+v",
			size, time.Since(began).Round(time.Second), onWire, float64(onWire)/float64(size), res)
		sds := fmt.Sprintf("%s/iscsi/volumes/%d", sp, vid)
		if mg, sg := r.Prop(r.Master, vds+"@"+snap, "guid"), r.Prop(slave, sds+"@"+snap, "guid"); mg != sg || res.GUID != mg {
			t.Errorf("guids: master %s, slave %s, result %s", mg, sg, res.GUID)
		}
		if float64(onWire) >= 1.2*float64(size) {
			t.Errorf("%d bytes on the wire for a %d byte stream: something was sent again", onWire, size)
		}
		if tok := r.Prop(slave, sds, "receive_resume_token"); tok != "-" {
			t.Errorf("a resume token is left: %s", tok)
		}
		if log := r.Master.Log("agent-1.log"); strings.Count(log, "resumed=true") < 2 {
			t.Errorf("the master resumed %d streams, want one after each cut:\n%s", strings.Count(log, "resumed=true"), log)
		} else if k := regexp.MustCompile(`resumed=true .*kernel_tls=true`).FindAllString(log, -1); len(k) < 2 {
			t.Errorf("%d resumed streams went through kernel TLS, want every one after a cut:\n%s", len(k), log)
		}
	})
	if t.Failed() {
		return
	}

	// The slave becomes the master: it holds a verified copy of everything, the switch
	// touches no dataset, the old master's holds for it go, and a version published on the
	// new master replicates back to the old one (now its slave), incrementally by guid.
	t.Run("promote", func(t *testing.T) {
		e.T = t
		newID, oldID := r.SlaveIDs[0], r.MasterID
		res := e.Must(http.StatusAccepted, "POST", fmt.Sprintf("/servers/%d/promote.json", newID), nil)
		e.WaitOK(storagetest.OpID(res))
		var n models.Network
		var roles []models.Server
		e.DB.Take(&n, r.NetworkID)
		e.DB.Where("network_id = ?", r.NetworkID).Order("id").Find(&roles)
		if n.MasterServerID == nil || *n.MasterServerID != newID || len(roles) != 2 || roles[0].Role != models.ServerSlave || roles[1].Role != models.ServerMaster {
			t.Fatalf("after the promote: network master %v, servers %+v", n.MasterServerID, roles)
		}
		// The volumes and groups now flow from the new master: the old one releases their
		// holds. A ctemplate keeps flowing from the server it was made on (the old master
		// here), whose hold on the new master's base stays.
		tag := fmt.Sprintf("clusterducks-slave-%d", newID)
		if holds := e.GuestOn(r.Master, "sh", "-c", "zfs list -H -r -t snapshot -o name "+mp+"/iscsi/volumes "+mp+"/iscsi/groups | xargs -r zfs holds -H"); strings.Contains(holds, tag) {
			t.Errorf("the old master still holds snapshots for the new master:\n%s", holds)
		}

		// v3 on the new master: 4 MiB more in its group, published there.
		sgds := fmt.Sprintf("%s/iscsi/groups/%d", sp, groupID)
		r.FillOn(slave, sgds, 140, 4)
		pub := e.Must(http.StatusAccepted, "POST", fmt.Sprintf("/groups/%d/publish.json", groupID), map[string]any{"note": "v3"})
		e.WaitOK(storagetest.OpID(pub))
		var v3 models.GroupVersion
		if err := e.DB.Where("group_id = ? AND number = 3", groupID).Take(&v3).Error; err != nil || v3.State != models.StateReady {
			t.Fatalf("v3 %+v %v", v3, err)
		}
		if g := r.Prop(slave, sgds+"@v3", "guid"); g != v3.GUID {
			t.Fatalf("v3's guid: panel %s, new master %s", v3.GUID, g)
		}
		// The publish queued v3 to the old master (its catch-up after the promote may still
		// run: this joins it, or finds v3 there).
		base := r.SlaveProxies[0].Bytes()
		began := time.Now()
		back, err := r.ReplicateTo(t, workflows.ReplicateInput{SlaveID: oldID, Kind: workflows.ReplicateGroup, ObjectID: groupID, Snapshot: "v3"})()
		if err != nil {
			t.Fatalf("v3 back to the old master: %v", err)
		}
		gds := fmt.Sprintf("%s/iscsi/groups/%d", mp, groupID)
		onWire := r.SlaveProxies[0].Bytes() - base
		t.Logf("v3 replicated back in %s: %+v (%d bytes from the new master)", time.Since(began).Round(time.Second), back, onWire)
		r.Timeline(t, workflows.ReplicateID(oldID, workflows.ReplicateGroup, groupID))
		for _, v := range []string{"v1", "v2", "v3"} {
			if mg, sg := r.Prop(r.Master, gds+"@"+v, "guid"), r.Prop(slave, sgds+"@"+v, "guid"); mg != sg || mg == "" {
				t.Errorf("%s: old master %s, new master %s", v, mg, sg)
			}
		}
		// Incremental from v2: the 4 MiB, not the group or its volume again.
		if onWire > 12<<20 {
			t.Errorf("%d bytes came back for a 4 MiB version: not incremental", onWire)
		}
		var vc models.VersionCopy
		if err := e.DB.Where("version_id = ? AND server_id = ?", v3.ID, oldID).Take(&vc).Error; err != nil || vc.GUID != v3.GUID {
			t.Errorf("old master's copy of v3: %+v %v", vc, err)
		}
		// The new master keeps the old one's base: v3 of the group.
		if holds := e.GuestOn(slave, "zfs", "holds", "-H", sgds+"@v3"); !strings.Contains(holds, fmt.Sprintf("clusterducks-slave-%d", oldID)) {
			t.Errorf("new master's holds on v3:\n%s", holds)
		}
	})
}

// watchOperation reads an operation's row twice a second until the returned stop, which
// gives every row read.
func watchOperation(db *gorm.DB, id uint) (stop func() []models.Operation) {
	done := make(chan struct{})
	out := make(chan []models.Operation, 1)
	go func() {
		var rows []models.Operation
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			var o models.Operation
			if db.Take(&o, id).Error == nil {
				rows = append(rows, o)
			}
			select {
			case <-done:
				out <- rows
				return
			case <-tick.C:
			}
		}
	}()
	return func() []models.Operation {
		close(done)
		return <-out
	}
}

// cutSends counts the master's sends to slave whose connection broke: its agent logs
// each send, with the copy's error.
func cutSends(vm *lab.Server, slave uint) int {
	n := 0
	for _, l := range strings.Split(vm.Log("agent-1.log"), "\n") {
		if strings.Contains(l, "replication: sent slave="+strconv.FormatUint(uint64(slave), 10)+" ") && !strings.Contains(l, "copy_err=<nil>") {
			n++
		}
	}
	return n
}

// checkReplicationMetrics scrapes the running master agent's /metrics (on its boot
// listener) after a replication to slave: the stream bytes it counted are there and no
// more than crossed the proxy (onWire, TLS included), nothing is left to send, and the
// slave's last success has a time. A send whose connection broke (cut sends: on a loaded
// machine an attempt can time out and resume from its token) counted what its socket
// accepted and never delivered: up to 8 MiB each (the guest's TCP send buffer is 4 MiB
// at most, plus the TLS record and the proxy's buffer).
func checkReplicationMetrics(t *testing.T, url string, slave uint, onWire int64, cut int) {
	t.Helper()
	m := harness.ScrapeMetrics(t, url)
	label := map[string]string{"slave": strconv.FormatUint(uint64(slave), 10)}
	sent := m.Sum("clusterducks_replication_sent_bytes_total", label)
	remaining := m.Sum("clusterducks_replication_remaining_bytes", label)
	last := m.Sum("clusterducks_replication_last_success_timestamp_seconds", label)
	t.Logf("master agent's replication metrics for slave %d: sent %v, remaining %v, last success %v (%d bytes crossed the proxy)", slave, sent, remaining, last, onWire)
	if lost := int64(cut) * 8 << 20; sent <= 0 || sent > float64(onWire+lost) {
		t.Errorf("replication_sent_bytes_total %v: want more than 0 and at most the %d bytes on the wire (+%d for %d cut sends)", sent, onWire, lost, cut)
	}
	if remaining != 0 {
		t.Errorf("replication_remaining_bytes %v after the replication ended, want 0", remaining)
	}
	if last <= 0 || time.Since(time.Unix(int64(last), 0)) > time.Hour {
		t.Errorf("replication_last_success_timestamp_seconds %v: want the time of the last acknowledgement", last)
	}
}
