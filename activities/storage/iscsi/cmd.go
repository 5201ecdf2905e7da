package iscsi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// task is a command waiting for Data-Out.
type task struct {
	itt         uint32
	lunNum      uint64
	lunField    [8]byte
	cmd         *scsiCmd
	pl          plan
	edtl        uint32
	want        uint32 // Data-Out bytes the command uses
	got         uint32 // bytes received so far
	unsolicited bool   // an unsolicited Data-Out sequence is still open
	r2tEnd      uint32 // end offset of the outstanding R2T, 0 when none
	r2tSN       uint32
	ttt         uint32
	buf         []byte
	failed      bool
	dataSN      uint32 // next expected DataSN of the current sequence
	start       time.Time
}

// maxConnBufferedOut bounds the Data-Out one connection buffers for commands
// that need all their data before running (media writes stream to the LUN).
const maxConnBufferedOut = 16 << 20

// removeTask forgets a task and the memory it buffered.
func (c *conn) removeTask(itt uint32) {
	if tk, ok := c.tasks[itt]; ok {
		c.bufferedOut -= len(tk.buf)
		delete(c.tasks, itt)
	}
}

// Buffer pools for Data-Out segments and Data-In reads; idle sessions keep none.
var (
	pool256K = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}
	pool1M   = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}
)

func getBuf(n int) *[]byte {
	switch {
	case n <= 256<<10:
		return pool256K.Get().(*[]byte)
	case n <= 1<<20:
		return pool1M.Get().(*[]byte)
	}
	b := make([]byte, n)
	return &b
}

func putBuf(b *[]byte) {
	switch cap(*b) {
	case 256 << 10:
		pool256K.Put(b)
	case 1 << 20:
		pool1M.Put(b)
	}
}

// scsiCommand handles a SCSI Command PDU (its data segment not yet read unless haveData).
func (c *conn) scsiCommand(p *pdu, haveData bool) error {
	start := time.Now()
	c.commands++
	t := c.sess.target
	t.stats.commands.Add(1)
	flags := p.flags()
	readF, writeF := flags&0x40 != 0, flags&0x20 != 0
	edtl := p.u32(20)
	cdb := p.bhs[32:48:48]
	if len(p.ahs) >= 4 && p.ahs[2] == 0x01 { // extended CDB AHS
		n := int(p.ahs[0])<<8 | int(p.ahs[1]) - 1
		if n > 0 && 4+n <= len(p.ahs) {
			cdb = append(append([]byte(nil), p.bhs[32:48]...), p.ahs[4:4+n]...)
		}
	}
	lunNum, ok := decodeLUN(p.lun())
	var l *lun
	if ok {
		l = t.lun(lunNum)
		if l != nil && l.closed.Load() {
			l = nil
		}
	}
	c.lastOp = cdb[0]
	cmd := &scsiCmd{cdb: cdb, lun: l, lunNum: lunNum, target: t, nexus: c.sess.key, edtl: edtl}
	pl := c.srv.prepare(cmd)
	itt := p.itt()
	if pl.outLen > 0 && pl.status == statusGood {
		if !writeF {
			edtl = 0
		}
		want := min(edtl, pl.outLen)
		if len(c.tasks) >= int(c.srv.cfg.QueueDepth) || (!pl.writeMedia && c.bufferedOut+int(want) > maxConnBufferedOut) {
			// Bounded memory per connection: refuse rather than buffer more.
			if !haveData && p.dataLen() > 0 {
				if err := c.pr.discardData(p); err != nil {
					return err
				}
			}
			c.observe(t, statusTaskSetFull, start)
			c.sendResponse(itt, statusTaskSetFull, nil, 0, 0, 0)
			return nil
		}
		tk := &task{
			itt: itt, lunNum: lunNum, cmd: cmd, pl: pl, edtl: edtl,
			want: min(edtl, pl.outLen), start: start,
			unsolicited: !p.final() && !c.p.initialR2T,
		}
		copy(tk.lunField[:], p.bhs[8:16])
		if !pl.writeMedia {
			tk.buf = make([]byte, tk.want)
			c.bufferedOut += len(tk.buf)
		}
		if p.dataLen() > 0 {
			if !c.p.immediateData {
				if !haveData {
					if err := c.pr.discardData(p); err != nil {
						return err
					}
				}
				c.sendReject(p, rejectProtocolError)
				return nil
			}
			if err := c.receive(tk, p, 0, haveData); err != nil {
				return err
			}
			// The immediate data is received: unsolicited Data-Out goes on from its
			// end, and an R2T asks only for what is still missing.
			tk.got = uint32(p.dataLen())
		}
		if _, dup := c.tasks[itt]; dup {
			c.sendReject(p, rejectProtocolError)
			return nil
		}
		c.tasks[itt] = tk
		return c.advance(tk)
	}
	if !haveData && p.dataLen() > 0 {
		if err := c.pr.discardData(p); err != nil {
			return err
		}
	}
	if pl.outLen > 0 {
		pl.outLen = 0
	}
	if !readF {
		edtl = 0
	}
	return c.complete(cmd, itt, p.bhs[8:16], edtl, pl, start)
}

