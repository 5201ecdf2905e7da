// Package replication tests the transfer of volumes and group versions from a network's
// master to a slave through the real parts: the panel process, PostgreSQL, Temporal and
// two storage-lab VMs (OpenZFS) whose agents stream zfs send to zfs receive over mutual
// TLS. The slave reaches the master's replication port through a proxy on the host, so the
// test counts the bytes on the wire and can drop the connection.
package replication

import (
	"context"
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
	"go.temporal.io/sdk/client"
)

func TestMain(m *testing.M) { harness.MainPostgresTemporal(m) }

// rig is the panel with a network of two servers on two VMs, their agents running.
type rig struct {
	e                 *storagetest.Env
	master, slave     *lab.Server
	networkID         uint
	masterID, slaveID uint
	masterKey         string
	slaveKey          string
	proxy             *proxy
	tc                client.Client
}

func (r *rig) startMaster() {
	r.e.StartAgentOn(r.master, 1, r.masterKey, "--replication-advertise", fmt.Sprintf("%s:%d", lab.GuestHostIP, r.proxy.port))
}

func (r *rig) startSlave() { r.e.StartAgentOn(r.slave, 1, r.slaveKey) }

// replicate runs the Replicate workflow to its end.
func (r *rig) replicate(t *testing.T, kind string, objectID uint, snapshot string) (client.WorkflowRun, func() (*workflows.ReplicateResult, error)) {
	t.Helper()
	in := workflows.ReplicateInput{NetworkID: r.networkID, SlaveID: r.slaveID, Kind: kind, ObjectID: objectID, Snapshot: snapshot}
	run, err := r.tc.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: workflows.ReplicateID(r.slaveID, kind, objectID), TaskQueue: workflows.PanelQueue}, workflows.Replicate, in)
	if err != nil {
		t.Fatal(err)
	}
	return run, func() (*workflows.ReplicateResult, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		var res workflows.ReplicateResult
		err := run.Get(ctx, &res)
		return &res, err
	}
}

func prop(e *storagetest.Env, vm *lab.Server, ds, p string) string {
	return strings.TrimSpace(e.GuestOn(vm, "zfs", "get", "-Hp", "-o", "value", p, ds))
}

