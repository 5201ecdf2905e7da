package iscsi

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// session is an iSCSI session; this target allows one connection per session.
type session struct {
	tsih      uint16
	isid      [6]byte
	initiator string
	target    *target // nil for discovery sessions
	key       string  // initiator, ISID and target: the I_T nexus
	conn      *conn   // guarded by Server.mu
	started   time.Time
}

// conn is one TCP connection, served by a single goroutine.
type conn struct {
	srv  *Server
	nc   net.Conn
	br   *connReader
	pr   pduReader
	in   pdu
	log  *slog.Logger
	done chan struct{}
	// sessionEnded: endSession ran (it must run once, also after a panic).
	sessionEnded bool

	killMu     sync.Mutex
	killReason string

	// output queue, written by flush
	out     []byte
	outMark int
	vec     net.Buffers

	sess      *session
	discovery bool
	p         params
	statSN    uint32
	expCmdSN  uint32
	tasks     map[uint32]*task
	nextTTT   uint32
	pending   map[uint32]*pdu
	nopTTT    uint32
	nopSent   bool
	readDL    time.Time
	writeDL   time.Time
	textRest  []byte
	textTTT   uint32
	loggedOut bool
	commands  uint64

	fullFeaturePhase atomic.Bool
	logoutWanted     atomic.Bool
	logoutSent       bool
	lastOp           byte // opcode of the command being completed, for debug logs
	bufferedOut      int  // bytes of Data-Out buffered by tasks
	pendingBytes     int  // bytes held by commands queued for a CmdSN gap
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		srv:     s,
		nc:      nc,
		br:      newConnReader(nc),
		done:    make(chan struct{}),
		tasks:   map[uint32]*task{},
		nextTTT: 1,
	}
	c.pr = pduReader{r: c.br, maxData: maxTextLen}
	c.log = s.log.With("remote", nc.RemoteAddr().String())
	return c
}

// kill closes the connection from another goroutine; serve notices and cleans up.
func (c *conn) kill(reason string) {
	c.killMu.Lock()
	if c.killReason == "" {
		c.killReason = reason
	}
	c.killMu.Unlock()
	c.nc.Close()
}

func (c *conn) waitDone(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
	}
}

func (c *conn) serve() {
	defer c.srv.connDone(c)
	defer close(c.done)
	defer c.nc.Close()
	defer func() {
		// A bug in command handling must cost one connection, never the process.
		if r := recover(); r != nil {
			c.srv.panics.Add(1)
			c.log.Error("iscsi connection panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			if !c.sessionEnded {
				c.endSession(fmt.Errorf("panic: %v", r))
			}
		}
	}()
	c.nc.SetDeadline(time.Now().Add(c.srv.cfg.LoginTimeout))
	if err := c.login(); err != nil {
		if !isClosedErr(err) {
			c.log.Debug("iscsi login ended", "err", err)
		}
		// The session may be bound already: the final login response was
		// built but the initiator dropped the connection before it went out.
		c.endSession(err)
		return
	}
	c.nc.SetDeadline(time.Time{})
	c.readDL, c.writeDL = time.Time{}, time.Time{}
	c.fullFeaturePhase.Store(true)
	if c.logoutWanted.Load() {
		c.nc.SetReadDeadline(time.Now().Add(-time.Second))
	}
	err := c.fullFeature()
	c.endSession(err)
}

func isClosedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

