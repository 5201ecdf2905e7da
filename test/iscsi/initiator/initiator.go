// Package initiator is a small iSCSI initiator for tests and benchmarks: login
// (with optional CHAP), discovery, pipelined SCSI commands with immediate data
// and R2T, logout. It is written from RFC 7143, independent of the target code.
package initiator

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a session.
type Options struct {
	InitiatorName string
	TargetName    string // empty for a discovery session
	ISID          [6]byte
	CHAPUser      string
	CHAPSecret    string
	// MaxRecvDataSegmentLength we accept (default 262144).
	MaxRecvDataSegmentLength uint32
	// Dialer dials the TCP connection (default net.Dialer).
	Dialer *net.Dialer
	// Timeout bounds the login (default 10 s).
	Timeout time.Duration
	// Digests offers CRC32C header and data digests (only).
	Digests bool
}

// Session is a logged-in iSCSI session on one connection. Commands may be
// issued from many goroutines at once.
type Session struct {
	nc   net.Conn
	br   *bufio.Reader
	wmu  sync.Mutex
	bw   *bufio.Writer
	opts Options

	// negotiated
	TSIH          uint16
	maxSendDSL    uint32 // target's MaxRecvDataSegmentLength
	firstBurst    uint32
	maxBurst      uint32
	immediateData bool
	initialR2T    bool
	hdrDigest     bool
	dataDigest    bool

	mu       sync.Mutex
	cond     *sync.Cond
	cmdSN    uint32
	maxCmdSN uint32
	expStat  uint32
	nextITT  uint32
	pending  map[uint32]*call
	err      error
	done     chan struct{}
}

// Result is the outcome of a SCSI command.
type Result struct {
	Status   byte
	Sense    []byte
	Residual uint32
	Overflow bool
	Under    bool
	Data     []byte // the Data-In received (a prefix of the caller's buffer)
}

// SenseKey returns the sense key, or 0.
func (r *Result) SenseKey() byte {
	if len(r.Sense) < 3 {
		return 0
	}
	if r.Sense[0]&0x7f >= 0x72 {
		return r.Sense[1] & 0x0f
	}
	return r.Sense[2] & 0x0f
}

// ASC returns ASC<<8|ASCQ, or 0.
func (r *Result) ASC() uint16 {
	switch {
	case len(r.Sense) >= 4 && r.Sense[0]&0x7f >= 0x72:
		return uint16(r.Sense[2])<<8 | uint16(r.Sense[3])
	case len(r.Sense) >= 14:
		return uint16(r.Sense[12])<<8 | uint16(r.Sense[13])
	}
	return 0
}

type call struct {
	in      []byte
	out     []byte
	lun     [8]byte
	got     int
	res     Result
	done    chan struct{}
	tmfResp byte
	ok      bool // a response arrived
}

// ErrLoginRejected reports a login refused by the target with its status.
type ErrLoginRejected struct{ Status uint16 }

func (e *ErrLoginRejected) Error() string {
	return fmt.Sprintf("iscsi login rejected: status %#04x", e.Status)
}

// ErrClosed is returned for commands on a closed session.
var ErrClosed = errors.New("iscsi session closed")

