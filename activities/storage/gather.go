package storage

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"

	"github.com/clusterducks/clusterducks/activities/storage/ktls"
)

// A replication stream crosses TLS in 16 KiB records, and crypto/tls writes each record
// to its connection in a write of its own. What a socket write costs hardly depends on its
// size (the kernel's path to the network card, and in the storage lab's emulated guests
// that path dominates: a 4 KiB write cost as much CPU as a 16 KiB one), so the stream's
// pieces are gathered: the connection beneath TLS keeps what TLS writes while a piece of
// the stream is being written and sends it in one socket write when the piece is done.
// Reads are buffered for the same reason (one read of up to streamBuffer, not one per
// record header and body).

// streamBuffer is the most a gathering connection keeps before it writes, and the size of
// the pieces a stream is copied in.
const streamBuffer = 256 << 10

// gatherConn is a replication connection beneath its TLS.
type gatherConn struct {
	net.Conn
	r *bufio.Reader

	mu        sync.Mutex
	gathering bool
	buf       []byte

	// secrets are the TLS traffic secrets of a connection that asked for
	// wire.ProtoKernelStream (set during its handshake, read after it).
	secrets *ktls.Secrets
}

func newGatherConn(c net.Conn) *gatherConn {
	return &gatherConn{Conn: c, r: bufio.NewReaderSize(c, streamBuffer)}
}

func (c *gatherConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *gatherConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.gathering || len(p) >= streamBuffer {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		return c.Conn.Write(p)
	}
	if len(c.buf)+len(p) > streamBuffer {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	if c.buf == nil {
		c.buf = make([]byte, 0, streamBuffer)
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

func (c *gatherConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// Close writes what was gathered (TLS's close_notify alert, written with a deadline,
// when the connection closes in a stream) and closes the connection.
func (c *gatherConn) Close() error {
	c.mu.Lock()
	_ = c.flushLocked()
	c.gathering = false
	c.mu.Unlock()
	return c.Conn.Close()
}

// flush writes what was gathered.
func (c *gatherConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

// gather starts (on) or ends (off, writing what was kept) gathering writes.
func (c *gatherConn) gather(on bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gathering = on
	if on {
		return nil
	}
	err := c.flushLocked()
	c.buf = nil
	return err
}

// GatherListener accepts replication connections that can gather a stream's writes (serve
// TLS on it, and give the server GatherContext as its ConnContext).
func GatherListener(ln net.Listener) net.Listener { return gatherListener{ln} }

type gatherListener struct{ net.Listener }

func (l gatherListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newGatherConn(c), nil
}

type gatherKey struct{}

// GatherContext is an http.Server's ConnContext that lets the replication handler reach
// the gathering connection beneath a request's TLS.
func GatherContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		if gc, ok := tc.NetConn().(*gatherConn); ok {
			return context.WithValue(ctx, gatherKey{}, gc)
		}
	}
	return ctx
}

// gatheredWriter writes a stream's pieces through w, each piece in one socket write: it
// flushes the response (its chunk, through TLS) and then the connection beneath.
type gatheredWriter struct {
	w  io.Writer
	rc interface{ Flush() error }
	gc *gatherConn
}

func (g gatheredWriter) Write(p []byte) (int, error) {
	n, err := g.w.Write(p)
	if err != nil {
		return n, err
	}
	if err := g.rc.Flush(); err != nil {
		return n, err
	}
	return n, g.gc.flush()
}

// onlyWriter and onlyReader hide ReadFrom and WriteTo, so io.CopyBuffer uses its buffer.
type onlyWriter struct{ io.Writer }

type onlyReader struct{ io.Reader }
