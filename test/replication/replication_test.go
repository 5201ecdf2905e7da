package replication

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/lab"
	storagetest "github.com/clusterducks/clusterducks/test/storage"
	"github.com/clusterducks/clusterducks/workflows"
)

func TestMain(m *testing.M) { harness.MainPostgresTemporal(m) }

// TestReplication is issue 12's acceptance on one master and one slave booted once: the
// guide's group with v1 and v2 reaches the slave as a clone of its volume, verified by
// guid; then a 200 MiB volume is cut three ways mid-transfer and still arrives whole
// with less than 1.2× its stream on the wire.
func TestReplication(t *testing.T) {
	r := StartRig(t, 1)
	e, slave := r.E, r.Slaves[0]
	var srv models.Server
	if err := e.DB.Take(&srv, r.MasterID).Error; err != nil || srv.Role != models.ServerMaster || !strings.HasPrefix(srv.ReplicationAddr, lab.GuestHostIP+":") {
		t.Fatalf("master row %+v %v: want the master role and the advertised replication address", srv, err)
	}
	mp, sp := r.Master.Pool, slave.Pool

	t.Run("guide", func(t *testing.T) {
		e.T = t
		// "The OS": 48 MiB that does not compress, then a group and two versions.
		volumeID, groupID := r.Volume("base", 48)
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
	})
	if t.Failed() {
		return
	}

	t.Run("faults", func(t *testing.T) {
		e.T = t
		vid, gid := r.Volume("big", 200)
		vds := fmt.Sprintf("%s/iscsi/volumes/%d", mp, vid)
		snap := fmt.Sprintf("group-%d", gid)
		size := r.SendSize(t, r.Master, vds+"@"+snap)
		// Slow enough to cut it three times: 4 MiB/s.
		if err := e.DB.Model(&models.Server{}).Where("id = ?", r.SlaveIDs[0]).Update("bandwidth_limit", 4<<20).Error; err != nil {
			t.Fatal(err)
		}
		base := r.Proxy.Bytes()
		began := time.Now()
		wait := r.Replicate(t, 0, workflows.ReplicateVolume, vid, snap)
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
		if err != nil {
			t.Fatalf("replicate after the cuts: %v", err)
		}
		onWire := r.Proxy.Bytes() - base
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
		}
	})
}