// Dial connects and logs in.
func Dial(ctx context.Context, addr string, o Options) (*Session, error) {
	if o.MaxRecvDataSegmentLength == 0 {
		o.MaxRecvDataSegmentLength = 262144
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.ISID == ([6]byte{}) {
		o.ISID = [6]byte{0x80, 0x12, 0x34, 0x56, 0, 1}
	}
	d := o.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Session{
		nc: nc, br: bufio.NewReaderSize(nc, 32<<10), bw: bufio.NewWriterSize(nc, 32<<10), opts: o,
		pending: map[uint32]*call{}, done: make(chan struct{}), nextITT: 1,
		maxSendDSL: 8192, firstBurst: 65536, maxBurst: 262144, immediateData: true, initialR2T: true,
	}
	s.cond = sync.NewCond(&s.mu)
	nc.SetDeadline(time.Now().Add(o.Timeout))
	if err := s.login(); err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	go s.readLoop()
	return s, nil
}

type pdu struct {
	bhs  [48]byte
	data []byte
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (s *Session) writePDU(p *pdu) error {
	n := len(p.data)
	p.bhs[5], p.bhs[6], p.bhs[7] = byte(n>>16), byte(n>>8), byte(n)
	if _, err := s.bw.Write(p.bhs[:]); err != nil {
		return err
	}
	if s.hdrDigest {
		s.bw.Write(binary.LittleEndian.AppendUint32(nil, crc32.Checksum(p.bhs[:], castagnoli)))
	}
	if n > 0 {
		if _, err := s.bw.Write(p.data); err != nil {
			return err
		}
		var z [4]byte
		pad := (4 - n%4) % 4
		if pad > 0 {
			if _, err := s.bw.Write(z[:pad]); err != nil {
				return err
			}
		}
		if s.dataDigest {
			sum := crc32.Update(crc32.Checksum(p.data, castagnoli), castagnoli, z[:pad])
			s.bw.Write(binary.LittleEndian.AppendUint32(nil, sum))
		}
	}
	return nil
}

func (s *Session) readPDU(p *pdu, dst func(p *pdu) []byte) error {
	if _, err := io.ReadFull(s.br, p.bhs[:]); err != nil {
		return err
	}
	if ahs := int(p.bhs[4]) * 4; ahs > 0 {
		if _, err := s.br.Discard(ahs); err != nil {
			return err
		}
	}
	if s.hdrDigest {
		var d [4]byte
		if _, err := io.ReadFull(s.br, d[:]); err != nil {
			return err
		}
		if binary.LittleEndian.Uint32(d[:]) != crc32.Checksum(p.bhs[:], castagnoli) {
			return errors.New("header digest mismatch")
		}
	}
	n := int(p.bhs[5])<<16 | int(p.bhs[6])<<8 | int(p.bhs[7])
	var buf []byte
	if dst != nil {
		buf = dst(p)
	}
	if len(buf) < n {
		buf = make([]byte, n)
	}
	p.data = buf[:n]
	if _, err := io.ReadFull(s.br, p.data); err != nil {
		return err
	}
	var z [4]byte
	pad := (4 - n%4) % 4
	if pad > 0 {
		if _, err := s.br.Discard(pad); err != nil {
			return err
		}
	}
	if s.dataDigest && n > 0 {
		var d [4]byte
		if _, err := io.ReadFull(s.br, d[:]); err != nil {
			return err
		}
		if binary.LittleEndian.Uint32(d[:]) != crc32.Update(crc32.Checksum(p.data, castagnoli), castagnoli, z[:pad]) {
			return errors.New("data digest mismatch")
		}
	}
	return nil
}

func kvEncode(pairs ...string) []byte {
	var b []byte
	for i := 0; i+1 < len(pairs); i += 2 {
		b = append(b, pairs[i]...)
		b = append(b, '=')
		b = append(b, pairs[i+1]...)
		b = append(b, 0)
	}
	return b
}

func kvDecode(b []byte) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if i := strings.IndexByte(kv, '='); i > 0 {
			m[kv[:i]] = kv[i+1:]
		}
	}
	return m
}

func (s *Session) loginPDU(csg, nsg byte, transit bool, data []byte) (*pdu, error) {
	var p pdu
	p.bhs[0] = 0x43
	p.bhs[1] = csg<<2 | nsg
	if transit {
		p.bhs[1] |= 0x80
	} else {
		p.bhs[1] &^= 3
	}
	copy(p.bhs[8:14], s.opts.ISID[:])
	binary.BigEndian.PutUint32(p.bhs[16:], 0)
	binary.BigEndian.PutUint32(p.bhs[24:], s.cmdSN)
	binary.BigEndian.PutUint32(p.bhs[28:], s.expStat)
	p.data = data
	if err := s.writePDU(&p); err != nil {
		return nil, err
	}
	if err := s.bw.Flush(); err != nil {
		return nil, err
	}
	var r pdu
	if err := s.readPDU(&r, nil); err != nil {
		return nil, err
	}
	if r.bhs[0]&0x3f != 0x23 {
		return nil, fmt.Errorf("login: unexpected opcode %#x", r.bhs[0])
	}
	if st := binary.BigEndian.Uint16(r.bhs[36:]); st != 0 {
		return nil, &ErrLoginRejected{Status: st}
	}
	s.expStat = binary.BigEndian.Uint32(r.bhs[24:]) + 1
	s.maxCmdSN = binary.BigEndian.Uint32(r.bhs[32:])
	s.TSIH = binary.BigEndian.Uint16(r.bhs[14:])
	return &r, nil
}

