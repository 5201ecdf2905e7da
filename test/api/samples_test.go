package api_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
)

func i64(n int64) *int64 { return &n }

// TestServerSamples: every stats report the panel records leaves a sample (the agent's
// counters when it sends them, null when an older agent does not); the retention keeps a
// day in full, one sample per 10 minutes up to 7 days and nothing older (any server's),
// and a deleted server's samples go with it. samples.json serves them oldest first, by
// name or id, from ?since= (default 24 h), 422 naming since for a bad one, 404 for a
// server the caller cannot see.
func TestServerSamples(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		ctx := context.Background()
		a := p.Admin
		n, srv := p.networkWithMaster() // its "reported" stats: a sample without counters
		err := models.RecordServerStats(ctx, p.DB, uint(srv), &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 100 << 30, PoolFree: 60 << 30,
			ISCSISessions: i64(4), BootRequests: i64(17), ReplicationBytes: i64(5 << 20)})
		if err != nil {
			t.Fatal(err)
		}
		got := p.list(a, "/api/v0.9.2/servers/m/samples.json")
		if len(got) != 2 {
			t.Fatalf("samples after two reports: %v", got)
		}
		if old := got[0]; old["iscsi_sessions"] != nil || old["boot_requests"] != nil || old["replication_bytes"] != nil || old["pool_used"] != float64(10<<30) {
			t.Errorf("a report without counters (an older agent): %v", old)
		}
		if s := got[1]; s["iscsi_sessions"] != float64(4) || s["boot_requests"] != float64(17) || s["replication_bytes"] != float64(5<<20) ||
			s["pool_used"] != float64(40<<30) || s["pool_size"] != float64(100<<30) || s["at"] == nil {
			t.Errorf("a report with counters: %v", s)
		}
		if byID := p.list(a, fmt.Sprintf("/api/v0.9.2/servers/%d/samples.json", srv)); len(byID) != 2 {
			t.Errorf("by id: %v", byID)
		}

		// Retention, on a second server: 8 days old goes, 3 days old is thinned to the
		// first of its 10-minute slot, 2 hours old stays in full. A master's sample of 8
		// days ago goes too: the retention drops any server's expired samples.
		s2 := id(p.must(201, a, "POST", "/api/v0.9.2/servers.json", map[string]any{"Name": "s2", "network": n, "IP": "10.0.0.3", "Pool": "tank"}))
		now := time.Now().UTC()
		rep := &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 10 << 30, PoolFree: 5 << 30, BootRequests: i64(1)}
		record := func(server int, at time.Time) {
			t.Helper()
			if err := models.RecordSample(ctx, p.DB, uint(server), rep, at); err != nil {
				t.Fatal(err)
			}
		}
		record(srv, now.Add(-8*24*time.Hour))
		record(s2, now.Add(-8*24*time.Hour))
		record(s2, now.Add(-8*24*time.Hour+time.Minute))
		slot := now.Add(-3 * 24 * time.Hour).Truncate(models.SampleThin).Add(time.Minute)
		for _, m := range []int{0, 2, 4, 10} { // 0, 2 and 4 share a slot; 10 starts the next
			record(s2, slot.Add(time.Duration(m)*time.Minute))
		}
		for m := range 4 {
			record(s2, now.Add(-2*time.Hour+time.Duration(m)*time.Minute))
		}
		record(s2, now) // a new slot: the retention runs
		var kept []models.ServerSample
		if err := p.DB.Where("server_id = ?", s2).Order("at").Find(&kept).Error; err != nil {
			t.Fatal(err)
		}
		if len(kept) != 7 || !kept[0].At.Equal(slot) || !kept[1].At.Equal(slot.Add(10*time.Minute)) {
			t.Fatalf("after the retention %d samples (want 7: 2 thinned + 4 recent + now), first at %v (want %v)", len(kept), kept[0].At, slot)
		}
		var expired int64
		p.DB.Model(&models.ServerSample{}).Where("at < ?", now.Add(-models.SampleKeep)).Count(&expired)
		if expired != 0 {
			t.Errorf("%d samples older than 7 days are left", expired)
		}

		path := "/api/v0.9.2/servers/s2/samples.json"
		for _, c := range []struct {
			since string
			want  int
		}{{"", 5}, {"168h", 7}, {"1h", 1}, {now.Add(-150 * time.Minute).Format(time.RFC3339), 5}, {now.Add(-4 * 24 * time.Hour).Format("2006-01-02"), 7}} {
			q := path
			if c.since != "" {
				q += "?since=" + url.QueryEscape(c.since)
			}
			if got := p.list(a, q); len(got) != c.want {
				t.Errorf("since %q: %d samples, want %d", c.since, len(got), c.want)
			}
		}
		for _, bad := range []string{"never", "-1h", "0s"} {
			code, v, _ := p.do(a, "GET", path+"?since="+url.QueryEscape(bad), nil)
			if m, _ := v.(map[string]any); code != 422 || m["field"] != "since" {
				t.Errorf("since %q: %d %v, want 422 naming since", bad, code, v)
			}
		}
		p.must(404, a, "GET", "/api/v0.9.2/servers/nosuch/samples.json", nil)
		// Another client's admin sees no such server.
		other := id(p.must(201, a, "POST", "/api/v0.9.2/clients.json", map[string]any{"Name": "Other"}))
		user := id(p.must(201, a, "POST", "/api/v0.9.2/users.json", map[string]any{"email": "o@example.com", "password": "correct horse battery", "client_id": other, "role": "admin"}))
		p.must(404, harness.Token(t, p.DB, uint(user)), "GET", path, nil)

		// A deleted server's samples go with it.
		p.must(204, a, "DELETE", fmt.Sprintf("/api/v0.9.2/servers/%d.json", s2), nil)
		var left int64
		p.DB.Model(&models.ServerSample{}).Where("server_id = ?", s2).Count(&left)
		if left != 0 {
			t.Errorf("%d samples of the deleted server are left", left)
		}
	})
}

// list GETs a JSON array.
func (p *panelT) list(auth, path string) []map[string]any {
	p.t.Helper()
	code, v, _ := p.do(auth, "GET", path, nil)
	arr, ok := v.([]any)
	if code != 200 || !ok {
		p.t.Fatalf("GET %s: %d %v", path, code, v)
	}
	out := make([]map[string]any, len(arr))
	for i, e := range arr {
		out[i], _ = e.(map[string]any)
	}
	return out
}