// startSession binds the login to a session: new, reinstated or continued.
func (c *conn) startSession(ls *loginState) error {
	c.p = ls.neg.p
	s := c.srv
	if ls.sessionType == sessionTypeDiscovery {
		c.discovery = true
		c.sess = &session{isid: ls.isid, initiator: ls.initiator, started: time.Now()}
		c.expCmdSN = ls.cmdSN
		c.applyParams()
		return nil
	}
	key := ls.initiator + ",i,0x" + hex.EncodeToString(ls.isid[:]) + "," + ls.tgt.cfg.IQN
	s.mu.Lock()
	if ls.tgt.removed.Load() || s.targets[ls.tgt.cfg.IQN] != ls.tgt {
		s.mu.Unlock()
		return lerr(loginTargetRemoved, "target removed")
	}
	if s.closed {
		s.mu.Unlock()
		return lerr(loginTargetError, "server shutting down")
	}
	var old *conn
	var sess *session
	if ls.tsih != 0 {
		sess = s.sessions[ls.tsih]
		if sess == nil || sess.key != key {
			s.mu.Unlock()
			return lerr(loginNoSession, "no session with TSIH %d", ls.tsih)
		}
		old = sess.conn
	} else {
		for _, other := range s.sessions {
			if other.key == key {
				old = other.conn
				delete(s.sessions, other.tsih)
				break
			}
		}
		sess = &session{isid: ls.isid, initiator: ls.initiator, target: ls.tgt, key: key}
		if !s.allocTSIH(sess) {
			s.mu.Unlock()
			return lerr(loginOutOfResources, "no free TSIH")
		}
	}
	sess.conn = c
	sess.started = time.Now()
	s.mu.Unlock()
	if old != nil && old != c {
		old.kill("session reinstatement")
		old.waitDone(5 * time.Second)
	}
	c.sess = sess
	c.expCmdSN = ls.cmdSN
	c.applyParams()
	ls.tgt.stats.sessions.Add(1)
	ls.tgt.stats.logins.Add(1)
	c.log = c.log.With("initiator", sess.initiator, "target", ls.tgt.cfg.IQN, "tsih", sess.tsih)
	c.log.Info("iscsi session started", "reinstated", old != nil,
		"max_recv", c.p.maxRecvDSL, "max_burst", c.p.maxBurst, "immediate_data", c.p.immediateData,
		"initial_r2t", c.p.initialR2T, "digests", c.p.headerDigest || c.p.dataDigest)
	return nil
}

func (c *conn) applyParams() {
	c.pr.headerDigest = c.p.headerDigest
	c.pr.dataDigest = c.p.dataDigest
	c.pr.maxData = int(c.srv.cfg.MaxRecvDataSegmentLength)
}

// endSession forgets the session (unless a reinstatement took it over) and
// releases what the I_T nexus held.
func (c *conn) endSession(err error) {
	c.sessionEnded = true
	for itt := range c.tasks {
		c.removeTask(itt)
	}
	if c.sess == nil || c.discovery {
		return
	}
	s := c.srv
	s.mu.Lock()
	owned := s.sessions[c.sess.tsih] == c.sess && c.sess.conn == c
	if owned {
		delete(s.sessions, c.sess.tsih)
	}
	if c.sess.conn == c {
		c.sess.conn = nil
	}
	s.mu.Unlock()
	t := c.sess.target
	t.stats.sessions.Add(-1)
	for _, n := range t.lunNumbers() {
		if l := t.lun(n); l != nil {
			l.nexusLost(c.sess.key)
		}
	}
	c.killMu.Lock()
	reason := c.killReason
	c.killMu.Unlock()
	switch {
	case reason != "":
	case c.loggedOut:
		reason = "logout"
	case err == nil || isClosedErr(err):
		reason = "connection closed"
	default:
		reason = err.Error()
	}
	c.log.Info("iscsi session ended", "reason", reason, "commands", c.commands,
		"duration", time.Since(c.sess.started).Round(time.Millisecond))
}

// fullFeature serves PDUs until logout or an error.
func (c *conn) fullFeature() error {
	for !c.loggedOut {
		if err := c.readHeaderIdle(&c.in); err != nil {
			return err
		}
		if err := c.handle(&c.in); err != nil {
			return err
		}
		if c.br.Buffered() == 0 || len(c.out) > 64<<10 {
			if err := c.flush(); err != nil {
				return err
			}
		}
	}
	return c.flush()
}

