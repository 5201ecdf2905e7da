package storage

import (
	"bytes"
	"context"
	"testing"

	"github.com/clusterducks/clusterducks/activities/storage/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// slaveValue reads metric name's value for slave from reg (0 when absent).
func slaveValue(t *testing.T, reg *prometheus.Registry, name string, slave uint) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "slave" && l.GetValue() == metrics.Slave(slave) {
					switch {
					case m.GetCounter() != nil:
						return m.GetCounter().GetValue()
					case m.GetGauge() != nil:
						return m.GetGauge().GetValue()
					}
				}
			}
		}
	}
	return 0
}

// TestReplicationMetricsMove: the master's endpoint counts the bytes it sends to each
// slave, takes them off the slave's estimate left, and records the slave's
// acknowledgement as its last success.
func TestReplicationMetricsMove(t *testing.T) {
	r := newRig(t, 0, slaveID)
	reg := prometheus.NewRegistry()
	r.rs.Metrics = metrics.NewReplication(reg)
	ctx := context.Background()
	g1 := r.master.snapshot("mpool/iscsi/volumes/5", "v1")
	res, err := r.acts.Replicate(ctx, r.input("iscsi/volumes/5", "v1", g1))
	if err != nil || res.GUID != g1 {
		t.Fatalf("replicate: %+v %v", res, err)
	}
	if got := slaveValue(t, reg, "clusterducks_replication_sent_bytes_total", slaveID.ServerID); got != float64(res.Bytes) || got == 0 {
		t.Errorf("sent bytes = %v, want the %v the slave received", got, res.Bytes)
	}
	if got := slaveValue(t, reg, "clusterducks_replication_remaining_bytes", slaveID.ServerID); got != 0 {
		t.Errorf("remaining after the stream = %v, want 0", got)
	}
	if got := slaveValue(t, reg, "clusterducks_replication_last_success_timestamp_seconds", slaveID.ServerID); got <= 0 {
		t.Errorf("last success = %v, want the acknowledgement's time", got)
	}
}

// TestMeteredWriter: the estimate left goes down with each write, never below 0, and a
// stream that ends early takes the rest off.
func TestMeteredWriter(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.NewReplication(reg)
	var buf bytes.Buffer
	mw := newMeteredWriter(&buf, m, 3, 100)
	if got := slaveValue(t, reg, "clusterducks_replication_remaining_bytes", 3); got != 100 {
		t.Fatalf("remaining at start = %v", got)
	}
	mw.Write(make([]byte, 30)) //nolint:errcheck
	if got := slaveValue(t, reg, "clusterducks_replication_remaining_bytes", 3); got != 70 {
		t.Errorf("remaining after 30 = %v", got)
	}
	mw.done()
	if got := slaveValue(t, reg, "clusterducks_replication_remaining_bytes", 3); got != 0 {
		t.Errorf("remaining after a cut = %v", got)
	}
	mw = newMeteredWriter(&buf, m, 3, 10)
	mw.Write(make([]byte, 25)) //nolint:errcheck
	mw.done()
	if got := slaveValue(t, reg, "clusterducks_replication_remaining_bytes", 3); got != 0 {
		t.Errorf("remaining after a stream above its estimate = %v", got)
	}
	if got := slaveValue(t, reg, "clusterducks_replication_sent_bytes_total", 3); got != 55 {
		t.Errorf("sent = %v, want 55", got)
	}
}