func (s *Session) login() error {
	o := s.opts
	common := []string{"InitiatorName", o.InitiatorName}
	if o.TargetName == "" {
		common = append(common, "SessionType", "Discovery")
	} else {
		common = append(common, "SessionType", "Normal", "TargetName", o.TargetName)
	}
	digest := "None"
	if o.Digests {
		digest = "CRC32C"
	}
	op := []string{
		"HeaderDigest", digest, "DataDigest", digest, "MaxConnections", "1",
		"InitialR2T", "No", "ImmediateData", "Yes",
		"MaxRecvDataSegmentLength", strconv.Itoa(int(o.MaxRecvDataSegmentLength)),
		"MaxBurstLength", "1048576", "FirstBurstLength", "262144",
		"DefaultTime2Wait", "0", "DefaultTime2Retain", "0", "MaxOutstandingR2T", "1",
		"DataPDUInOrder", "Yes", "DataSequenceInOrder", "Yes", "ErrorRecoveryLevel", "0",
	}
	var r *pdu
	var err error
	if o.CHAPUser == "" {
		// No security stage: straight to operational negotiation and full feature.
		r, err = s.loginPDU(1, 3, true, kvEncode(append(common, op...)...))
		if err != nil {
			return err
		}
	} else {
		if _, err = s.loginPDU(0, 1, false, kvEncode(append(common, "AuthMethod", "CHAP,None")...)); err != nil {
			return err
		}
		r, err = s.loginPDU(0, 1, false, kvEncode("CHAP_A", "5"))
		if err != nil {
			return err
		}
		kv := kvDecode(r.data)
		id, _ := strconv.Atoi(kv["CHAP_I"])
		chal, err := hex.DecodeString(strings.TrimPrefix(kv["CHAP_C"], "0x"))
		if err != nil {
			return fmt.Errorf("CHAP_C: %w", err)
		}
		h := md5.New()
		h.Write([]byte{byte(id)})
		h.Write([]byte(o.CHAPSecret))
		h.Write(chal)
		_, err = s.loginPDU(0, 1, true, kvEncode("CHAP_N", o.CHAPUser, "CHAP_R", "0x"+hex.EncodeToString(h.Sum(nil))))
		if err != nil {
			return err
		}
		r, err = s.loginPDU(1, 3, true, kvEncode(op...))
		if err != nil {
			return err
		}
	}
	for r.bhs[1]&0x80 == 0 || r.bhs[1]&3 != 3 {
		// The target wants another round before full feature phase.
		r, err = s.loginPDU(1, 3, true, nil)
		if err != nil {
			return err
		}
	}
	kv := kvDecode(r.data)
	if v, ok := kv["MaxRecvDataSegmentLength"]; ok {
		n, _ := strconv.Atoi(v)
		s.maxSendDSL = uint32(n)
	}
	if v, ok := kv["FirstBurstLength"]; ok {
		n, _ := strconv.Atoi(v)
		s.firstBurst = uint32(n)
	}
	if v, ok := kv["MaxBurstLength"]; ok {
		n, _ := strconv.Atoi(v)
		s.maxBurst = uint32(n)
	}
	s.immediateData = kv["ImmediateData"] != "No"
	s.initialR2T = kv["InitialR2T"] != "No"
	s.hdrDigest = kv["HeaderDigest"] == "CRC32C"
	s.dataDigest = kv["DataDigest"] == "CRC32C"
	if o.Digests && (!s.hdrDigest || !s.dataDigest) {
		return errors.New("target refused CRC32C digests")
	}
	return nil
}

func (s *Session) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		close(s.done)
	}
	pend := s.pending
	s.pending = map[uint32]*call{}
	s.cond.Broadcast()
	s.mu.Unlock()
	for _, c := range pend {
		close(c.done)
	}
}