// readHeaderIdle reads the next BHS. When the initiator stays idle it pings
// it with NOP-In and drops it if it does not answer; when the target asks the
// initiator to log out (requestLogout) it sends the Async Message here and
// drops the connection if no logout follows within logoutGrace.
func (c *conn) readHeaderIdle(p *pdu) error {
	interval := c.srv.cfg.NopInterval
	got := 0
	for {
		if got == 0 && c.logoutWanted.Load() && !c.logoutSent {
			c.sendAsyncLogout()
			if err := c.flush(); err != nil {
				return err
			}
			c.logoutSent = true
			c.readDL = time.Now().Add(logoutGrace)
			c.nc.SetReadDeadline(c.readDL)
		}
		now := time.Now()
		if interval > 0 && !c.nopSent && !c.logoutSent && (c.readDL.IsZero() || c.readDL.Sub(now) < interval*3/4) {
			c.readDL = now.Add(interval)
			c.nc.SetReadDeadline(c.readDL)
		}
		if got == 0 && c.logoutWanted.Load() && !c.logoutSent {
			continue // requested while we set our own deadline
		}
		n, err := io.ReadFull(c.br, p.bhs[got:])
		got += n
		if err == nil {
			if c.nopSent {
				// Any traffic shows the initiator is alive.
				c.nopSent = false
				c.readDL = time.Time{}
			}
			return c.pr.readRestOfHeader(p)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return err
		}
		switch {
		case got > 0 && got < bhsLen:
			c.readDL = time.Now().Add(c.srv.cfg.NopTimeout)
			c.nc.SetReadDeadline(c.readDL)
		case c.logoutSent:
			return errors.New("initiator did not log out when asked")
		case c.logoutWanted.Load():
			// Woken to send the logout request: the loop sends it.
		case interval <= 0:
			c.readDL = time.Time{}
			c.nc.SetReadDeadline(c.readDL)
		case c.nopSent:
			return errors.New("initiator did not answer NOP-In")
		default:
			c.sendNopPing()
			if err := c.flush(); err != nil {
				return err
			}
			c.nopSent = true
			c.readDL = time.Now().Add(c.srv.cfg.NopTimeout)
			c.nc.SetReadDeadline(c.readDL)
		}
	}
}

// logoutGrace is how long an initiator asked to log out may take.
const logoutGrace = 2 * time.Second

// requestLogout asks the connection's initiator to log out (Async Message,
// RFC 7143 §11.9); a connection still logging in is closed. Safe from any goroutine.
func (c *conn) requestLogout(reason string) {
	c.killMu.Lock()
	if c.killReason == "" {
		c.killReason = reason
	}
	c.killMu.Unlock()
	if !c.fullFeaturePhase.Load() {
		c.nc.Close()
		return
	}
	c.logoutWanted.Store(true)
	c.nc.SetReadDeadline(time.Now().Add(-time.Second))
}

func (c *conn) sendAsyncLogout() {
	var r pdu
	r.bhs[0] = opAsync
	r.bhs[1] = 0x80
	r.put32(16, reservedTag)
	c.stampStatus(&r)
	r.bhs[36] = 1 // AsyncEvent: the target requests a logout
	binary.BigEndian.PutUint16(r.bhs[42:], uint16(logoutGrace/time.Second))
	c.queue(&r, nil)
}

func (c *conn) sendNopPing() {
	var r pdu
	r.bhs[0] = opNopIn
	r.bhs[1] = 0x80
	r.put32(16, reservedTag)
	c.nopTTT = c.newTTT()
	r.put32(20, c.nopTTT)
	r.put32(24, c.statSN) // not advanced: no response is owed
	r.put32(28, c.expCmdSN)
	r.put32(32, c.maxCmdSN())
	c.queue(&r, nil)
}

func (c *conn) newTTT() uint32 {
	c.nextTTT++
	if c.nextTTT == reservedTag || c.nextTTT == 0 {
		c.nextTTT = 1
	}
	return c.nextTTT
}

func (c *conn) maxCmdSN() uint32 { return c.expCmdSN + c.srv.cfg.QueueDepth - 1 }

// maxPendingBytes bounds the immediate data held while waiting for a CmdSN gap to fill.
const maxPendingBytes = 1 << 20

// snCompare compares sequence numbers with RFC 1982 serial arithmetic.
func snCompare(a, b uint32) int {
	d := int32(a - b)
	switch {
	case d < 0:
		return -1
	case d > 0:
		return 1
	}
	return 0
}

