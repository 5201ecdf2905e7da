package zfs

import (
	"io"
	"sync"
)

// coalesceMax is the most one write of copyCoalesced carries.
const coalesceMax = 1 << 20

// copyCoalesced copies src to dst as copyBuffer does, but reads and writes in two
// goroutines: while a write to dst is under way the reads go on, and the next write
// carries everything that has arrived meanwhile (up to coalesceMax). A stream from a TLS
// connection arrives a record (16 KiB) or less per read; written to zfs receive's pipe one
// read at a time it costs a pipe write and a wakeup of zfs per record. Nothing waits for
// more bytes: a write goes out as soon as dst has taken the previous one.
//
// It returns when src ended (io.EOF: nil) and everything was written, or on the first
// error of either side. A read under way when the write side fails is left to end by
// itself (the caller closes src); what it reads is dropped.
func copyCoalesced(dst io.Writer, src io.Reader) (int64, error) {
	var (
		mu      sync.Mutex
		cond    = sync.NewCond(&mu)
		pending = make([]byte, 0, coalesceMax)
		rerr    error // the read side's end (io.EOF when src ended)
		werr    error // the write side's failure: the reader stops
	)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			mu.Lock()
			for n > 0 && len(pending)+n > coalesceMax && werr == nil {
				cond.Wait()
			}
			if werr != nil {
				mu.Unlock()
				return
			}
			pending = append(pending, buf[:n]...)
			if err != nil {
				rerr = err
			}
			cond.Broadcast()
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	var written int64
	out := make([]byte, 0, coalesceMax)
	for {
		mu.Lock()
		for len(pending) == 0 && rerr == nil {
			cond.Wait()
		}
		pending, out = out[:0], pending
		end := rerr
		cond.Broadcast()
		mu.Unlock()
		if len(out) > 0 {
			n, err := dst.Write(out)
			written += int64(n)
			if err == nil && n < len(out) {
				err = io.ErrShortWrite
			}
			if err != nil {
				mu.Lock()
				werr = err
				cond.Broadcast()
				mu.Unlock()
				return written, err
			}
		}
		// The reader stops after its last bytes, which came with its end: all written.
		if end == io.EOF {
			return written, nil
		}
		if end != nil {
			return written, end
		}
	}
}
