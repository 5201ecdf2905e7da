package storage

import "io"

// ReplicationMetrics is what the master's replication endpoint reports per slave server
// (activities/storage/metrics.Replication implements it): stream bytes as they are sent,
// the estimated bytes still to send, and each acknowledged snapshot. Labels are slave
// server ids only, never a dataset.
type ReplicationMetrics interface {
	Sent(slave uint, n int64)
	AddRemaining(slave uint, delta int64)
	Succeeded(slave uint)
}

// meteredWriter counts one stream to a slave as it is written: sent bytes, and the
// estimate left (size from zfs send -n; a stream larger than its estimate leaves 0).
type meteredWriter struct {
	w     io.Writer
	m     ReplicationMetrics
	slave uint
	left  int64
}

func newMeteredWriter(w io.Writer, m ReplicationMetrics, slave uint, size int64) *meteredWriter {
	mw := &meteredWriter{w: w, m: m, slave: slave, left: max(size, 0)}
	m.AddRemaining(slave, mw.left)
	return mw
}

func (mw *meteredWriter) Write(p []byte) (int, error) {
	n, err := mw.w.Write(p)
	mw.count(int64(n))
	return n, err
}

// count counts n bytes sent (written elsewhere: spliced by the kernel).
func (mw *meteredWriter) count(n int64) {
	mw.m.Sent(mw.slave, n)
	d := min(n, mw.left)
	mw.left -= d
	mw.m.AddRemaining(mw.slave, -d)
}

// done takes what the stream did not send off the estimate (a cut or a smaller stream).
func (mw *meteredWriter) done() {
	mw.m.AddRemaining(mw.slave, -mw.left)
	mw.left = 0
}
