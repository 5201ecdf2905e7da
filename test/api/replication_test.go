package api_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
)

// slaveServer adds server name to network n and records stats for it (its agent reported).
func (p *panelT) reportingServer(n int, name, ip string) int {
	p.t.Helper()
	srv := id(p.must(201, p.Admin, "POST", "/api/v0.9.2/servers.json", map[string]any{"Name": name, "network": n, "IP": ip, "Pool": "tank"}))
	if err := models.RecordServerStats(context.Background(), p.DB, uint(srv), &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 100 << 30, PoolFree: 90 << 30}); err != nil {
		p.t.Fatal(err)
	}
	return srv
}

// readyVersion records version n of group g as published with guid.
func (p *panelT) readyVersion(g, n int, guid string) uint {
	p.t.Helper()
	v := &models.GroupVersion{GroupID: uint(g), Number: n, GUID: guid, State: models.StateReady}
	if err := p.DB.Create(v).Error; err != nil {
		p.t.Fatal(err)
	}
	return v.ID
}

func (p *panelT) compliance(g int) map[string]any {
	p.t.Helper()
	return p.must(200, p.Admin, "GET", fmt.Sprintf("/api/v0.9.2/groups/%d/compliance.json", g), nil)
}

// holders lists "server:role" of version number n in a compliance view.
func holders(view map[string]any, n int) string {
	for _, v := range view["versions"].([]any) {
		v := v.(map[string]any)
		if int(v["number"].(float64)) != n {
			continue
		}
		var out []string
		for _, h := range v["holders"].([]any) {
			h := h.(map[string]any)
			if h["since"] == nil {
				return "no since"
			}
			out = append(out, fmt.Sprintf("%s:%s", h["server"], h["role"]))
		}
		return strings.Join(out, " ")
	}
	return "no v" + fmt.Sprint(n)
}