// receive stores the data segment of p (immediate data or Data-Out) at offset off.
func (c *conn) receive(tk *task, p *pdu, off uint32, haveData bool) error {
	n := uint32(p.dataLen())
	var seg []byte
	var pb *[]byte
	if haveData {
		seg = p.data
	} else {
		pb = getBuf(int(n))
		defer putBuf(pb)
		if err := c.pr.readData(p, (*pb)[:n]); err != nil {
			if errors.Is(err, errDataDigest) {
				tk.failed = true
				c.sendReject(p, rejectDataDigest)
				return nil
			}
			return err
		}
		seg = (*pb)[:n]
	}
	if off >= tk.want || tk.failed {
		return nil
	}
	use := seg[:min(n, tk.want-off)]
	if tk.buf != nil {
		copy(tk.buf[off:], use)
		return nil
	}
	if err := tk.cmd.lun.writeAt(use, tk.pl.writeOff+int64(off)); err != nil {
		tk.failed = true
		return nil
	}
	tk.cmd.target.stats.bytesWritten.Add(uint64(len(use)))
	return nil
}

// dataOut handles a SCSI Data-Out PDU.
func (c *conn) dataOut(p *pdu) error {
	tk := c.tasks[p.itt()]
	if tk == nil {
		// Data for a command that already ended (failed or aborted): drop it.
		return c.pr.discardData(p)
	}
	ttt := p.u32(20)
	off := p.u32(40)
	n := uint32(p.dataLen())
	if p.u32(36) != tk.dataSN {
		// A lost or reordered Data-Out: at ErrorRecoveryLevel 0 the
		// connection is failed (RFC 7143 §7.1.4.1).
		c.sendReject(p, rejectProtocolError)
		c.flush()
		return fmt.Errorf("Data-Out DataSN %d, expected %d", p.u32(36), tk.dataSN)
	}
	tk.dataSN++
	if off != tk.got || (ttt != reservedTag && ttt != tk.ttt) || uint64(off)+uint64(n) > uint64(max(tk.edtl, tk.want)) {
		// Out of order or beyond the burst: at ErrorRecoveryLevel 0 the
		// connection cannot recover this task.
		if err := c.pr.discardData(p); err != nil {
			return err
		}
		c.sendReject(p, rejectProtocolError)
		c.removeTask(tk.itt)
		return nil
	}
	if err := c.receive(tk, p, off, false); err != nil {
		return err
	}
	tk.got += n
	if p.final() {
		if ttt == reservedTag {
			tk.unsolicited = false
		} else if tk.got >= tk.r2tEnd {
			tk.r2tEnd = 0
		}
	}
	return c.advance(tk)
}