func (s *Session) readLoop() {
	var p pdu
	for {
		err := s.readPDU(&p, func(p *pdu) []byte {
			if p.bhs[0]&0x3f != 0x25 {
				return nil
			}
			itt := binary.BigEndian.Uint32(p.bhs[16:])
			off := binary.BigEndian.Uint32(p.bhs[40:])
			s.mu.Lock()
			c := s.pending[itt]
			s.mu.Unlock()
			if c == nil || int(off) > len(c.in) {
				return nil
			}
			return c.in[off:]
		})
		if err != nil {
			s.fail(err)
			return
		}
		op := p.bhs[0] & 0x3f
		itt := binary.BigEndian.Uint32(p.bhs[16:])
		s.mu.Lock()
		if op != 0x31 && op != 0x25 || p.bhs[1]&0x01 != 0 {
			if sn := binary.BigEndian.Uint32(p.bhs[24:]); op != 0x31 && !(op == 0x20 && itt == 0xffffffff) {
				s.expStat = sn + 1
			}
		}
		if m := binary.BigEndian.Uint32(p.bhs[32:]); op != 0x25 || p.bhs[1]&0x01 != 0 || true {
			if int32(m-s.maxCmdSN) > 0 {
				s.maxCmdSN = m
				s.cond.Broadcast()
			}
		}
		c := s.pending[itt]
		s.mu.Unlock()
		switch op {
		case 0x25: // Data-In
			if c == nil {
				continue
			}
			off := binary.BigEndian.Uint32(p.bhs[40:])
			c.got = max(c.got, int(off)+len(p.data))
			if p.bhs[1]&0x01 != 0 {
				c.res.Status = p.bhs[3]
				c.res.Residual = binary.BigEndian.Uint32(p.bhs[44:])
				c.res.Overflow = p.bhs[1]&0x04 != 0
				c.res.Under = p.bhs[1]&0x02 != 0
				s.finish(itt, c)
			}
		case 0x21: // SCSI Response
			if c == nil {
				continue
			}
			c.res.Status = p.bhs[3]
			c.res.Residual = binary.BigEndian.Uint32(p.bhs[44:])
			c.res.Overflow = p.bhs[1]&0x04 != 0
			c.res.Under = p.bhs[1]&0x02 != 0
			if len(p.data) >= 2 {
				n := int(binary.BigEndian.Uint16(p.data))
				if 2+n <= len(p.data) {
					c.res.Sense = append([]byte(nil), p.data[2:2+n]...)
				}
			}
			s.finish(itt, c)
		case 0x31: // R2T
			if c == nil {
				continue
			}
			off := binary.BigEndian.Uint32(p.bhs[40:])
			n := binary.BigEndian.Uint32(p.bhs[44:])
			ttt := binary.BigEndian.Uint32(p.bhs[20:])
			if err := s.sendData(itt, ttt, c, off, n); err != nil {
				s.fail(err)
				return
			}
		case 0x22: // TMF response
			if c != nil {
				c.tmfResp = p.bhs[2]
				s.finish(itt, c)
			}
		case 0x20: // NOP-In
			if itt == 0xffffffff {
				// A ping from the target: answer it.
				var r pdu
				r.bhs[0] = 0x40
				r.bhs[1] = 0x80
				copy(r.bhs[8:16], p.bhs[8:16])
				binary.BigEndian.PutUint32(r.bhs[16:], 0xffffffff)
				copy(r.bhs[20:24], p.bhs[20:24])
				s.wmu.Lock()
				s.mu.Lock()
				binary.BigEndian.PutUint32(r.bhs[24:], s.cmdSN)
				binary.BigEndian.PutUint32(r.bhs[28:], s.expStat)
				s.mu.Unlock()
				err := s.writePDU(&r)
				if err == nil {
					err = s.bw.Flush()
				}
				s.wmu.Unlock()
				if err != nil {
					s.fail(err)
					return
				}
			} else if c != nil {
				s.finish(itt, c)
			}
		case 0x26: // logout response
			if c != nil {
				s.finish(itt, c)
			}
		case 0x24: // text response
			if c != nil {
				c.res.Data = append([]byte(nil), p.data...)
				s.finish(itt, c)
			}
		case 0x3f: // reject
			s.fail(fmt.Errorf("target rejected a PDU: reason %#x", p.bhs[2]))
			return
		case 0x32: // async message
			if p.bhs[36] != 1 {
				continue
			}
			// The target asks us to log out: do so, as initiators must.
			s.wmu.Lock()
			var r pdu
			r.bhs[0] = 0x40 | 0x06
			r.bhs[1] = 0x80
			s.mu.Lock()
			binary.BigEndian.PutUint32(r.bhs[16:], 0xfffffffe)
			binary.BigEndian.PutUint32(r.bhs[24:], s.cmdSN)
			binary.BigEndian.PutUint32(r.bhs[28:], s.expStat)
			s.mu.Unlock()
			err := s.writePDU(&r)
			if err == nil {
				err = s.bw.Flush()
			}
			s.wmu.Unlock()
			if err != nil {
				s.fail(err)
				return
			}
		}
		if op == 0x26 && itt == 0xfffffffe {
			s.fail(errors.New("logged out at the target's request"))
			s.nc.Close()
			return
		}
	}
}