// TestPromoteAndPending walks the replication roles through the API on both databases:
// the bandwidth field is validated, a slave that lacks a verified copy cannot be promoted
// (409 naming what it lacks), a copy is recorded only with the master's guid, a promote
// switches roles without touching a dataset (the old master keeps its copies), the
// compliance view shows who holds what, and a group that assigns only what every server
// holds keeps its assignment pending until the last server verifies it.
func TestPromoteAndPending(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		ctx := context.Background()
		a := p.Admin
		n, m := p.networkWithMaster()
		if err := models.RecordServerStats(ctx, p.DB, uint(m), &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 100 << 30, PoolFree: 90 << 30}); err != nil {
			t.Fatal(err)
		}

		// The bandwidth limit: validated, nothing saved when refused.
		code, v, _ := p.do(a, "POST", "/api/v0.9.2/servers.json", map[string]any{"Name": "bad", "network": n, "IP": "10.0.0.9", "Pool": "tank", "bandwidth_limit": -1})
		if body, _ := v.(map[string]any); code != 422 || body["field"] != "bandwidth_limit" {
			t.Fatalf("negative bandwidth: %d %v", code, v)
		}
		var count int64
		p.DB.Model(&models.Server{}).Where("name = ?", "bad").Count(&count)
		if count != 0 {
			t.Fatal("a refused server was saved")
		}
		// The admission bounds: validated by field, nothing saved when refused; 0 is the default.
		for field, v := range map[string]any{"boot_max_provisions": -1, "boot_max_logins": 70000} {
			code, v, _ := p.do(a, "POST", "/api/v0.9.2/servers.json", map[string]any{"Name": "bad", "network": n, "IP": "10.0.0.9", "Pool": "tank", field: v})
			if body, _ := v.(map[string]any); code != 422 || body["field"] != field {
				t.Fatalf("bad %s: %d %v", field, code, v)
			}
		}
		p.DB.Model(&models.Server{}).Where("name = ?", "bad").Count(&count)
		if count != 0 {
			t.Fatal("a server with a refused bound was saved")
		}
		s := p.reportingServer(n, "s", "10.0.0.3")
		got0 := p.must(200, a, "PATCH", fmt.Sprintf("/api/v0.9.2/servers/%d.json", s), map[string]any{"boot_max_provisions": 4, "boot_max_logins": 64})
		if got0["boot_max_provisions"] != float64(4) || got0["boot_max_logins"] != float64(64) {
			t.Fatalf("bounds after setting them: %v", got0)
		}
		got := p.must(200, a, "PATCH", fmt.Sprintf("/api/v0.9.2/servers/%d.json", s), map[string]any{"bandwidth_limit": "1048576"})
		if got["bandwidth_limit"] != float64(1<<20) || got["role"] != models.ServerSlave {
			t.Fatalf("slave after setting its bandwidth: %v", got)
		}

		vol := p.readyVolume(n, "base")
		grp := p.readyGroup(n, "desktops", vol)
		v1 := p.readyVersion(grp, 1, "111")

		// The slave holds nothing yet: refused, naming both.
		code, v, _ = p.do(a, "POST", fmt.Sprintf("/api/v0.9.2/servers/%d/promote.json", s), nil)
		msg := fmt.Sprint(v)
		if code != 409 || !strings.Contains(msg, fmt.Sprintf(`volume %d ("base")`, vol)) || !strings.Contains(msg, fmt.Sprintf(`group %d ("desktops") v1`, grp)) {
			t.Fatalf("promote a slave lacking everything: %d %v", code, v)
		}
		if code, v, _ := p.do(a, "POST", fmt.Sprintf("/api/v0.9.2/servers/%d/promote.json", m), nil); code != 409 || !strings.Contains(fmt.Sprint(v), "already the master") {
			t.Fatalf("promote the master: %d %v", code, v)
		}
		if err := models.RecordVersionCopy(ctx, p.DB, models.VersionCopyInput{ServerID: uint(s), VersionID: v1, GUID: "999"}); !errors.Is(err, models.ErrGUIDMismatch) {
			t.Fatalf("a copy with another guid: %v", err)
		}
		// What a reconcile found by guid: v1 is verified, a snapshot that is no version is ignored.
		if err := models.RecordVerified(ctx, p.DB, uint(s), "group", uint(grp), []models.SnapshotGUID{{Name: "hold-x", GUID: "5"}, {Name: "v1", GUID: "111"}}); err != nil {
			t.Fatal(err)
		}
		if code, v, _ := p.do(a, "POST", fmt.Sprintf("/api/v0.9.2/servers/%d/promote.json", s), nil); code != 409 || strings.Contains(fmt.Sprint(v), "v1") {
			t.Fatalf("promote a slave lacking the volume only: %d %v", code, v)
		}
		if err := models.RecordVerified(ctx, p.DB, uint(s), "volume", uint(vol), []models.SnapshotGUID{{Name: "group-1", GUID: "77"}}); err != nil {
			t.Fatal(err)
		}
		if view := p.compliance(grp); holders(view, 1) != "m:master s:slave" {
			t.Fatalf("v1 held by %q: %v", holders(view, 1), view)
		}

		// Promote: 202 with its operation (this panel has no engine: the switch is the
		// workflow's activity, run here as the worker would).
		res := p.must(202, a, "POST", fmt.Sprintf("/api/v0.9.2/servers/%d/promote.json", s), nil)
		op := res["operation"].(map[string]any)
		if op["state"] != models.OpQueued {
			t.Fatalf("promote operation: %v", op)
		}
		again := p.must(202, a, "POST", fmt.Sprintf("/api/v0.9.2/servers/%d/promote.json", s), nil)
		if again["operation"].(map[string]any)["id"] != op["id"] {
			t.Fatalf("a second promote while the first is queued made another operation: %v", again)
		}
		for range 2 { // safe to repeat
			if err := models.SwitchMaster(ctx, p.DB, uint(s)); err != nil {
				t.Fatal(err)
			}
		}
		net := p.must(200, a, "GET", fmt.Sprintf("/api/v0.9.2/networks/%d.json", n), nil)
		if net["master_server_id"] != float64(s) {
			t.Fatalf("network after the switch: %v", net)
		}
		for srv, role := range map[int]string{s: models.ServerMaster, m: models.ServerSlave} {
			if got := p.must(200, a, "GET", fmt.Sprintf("/api/v0.9.2/servers/%d.json", srv), nil); got["role"] != role {
				t.Fatalf("server %d after the switch: %v", srv, got)
			}
		}
		if view := p.compliance(grp); holders(view, 1) != "s:master m:slave" {
			t.Fatalf("after the switch v1 is held by %q", holders(view, 1))
		}

		// Pending: v2 is published on the new master; m does not hold it yet.
		p.must(200, a, "PATCH", fmt.Sprintf("/api/v0.9.2/groups/%d.json", grp), map[string]any{"assign_when_replicated": true})
		v2 := p.readyVersion(grp, 2, "222")
		view := p.compliance(grp)
		if view["assigned"] != float64(1) || view["pending"] != float64(0) {
			t.Fatalf("following the newest version every server holds: %v", view)
		}
		g := p.must(200, a, "POST", fmt.Sprintf("/api/v0.9.2/groups/%d/assign.json", grp), map[string]any{"version": 2})
		if g["pending_version_id"] != float64(v2) || g["assigned_version_id"] != nil {
			t.Fatalf("assigning v2 before every server holds it: %v", g)
		}
		if view := p.compliance(grp); view["pending"] != float64(2) || view["assigned"] != float64(1) {
			t.Fatalf("compliance while v2 is pending: %v", view)
		}
		if err := models.RecordVersionCopy(ctx, p.DB, models.VersionCopyInput{ServerID: uint(m), VersionID: v2, GUID: "222"}); err != nil {
			t.Fatal(err)
		}
		g = p.must(200, a, "GET", fmt.Sprintf("/api/v0.9.2/groups/%d.json", grp), nil)
		if g["assigned_version_id"] != float64(v2) || g["pending_version_id"] != nil {
			t.Fatalf("after the last server verified v2: %v", g)
		}
		// Assigning what every server holds is immediate.
		g = p.must(200, a, "POST", fmt.Sprintf("/api/v0.9.2/groups/%d/assign.json", grp), map[string]any{"version": 1})
		if g["assigned_version_id"] != float64(v1) || g["pending_version_id"] != nil {
			t.Fatalf("assigning v1, held everywhere: %v", g)
		}
		// Following the newest: the boot path sees the newest version every server holds.
		p.must(200, a, "POST", fmt.Sprintf("/api/v0.9.2/groups/%d/assign.json", grp), map[string]any{"version": 0})
		v3 := p.readyVersion(grp, 3, "333")
		nb, err := models.LoadNetworkBoot(ctx, p.DB, uint(n))
		if err != nil {
			t.Fatal(err)
		}
		if got := nb.Groups[uint(grp)].Assigned; got == nil || got.Number != 2 {
			t.Fatalf("boot assignment while v3 is on the master only: %+v", got)
		}
		if err := models.RecordVersionCopy(ctx, p.DB, models.VersionCopyInput{ServerID: uint(m), VersionID: v3, GUID: "333"}); err != nil {
			t.Fatal(err)
		}
		if nb, _ = models.LoadNetworkBoot(ctx, p.DB, uint(n)); nb.Groups[uint(grp)].Assigned.Number != 3 {
			t.Fatalf("boot assignment once v3 is everywhere: %+v", nb.Groups[uint(grp)].Assigned)
		}
	})
}