// advance solicits more data or completes the task.
func (c *conn) advance(tk *task) error {
	if tk.unsolicited || tk.r2tEnd != 0 {
		return nil
	}
	if tk.got < tk.want {
		length := min(tk.want-tk.got, c.p.maxBurst)
		tk.ttt = c.newTTT()
		tk.r2tEnd = tk.got + length
		tk.dataSN = 0 // each solicited sequence numbers its Data-Out from 0
		var r pdu
		r.bhs[0] = opR2T
		r.bhs[1] = 0x80
		copy(r.bhs[8:16], tk.lunField[:])
		r.put32(16, tk.itt)
		r.put32(20, tk.ttt)
		r.put32(24, c.statSN)
		r.put32(28, c.expCmdSN)
		r.put32(32, c.maxCmdSN())
		r.put32(36, tk.r2tSN)
		r.put32(40, tk.got)
		r.put32(44, length)
		tk.r2tSN++
		c.queue(&r, nil)
		return nil
	}
	c.removeTask(tk.itt)
	pl := tk.pl
	switch {
	case tk.failed:
		pl.status, pl.sense = checkStatus(keyMediumError, ascWriteError)
	case tk.want < pl.outLen && !pl.writeMedia:
		// The command's own parameter data is cut short: it cannot run.
		if tk.cmd.cdb[0] == 0x42 || tk.cmd.cdb[0] == 0x5f {
			pl.status, pl.sense = checkStatus(keyIllegalRequest, ascParamListLength)
		} else {
			pl.status, pl.sense = checkStatus(keyIllegalRequest, ascInvalidFieldCDB)
		}
	case pl.finish != nil:
		pl.status, pl.sense = pl.finish(tk.buf)
	}
	pl.dataIn, pl.readMedia = nil, false
	return c.completeWrite(tk, pl)
}

func (c *conn) completeWrite(tk *task, pl plan) error {
	var resid uint32
	var rflags byte
	switch {
	case pl.outLen > tk.edtl:
		rflags, resid = 0x04, pl.outLen-tk.edtl
	case pl.outLen < tk.edtl:
		rflags, resid = 0x02, tk.edtl-pl.outLen
	}
	c.observe(tk.cmd.target, pl.status, tk.start)
	c.sendResponse(tk.itt, pl.status, pl.sense, rflags, resid, tk.r2tSN)
	return nil
}

func (c *conn) observe(t *target, status byte, start time.Time) {
	if status != statusGood {
		t.stats.errors.Add(1)
	}
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("iscsi command", "opcode", fmt.Sprintf("%#02x", c.lastOp), "status", status)
	}
	t.stats.observe(time.Since(start))
}

// complete finishes a command without Data-Out: status, or Data-In then status.
func (c *conn) complete(cmd *scsiCmd, itt uint32, lunField []byte, edtl uint32, pl plan, start time.Time) error {
	total := len(pl.dataIn)
	if pl.readMedia {
		total = pl.readLen
	}
	if pl.status != statusGood {
		total = 0
	}
	send := min(uint32(total), edtl)
	var rflags byte
	var resid uint32
	switch {
	case uint32(total) > edtl:
		rflags, resid = 0x04, uint32(total)-edtl
	case uint32(total) < edtl:
		rflags, resid = 0x02, edtl-uint32(total)
	}
	if send == 0 {
		c.observe(cmd.target, pl.status, start)
		c.sendResponse(itt, pl.status, pl.sense, rflags, resid, 0)
		return nil
	}
	var dataSN uint32
	if !pl.readMedia {
		c.queueDataInAt(itt, pl.dataIn[:send], 0, dataSN, true, rflags, resid)
		c.observe(cmd.target, statusGood, start)
		return nil
	}
	l := cmd.lun
	if c.srv.cfg.Sendfile && !c.p.dataDigest {
		if err := c.flush(); err != nil {
			return err
		}
		if c.out == nil {
			c.out = getOut()
		}
		// Counted before the data leaves: the initiator may ask for the metrics as soon as
		// it has the status, before this goroutine runs again.
		cmd.target.stats.bytesRead.Add(uint64(send))
		if err := c.sendfileRead(l, itt, pl.readOff, send, rflags, resid); err != nil {
			return err
		}
		c.observe(cmd.target, statusGood, start)
		return nil
	}
	for sent := uint32(0); sent < send; {
		chunk := min(send-sent, 1<<20)
		pb := getBuf(int(chunk))
		buf := (*pb)[:chunk]
		if err := l.readAt(buf, pl.readOff+int64(sent)); err != nil {
			putBuf(pb)
			c.observe(cmd.target, statusCheckCondition, start)
			st, sense := checkStatus(keyMediumError, ascReadError)
			c.sendResponse(itt, st, sense, rflags, resid, dataSN)
			return nil
		}
		last := sent+chunk == send
		dataSN = c.queueDataInAt(itt, buf, sent, dataSN, last, rflags, resid)
		cmd.target.stats.bytesRead.Add(uint64(chunk)) // before the flush, as above
		err := c.flush()
		putBuf(pb)
		if err != nil {
			return err
		}
		sent += chunk
	}
	c.observe(cmd.target, statusGood, start)
	return nil
}

