package iscsi

import (
	"errors"
	"net"
	"syscall"
)

// sendfileRead sends [off, off+send) of the LUN as Data-In PDUs with
// sendfile(2): the data goes from the page cache to the socket without a
// copy through user space. TCP_CORK keeps each 48-byte header in the same
// segment as its data. Any error leaves the stream unusable: the caller
// drops the connection.
func (c *conn) sendfileRead(l *lun, itt uint32, off int64, send uint32, rflags byte, resid uint32) error {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok {
		return errors.New("sendfile needs a TCP connection")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	cork := func(v int) {
		raw.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v)
		})
	}
	cork(1)
	defer cork(0)
	seg := c.p.maxRecvDSL
	burst := c.p.maxBurst
	var dataSN uint32
	for pos := uint32(0); pos < send; {
		n := min(seg, send-pos)
		if rem := burst - pos%burst; n > rem {
			n = rem
		}
		var r pdu
		c.dataInHeader(&r, itt, dataSN, pos, n, pos+n == send, rflags, resid)
		c.queue(&r, nil)
		if err := c.writeOut(); err != nil {
			return err
		}
		fileOff := off + int64(pos)
		remain := int(n)
		for remain > 0 {
			var serr error
			err := raw.Write(func(fd uintptr) bool {
				var m int
				var e error
				if cerr := l.control(func(lfd int) error {
					m, e = syscall.Sendfile(int(fd), lfd, &fileOff, remain)
					return nil
				}); cerr != nil {
					serr = cerr
					return true
				}
				if m > 0 {
					remain -= m
				}
				switch {
				case e == syscall.EAGAIN:
					return false
				case e == syscall.EINTR:
					return false
				case e != nil:
					serr = e
				case m == 0 && remain > 0:
					serr = errors.New("sendfile: unexpected end of file")
				}
				return true
			})
			if err == nil {
				err = serr
			}
			if err != nil {
				return err
			}
		}
		if padding := pad4(int(n)) - int(n); padding > 0 {
			var z [4]byte
			c.out = append(c.out, z[:padding]...)
		}
		dataSN++
		pos += n
	}
	return c.writeOut()
}

// writeOut writes the queued small PDUs without giving the buffer back.
func (c *conn) writeOut() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	c.outMark = 0
	return err
}