func TestReplication(t *testing.T) {
	start := time.Now()
	e := storagetest.StartVMs(t, []lab.Options{{Name: "repl-master"}, {Name: "repl-slave", Pool: "sat"}})
	r := &rig{e: e, master: e.VMs[0], slave: e.VMs[1]}
	t.Logf("setup (2 VMs booted in %s / %s) in %s", r.master.BootTime.Round(time.Second), r.slave.BootTime.Round(time.Second), time.Since(start).Round(time.Second))
	r.proxy = startProxy(t, r.master.Addr(lab.PortReplication))
	r.tc = harness.TemporalClient(t)

	client := e.Must(http.StatusCreated, "POST", "/clients.json", map[string]any{"Name": "Replication"})
	network := e.Must(http.StatusCreated, "POST", "/networks.json", map[string]any{"Name": "Replication", "Client": storagetest.ID(client, "id")})
	r.networkID = storagetest.ID(network, "id")
	e.Must(http.StatusCreated, "POST", "/tunnels.json", map[string]any{"Alias": "tunnel", "network": r.networkID, "IP": "4.2.2.1"})
	ms := e.Must(http.StatusCreated, "POST", "/servers.json", map[string]any{"Name": "master", "network": r.networkID, "IP": "192.168.1.10", "Pool": r.master.Pool})
	ss := e.Must(http.StatusCreated, "POST", "/servers.json", map[string]any{"Name": "slave", "network": r.networkID, "IP": "192.168.1.11", "Pool": r.slave.Pool})
	r.masterID, r.masterKey = storagetest.ID(ms, "id"), ms["key"].(string)
	r.slaveID, r.slaveKey = storagetest.ID(ss, "id"), ss["key"].(string)
	r.startMaster()
	r.startSlave()
	for _, name := range []string{"master", "slave"} {
		e.WaitStats(name, "ONLINE")
	}
	for _, id := range []uint{r.masterID, r.slaveID} {
		var boot models.Operation
		if err := e.DB.Where("kind = ? AND object_id = ?", models.OpServerBootstrap, id).Order("id DESC").Take(&boot).Error; err != nil {
			t.Fatal(err)
		}
		e.WaitOK(boot.ID)
	}
	var srv models.Server
	if err := e.DB.Take(&srv, r.masterID).Error; err != nil || srv.Role != models.ServerMaster || !strings.HasPrefix(srv.ReplicationAddr, lab.GuestHostIP+":") {
		t.Fatalf("master row %+v %v: want the master role and the advertised replication address", srv, err)
	}
	mp, sp := r.master.Pool, r.slave.Pool

	var volumeID, groupID uint
	t.Run("guide", func(t *testing.T) {
		e.T = t
		vol := e.Must(http.StatusAccepted, "POST", "/volumes.json", map[string]any{"network": r.networkID, "Alias": "base", "vol_size": 1})
		e.WaitOK(storagetest.OpID(vol))
		volumeID = storagetest.ID(vol, "id")
		vds := fmt.Sprintf("%s/iscsi/volumes/%d", mp, volumeID)
		// "The OS": 48 MiB that does not compress.
		e.GuestOn(r.master, "sh", "-c", fmt.Sprintf("dd if=/dev/urandom of=/dev/zvol/%s bs=1M count=48 conv=fsync status=none", vds))
		grp := e.Must(http.StatusAccepted, "POST", "/groups.json", map[string]any{"network": r.networkID, "Name": "base", "VolumeID": volumeID})
		e.WaitOK(storagetest.OpID(grp))
		groupID = storagetest.ID(grp, "id")
		gds := fmt.Sprintf("%s/iscsi/groups/%d", mp, groupID)
		for n := 1; n <= 2; n++ {
			e.GuestOn(r.master, "sh", "-c", fmt.Sprintf("dd if=/dev/urandom of=/dev/zvol/%s bs=1M seek=%d count=4 conv=notrunc,fsync status=none", gds, 100+8*n))
			res := e.Must(http.StatusAccepted, "POST", fmt.Sprintf("/groups/%d/publish.json", groupID), map[string]any{"note": fmt.Sprintf("v%d", n)})
			e.WaitOK(storagetest.OpID(res))
		}
		var copies int64
		e.DB.Model(&models.VersionCopy{}).Where("server_id = ?", r.slaveID).Count(&copies)
		if copies != 0 {
			t.Fatalf("%d version copies before any transfer", copies)
		}

		began := time.Now()
		_, wait := r.replicate(t, workflows.ReplicateGroup, groupID, "v2")
		res, err := wait()
		if err != nil {
			t.Fatalf("replicate: %v", err)
		}
		t.Logf("group with its origin replicated in %s: %+v (%d bytes through the proxy)", time.Since(began).Round(time.Second), res, r.proxy.bytes())

		sgds := fmt.Sprintf("%s/iscsi/groups/%d", sp, groupID)
		svds := fmt.Sprintf("%s/iscsi/volumes/%d", sp, volumeID)
		var vs []models.GroupVersion
		if err := e.DB.Where("group_id = ?", groupID).Order("number").Find(&vs).Error; err != nil || len(vs) != 2 {
			t.Fatalf("versions %+v %v", vs, err)
		}
		for _, v := range vs {
			mg := prop(e, r.master, fmt.Sprintf("%s@v%d", gds, v.Number), "guid")
			sg := prop(e, r.slave, fmt.Sprintf("%s@v%d", sgds, v.Number), "guid")
			if mg != v.GUID || sg != mg {
				t.Errorf("v%d: panel guid %s, master %s, slave %s", v.Number, v.GUID, mg, sg)
			}
		}
		if o := prop(e, r.slave, sgds, "origin"); o != fmt.Sprintf("%s@group-%d", svds, groupID) {
			t.Errorf("slave's group origin %q: not a clone of its own volume's snapshot", o)
		}
		// A clone holds only what differs from its origin: the two 4 MiB writes, not the 48 MiB.
		mu, _ := strconv.ParseInt(prop(e, r.master, gds, "used"), 10, 64)
		su, _ := strconv.ParseInt(prop(e, r.slave, sgds, "used"), 10, 64)
		vref, _ := strconv.ParseInt(prop(e, r.slave, svds, "referenced"), 10, 64)
		t.Logf("group used: master %d, slave %d; slave volume referenced %d", mu, su, vref)
		if su > mu+mu/4+(1<<20) || su > vref/2 {
			t.Errorf("slave's group uses %d bytes (master %d, volume %d): the clone relationship is lost", su, mu, vref)
		}
		var got []models.VersionCopy
		e.DB.Where("server_id = ?", r.slaveID).Order("version_id").Find(&got)
		if len(got) != 2 || got[0].VersionID != vs[0].ID || got[1].GUID != vs[1].GUID {
			t.Errorf("version copies %+v", got)
		}
		// The master holds the slave's newest base, v2, and nothing older of the group.
		holds := e.GuestOn(r.master, "zfs", "holds", "-H", gds+"@v1", gds+"@v2")
		if !strings.Contains(holds, gds+"@v2\tclusterducks-slave-") || strings.Contains(holds, gds+"@v1\t") {
			t.Errorf("master's holds:\n%s", holds)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("faults", func(t *testing.T) {
		e.T = t
		const mib = 256
		vol := e.Must(http.StatusAccepted, "POST", "/volumes.json", map[string]any{"network": r.networkID, "Alias": "big", "vol_size": 1})
		e.WaitOK(storagetest.OpID(vol))
		vid := storagetest.ID(vol, "id")
		vds := fmt.Sprintf("%s/iscsi/volumes/%d", mp, vid)
		e.GuestOn(r.master, "sh", "-c", fmt.Sprintf("dd if=/dev/urandom of=/dev/zvol/%s bs=1M count=%d conv=fsync status=none", vds, mib))
		grp := e.Must(http.StatusAccepted, "POST", "/groups.json", map[string]any{"network": r.networkID, "Name": "big", "VolumeID": vid})
		e.WaitOK(storagetest.OpID(grp))
		gid := storagetest.ID(grp, "id")
		snap := fmt.Sprintf("group-%d", gid)
		size := sendSize(t, e, r.master, vds+"@"+snap)
		// Slow enough to cut it three times: ~4 MiB/s.
		if err := e.DB.Model(&models.Server{}).Where("id = ?", r.slaveID).Update("bandwidth_limit", 4<<20).Error; err != nil {
			t.Fatal(err)
		}
		base := r.proxy.bytes()
		began := time.Now()
		_, wait := r.replicate(t, workflows.ReplicateVolume, vid, snap)
		at := func(frac float64) {
			t.Helper()
			deadline := time.Now().Add(10 * time.Minute)
			for float64(r.proxy.bytes()-base) < frac*float64(size) {
				if time.Now().After(deadline) {
					t.Fatalf("the transfer never reached %.0f%% (%d of %d bytes)", frac*100, r.proxy.bytes()-base, size)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		at(0.2)
		t.Logf("cut 1 at %d bytes: the slave's agent is killed", r.proxy.bytes()-base)
		e.KillAgentOn(r.slave, 1)
		time.Sleep(2 * time.Second)
		r.startSlave()
		at(0.45)
		t.Logf("cut 2 at %d bytes: the TCP connection is dropped (%d dropped)", r.proxy.bytes()-base, r.proxy.drop())
		at(0.7)
		t.Logf("cut 3 at %d bytes: the master's agent is killed", r.proxy.bytes()-base)
		e.KillAgentOn(r.master, 1)
		time.Sleep(2 * time.Second)
		r.startMaster()
		res, err := wait()
		if err != nil {
			t.Fatalf("replicate after the cuts: %v", err)
		}
		wire := r.proxy.bytes() - base
		t.Logf("volume of %d stream bytes replicated in %s through 3 cuts: %d bytes on the wire (%.3f×), result %+v",
			size, time.Since(began).Round(time.Second), wire, float64(wire)/float64(size), res)
		if mg, sg := prop(e, r.master, vds+"@"+snap, "guid"), prop(e, r.slave, fmt.Sprintf("%s/iscsi/volumes/%d@%s", sp, vid, snap), "guid"); mg != sg || res.GUID != mg {
			t.Errorf("guids: master %s, slave %s, result %s", mg, sg, res.GUID)
		}
		if float64(wire) >= 1.2*float64(size) {
			t.Errorf("%d bytes on the wire for a %d byte stream: something was sent again", wire, size)
		}
		if tok := prop(e, r.slave, fmt.Sprintf("%s/iscsi/volumes/%d", sp, vid), "receive_resume_token"); tok != "-" {
			t.Errorf("a resume token is left: %s", tok)
		}
		if log := r.master.Log("agent-1.log"); !strings.Contains(log, "resumed=true") {
			t.Errorf("the master never resumed a stream (agent log has no resumed=true)")
		}
	})
}

// sendSize is zfs send's estimate of a full compressed stream of snapshot.
func sendSize(t *testing.T, e *storagetest.Env, vm *lab.Server, snapshot string) int64 {
	out := e.GuestOn(vm, "zfs", "send", "-n", "-P", "-c", snapshot)
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "size" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return n
			}
		}
	}
	t.Fatalf("zfs send -nP: %q", out)
	return 0
}
