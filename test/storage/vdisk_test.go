package storagetest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/models"
)

// vdiskLab runs a vdisk's life through the panel, Temporal and the agent on a real
// OpenZFS server: created as a sparse zvol <pool>/vdisks/<id> of its size on the master
// (it has no device), grown, refused a shrink, deleted into the erator. It is
// TestStorage's "vdisk" step, on its VM and network: one VM boot less.
func vdiskLab(t *testing.T, e *Env, networkID, serverID uint) {
	pool := e.VM.Pool

	v := e.Must(http.StatusAccepted, "POST", "/vdisks.json", map[string]any{"network": networkID, "name": "data", "size": 3})
	id := ID(v, "id")
	if ID(v, "server_id") != serverID {
		t.Fatalf("vdisk on server %v, want the master %d", v["server_id"], serverID)
	}
	e.WaitOK(OpID(v))
	ds := fmt.Sprintf("%s/vdisks/%d", pool, id)
	if got := e.Prop(ds, "volsize"); got != fmt.Sprint(int64(3)<<30) {
		t.Errorf("%s volsize = %s, want 3 GiB", ds, got)
	}
	if got := e.Prop(ds, "refreservation"); got != "0" {
		t.Errorf("%s refreservation = %s: the vdisk is not sparse", ds, got)
	}
	e.WaitZvol(ds)
	if _, got := e.Call("GET", fmt.Sprintf("/vdisks/%d.json", id), nil); got["state"] != models.StateReady {
		t.Fatalf("vdisk = %v", got)
	}

	if code, body := e.Call("PATCH", fmt.Sprintf("/vdisks/%d.json", id), map[string]any{"size": 1}); code != http.StatusUnprocessableEntity || body["field"] != "size" {
		t.Errorf("shrink: %d %v, want 422 naming size", code, body)
	}
	grown := e.Must(http.StatusAccepted, "PATCH", fmt.Sprintf("/vdisks/%d.json", id), map[string]any{"size": 5})
	e.WaitOK(OpID(grown))
	if got := e.Prop(ds, "volsize"); got != fmt.Sprint(int64(5)<<30) {
		t.Errorf("%s volsize after the resize = %s, want 5 GiB", ds, got)
	}
	if _, got := e.Call("GET", fmt.Sprintf("/vdisks/%d.json", id), nil); got["size"] != float64(5) {
		t.Errorf("vdisk after the resize = %v", got)
	}

	del := e.Must(http.StatusAccepted, "DELETE", fmt.Sprintf("/vdisks/%d.json", id), nil)
	e.WaitOK(OpID(del))
	if slices.Contains(e.Datasets(pool+"/vdisks"), ds) {
		t.Errorf("%s is still there after the delete", ds)
	}
	trashed := false
	for _, d := range e.Datasets(pool + "/erator") {
		trashed = trashed || strings.HasPrefix(d, fmt.Sprintf("%s/erator/vdisk-%d-", pool, id))
	}
	if !trashed {
		t.Errorf("the vdisk is not in the erator: %v", e.Datasets(pool+"/erator"))
	}
}