func (s *Session) finish(itt uint32, c *call) {
	s.mu.Lock()
	delete(s.pending, itt)
	s.mu.Unlock()
	if c.in != nil {
		c.res.Data = c.in[:min(c.got, len(c.in))]
	}
	c.ok = true
	close(c.done)
}

// sendData sends Data-Out for [off, off+n) of the call's output, as one sequence.
func (s *Session) sendData(itt, ttt uint32, c *call, off, n uint32) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var sn uint32
	end := off + n
	for off < end {
		l := min(end-off, s.maxSendDSL)
		var p pdu
		p.bhs[0] = 0x05
		if off+l == end {
			p.bhs[1] = 0x80
		}
		copy(p.bhs[8:16], c.lun[:])
		binary.BigEndian.PutUint32(p.bhs[16:], itt)
		binary.BigEndian.PutUint32(p.bhs[20:], ttt)
		s.mu.Lock()
		binary.BigEndian.PutUint32(p.bhs[28:], s.expStat)
		s.mu.Unlock()
		binary.BigEndian.PutUint32(p.bhs[36:], sn)
		binary.BigEndian.PutUint32(p.bhs[40:], off)
		p.data = c.out[off : off+l]
		if err := s.writePDU(&p); err != nil {
			return err
		}
		sn++
		off += l
	}
	return s.bw.Flush()
}

// LUN encodes a LUN number in the 8-byte format.
func LUN(n uint64) [8]byte {
	var l [8]byte
	if n < 256 {
		l[1] = byte(n)
	} else {
		l[0] = 0x40 | byte(n>>8)&0x3f
		l[1] = byte(n)
	}
	return l
}

// register allocates an ITT and CmdSN for a new task, waiting for window space.
func (s *Session) register(c *call, immediate bool) (itt, cmdSN uint32, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !immediate && s.err == nil && int32(s.cmdSN-s.maxCmdSN) > 0 {
		s.cond.Wait()
	}
	if s.err != nil {
		return 0, 0, s.err
	}
	itt = s.nextITT
	s.nextITT++
	if s.nextITT == 0xffffffff {
		s.nextITT = 1
	}
	s.pending[itt] = c
	cmdSN = s.cmdSN
	if !immediate {
		s.cmdSN++
	}
	return itt, cmdSN, nil
}

