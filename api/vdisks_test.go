package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
)

// TestVDiskMovingRefusesChanges (PostgreSQL): while its device's workflow moves a vdisk
// to another server, its resize, attach, detach and delete answer 409 naming the vdisk
// and saying it moves, and change nothing; a rename still works. The move cannot start
// while a resize of the vdisk is queued, and once the move is recorded the vdisk
// changes again.
func TestVDiskMovingRefusesChanges(t *testing.T) {
	ctx := context.Background()
	db := harness.NewDB(t, "postgres")
	admin := harness.Admin(t, db)
	auth := harness.Token(t, db, admin.ID)
	store := &models.Store{DB: db}
	app := api.NewApp()
	(&api.Handler{Store: store}).Mount(app)
	call := func(method, path string, body any) (int, string) {
		t.Helper()
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req := httptest.NewRequest(method, api.Prefix+path, r)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}

	n, err := store.CreateNetwork(ctx, admin, &models.NetworkInput{Name: models.Strp("n"), ClientID: models.Uintp(1)})
	if err != nil {
		t.Fatal(err)
	}
	nid := n.Object.(*models.Network).ID
	var srv [3]uint
	for i := range srv {
		s, err := store.CreateServer(ctx, admin, &models.ServerInput{NetworkID: &nid, Name: models.Strp(fmt.Sprintf("s%d", i)),
			IP: models.Strp(fmt.Sprintf("10.0.0.%d", i+1)), Pool: models.Strp("tank")})
		if err != nil {
			t.Fatal(err)
		}
		srv[i] = s.Object.(*models.Server).ID
	}
	dev := models.Device{NetworkID: nid, MAC: "52:54:00:00:00:07", UUID: "u", ServerID: &srv[0]}
	other := models.Device{NetworkID: nid, MAC: "52:54:00:00:00:08", UUID: "w", ServerID: &srv[0]}
	for _, d := range []*models.Device{&dev, &other} {
		if err := db.Create(d).Error; err != nil {
			t.Fatal(err)
		}
	}
	v := models.VDisk{NetworkID: nid, Name: "data", SizeGiB: 1, DeviceID: &dev.ID, ServerID: &srv[0], State: models.StateReady}
	if err := db.Create(&v).Error; err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/vdisks/%d.json", v.ID)

	// A resize queued: the move waits for it.
	queued := models.Operation{NetworkID: &nid, Kind: models.OpVDiskResize, ObjectType: "vdisk", ObjectID: v.ID, State: models.OpQueued}
	if err := db.Create(&queued).Error; err != nil {
		t.Fatal(err)
	}
	err = models.MarkVDiskMoving(ctx, db, v.ID, dev.ID, srv[1])
	var conflict *models.ConflictError
	if !errors.As(err, &conflict) || !strings.Contains(conflict.Msg, "vdisk-resize under way") {
		t.Fatalf("move with a resize queued: %v", err)
	}
	db.Model(&queued).Update("state", models.OpSucceeded)

	if err := models.MarkVDiskMoving(ctx, db, v.ID, dev.ID, srv[1]); err != nil {
		t.Fatal(err)
	}
	if err := models.MarkVDiskMoving(ctx, db, v.ID, dev.ID, srv[1]); err != nil {
		t.Fatalf("marking the same move again: %v", err)
	}
	moving := fmt.Sprintf("vdisk %d is moving with device %d to server %d", v.ID, dev.ID, srv[1])
	for _, c := range []struct {
		what, method string
		body         any
	}{
		{"resize", "PUT", map[string]any{"size": 2}},
		{"attach", "PATCH", map[string]any{"device_id": other.ID}},
		{"detach", "PUT", map[string]any{"device_id": nil}},
		{"delete", "DELETE", nil},
	} {
		code, body := call(c.method, path, c.body)
		if code != http.StatusConflict || !strings.Contains(body, moving) {
			t.Errorf("%s while moving: %d %s; want 409 saying %q", c.what, code, body, moving)
		}
	}
	var ops int64
	db.Model(&models.Operation{}).Where("object_type = ? AND object_id = ? AND id <> ?", "vdisk", v.ID, queued.ID).Count(&ops)
	var got models.VDisk
	db.Take(&got, v.ID)
	if ops != 0 || got.SizeGiB != 1 || got.DeviceID == nil || *got.DeviceID != dev.ID || got.State != models.StateReady {
		t.Fatalf("refused changes left %d operations, vdisk %+v", ops, got)
	}
	if code, body := call("PUT", path, map[string]any{"name": "renamed"}); code != http.StatusOK {
		t.Errorf("rename while moving: %d %s", code, body)
	}
	if code, body := call("GET", path, nil); code != http.StatusOK || !strings.Contains(body, fmt.Sprintf(`"moving_to":%d`, srv[1])) {
		t.Errorf("GET while moving: %d %s", code, body)
	}

	// The move recorded with the device's clone ends it: the vdisk changes again.
	if err := models.RecordMovedClone(ctx, db, nid, dev.ID, 0, srv[1], v.ID); err != nil {
		t.Fatal(err)
	}
	db.Take(&got, v.ID)
	if got.MovingTo != nil || got.ServerID == nil || *got.ServerID != srv[1] {
		t.Fatalf("after the move: %+v", got)
	}
	if err := models.MarkVDiskMoving(ctx, db, v.ID, dev.ID, srv[0]); err != nil {
		t.Fatal(err)
	}
	if err := models.EndVDiskMove(ctx, db, v.ID); err != nil {
		t.Fatal(err)
	}
	db.Take(&got, v.ID)
	if got.MovingTo != nil || *got.ServerID != srv[1] {
		t.Fatalf("after a failed move back: %+v", got)
	}

	// A mark a terminated run left (never ended) does not hold the vdisk for ever: the
	// device's next move replaces it; another device's move is still refused.
	if err := models.MarkVDiskMoving(ctx, db, v.ID, dev.ID, srv[0]); err != nil {
		t.Fatal(err)
	}
	if err := models.MarkVDiskMoving(ctx, db, v.ID, dev.ID, srv[2]); err != nil {
		t.Fatalf("the device's next move over a stale mark: %v", err)
	}
	db.Take(&got, v.ID)
	if got.MovingTo == nil || *got.MovingTo != srv[2] {
		t.Fatalf("after the replacing mark: %+v", got)
	}
	if err := models.MarkVDiskMoving(ctx, db, v.ID, other.ID, srv[0]); !errors.As(err, &conflict) {
		t.Fatalf("another device's move of a moving vdisk: %v", err)
	}
}
