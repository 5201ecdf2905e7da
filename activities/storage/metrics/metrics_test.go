package metrics_test

import (
	"bytes"
	"context"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	cdmetrics "github.com/clusterducks/clusterducks/activities/metrics"
	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/clusterducks/clusterducks/activities/storage/metrics"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/iscsi/initiator"
)

const targetIQN = "iqn.2026-11.dev.clusterducks:metrics"

func scrape(t *testing.T, a *metrics.Agent) harness.Metrics {
	t.Helper()
	rec := httptest.NewRecorder()
	a.Registry.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return harness.ParseMetrics(t, rec.Body)
}

// The agent's iSCSI metrics come from the real target's counters: a login and a
// write and read through the test initiator move sessions and bytes of that target.
func TestISCSIMetrics(t *testing.T) {
	a := metrics.NewAgent(cdmetrics.New("agent", "test"))
	srv := iscsi.NewServer(iscsi.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx) //nolint:errcheck
	})
	a.WatchTarget(srv)
	disk := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddTarget(iscsi.TargetConfig{IQN: targetIQN, LUNs: []iscsi.LUNConfig{{Path: disk}}}); err != nil {
		t.Fatal(err)
	}
	before := scrape(t, a)
	if before.Sum("clusterducks_iscsi_sessions", map[string]string{"target": targetIQN}) != 0 {
		t.Fatalf("sessions before a login: %v", before["clusterducks_iscsi_sessions"])
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := initiator.Dial(ctx, ln.Addr().String(), initiator.Options{InitiatorName: "iqn.2026-11.dev.clusterducks:test-init", TargetName: targetIQN})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{0xcd}, 64<<10)
	if err := s.Write(ctx, 0, 0, 512, data, false); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(data))
	if err := s.Read(ctx, 0, 0, 512, buf); err != nil {
		t.Fatal(err)
	}
	// A command's counters move as its answer leaves; the initiator may have the answer a
	// moment before the target's goroutine has counted it: read until they settle.
	want := []struct {
		name string
		min  float64
	}{
		{"clusterducks_iscsi_sessions", 1},
		{"clusterducks_iscsi_logins_total", 1},
		{"clusterducks_iscsi_written_bytes_total", float64(len(data))},
		{"clusterducks_iscsi_read_bytes_total", float64(len(data))},
		{"clusterducks_iscsi_commands_total", 2},
	}
	var during harness.Metrics
	for settle := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		during = scrape(t, a)
		short := 0
		for _, c := range want {
			if during.Sum(c.name, map[string]string{"target": targetIQN}) < c.min {
				short++
			}
		}
		if short == 0 || time.Now().After(settle) {
			break
		}
	}
	for _, c := range want {
		if got := during.Sum(c.name, map[string]string{"target": targetIQN}); got < c.min {
			t.Errorf("%s{target=%q} = %v, want >= %v", c.name, targetIQN, got, c.min)
		}
	}
	if got := during.Sum("clusterducks_iscsi_connections", nil); got != 1 {
		t.Errorf("connections = %v, want 1", got)
	}
	if got := a.Totals().ISCSISessions; got != 1 {
		t.Errorf("the stats report's iSCSI sessions = %d, want 1", got)
	}
	if err := s.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	deadline := time.Now().Add(10 * time.Second)
	for scrape(t, a).Sum("clusterducks_iscsi_sessions", map[string]string{"target": targetIQN}) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the session gauge stayed up after the logout")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Boot requests are counted by result with their latency; in progress goes back to 0.
func TestBootMetrics(t *testing.T) {
	a := metrics.NewAgent(cdmetrics.New("agent", "test"))
	a.Boot.BootStarted()
	if got := scrape(t, a).Sum("clusterducks_boots_in_progress", nil); got != 1 {
		t.Errorf("in progress = %v, want 1", got)
	}
	a.Boot.BootDone("sanboot", 20*time.Millisecond)
	a.Boot.BootStarted()
	a.Boot.BootDone("reboot", time.Millisecond)
	f := scrape(t, a)
	if got := f.Sum("clusterducks_boots_in_progress", nil); got != 0 {
		t.Errorf("in progress = %v, want 0", got)
	}
	for _, r := range []string{"sanboot", "reboot"} {
		if got := f.Sum("clusterducks_boot_requests_total", map[string]string{"result": r}); got != 1 {
			t.Errorf("requests{result=%s} = %v", r, got)
		}
		if got := f.Sum("clusterducks_boot_request_duration_seconds", map[string]string{"result": r}); got != 1 {
			t.Errorf("latency{result=%s} count = %v", r, got)
		}
	}
	// Replication metrics are declared for the replication work to update.
	a.Replication.Bytes.WithLabelValues(metrics.Slave(2)).Add(100)
	a.Replication.LastSuccess.WithLabelValues(metrics.Slave(2)).SetToCurrentTime()
	f = scrape(t, a)
	if got := f.Sum("clusterducks_replication_sent_bytes_total", map[string]string{"slave": "2"}); got != 100 {
		t.Errorf("replication bytes = %v", got)
	}
	if got := f.Sum("clusterducks_replication_last_success_timestamp_seconds", map[string]string{"slave": "2"}); got <= 0 {
		t.Errorf("replication last success = %v", got)
	}
	// The stats report's totals: every boot answered, every byte sent (through Sent).
	a.Replication.Sent(2, 300)
	a.Replication.Sent(3, 50)
	if got := a.Totals(); got != (metrics.Totals{BootRequests: 2, ReplicationBytes: 350}) {
		t.Errorf("totals = %+v, want 2 boot requests, 350 replication bytes, no iSCSI target", got)
	}
}