// TestReplicationQueueAndAlerts: a replication is queued once per (slave, dataset) while
// one is under way, a slave that never reported gets none, and slaves that are
// unreachable, full or failing to receive show as alerts with the page that fixes them.
func TestReplicationQueueAndAlerts(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		ctx := context.Background()
		a := p.Admin
		n, m := p.networkWithMaster()
		if err := models.RecordServerStats(ctx, p.DB, uint(m), &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 100 << 30, PoolFree: 90 << 30}); err != nil {
			t.Fatal(err)
		}
		s := p.reportingServer(n, "s", "10.0.0.3")
		quiet := id(p.must(201, a, "POST", "/api/v0.9.2/servers.json", map[string]any{"Name": "quiet", "network": n, "IP": "10.0.0.4", "Pool": "tank"}))
		vol := p.readyVolume(n, "base")
		grp := p.readyGroup(n, "desktops", vol)
		p.readyVersion(grp, 1, "111")

		for range 2 {
			if _, err := p.Store.QueueReplication(ctx, models.ReplicationRequest{SlaveID: uint(s)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := p.Store.QueueReplication(ctx, models.ReplicationRequest{Kind: "group", ObjectID: uint(grp), Snapshot: "v1"}); err != nil {
			t.Fatal(err)
		}
		var ops []models.Operation
		if err := p.DB.Where("kind IN ?", []string{models.OpReplicateVolume, models.OpReplicateGroup}).Order("id").Find(&ops).Error; err != nil {
			t.Fatal(err)
		}
		if len(ops) != 2 || ops[0].Kind != models.OpReplicateVolume || ops[0].ObjectID != uint(vol) || ops[1].ObjectID != uint(grp) {
			t.Fatalf("replication operations: %+v", ops)
		}
		for _, op := range ops {
			if !strings.HasPrefix(op.Input, fmt.Sprintf(`{"server_id":%d,`, s)) {
				t.Errorf("operation %d goes to %s, want slave %d (never %d, which never reported)", op.ID, op.Input, s, quiet)
			}
		}
		if code, v, _ := p.do(a, "GET", fmt.Sprintf("/api/v0.9.2/operations/%d.json", ops[1].ID), nil); code != 200 || v.(map[string]any)["kind"] != models.OpReplicateGroup {
			t.Fatalf("replication operation through the API: %d %v", code, v)
		}

		alerts := func() map[string]string {
			t.Helper()
			_, v, _ := p.do(a, "GET", "/api/v0.9.2/alerts.json", nil)
			out := map[string]string{}
			for _, al := range v.([]any) {
				al := al.(map[string]any)
				out[al["code"].(string)] += fmt.Sprint(al["link"], " ", al["message"], "|")
			}
			return out
		}
		got := alerts()
		if !strings.Contains(got[models.AlertSlaveUnreachable], fmt.Sprintf("/servers/%d", quiet)) || strings.Contains(got[models.AlertSlaveUnreachable], fmt.Sprintf("/servers/%d ", s)) {
			t.Fatalf("slave_unreachable: %q", got[models.AlertSlaveUnreachable])
		}
		if got[models.AlertSlavePoolFull] != "" || got[models.AlertReplicationFailing] != "" {
			t.Fatalf("alerts before any fault: %v", got)
		}
		// Faults: the slave's pool is nearly full, its stats are old, the group failed 3 times.
		old := time.Now().Add(-time.Hour)
		if err := p.DB.Model(&models.Server{}).Where("id = ?", s).Updates(map[string]any{"pool_free": 1 << 30, "stats_at": old}).Error; err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if i > 0 {
				if _, err := p.Store.QueueReplication(ctx, models.ReplicationRequest{Kind: "group", ObjectID: uint(grp), SlaveID: uint(s)}); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.DB.Model(&models.Operation{}).Where("kind = ? AND state = ?", models.OpReplicateGroup, models.OpQueued).
				Updates(map[string]any{"state": models.OpFailed, "error": "stream cut"}).Error; err != nil {
				t.Fatal(err)
			}
		}
		got = alerts()
		for _, c := range []struct{ code, want string }{
			{models.AlertSlaveUnreachable, fmt.Sprintf("/servers/%d", s)},
			{models.AlertSlavePoolFull, "grow the pool or purge its erator"},
			{models.AlertReplicationFailing, fmt.Sprintf("/groups/%d Replicating group %d to slave server \"s\" has failed 3 times in a row (last: stream cut)", grp, grp)},
		} {
			if !strings.Contains(got[c.code], c.want) {
				t.Errorf("%s: %q, want %q", c.code, got[c.code], c.want)
			}
		}
		// A success ends the run of failures.
		if _, err := p.Store.QueueReplication(ctx, models.ReplicationRequest{Kind: "group", ObjectID: uint(grp), SlaveID: uint(s)}); err != nil {
			t.Fatal(err)
		}
		p.DB.Model(&models.Operation{}).Where("kind = ? AND state = ?", models.OpReplicateGroup, models.OpQueued).Update("state", models.OpSucceeded)
		if got := alerts(); got[models.AlertReplicationFailing] != "" {
			t.Errorf("failing after a success: %q", got[models.AlertReplicationFailing])
		}
		// The OpenAPI document names the new routes and fields.
		_, doc, _ := p.do(a, "GET", "/api/v0.9.2/openapi.json", nil)
		js := fmt.Sprint(doc)
		for _, want := range []string{"/api/v0.9.2/servers/{id}/promote.json", "/api/v0.9.2/groups/{id}/compliance.json", "bandwidth_limit", "boot_max_provisions", "assign_when_replicated", "lag_seconds"} {
			if !strings.Contains(js, want) {
				t.Errorf("openapi.json lacks %s", want)
			}
		}
	})
}