// handle processes one PDU whose header has been read.
func (c *conn) handle(p *pdu) error {
	op := p.opcode()
	switch op {
	case opDataOut:
		return c.dataOut(p)
	case opSCSICmd, opNopOut, opTaskMgmt, opTextReq, opLogoutReq:
	case opSNACK:
		if err := c.pr.discardData(p); err != nil {
			return err
		}
		c.sendReject(p, rejectCmdNotSupported)
		return nil
	default:
		if err := c.pr.discardData(p); err != nil {
			return err
		}
		c.sendReject(p, rejectProtocolError)
		return nil
	}
	if !p.immediate() {
		cmdSN := p.u32(24)
		switch {
		case cmdSN == c.expCmdSN:
			c.expCmdSN++
		case snCompare(cmdSN, c.expCmdSN) > 0 && snCompare(cmdSN, c.maxCmdSN()) <= 0:
			// A gap: hold the command until the missing ones arrive.
			if len(c.pending) >= int(c.srv.cfg.QueueDepth) {
				return errors.New("CmdSN queue overflow")
			}
			if c.pendingBytes+p.dataLen() > maxPendingBytes {
				return errors.New("CmdSN gap holds too much data")
			}
			c.pendingBytes += p.dataLen()
			q := &pdu{bhs: p.bhs, ahs: append([]byte(nil), p.ahs...)}
			if err := c.pr.readData(q, make([]byte, p.dataLen())); err != nil {
				return err
			}
			if c.pending == nil {
				c.pending = map[uint32]*pdu{}
			}
			c.pending[cmdSN] = q
			return nil
		default:
			// Outside the window: RFC 7143 §4.2.2.1 says ignore silently.
			return c.pr.discardData(p)
		}
		if err := c.dispatch(p, false); err != nil {
			return err
		}
		for len(c.pending) > 0 {
			q, ok := c.pending[c.expCmdSN]
			if !ok {
				break
			}
			delete(c.pending, c.expCmdSN)
			c.pendingBytes -= len(q.data)
			c.expCmdSN++
			if err := c.dispatch(q, true); err != nil {
				return err
			}
		}
		return nil
	}
	return c.dispatch(p, false)
}

// dispatch runs an ordered command. haveData is true when p.data is already read.
func (c *conn) dispatch(p *pdu, haveData bool) error {
	if c.discovery && p.opcode() != opTextReq && p.opcode() != opLogoutReq && p.opcode() != opNopOut {
		if !haveData {
			if err := c.pr.discardData(p); err != nil {
				return err
			}
		}
		c.sendReject(p, rejectProtocolError)
		return nil
	}
	switch p.opcode() {
	case opSCSICmd:
		return c.scsiCommand(p, haveData)
	}
	if !haveData {
		if err := c.pr.readData(p, nil); err != nil {
			if errors.Is(err, errDataDigest) {
				c.sendReject(p, rejectDataDigest)
				return nil
			}
			return err
		}
	}
	switch p.opcode() {
	case opNopOut:
		c.nopOut(p)
	case opTaskMgmt:
		c.taskMgmt(p)
	case opTextReq:
		return c.textRequest(p)
	case opLogoutReq:
		c.logout(p)
	}
	return nil
}

func (c *conn) nopOut(p *pdu) {
	itt := p.itt()
	if itt == reservedTag {
		// An answer to our ping (or a ping that wants no answer).
		c.nopSent = false
		return
	}
	data := p.data
	if len(data) > int(c.p.maxRecvDSL) {
		data = data[:c.p.maxRecvDSL]
	}
	var r pdu
	r.bhs[0] = opNopIn
	r.bhs[1] = 0x80
	copy(r.bhs[8:16], p.bhs[8:16])
	r.put32(16, itt)
	r.put32(20, reservedTag)
	c.stampStatus(&r)
	r.setDataLen(len(data))
	c.queue(&r, data)
}

// TMF functions and responses (RFC 7143 §11.5, §11.6).
const (
	tmfAbortTask     = 1
	tmfAbortTaskSet  = 2
	tmfClearACA      = 3
	tmfClearTaskSet  = 4
	tmfLUReset       = 5
	tmfTargetWarm    = 6
	tmfTargetCold    = 7
	tmfTaskReassign  = 8
	tmfComplete      = 0
	tmfNoTask        = 1
	tmfNoLUN         = 2
	tmfNotSupported  = 5
	tmfReassignNotOK = 4
)

