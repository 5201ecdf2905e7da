package storage

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"
)

// countingListener counts the socket writes of the connections it accepts.
type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// keptConn records each socket write.
type keptConn struct {
	net.Conn
	writes [][]byte
}

func (c *keptConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func TestGatherConn(t *testing.T) {
	k := &keptConn{}
	c := &gatherConn{Conn: k}
	piece := bytes.Repeat([]byte{1}, 16<<10)
	if _, err := c.Write([]byte("headers")); err != nil || len(k.writes) != 1 {
		t.Fatalf("not gathering, a write goes at once: %d writes, %v", len(k.writes), err)
	}
	_ = c.gather(true)
	for range 4 {
		if n, err := c.Write(piece); n != len(piece) || err != nil {
			t.Fatalf("write: %d %v", n, err)
		}
	}
	if len(k.writes) != 1 {
		t.Fatalf("gathered records went out before the flush: %d writes", len(k.writes))
	}
	if err := c.flush(); err != nil || len(k.writes) != 2 || len(k.writes[1]) != 4*len(piece) {
		t.Fatalf("flush: %d writes, %v", len(k.writes), err)
	}
	// More than the buffer holds: what was kept goes first, in order.
	for range streamBuffer/len(piece) + 1 {
		_, _ = c.Write(piece)
	}
	if len(k.writes) != 3 || len(k.writes[2]) != streamBuffer {
		t.Fatalf("a full buffer is written: %d writes", len(k.writes))
	}
	big := bytes.Repeat([]byte{2}, streamBuffer)
	_, _ = c.Write(big)
	if len(k.writes) != 5 || len(k.writes[3]) != len(piece) || !bytes.Equal(k.writes[4], big) {
		t.Fatalf("a write of a whole buffer goes after what was kept: %d writes", len(k.writes))
	}
	_, _ = c.Write(piece)
	if err := c.gather(false); err != nil || len(k.writes) != 6 {
		t.Fatalf("ending the gathering writes what was kept: %d writes, %v", len(k.writes), err)
	}
	_, _ = c.Write([]byte("ack"))
	if len(k.writes) != 7 {
		t.Fatalf("after the stream, writes go at once: %d writes", len(k.writes))
	}
}

// TestReplicationGathersTheStreamsRecords: a 4 MiB stream crosses TLS in 256 records of
// 16 KiB, and the master writes it to its socket in a few large writes, not one per record.
func TestReplicationGathersTheStreamsRecords(t *testing.T) {
	r := newRig(t, 0, slaveID)
	r.master.snapSize = 4 << 20
	g1 := r.master.snapshot("mpool/iscsi/volumes/5", "group-7")
	before := r.writes.Load()
	res, err := r.acts.Replicate(context.Background(), r.input("iscsi/volumes/5", "group-7", g1))
	if err != nil || res.GUID != g1 {
		t.Fatalf("replicate: %+v %v", res, err)
	}
	if got := r.guids(t, "iscsi/volumes/5"); len(got) != 1 || got[0] != "group-7="+g1 {
		t.Fatalf("the slave holds %v", got)
	}
	// The handshake, the headers, the stream and the acknowledgement's answer.
	if n := r.writes.Load() - before; n > 64 {
		t.Fatalf("the master wrote 4 MiB in %d socket writes (one per TLS record is 256)", n)
	}
}

func TestGatherConnCloseWritesWhatWasKept(t *testing.T) {
	a, b := net.Pipe()
	c := newGatherConn(a)
	_ = c.gather(true)
	_, _ = c.Write([]byte("alert"))
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 16)
		n, _ := b.Read(buf)
		got <- string(buf[:n])
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "alert" {
		t.Fatalf("the peer read %q", s)
	}
}
