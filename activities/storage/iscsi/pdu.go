package iscsi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Opcodes of RFC 7143 §11.
const (
	opNopOut     = 0x00
	opSCSICmd    = 0x01
	opTaskMgmt   = 0x02
	opLoginReq   = 0x03
	opTextReq    = 0x04
	opDataOut    = 0x05
	opLogoutReq  = 0x06
	opSNACK      = 0x10
	opNopIn      = 0x20
	opSCSIResp   = 0x21
	opTaskResp   = 0x22
	opLoginResp  = 0x23
	opTextResp   = 0x24
	opDataIn     = 0x25
	opLogoutResp = 0x26
	opR2T        = 0x31
	opAsync      = 0x32
	opReject     = 0x3f
)

// Reject reasons (RFC 7143 §11.17.1).
const (
	rejectProtocolError   = 0x04
	rejectCmdNotSupported = 0x05
	rejectInvalidField    = 0x09
	rejectDataDigest      = 0x02
)

const (
	bhsLen = 48
	// maxAHSLen bounds the additional header segments we accept (the field allows 1020 bytes).
	maxAHSLen = 1020
	// reservedTag is the "no task" Initiator/Target Transfer Tag.
	reservedTag = 0xffffffff
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrPDU reports a PDU the target cannot parse; the connection is dropped.
var ErrPDU = errors.New("iscsi: malformed PDU")

// pdu is one parsed protocol data unit: the basic header segment, the additional
// header segments and the data segment (without padding or digests).
type pdu struct {
	bhs  [bhsLen]byte
	ahs  []byte
	data []byte
}

func (p *pdu) opcode() byte       { return p.bhs[0] & 0x3f }
func (p *pdu) immediate() bool    { return p.bhs[0]&0x40 != 0 }
func (p *pdu) final() bool        { return p.bhs[1]&0x80 != 0 }
func (p *pdu) flags() byte        { return p.bhs[1] }
func (p *pdu) ahsLen() int        { return int(p.bhs[4]) * 4 }
func (p *pdu) dataLen() int       { return int(p.bhs[5])<<16 | int(p.bhs[6])<<8 | int(p.bhs[7]) }
func (p *pdu) lun() [8]byte       { var l [8]byte; copy(l[:], p.bhs[8:16]); return l }
func (p *pdu) itt() uint32        { return binary.BigEndian.Uint32(p.bhs[16:20]) }
func (p *pdu) u32(off int) uint32 { return binary.BigEndian.Uint32(p.bhs[off : off+4]) }

func (p *pdu) setDataLen(n int) {
	p.bhs[5], p.bhs[6], p.bhs[7] = byte(n>>16), byte(n>>8), byte(n)
}
func (p *pdu) put32(off int, v uint32) { binary.BigEndian.PutUint32(p.bhs[off:off+4], v) }

func pad4(n int) int { return (n + 3) &^ 3 }

// pduReader reads PDUs from a connection, reusing its buffers. The data
// segment returned by read is only valid until the next read.
type pduReader struct {
	r            io.Reader
	headerDigest bool
	dataDigest   bool
	maxData      int // largest data segment accepted
	buf          []byte
	scratch      [4]byte
}

// readHeader reads the BHS, the AHS and the header digest of the next PDU into p.
func (pr *pduReader) readHeader(p *pdu) error {
	if _, err := io.ReadFull(pr.r, p.bhs[:]); err != nil {
		return err
	}
	return pr.readRestOfHeader(p)
}

func (pr *pduReader) readRestOfHeader(p *pdu) error {
	p.ahs = p.ahs[:0]
	if n := p.ahsLen(); n > 0 {
		if n > maxAHSLen {
			return fmt.Errorf("%w: AHS of %d bytes", ErrPDU, n)
		}
		if cap(p.ahs) < n {
			p.ahs = make([]byte, n)
		}
		p.ahs = p.ahs[:n]
		if _, err := io.ReadFull(pr.r, p.ahs); err != nil {
			return err
		}
	}
	if pr.headerDigest {
		if _, err := io.ReadFull(pr.r, pr.scratch[:]); err != nil {
			return err
		}
		sum := crc32.Update(crc32.Checksum(p.bhs[:], castagnoli), castagnoli, p.ahs)
		if binary.LittleEndian.Uint32(pr.scratch[:]) != sum {
			return fmt.Errorf("%w: header digest mismatch", ErrPDU)
		}
	}
	if p.dataLen() > pr.maxData {
		return fmt.Errorf("%w: data segment of %d bytes exceeds %d", ErrPDU, p.dataLen(), pr.maxData)
	}
	return nil
}

// readData reads the data segment announced by p's header (with padding and
// digest) into dst, which must hold p.dataLen() bytes, or into the reader's
// own buffer when dst is nil.
func (pr *pduReader) readData(p *pdu, dst []byte) error {
	n := p.dataLen()
	if n == 0 {
		p.data = p.data[:0]
		return nil
	}
	if dst == nil {
		if cap(pr.buf) < n {
			pr.buf = make([]byte, n)
		}
		dst = pr.buf[:n]
	}
	if _, err := io.ReadFull(pr.r, dst[:n]); err != nil {
		return err
	}
	p.data = dst[:n]
	if padding := pad4(n) - n; padding > 0 {
		if _, err := io.ReadFull(pr.r, pr.scratch[:padding]); err != nil {
			return err
		}
	}
	if pr.dataDigest {
		if _, err := io.ReadFull(pr.r, pr.scratch[:]); err != nil {
			return err
		}
		sum := crc32.Checksum(dst[:n], castagnoli)
		if padding := pad4(n) - n; padding > 0 {
			var z [3]byte
			sum = crc32.Update(sum, castagnoli, z[:padding])
		}
		if binary.LittleEndian.Uint32(pr.scratch[:]) != sum {
			return errDataDigest
		}
	}
	return nil
}

var errDataDigest = errors.New("iscsi: data digest mismatch")

// discardData skips the data segment of p.
func (pr *pduReader) discardData(p *pdu) error {
	n := pad4(p.dataLen())
	if pr.dataDigest && p.dataLen() > 0 {
		n += 4
	}
	_, err := io.CopyN(io.Discard, pr.r, int64(n))
	return err
}

// parsePDU parses one complete PDU from b (used by fuzzing and tests). It
// returns the PDU and the number of bytes consumed.
func parsePDU(b []byte, headerDigest, dataDigest bool, maxData int) (*pdu, int, error) {
	cr := &countReader{b: b}
	pr := &pduReader{r: cr, headerDigest: headerDigest, dataDigest: dataDigest, maxData: maxData}
	p := &pdu{}
	if err := pr.readHeader(p); err != nil {
		return nil, cr.off, err
	}
	if err := pr.readData(p, nil); err != nil {
		return nil, cr.off, err
	}
	return p, cr.off, nil
}

type countReader struct {
	b   []byte
	off int
}

func (c *countReader) Read(p []byte) (int, error) {
	if c.off >= len(c.b) {
		return 0, io.EOF
	}
	n := copy(p, c.b[c.off:])
	c.off += n
	return n, nil
}

// decodeLUN turns the 8-byte LUN field into a LUN number (SAM peripheral and
// flat addressing); ok is false for addressing methods we do not serve.
func decodeLUN(l [8]byte) (uint64, bool) {
	switch l[0] >> 6 {
	case 0:
		if l[0] != 0 {
			return 0, false
		}
		return uint64(l[1]), true
	case 1:
		return uint64(l[0]&0x3f)<<8 | uint64(l[1]), true
	}
	return 0, false
}

// encodeLUN is the inverse of decodeLUN.
func encodeLUN(n uint64) [8]byte {
	var l [8]byte
	if n < 256 {
		l[1] = byte(n)
	} else {
		l[0] = 0x40 | byte(n>>8)&0x3f
		l[1] = byte(n)
	}
	return l
}