func (c *conn) taskMgmt(p *pdu) {
	fn := p.flags() & 0x7f
	resp := byte(tmfComplete)
	lunNum, lunOK := decodeLUN(p.lun())
	var l *lun
	if lunOK {
		l = c.sess.target.lun(lunNum)
	}
	switch fn {
	case tmfAbortTask:
		// Commands run to completion as they arrive; only one still waiting
		// for Data-Out can be aborted. Others have completed: "does not exist".
		ref := p.u32(20)
		if _, ok := c.tasks[ref]; ok {
			c.removeTask(ref)
		} else {
			resp = tmfNoTask
		}
	case tmfAbortTaskSet, tmfClearTaskSet:
		if l == nil {
			resp = tmfNoLUN
			break
		}
		c.dropTasks(lunNum, true)
	case tmfLUReset:
		if l == nil {
			resp = tmfNoLUN
			break
		}
		c.dropTasks(lunNum, true)
		l.reset()
		l.setUnitAttention(c.srv.nexuses(c.sess.target), ascResetOccurred)
	case tmfTargetWarm, tmfTargetCold:
		c.dropTasks(0, false)
		t := c.sess.target
		nexuses := c.srv.nexuses(t)
		for _, n := range t.lunNumbers() {
			if l := t.lun(n); l != nil {
				l.reset()
				l.setUnitAttention(nexuses, ascResetOccurred)
			}
		}
	case tmfClearACA:
		resp = tmfNotSupported
	case tmfTaskReassign:
		resp = tmfReassignNotOK
	default:
		resp = tmfNotSupported
	}
	var r pdu
	r.bhs[0] = opTaskResp
	r.bhs[1] = 0x80
	r.bhs[2] = resp
	r.put32(16, p.itt())
	c.stampStatus(&r)
	c.queue(&r, nil)
}

func (c *conn) dropTasks(lunNum uint64, onlyLUN bool) {
	for itt, t := range c.tasks {
		if !onlyLUN || t.lunNum == lunNum {
			c.removeTask(itt)
		}
	}
}

func (c *conn) logout(p *pdu) {
	reason := p.flags() & 0x7f
	cid := binary.BigEndian.Uint16(p.bhs[20:22])
	var resp byte
	switch reason {
	case 0:
	case 1:
		// One connection per session: closing "the" connection closes the session.
		_ = cid
	case 2:
		resp = 2
	default:
		resp = 3
	}
	var r pdu
	r.bhs[0] = opLogoutResp
	r.bhs[1] = 0x80
	r.bhs[2] = resp
	r.put32(16, p.itt())
	c.stampStatus(&r)
	c.queue(&r, nil)
	if resp == 0 {
		c.loggedOut = true
	}
}

func (c *conn) textRequest(p *pdu) error {
	ttt := p.u32(20)
	var reply []byte
	if ttt != reservedTag && c.textRest != nil && ttt == c.textTTT {
		reply = c.textRest
	} else {
		if p.flags()&0x40 != 0 {
			// Continued request text is not something any initiator sends for SendTargets.
			c.sendReject(p, rejectProtocolError)
			return nil
		}
		keys, err := parseText(p.data)
		if err != nil {
			c.sendReject(p, rejectInvalidField)
			return nil
		}
		out := newKV()
		var list []byte
		for _, k := range keys.keys {
			v := keys.vals[k]
			if k == "SendTargets" {
				list = append(list, c.sendTargets(v)...)
				continue
			}
			out.set(k, "NotUnderstood")
		}
		reply = append(list, out.encode()...)
	}
	var r pdu
	r.bhs[0] = opTextResp
	chunk := reply
	if len(chunk) > int(c.p.maxRecvDSL) {
		chunk = chunk[:c.p.maxRecvDSL]
		c.textRest = reply[len(chunk):]
		c.textTTT = c.newTTT()
		r.bhs[1] = 0x40
		r.put32(20, c.textTTT)
	} else {
		c.textRest = nil
		r.bhs[1] = 0x80
		r.put32(20, reservedTag)
	}
	r.put32(16, p.itt())
	c.stampStatus(&r)
	r.setDataLen(len(chunk))
	c.queue(&r, chunk)
	return nil
}

