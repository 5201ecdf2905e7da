package iscsi

import (
	"net"
	"sync"
)

// connReader buffers a connection's input. While data streams in it reads
// 64 KiB at a time into a pooled buffer (a queue of small writes costs one
// syscall, not one per PDU); when the initiator goes quiet it falls back to a
// small buffer of its own and returns the big one, so idle sessions hold none.
type connReader struct {
	nc    net.Conn
	small [512]byte
	buf   []byte // small[:] or a pooled big buffer
	big   *[]byte
	r, w  int
	burst bool // the last fill filled the small buffer: expect more
}

const bigReadBuf = 64 << 10

var readPool = sync.Pool{New: func() any { b := make([]byte, bigReadBuf); return &b }}

func newConnReader(nc net.Conn) *connReader {
	c := &connReader{nc: nc}
	c.buf = c.small[:]
	return c
}

// Buffered returns the number of bytes that can be read without a syscall.
func (c *connReader) Buffered() int { return c.w - c.r }

func (c *connReader) Read(p []byte) (int, error) {
	if c.r == c.w {
		c.release()
		if len(p) >= bigReadBuf {
			// Large data segments go straight to their destination.
			return c.nc.Read(p)
		}
		if c.burst {
			c.big = readPool.Get().(*[]byte)
			c.buf = *c.big
		}
		n, err := c.nc.Read(c.buf)
		c.r, c.w = 0, n
		c.burst = n >= len(c.small)
		if n == 0 {
			c.release()
			return 0, err
		}
	}
	n := copy(p, c.buf[c.r:c.w])
	c.r += n
	if c.r == c.w {
		c.release()
	}
	return n, nil
}

// release gives the big buffer back once it is drained.
func (c *connReader) release() {
	if c.big != nil && c.r == c.w {
		readPool.Put(c.big)
		c.big = nil
		c.buf = c.small[:]
		c.r, c.w = 0, 0
	}
}