// Command runs a SCSI command. out is the Data-Out; in receives Data-In
// (its length is the expected transfer length for reads).
func (s *Session) Command(ctx context.Context, lun uint64, cdb []byte, out []byte, in []byte) (*Result, error) {
	if len(cdb) > 16 {
		return nil, errors.New("CDB longer than 16 bytes")
	}
	c := &call{in: in, out: out, lun: LUN(lun), done: make(chan struct{})}
	s.wmu.Lock()
	itt, cmdSN, err := s.register(c, false)
	if err != nil {
		s.wmu.Unlock()
		return nil, err
	}
	var p pdu
	p.bhs[0] = 0x01
	p.bhs[1] = 0x80 | 0x01 // F, simple task attribute
	edtl := len(in)
	if len(out) > 0 {
		p.bhs[1] |= 0x20
		edtl = len(out)
	}
	if len(in) > 0 {
		p.bhs[1] |= 0x40
	}
	copy(p.bhs[8:16], c.lun[:])
	binary.BigEndian.PutUint32(p.bhs[16:], itt)
	binary.BigEndian.PutUint32(p.bhs[20:], uint32(edtl))
	binary.BigEndian.PutUint32(p.bhs[24:], cmdSN)
	s.mu.Lock()
	binary.BigEndian.PutUint32(p.bhs[28:], s.expStat)
	s.mu.Unlock()
	copy(p.bhs[32:48], cdb)
	var unsolicited uint32
	if len(out) > 0 && s.immediateData {
		unsolicited = min(uint32(len(out)), s.firstBurst, s.maxSendDSL)
		p.data = out[:unsolicited]
	}
	rest := uint32(len(out)) - unsolicited
	// Unsolicited Data-Out beyond the immediate data (InitialR2T=No).
	var more uint32
	if !s.initialR2T && rest > 0 && unsolicited < s.firstBurst {
		more = min(rest, s.firstBurst-unsolicited)
		p.bhs[1] &^= 0x80
	}
	err = s.writePDU(&p)
	if err == nil && more > 0 {
		s.wmu.Unlock()
		err = s.sendData(itt, 0xffffffff, c, unsolicited, more)
		s.wmu.Lock()
	}
	if answered, err := s.await(ctx, c, err); !answered || !c.ok {
		return nil, err
	}
	return &c.res, nil
}

// commandRetryUA runs a command, repeating it after a UNIT ATTENTION (a
// target reports one after a reset or at a session's first command), as
// initiators do.
func (s *Session) commandRetryUA(ctx context.Context, lun uint64, cdb, out, in []byte) (*Result, error) {
	for i := 0; ; i++ {
		r, err := s.Command(ctx, lun, cdb, out, in)
		if err != nil || i == 3 || r.Status != 0x02 || r.SenseKey() != 0x06 {
			return r, err
		}
	}
}

// Read reads blocks with READ(16) into buf (len(buf) bytes).
func (s *Session) Read(ctx context.Context, lun, lba uint64, blockSize int, buf []byte) error {
	cdb := make([]byte, 16)
	cdb[0] = 0x88
	binary.BigEndian.PutUint64(cdb[2:], lba)
	binary.BigEndian.PutUint32(cdb[10:], uint32(len(buf)/blockSize))
	r, err := s.commandRetryUA(ctx, lun, cdb, nil, buf)
	if err != nil {
		return err
	}
	if r.Status != 0 {
		return fmt.Errorf("READ(16) status %#x sense %x", r.Status, r.Sense)
	}
	return nil
}

// Write writes data with WRITE(16) (optionally FUA).
func (s *Session) Write(ctx context.Context, lun, lba uint64, blockSize int, data []byte, fua bool) error {
	cdb := make([]byte, 16)
	cdb[0] = 0x8a
	if fua {
		cdb[1] = 0x08
	}
	binary.BigEndian.PutUint64(cdb[2:], lba)
	binary.BigEndian.PutUint32(cdb[10:], uint32(len(data)/blockSize))
	r, err := s.commandRetryUA(ctx, lun, cdb, data, nil)
	if err != nil {
		return err
	}
	if r.Status != 0 {
		return fmt.Errorf("WRITE(16) status %#x sense %x", r.Status, r.Sense)
	}
	return nil
}

// ReadCapacity returns the number of blocks and the block size.
func (s *Session) ReadCapacity(ctx context.Context, lun uint64) (uint64, uint32, error) {
	cdb := make([]byte, 16)
	cdb[0], cdb[1] = 0x9e, 0x10
	binary.BigEndian.PutUint32(cdb[10:], 32)
	r, err := s.commandRetryUA(ctx, lun, cdb, nil, make([]byte, 32))
	if err != nil {
		return 0, 0, err
	}
	if r.Status != 0 || len(r.Data) < 12 {
		return 0, 0, fmt.Errorf("READ CAPACITY(16) status %#x", r.Status)
	}
	return binary.BigEndian.Uint64(r.Data) + 1, binary.BigEndian.Uint32(r.Data[8:]), nil
}