func (c *conn) sendTargets(which string) []byte {
	addr := c.srv.cfg.TargetAddress
	if addr == "" {
		addr = c.nc.LocalAddr().String()
	}
	portal := fmt.Sprintf("%s,%d", addr, c.srv.cfg.PortalGroupTag)
	var names []string
	switch {
	case c.discovery && (which == "All" || which == ""):
		names = c.srv.Targets()
	case which == "" && c.sess.target != nil:
		names = []string{c.sess.target.cfg.IQN}
	default:
		names = []string{which}
	}
	var out []byte
	for _, n := range names {
		t := c.srv.lookupTarget(n)
		if t == nil || !t.allows(c.sess.initiator) {
			continue
		}
		if c.sess.target != nil && t != c.sess.target {
			continue
		}
		out = fmt.Appendf(out, "TargetName=%s\x00TargetAddress=%s\x00", n, portal)
	}
	return out
}

func (c *conn) sendReject(p *pdu, reason byte) {
	var r pdu
	r.bhs[0] = opReject
	r.bhs[1] = 0x80
	r.bhs[2] = reason
	r.put32(16, reservedTag)
	c.stampStatus(&r)
	r.setDataLen(bhsLen)
	hdr := p.bhs
	c.queue(&r, hdr[:])
}

// queue appends a PDU to the output. Data larger than a few pages is kept by
// reference (the caller must keep it unchanged until flush).
func (c *conn) queue(h *pdu, data []byte) {
	if c.out == nil {
		c.out = getOut()
	}
	c.out = append(c.out, h.bhs[:]...)
	if c.p.headerDigest {
		c.out = binary.LittleEndian.AppendUint32(c.out, crc32.Checksum(h.bhs[:], castagnoli))
	}
	if len(data) == 0 {
		return
	}
	if len(data) <= 16<<10 {
		c.out = append(c.out, data...)
	} else {
		c.vec = append(c.vec, c.out[c.outMark:], data)
		c.outMark = len(c.out)
	}
	padding := pad4(len(data)) - len(data)
	var zero [4]byte
	c.out = append(c.out, zero[:padding]...)
	if c.p.dataDigest {
		sum := crc32.Update(crc32.Checksum(data, castagnoli), castagnoli, zero[:padding])
		c.out = binary.LittleEndian.AppendUint32(c.out, sum)
	}
}

// flush writes the queued output.
func (c *conn) flush() error {
	if len(c.out) == 0 && len(c.vec) == 0 {
		return nil
	}
	now := time.Now()
	if c.writeDL.IsZero() || c.writeDL.Sub(now) < 30*time.Second {
		c.writeDL = now.Add(60 * time.Second)
		c.nc.SetWriteDeadline(c.writeDL)
	}
	var err error
	if len(c.vec) == 0 {
		_, err = c.nc.Write(c.out)
	} else {
		if c.outMark < len(c.out) {
			c.vec = append(c.vec, c.out[c.outMark:])
		}
		v := c.vec
		_, err = v.WriteTo(c.nc)
		clear(c.vec)
		c.vec = c.vec[:0]
	}
	c.outMark = 0
	if c.br.Buffered() == 0 {
		// The connection is about to wait for the initiator: give the
		// buffer back so idle sessions hold none.
		putOut(c.out)
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
	return err
}

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func getOut() []byte { return (*outPool.Get().(*[]byte))[:0] }

func putOut(b []byte) {
	if cap(b) == 0 || cap(b) > 1<<20 {
		return
	}
	b = b[:0]
	outPool.Put(&b)
}

// ascResetOccurred is POWER ON, RESET, OR BUS DEVICE RESET OCCURRED / BUS DEVICE RESET FUNCTION OCCURRED.
const ascResetOccurred = 0x2903

// nexuses lists the I_T nexuses of a target's live sessions.
func (s *Server) nexuses(t *target) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, sess := range s.sessions {
		if sess.target == t {
			out = append(out, sess.key)
		}
	}
	return out
}