// stampStatus fills the sequence numbers of a PDU that carries a status: the next
// StatSN, and the command window (ExpCmdSN, MaxCmdSN) the initiator may use.
func (c *conn) stampStatus(r *pdu) {
	r.put32(24, c.statSN)
	c.statSN++
	r.put32(28, c.expCmdSN)
	r.put32(32, c.maxCmdSN())
}

// dataInHeader fills the header of a Data-In PDU of n bytes at offset pos: F at the end
// of each MaxBurstLength sequence, and on the command's final PDU the status (with the
// next StatSN) and the residual count.
func (c *conn) dataInHeader(r *pdu, itt, dataSN, pos, n uint32, final bool, rflags byte, resid uint32) {
	r.bhs[0] = opDataIn
	if (pos+n)%c.p.maxBurst == 0 {
		r.bhs[1] |= 0x80
	}
	if final {
		r.bhs[1] |= 0x80 | 0x01 | rflags
		r.bhs[3] = statusGood
		r.put32(24, c.statSN)
		c.statSN++
		r.put32(44, resid)
	}
	r.put32(16, itt)
	r.put32(20, reservedTag)
	r.put32(28, c.expCmdSN)
	r.put32(32, c.maxCmdSN())
	r.put32(36, dataSN)
	r.put32(40, pos)
	r.setDataLen(int(n))
}

// queueDataInAt queues Data-In PDUs for b, which sits at buffer offset off of
// the command's data; the last PDU of the command carries the status.
func (c *conn) queueDataInAt(itt uint32, b []byte, off uint32, dataSN uint32, last bool, rflags byte, resid uint32) uint32 {
	seg := int(c.p.maxRecvDSL)
	burst := c.p.maxBurst
	for i := 0; i < len(b); {
		n := min(seg, len(b)-i)
		// Each sequence is at most MaxBurstLength: cut at burst boundaries.
		pos := off + uint32(i)
		if rem := burst - pos%burst; uint32(n) > rem {
			n = int(rem)
		}
		var r pdu
		end := pos+uint32(n) == off+uint32(len(b))
		c.dataInHeader(&r, itt, dataSN, pos, uint32(n), end && last, rflags, resid)
		c.queue(&r, b[i:i+n])
		dataSN++
		i += n
	}
	return dataSN
}

func (c *conn) sendResponse(itt uint32, status byte, sense []byte, rflags byte, resid uint32, expDataSN uint32) {
	var r pdu
	r.bhs[0] = opSCSIResp
	r.bhs[1] = 0x80 | rflags
	r.bhs[2] = 0 // command completed at target
	r.bhs[3] = status
	r.put32(16, itt)
	c.stampStatus(&r)
	r.put32(36, expDataSN)
	r.put32(44, resid)
	var d []byte
	if len(sense) > 0 {
		d = make([]byte, 2+len(sense))
		put16(d, uint16(len(sense)))
		copy(d[2:], sense)
	}
	r.setDataLen(len(d))
	c.queue(&r, d)
}
