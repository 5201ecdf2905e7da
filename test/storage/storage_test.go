package storagetest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
)

func TestMain(m *testing.M) { harness.MainPostgresTemporal(m) }

// TestStorage follows the guide's curl sequence on a real storage server and then the
// faults of issue 4, all on one VM booted once (its subtests run in order and build on
// each other).
func TestStorage(t *testing.T) {
	start := time.Now()
	e := Start(t)
	t.Logf("setup (VM boot %s, panel, database, Temporal) in %s", e.VM.BootTime.Round(time.Second), time.Since(start).Round(time.Second))

	var networkID, serverID, volumeID, groupID uint
	var serverKey string

	t.Run("guide", func(t *testing.T) {
		e.T = t
		client := e.Must(http.StatusCreated, "POST", "/clients.json", map[string]any{"Name": "New Client"})
		network := e.Must(http.StatusCreated, "POST", "/networks.json", map[string]any{"Name": "New Network", "Client": ID(client, "id")})
		networkID = ID(network, "id")
		e.Must(http.StatusCreated, "POST", "/tunnels.json", map[string]any{"Alias": "New Tunnel Service", "network": networkID, "IP": "4.2.2.1"})
		server := e.Must(http.StatusCreated, "POST", "/servers.json", map[string]any{"Name": "masterServer", "network": networkID, "IP": "192.168.1.10", "Pool": e.VM.Pool})
		serverID, serverKey = ID(server, "id"), server["key"].(string)

		// install.sh's part: the agent presents the key; the bootstrap lays out the pool.
		e.StartAgent(1, serverKey)
		st := e.WaitStats("masterServer", "ONLINE")
		if ID(st, "pool_size") == 0 {
			t.Errorf("stats without capacity: %v", st)
		}
		var boot models.Operation
		if err := e.DB.Where("kind = ? AND object_id = ?", models.OpServerBootstrap, serverID).Order("id DESC").Take(&boot).Error; err != nil {
			t.Fatal(err)
		}
		e.WaitOK(boot.ID)
		pool := e.VM.Pool
		have := e.Datasets(pool)
		for _, fs := range []string{"iscsi", "iscsi/devices", "iscsi/containers", "iscsi/ctemplates", "iscsi/groups", "iscsi/volumes", "vdisks", "erator"} {
			if !slices.Contains(have, pool+"/"+fs) {
				t.Errorf("bootstrap did not create %s/%s: %v", pool, fs, have)
			}
		}

		vol := e.Must(http.StatusAccepted, "POST", "/volumes.json", map[string]any{"network": networkID, "Alias": "New Volume 1", "vol_size": "42"})
		volumeID = ID(vol, "id")
		e.WaitOK(OpID(vol))
		ds := fmt.Sprintf("%s/iscsi/volumes/%d", pool, volumeID)
		if got := e.Prop(ds, "volsize"); got != fmt.Sprint(int64(42)<<30) {
			t.Errorf("%s volsize = %s, want 42 GiB", ds, got)
		}
		if got := e.Prop(ds, "refreservation"); got != "0" {
			t.Errorf("%s refreservation = %s: the volume is not thin", ds, got)
		}
		_, v := e.Call("GET", fmt.Sprintf("/volumes/%d.json", volumeID), nil)
		if v["state"] != models.StateReady {
			t.Errorf("volume = %v", v)
		}

		grp := e.Must(http.StatusAccepted, "POST", "/groups.json", map[string]any{"network": networkID, "Name": "New Volume 1", "VolumeID": volumeID})
		groupID = ID(grp, "id")
		e.WaitOK(OpID(grp))
		gds := fmt.Sprintf("%s/iscsi/groups/%d", pool, groupID)
		if got := e.Prop(gds, "origin"); got != fmt.Sprintf("%s@group-%d", ds, groupID) {
			t.Errorf("%s origin = %q", gds, got)
		}
		_, g := e.Call("GET", fmt.Sprintf("/groups/%d.json", groupID), nil)
		if g["state"] != models.StateReady {
			t.Errorf("group = %v", g)
		}
		// Group properties are stored and shown.
		g = e.Must(http.StatusOK, "PATCH", fmt.Sprintf("/groups/%d.json", groupID), map[string]any{"strict_versioning": true, "lazy_locks": true})
		if g["strict_versioning"] != true || g["lazy_locks"] != true {
			t.Errorf("group properties = %v", g)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("publish", func(t *testing.T) {
		e.T = t
		gds := fmt.Sprintf("%s/iscsi/groups/%d", e.VM.Pool, groupID)
		for n := 1; n <= 2; n++ {
			// Something changes in the group head between versions.
			e.WaitZvol(gds)
			e.Guest("sh", "-c", fmt.Sprintf("printf 'version %d' | dd of=/dev/zvol/%s bs=512 seek=%d conv=notrunc status=none && sync", n, gds, n))
			res := e.Must(http.StatusAccepted, "POST", fmt.Sprintf("/groups/%d/publish.json", groupID), map[string]any{"note": fmt.Sprintf("v%d", n)})
			if ID(res, "number") != uint(n) {
				t.Fatalf("publish %d answered %v", n, res)
			}
			e.WaitOK(OpID(res))
		}
		var vs []models.GroupVersion
		if err := e.DB.Where("group_id = ?", groupID).Order("number").Find(&vs).Error; err != nil {
			t.Fatal(err)
		}
		if len(vs) != 2 {
			t.Fatalf("versions = %+v", vs)
		}
		for _, v := range vs {
			snap := fmt.Sprintf("%s@v%d", gds, v.Number)
			if v.State != models.StateReady || v.GUID == "" || v.GUID != e.Prop(snap, "guid") {
				t.Errorf("v%d: %+v, guest guid %s", v.Number, v, e.Prop(snap, "guid"))
			}
		}
		if vs[0].GUID == vs[1].GUID {
			t.Error("v1 and v2 have the same guid")
		}
		// A repeated publish naming the version it published returns it, nothing new.
		res := e.Must(http.StatusAccepted, "POST", fmt.Sprintf("/groups/%d/publish.json", groupID), map[string]any{"version": 2})
		if ID(res, "id") != vs[1].ID {
			t.Errorf("repeat of v2 answered %v", res)
		}
		if n := len(e.Datasets(gds)); n != 3 {
			t.Errorf("%s has %d datasets, want the head and 2 snapshots", gds, n)
		}
	})

	t.Run("size", func(t *testing.T) {
		e.T = t
		// The master's stats say what its pool holds: a size it can never hold is refused
		// at once, naming the field, and leaves no row.
		var before int64
		e.DB.Model(&models.Volume{}).Count(&before)
		status, body := e.Call("POST", "/volumes.json", map[string]any{"network": networkID, "Alias": "too big", "vol_size": 1000})
		if status != http.StatusUnprocessableEntity || body["field"] != "vol_size" || !strings.Contains(fmt.Sprint(body["error"]), "can ever hold") {
			t.Errorf("a 1000 GiB volume on a %d GiB pool: %d %v", PoolGiB, status, body)
		}
		var after int64
		e.DB.Model(&models.Volume{}).Count(&after)
		if after != before {
			t.Errorf("a refused volume left a row")
		}
		// 42 + 40 GiB on a 64 GiB pool: thin provisioning overcommits, with a warning.
		over := e.Must(http.StatusAccepted, "POST", "/volumes.json", map[string]any{"network": networkID, "Alias": "over", "vol_size": 40})
		op := e.WaitOK(OpID(over))
		if !strings.Contains(op.Message, "overcommits") {
			t.Errorf("no overcommit warning: %q", op.Message)
		}
		// Resize grows the zvol; shrinking is refused by the API.
		rs := e.Must(http.StatusAccepted, "PATCH", fmt.Sprintf("/volumes/%d.json", ID(over, "id")), map[string]any{"vol_size": 41})
		e.WaitOK(OpID(rs))
		if got := e.Prop(fmt.Sprintf("%s/iscsi/volumes/%d", e.VM.Pool, ID(over, "id")), "volsize"); got != fmt.Sprint(int64(41)<<30) {
			t.Errorf("resized volsize = %s", got)
		}
		e.Must(http.StatusUnprocessableEntity, "PATCH", fmt.Sprintf("/volumes/%d.json", ID(over, "id")), map[string]any{"vol_size": 2})

		// Delete moves into the erator; a repeated delete is the same operation; restore
		// puts it back; purge destroys what is deleted again.
		id := ID(over, "id")
		ds := fmt.Sprintf("%s/iscsi/volumes/%d", e.VM.Pool, id)
		del := e.Must(http.StatusAccepted, "DELETE", fmt.Sprintf("/volumes/%d.json", id), nil)
		again := e.Must(http.StatusAccepted, "DELETE", fmt.Sprintf("/volumes/%d.json", id), nil)
		if OpID(again) != OpID(del) {
			t.Errorf("a repeated delete started operation %d besides %d", OpID(again), OpID(del))
		}
		e.WaitOK(OpID(del))
		trash := eratorEntries(e, fmt.Sprintf("volume-%d-", id))
		if len(trash) != 1 || len(e.Datasets(ds)) != 0 {
			t.Fatalf("after delete: erator %v, %s %v", trash, ds, e.Datasets(ds))
		}
		e.WaitOK(OpID(e.Must(http.StatusAccepted, "POST", fmt.Sprintf("/volumes/%d/restore.json", id), nil)))
		if len(e.Datasets(ds)) != 1 || len(eratorEntries(e, fmt.Sprintf("volume-%d-", id))) != 0 {
			t.Fatalf("restore did not bring %s back", ds)
		}
		e.WaitOK(OpID(e.Must(http.StatusAccepted, "DELETE", fmt.Sprintf("/volumes/%d.json", id), nil)))
		purge := e.Must(http.StatusAccepted, "POST", fmt.Sprintf("/servers/%d/erator/purge.json", serverID), map[string]any{"older_than": "0"})
		op = e.WaitOK(OpID(purge))
		if !strings.Contains(op.Message, "destroyed 1") || len(eratorEntries(e, "")) != 0 {
			t.Errorf("purge: %q, erator %v", op.Message, eratorEntries(e, ""))
		}
	})

	t.Run("agent-killed-during-volume-create", func(t *testing.T) {
		e.T = t
		e.Slow("create", 6)
		vol := e.Must(http.StatusAccepted, "POST", "/volumes.json", map[string]any{"network": networkID, "Alias": "survivor", "vol_size": 1})
		e.WaitIn("create")
		e.KillAgent(1)
		e.Slow("create", 0)
		e.StartAgent(1, serverKey)
		op := e.WaitOK(OpID(vol))
		ds := fmt.Sprintf("%s/iscsi/volumes/%d", e.VM.Pool, ID(vol, "id"))
		if got := e.Datasets(ds); len(got) != 1 {
			t.Errorf("after the agent's restart: %v", got)
		}
		assertOneRun(t, e, op.WorkflowID)
	})

	t.Run("panel-killed-during-group-create", func(t *testing.T) {
		e.T = t
		e.Slow("clone", 6)
		grp := e.Must(http.StatusAccepted, "POST", "/groups.json", map[string]any{"network": networkID, "Name": "survivor", "VolumeID": volumeID})
		e.WaitIn("clone")
		e.KillPanel()
		e.Slow("clone", 0)
		time.Sleep(2 * time.Second) // the clone finishes while no panel runs
		e.StartPanel()
		op := e.WaitOK(OpID(grp))
		gds := fmt.Sprintf("%s/iscsi/groups/%d", e.VM.Pool, ID(grp, "id"))
		if got := e.Datasets(gds); len(got) != 1 {
			t.Errorf("after the panel's restart: %v", got)
		}
		_, g := e.Call("GET", fmt.Sprintf("/groups/%d.json", ID(grp, "id")), nil)
		if g["state"] != models.StateReady {
			t.Errorf("group = %v", g)
		}
		assertOneRun(t, e, op.WorkflowID)
	})

	t.Run("master-pool-missing", func(t *testing.T) {
		e.T = t
		n2 := e.Must(http.StatusCreated, "POST", "/networks.json", map[string]any{"Name": "Second", "Client": 1})
		nid := ID(n2, "id")
		srv := e.Must(http.StatusCreated, "POST", "/servers.json", map[string]any{"Name": "poolless", "network": nid, "IP": "192.168.2.10", "Pool": "gone"})
		e.StartAgent(2, srv["key"].(string))
		e.WaitStats("poolless", models.PoolMissing)
		var boot models.Operation
		if err := e.DB.Where("kind = ? AND object_id = ?", models.OpServerBootstrap, ID(srv, "id")).Order("id DESC").Take(&boot).Error; err != nil {
			t.Fatal(err)
		}
		if op := e.WaitOp(boot.ID); op.State != models.OpFailed || !strings.Contains(op.Error, "pool gone does not exist on this server") {
			t.Errorf("bootstrap on a missing pool: %+v", op)
		}
		status, body := e.Call("POST", "/volumes.json", map[string]any{"network": nid, "Alias": "nowhere", "vol_size": 1})
		if status != http.StatusConflict || !strings.Contains(fmt.Sprint(body["error"]), "MISSING") {
			t.Errorf("create with the master's pool missing: %d %v", status, body)
		}
		var vols, ops int64
		e.DB.Model(&models.Volume{}).Where("network_id = ?", nid).Count(&vols)
		e.DB.Model(&models.Operation{}).Where("network_id = ? AND kind = ?", nid, models.OpVolumeCreate).Count(&ops)
		if vols != 0 || ops != 0 {
			t.Errorf("a refused create left %d volumes and %d operations", vols, ops)
		}
		e.KillAgent(2)
	})

	t.Run("vdisk", func(t *testing.T) {
		e.T = t
		vdiskLab(t, e, networkID, serverID)
	})
}

// eratorEntries lists the guest's erator entries whose name starts with prefix.
func eratorEntries(e *Env, prefix string) []string {
	var out []string
	for _, d := range e.Datasets(e.VM.Pool + "/erator") {
		base := d[strings.LastIndex(d, "/")+1:]
		if d != e.VM.Pool+"/erator" && !strings.Contains(d, "@") && strings.HasPrefix(base, prefix) {
			out = append(out, d)
		}
	}
	return out
}

// assertOneRun checks that a workflow id ran exactly once and completed.
func assertOneRun(t *testing.T, e *Env, wid string) {
	t.Helper()
	c := harness.TemporalClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = %q", wid)})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.Executions); n != 1 || resp.Executions[0].Status != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("workflow %s: %d runs %v", wid, n, resp.Executions)
	}
}
