package models_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
)

// TestVDiskBackupFailingAlert (PostgreSQL): a vdisk's backup that failed
// models.FailingTransfers times in a row to one server is a replication_failing alert
// naming the vdisk, the server it lives on (a slave here) and the server it is backed up
// to (the master); fewer failures are none, and a success clears it.
func TestVDiskBackupFailingAlert(t *testing.T) {
	ctx := context.Background()
	db := harness.NewDB(t, "postgres")
	admin := harness.Admin(t, db)
	s := &models.Store{DB: db}
	n, err := s.CreateNetwork(ctx, admin, &models.NetworkInput{Name: models.Strp("n"), ClientID: models.Uintp(1)})
	if err != nil {
		t.Fatal(err)
	}
	nid := n.Object.(*models.Network).ID
	var srv [2]*models.Server
	for i, name := range []string{"m", "s"} {
		c, err := s.CreateServer(ctx, admin, &models.ServerInput{NetworkID: &nid, Name: models.Strp(name),
			IP: models.Strp(fmt.Sprintf("10.0.0.%d", i+1)), Pool: models.Strp("tank")})
		if err != nil {
			t.Fatal(err)
		}
		srv[i] = c.Object.(*models.Server)
	}
	db.Model(&models.Network{}).Where("id = ?", nid).Update("master_server_id", srv[0].ID)
	v := models.VDisk{NetworkID: nid, Name: "data", SizeGiB: 1, ServerID: &srv[1].ID, State: models.StateReady}
	if err := db.Create(&v).Error; err != nil {
		t.Fatal(err)
	}
	backup := func(state, msg string) {
		t.Helper()
		op := models.Operation{NetworkID: &nid, Kind: models.OpReplicateVDisk, ObjectType: "vdisk", ObjectID: v.ID, State: state,
			Error: msg, Input: fmt.Sprintf(`{"server_id":%d}`, srv[0].ID)}
		if err := db.Create(&op).Error; err != nil {
			t.Fatal(err)
		}
	}
	failing := func() []string {
		t.Helper()
		list, err := s.Alerts(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, al := range list {
			if al.Code == models.AlertReplicationFailing {
				out = append(out, al.Link+" "+al.Message)
			}
		}
		return out
	}
	for range models.FailingTransfers - 1 {
		backup(models.OpFailed, "stream cut")
	}
	if got := failing(); len(got) != 0 {
		t.Fatalf("after %d failures: %q", models.FailingTransfers-1, got)
	}
	backup(models.OpFailed, "pool full")
	want := fmt.Sprintf(`/vdisks/%d Backing up vdisk "data" (%d) from server "s" to server "m" has failed %d times in a row (last: pool full)`,
		v.ID, v.ID, models.FailingTransfers)
	if got := failing(); len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Fatalf("after %d failures: %q, want %q", models.FailingTransfers, got, want)
	}
	backup(models.OpSucceeded, "")
	if got := failing(); len(got) != 0 {
		t.Fatalf("after a success: %q", got)
	}
	// Failing again to the server it has since moved to: that is no backup, no alert.
	for range models.FailingTransfers {
		backup(models.OpFailed, "stream cut")
	}
	if got := failing(); len(got) != 1 {
		t.Fatalf("failing again: %q", got)
	}
	db.Model(&models.VDisk{}).Where("id = ?", v.ID).Update("server_id", srv[0].ID)
	if got := failing(); len(got) != 0 {
		t.Fatalf("after the vdisk moved to the backup's server: %q", got)
	}
}
