package models

import (
	"context"
	"testing"
	"time"
)

func TestPercentileMS(t *testing.T) {
	ms := []int64{100, 200, 300, 400, 500, 600, 700, 800, 900, 1000}
	if got := percentileMS(ms, 50); got != 500*time.Millisecond {
		t.Fatalf("p50 = %v", got)
	}
	if got := percentileMS(ms, 95); got != time.Second {
		t.Fatalf("p95 = %v", got)
	}
	if got := percentileMS(nil, 95); got != 0 {
		t.Fatalf("empty p95 = %v", got)
	}
	if r := (BootStats{Up: 3, Failed: 1}).SuccessRate(); r != 0.75 {
		t.Fatalf("rate = %v", r)
	}
}

// A watched boot's result updates its own history row (matched by device, server and
// boot id) and leaves the device's last boot alone; a result whose first report was lost
// adds the row; answers that gave no disk are no boot of the version; the retention marks
// rows left pending unknown and drops old ones and a device's oldest past its cap.
func TestRecordBootResults(t *testing.T) {
	ctx := context.Background()
	s, _, _, g := opsStore(t)
	db := s.DB
	var srv Server
	if err := db.Where("network_id = ?", g.NetworkID).Take(&srv).Error; err != nil {
		t.Fatal(err)
	}
	dev := Device{NetworkID: g.NetworkID, MAC: "52:54:00:00:00:01", GroupID: &g.ID}
	if err := db.Create(&dev).Error; err != nil {
		t.Fatal(err)
	}
	served := BootRecord{DeviceID: dev.ID, GroupID: g.ID, Version: 2, Booted: true, Compliant: true, Reason: "new clone", BootID: "b1"}
	if err := RecordBoots(ctx, db, srv.ID, []BootRecord{served, {DeviceID: dev.ID, GroupID: g.ID, Version: 2, Reason: "no server holds v2"}}); err != nil {
		t.Fatal(err)
	}
	var before Device
	db.Take(&before, dev.ID)
	up := served
	up.Result, up.UpMS, up.Why = BootResultUp, 41000, "checked in"
	lost := BootRecord{DeviceID: dev.ID, GroupID: g.ID, Version: 2, Booted: true, Compliant: true, BootID: "b0",
		At: time.Now().Add(-time.Hour), Result: BootResultFailed, Why: "its iSCSI session dropped"}
	if err := RecordBoots(ctx, db, srv.ID, []BootRecord{up, up, lost, {DeviceID: dev.ID, BootID: "b1", Result: "bogus"}}); err != nil {
		t.Fatal(err)
	}
	var rows []BootHistory
	db.Where("device_id = ?", dev.ID).Order("created_at").Find(&rows)
	if len(rows) != 3 {
		t.Fatalf("rows %+v, want the lost boot, the served one and the not-booted answer", rows)
	}
	if r := rows[0]; r.BootID != "b0" || r.Result != BootResultFailed || r.Outcome != BootOutcomeBooted {
		t.Fatalf("lost boot's row %+v", r)
	}
	var b1 BootHistory
	db.Where("boot_id = ?", "b1").Take(&b1)
	if b1.Result != BootResultUp || b1.UpMS != 41000 || b1.ResultReason != "checked in" || b1.Reason != "new clone" {
		t.Fatalf("served boot's row %+v", b1)
	}
	var after Device
	db.Take(&after, dev.ID)
	if !after.LastBootAt.Equal(*before.LastBootAt) {
		t.Fatalf("a result moved the device's last boot: %v → %v", before.LastBootAt, after.LastBootAt)
	}
	// The latest boot of v2 is b1 (up), not the later not-booted answer.
	st, err := VersionBootStats(ctx, db, g.ID, 2, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Boots != 1 || st.Up != 1 || st.P50 != 41*time.Second {
		t.Fatalf("stats %+v", st)
	}

	// Retention.
	now := time.Now()
	old := []BootHistory{
		{DeviceID: dev.ID, NetworkID: g.NetworkID, ServerID: srv.ID, Outcome: BootOutcomeBooted, CreatedAt: now.Add(-BootHistoryKeep - time.Hour)},
		{DeviceID: dev.ID, NetworkID: g.NetworkID, ServerID: srv.ID, Outcome: BootOutcomeBooted, BootID: "stale", CreatedAt: now.Add(-BootPendingMax - time.Minute)},
	}
	if err := db.Create(&old).Error; err != nil {
		t.Fatal(err)
	}
	if err := pruneBootHistory(db, srv.ID, now); err != nil {
		t.Fatal(err)
	}
	var n int64
	db.Model(&BootHistory{}).Where("id = ?", old[0].ID).Count(&n)
	var stale BootHistory
	db.Take(&stale, old[1].ID)
	if n != 0 || stale.Result != BootResultUnknown {
		t.Fatalf("after pruning: old row kept %d, stale row %+v", n, stale)
	}
	many := make([]BootHistory, BootHistoryPerDevice)
	for i := range many {
		many[i] = BootHistory{DeviceID: dev.ID, NetworkID: g.NetworkID, ServerID: srv.ID, Outcome: BootOutcomeNotBooted, CreatedAt: now}
	}
	if err := db.CreateInBatches(many, 200).Error; err != nil {
		t.Fatal(err)
	}
	if err := pruneBootHistory(db, srv.ID, now); err != nil {
		t.Fatal(err)
	}
	var kept []uint
	db.Model(&BootHistory{}).Where("device_id = ?", dev.ID).Order("id").Pluck("id", &kept)
	if len(kept) != BootHistoryPerDevice || kept[0] != many[0].ID {
		t.Fatalf("kept %d rows from id %v, want the newest %d (from %d)", len(kept), kept[:1], BootHistoryPerDevice, many[0].ID)
	}
}