// simple sends a non-SCSI request (NOP-Out, TMF, logout, text) and waits.
func (s *Session) simple(ctx context.Context, build func(p *pdu, itt, cmdSN, expStat uint32), data []byte, immediate bool) (*call, error) {
	c := &call{done: make(chan struct{})}
	s.wmu.Lock()
	itt, cmdSN, err := s.register(c, immediate)
	if err != nil {
		s.wmu.Unlock()
		return nil, err
	}
	var p pdu
	s.mu.Lock()
	exp := s.expStat
	s.mu.Unlock()
	build(&p, itt, cmdSN, exp)
	if immediate {
		p.bhs[0] |= 0x40
	}
	p.data = data
	answered, err := s.await(ctx, c, s.writePDU(&p))
	if !answered {
		return nil, err
	}
	return c, err
}

// await flushes the request the caller wrote holding wmu (err is the write's), releases
// wmu and waits for c's end. answered is false when the write failed (the session fails
// with it) or ctx ended first; a call that ended without its answer (!c.ok) gives the
// session's error.
func (s *Session) await(ctx context.Context, c *call, err error) (answered bool, _ error) {
	if err == nil {
		err = s.bw.Flush()
	}
	s.wmu.Unlock()
	if err != nil {
		s.fail(err)
		return false, err
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	s.mu.Lock()
	serr := s.err
	s.mu.Unlock()
	if !c.ok {
		return true, serr
	}
	return true, nil
}

// Ping sends a NOP-Out and waits for the NOP-In.
func (s *Session) Ping(ctx context.Context) error {
	_, err := s.simple(ctx, func(p *pdu, itt, cmdSN, exp uint32) {
		p.bhs[0] = 0x00
		p.bhs[1] = 0x80
		binary.BigEndian.PutUint32(p.bhs[16:], itt)
		binary.BigEndian.PutUint32(p.bhs[20:], 0xffffffff)
		binary.BigEndian.PutUint32(p.bhs[24:], cmdSN)
		binary.BigEndian.PutUint32(p.bhs[28:], exp)
	}, nil, false)
	return err
}

// SendTargets runs a SendTargets=All text request and returns "name" -> "address".
func (s *Session) SendTargets(ctx context.Context) (map[string][]string, error) {
	c, err := s.simple(ctx, func(p *pdu, itt, cmdSN, exp uint32) {
		p.bhs[0] = 0x04
		p.bhs[1] = 0x80
		binary.BigEndian.PutUint32(p.bhs[16:], itt)
		binary.BigEndian.PutUint32(p.bhs[20:], 0xffffffff)
		binary.BigEndian.PutUint32(p.bhs[24:], cmdSN)
		binary.BigEndian.PutUint32(p.bhs[28:], exp)
	}, kvEncode("SendTargets", "All"), false)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	var cur string
	for _, kv := range strings.Split(string(c.res.Data), "\x00") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch k {
		case "TargetName":
			cur = v
			out[cur] = nil
		case "TargetAddress":
			out[cur] = append(out[cur], v)
		}
	}
	return out, nil
}

// Logout closes the session cleanly and the connection.
func (s *Session) Logout(ctx context.Context) error {
	_, err := s.simple(ctx, func(p *pdu, itt, cmdSN, exp uint32) {
		p.bhs[0] = 0x06
		p.bhs[1] = 0x80 // close the session
		binary.BigEndian.PutUint32(p.bhs[16:], itt)
		binary.BigEndian.PutUint32(p.bhs[24:], cmdSN)
		binary.BigEndian.PutUint32(p.bhs[28:], exp)
	}, nil, true)
	s.nc.Close()
	return err
}

// Close drops the connection without logging out.
func (s *Session) Close() error {
	err := s.nc.Close()
	<-s.done
	return err
}

// Abort drops the connection with a TCP reset, as a crashing client would.
func (s *Session) Abort() error {
	if tc, ok := s.nc.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	return s.Close()
}

// Err returns the error that ended the session, if any.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// SendRaw writes a raw PDU header and data (for protocol tests) without waiting.
func (s *Session) SendRaw(bhs [48]byte, data []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	p := pdu{bhs: bhs, data: data}
	if err := s.writePDU(&p); err != nil {
		return err
	}
	return s.bw.Flush()
}
