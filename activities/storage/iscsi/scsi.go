package iscsi

import (
	"bytes"
	"encoding/binary"
	"syscall"
)

// SCSI status codes.
const (
	statusGood                = 0x00
	statusCheckCondition      = 0x02
	statusConditionMet        = 0x04
	statusReservationConflict = 0x18
	statusTaskSetFull         = 0x28
)

// Sense keys.
const (
	keyNoSense        = 0x00
	keyNotReady       = 0x02
	keyMediumError    = 0x03
	keyHardwareError  = 0x04
	keyIllegalRequest = 0x05
	keyUnitAttention  = 0x06
	keyDataProtect    = 0x07
	keyAbortedCommand = 0x0b
	keyMiscompare     = 0x0e
)

// Additional sense codes (ASC<<8 | ASCQ).
const (
	ascNone                 = 0x0000
	ascWriteError           = 0x0c00
	ascReadError            = 0x1100
	ascParamListLength      = 0x1a00
	ascMiscompareVerify     = 0x1d00
	ascInvalidOpcode        = 0x2000
	ascLBAOutOfRange        = 0x2100
	ascInvalidFieldCDB      = 0x2400
	ascLUNotSupported       = 0x2500
	ascInvalidFieldParam    = 0x2600
	ascInvalidReleasePR     = 0x2604
	ascWriteProtected       = 0x2700
	ascSavingNotSupported   = 0x3900
	ascInternalTargetFailed = 0x4400
)

// scsiCmd is one SCSI command as the emulation sees it.
type scsiCmd struct {
	cdb    []byte
	lun    *lun
	lunNum uint64
	target *target
	nexus  string
	edtl   uint32
}

// plan says how the transport completes a command: with a status now, with
// data to send (a buffer or a range of the LUN), or after receiving Data-Out
// (into the LUN at writeOff, or into a buffer handed to finish).
type plan struct {
	status     byte
	sense      []byte
	dataIn     []byte
	readMedia  bool
	readOff    int64
	readLen    int
	outLen     uint32
	writeMedia bool
	writeOff   int64
	finish     func(data []byte) (byte, []byte)
}

// maxBufferedOut bounds Data-Out the emulation buffers in memory (COMPARE AND
// WRITE, ORWRITE, VERIFY with BYTCHK); media writes stream to the LUN.
const maxBufferedOut = 8 << 20

func senseData(key byte, asc uint16) []byte {
	s := make([]byte, 18)
	s[0] = 0x70
	s[2] = key
	s[7] = 10
	s[12], s[13] = byte(asc>>8), byte(asc)
	return s
}

func check(key byte, asc uint16) plan {
	return plan{status: statusCheckCondition, sense: senseData(key, asc)}
}

func checkStatus(key byte, asc uint16) (byte, []byte) {
	return statusCheckCondition, senseData(key, asc)
}

func good() plan { return plan{} }

func data(b []byte, alloc int) plan {
	if len(b) > alloc {
		b = b[:alloc]
	}
	return plan{dataIn: b}
}

func be16(b []byte) uint32 { return uint32(binary.BigEndian.Uint16(b)) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// rw decodes the LBA and block count of the READ/WRITE/VERIFY family.
type rw struct {
	lba     uint64
	blocks  uint32
	protect byte // RDPROTECT/WRPROTECT/VRPROTECT/ORPROTECT
	fua     bool
}

func decodeRW(cdb []byte) (rw, bool) {
	var r rw
	switch len(cdb) {
	case 6:
		r.lba = uint64(cdb[1]&0x1f)<<16 | uint64(cdb[2])<<8 | uint64(cdb[3])
		r.blocks = uint32(cdb[4])
		return r, true
	case 10:
		r.lba = uint64(be32(cdb[2:]))
		r.blocks = be16(cdb[7:])
	case 12:
		r.lba = uint64(be32(cdb[2:]))
		r.blocks = be32(cdb[6:])
	case 16:
		r.lba = be64(cdb[2:])
		r.blocks = be32(cdb[10:])
	default:
		return r, false
	}
	r.protect = cdb[1] >> 5
	r.fua = cdb[1]&0x08 != 0
	return r, true
}

func cdbLen(op byte) int {
	switch op >> 5 {
	case 0:
		return 6
	case 1, 2:
		return 10
	case 4:
		return 16
	case 5:
		return 12
	}
	return 0
}

func (l *lun) inRange(lba uint64, blocks uint64) bool {
	return lba <= l.blocks && blocks <= l.blocks-lba
}

// prepare decodes a command and decides how it completes.
func (s *Server) prepare(cmd *scsiCmd) plan {
	cdb := cmd.cdb
	op := cdb[0]
	if n := cdbLen(op); n == 0 || len(cdb) < n {
		return check(keyIllegalRequest, ascInvalidOpcode)
	} else {
		cdb = cdb[:n]
		cmd.cdb = cdb
	}
	l := cmd.lun
	switch op {
	case 0x12:
		return s.inquiry(cmd)
	case 0xa0:
		return reportLUNs(cmd)
	case 0x03:
		if l != nil {
			if asc, ok := l.takeUnitAttention(cmd.nexus); ok {
				return data(senseData(keyUnitAttention, asc), int(cdb[4]))
			}
		}
		return requestSense(cmd)
	}
	if l == nil {
		return check(keyIllegalRequest, ascLUNotSupported)
	}
	if asc, ok := l.takeUnitAttention(cmd.nexus); ok {
		return check(keyUnitAttention, asc)
	}
	if conflict := l.conflicts(cmd.nexus, cdb); conflict {
		return plan{status: statusReservationConflict}
	}
	switch op {
	case 0x00: // TEST UNIT READY
		return good()
	case 0x1b, 0x1e: // START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL
		if op == 0x1e && cdb[4]&0x03 > 1 {
			return check(keyIllegalRequest, ascInvalidFieldCDB)
		}
		return good()
	case 0x25:
		return readCapacity10(cmd)
	case 0x9e:
		switch cdb[1] & 0x1f {
		case 0x10:
			return readCapacity16(cmd)
		case 0x12:
			return getLBAStatus(cmd)
		}
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	case 0x08, 0x28, 0xa8, 0x88:
		return readMedia(cmd)
	case 0x0a, 0x2a, 0xaa, 0x8a, 0x2e, 0xae, 0x8e:
		return writeMedia(cmd)
	case 0x2f, 0xaf, 0x8f:
		return verify(cmd)
	case 0x35, 0x91:
		return syncCache(cmd)
	case 0x34, 0x90:
		return prefetch(cmd)
	case 0x41, 0x93:
		return writeSame(cmd)
	case 0x42:
		return unmap(cmd)
	case 0x48:
		return sanitize(cmd)
	case 0x89:
		return compareAndWrite(cmd)
	case 0x8b:
		return orWrite(cmd)
	case 0x1a, 0x5a:
		return modeSense(cmd)
	case 0x15, 0x55:
		return modeSelect(cmd)
	case 0xa3:
		switch cdb[1] & 0x1f {
		case 0x0c:
			return reportOpcodes(cmd)
		case 0x0d:
			return reportTMFs(cmd)
		}
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	case 0x37, 0xb7:
		return readDefectData(cmd)
	case 0x16, 0x56:
		return l.reserve6(cmd)
	case 0x17, 0x57:
		return l.release6(cmd)
	case 0x5e:
		return l.prIn(cmd)
	case 0x5f:
		return l.prOut(cmd)
	}
	return check(keyIllegalRequest, ascInvalidOpcode)
}

const (
	vendorID  = "CLUSDUCK"
	productID = "iSCSI Disk      "
	revision  = "0001"
)

func (s *Server) inquiry(cmd *scsiCmd) plan {
	cdb := cmd.cdb
	alloc := int(be16(cdb[3:]))
	evpd := cdb[1]&0x01 != 0
	if cdb[1]&0x02 != 0 || (!evpd && cdb[2] != 0) {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	l := cmd.lun
	if !evpd {
		b := make([]byte, 96)
		if l == nil {
			b[0] = 0x7f // no logical unit here
		}
		b[2] = 0x06 // SPC-4
		b[3] = 0x12 // HiSup, response data format 2
		b[4] = byte(len(b) - 5)
		b[7] = 0x02 // CmdQue
		copy(b[8:16], vendorID)
		copy(b[16:32], productID)
		copy(b[32:36], revision)
		// Version descriptors: SAM-5, iSCSI, SPC-4, SBC-3.
		for i, v := range []uint16{0x00a0, 0x0960, 0x0460, 0x04c0} {
			put16(b[58+2*i:], v)
		}
		return data(b, alloc)
	}
	if l == nil {
		return check(keyIllegalRequest, ascLUNotSupported)
	}
	var b []byte
	page := cdb[2]
	switch page {
	case 0x00:
		pages := []byte{0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2}
		b = append([]byte{0, 0, 0, byte(len(pages))}, pages...)
	case 0x80:
		b = append([]byte{0, 0x80, 0, byte(len(l.serial))}, l.serial...)
	case 0x83:
		b = []byte{0, 0x83, 0, 0}
		// NAA designator, logical unit association.
		b = append(b, 0x01, 0x03, 0, 16)
		b = append(b, l.naa[:]...)
		// T10 vendor id designator: vendor + serial.
		t10 := []byte(vendorID + l.serial)
		b = append(b, 0x02, 0x01, 0, byte(len(t10)))
		b = append(b, t10...)
		// SCSI name string of the target device.
		name := []byte(cmd.target.cfg.IQN)
		name = append(name, make([]byte, 4-len(name)%4)...)
		b = append(b, 0x53, 0xa8, 0, byte(len(name)))
		b = append(b, name...)
		put16(b[2:], uint16(len(b)-4))
	case 0xb0:
		b = make([]byte, 64)
		b[1] = 0xb0
		put16(b[2:], 0x3c)
		b[5] = maxCompareAndWrite(l.bs)             // maximum COMPARE AND WRITE length
		put16(b[6:], 1)                             // optimal transfer length granularity
		put32(b[8:], uint32(min(l.blocks, 1<<24)))  // maximum transfer length
		put32(b[12:], (1<<20)/l.bs)                 // optimal transfer length
		put32(b[16:], uint32(min(l.blocks, 1<<24))) // maximum prefetch length
		put32(b[20:], 0xffffffff)                   // maximum UNMAP LBA count
		put32(b[24:], 256)                          // maximum UNMAP block descriptors
		put32(b[28:], max(4096/l.bs, 1))            // optimal UNMAP granularity
		put64(b[36:], 0)                            // maximum WRITE SAME length: not reported
	case 0xb1:
		b = make([]byte, 64)
		b[1] = 0xb1
		put16(b[2:], 0x3c)
		put16(b[4:], 1) // non-rotating medium
		b[7] = 0x40     // WABEREQ 01b: blocks read after BLOCK ERASE succeed (as zeros)
	case 0xb2:
		b = make([]byte, 8)
		b[1] = 0xb2
		put16(b[2:], 4)
		b[5] = 0x80 | 0x40 | 0x20 | 0x04 // LBPU, LBPWS, LBPWS10, LBPRZ=1
		b[6] = 0x02                      // thin provisioned
	default:
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	return data(b, alloc)
}

func reportLUNs(cmd *scsiCmd) plan {
	cdb := cmd.cdb
	alloc := int(be32(cdb[6:]))
	if alloc < 16 || cdb[2] > 2 {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	ns := cmd.target.lunNumbers()
	b := make([]byte, 8+8*len(ns))
	put32(b, uint32(8*len(ns)))
	for i, n := range ns {
		l := encodeLUN(n)
		copy(b[8+8*i:], l[:])
	}
	return data(b, alloc)
}

func requestSense(cmd *scsiCmd) plan {
	cdb := cmd.cdb
	alloc := int(cdb[4])
	var key byte
	var asc uint16
	if cmd.lun == nil {
		key, asc = keyIllegalRequest, ascLUNotSupported
	}
	if cdb[1]&0x01 != 0 { // descriptor format
		b := []byte{0x72, key, byte(asc >> 8), byte(asc), 0, 0, 0, 0}
		return data(b, alloc)
	}
	return data(senseData(key, asc), alloc)
}

func readCapacity10(cmd *scsiCmd) plan {
	l := cmd.lun
	b := make([]byte, 8)
	last := l.blocks - 1
	if last > 0xffffffff {
		last = 0xffffffff
	}
	put32(b, uint32(last))
	put32(b[4:], l.bs)
	return plan{dataIn: b}
}

func readCapacity16(cmd *scsiCmd) plan {
	l := cmd.lun
	alloc := int(be32(cmd.cdb[10:]))
	b := make([]byte, 32)
	put64(b, l.blocks-1)
	put32(b[8:], l.bs)
	b[13] = lbppbExponent(l.bs) // logical blocks per physical block
	b[14] = 0x80 | 0x40         // LBPME, LBPRZ
	return data(b, alloc)
}

func getLBAStatus(cmd *scsiCmd) plan {
	l := cmd.lun
	lba := be64(cmd.cdb[2:])
	alloc := int(be32(cmd.cdb[10:]))
	if lba >= l.blocks {
		return check(keyIllegalRequest, ascLBAOutOfRange)
	}
	if alloc < 24 && alloc != 0 {
		// Room for the header only is allowed; the descriptor is cut.
	}
	b := make([]byte, 8, 8+16*8)
	for i := 0; i < 8 && lba < l.blocks; i++ {
		m, n := l.mapped(lba)
		n = min(n, l.blocks-lba, 0xffffffff)
		d := make([]byte, 16)
		put64(d, lba)
		put32(d[8:], uint32(n))
		if !m {
			d[12] = 1 // deallocated
		}
		b = append(b, d...)
		lba += n
	}
	put32(b, uint32(len(b)-4))
	return data(b, alloc)
}

// writeProtected reports whether writes are refused: a read-only LUN, or
// software write protection (SWP) set by MODE SELECT.
func (l *lun) writeProtected() bool {
	return l.ro || l.swp.Load()
}

func (l *lun) checkWritable() (plan, bool) {
	if l.writeProtected() {
		return check(keyDataProtect, ascWriteProtected), false
	}
	return plan{}, true
}

func readMedia(cmd *scsiCmd) plan {
	l := cmd.lun
	r, _ := decodeRW(cmd.cdb)
	if cmd.cdb[0] == 0x08 && r.blocks == 0 {
		r.blocks = 256
	}
	if r.protect != 0 {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	if !l.inRange(r.lba, uint64(r.blocks)) {
		return check(keyIllegalRequest, ascLBAOutOfRange)
	}
	n := uint64(r.blocks) * uint64(l.bs)
	if n > 1<<31 {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	return plan{readMedia: true, readOff: int64(r.lba * uint64(l.bs)), readLen: int(n)}
}

func writeMedia(cmd *scsiCmd) plan {
	l := cmd.lun
	op := cmd.cdb[0]
	r, _ := decodeRW(cmd.cdb)
	if op == 0x0a && r.blocks == 0 {
		r.blocks = 256
	}
	verifyOp := op == 0x2e || op == 0xae || op == 0x8e
	if r.protect != 0 || (verifyOp && cmd.cdb[1]&0x04 != 0) {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	if !l.inRange(r.lba, uint64(r.blocks)) {
		return check(keyIllegalRequest, ascLBAOutOfRange)
	}
	if p, ok := l.checkWritable(); !ok {
		return p
	}
	n := uint64(r.blocks) * uint64(l.bs)
	if n > 1<<31 {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	// Write and verify has nothing to verify against but what it wrote: make it durable.
	durable := r.fua || verifyOp
	return plan{
		outLen: uint32(n), writeMedia: true, writeOff: int64(r.lba * uint64(l.bs)),
		finish: func([]byte) (byte, []byte) {
			if durable {
				if err := l.sync(); err != nil {
					return checkStatus(keyMediumError, ascWriteError)
				}
			}
			return statusGood, nil
		},
	}
}

func verify(cmd *scsiCmd) plan {
	l := cmd.lun
	r, _ := decodeRW(cmd.cdb)
	bytchk := (cmd.cdb[1] >> 1) & 3
	if r.protect != 0 || bytchk == 2 {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	if !l.inRange(r.lba, uint64(r.blocks)) {
		return check(keyIllegalRequest, ascLBAOutOfRange)
	}
	if bytchk == 0 || r.blocks == 0 {
		return good()
	}
	n := uint64(r.blocks) * uint64(l.bs)
	want := n
	if bytchk == 3 {
		want = uint64(l.bs)
	}
	if want > maxBufferedOut {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	off := int64(r.lba * uint64(l.bs))
	return plan{outLen: uint32(want), finish: func(d []byte) (byte, []byte) {
		if uint64(len(d)) < want {
			return checkStatus(keyIllegalRequest, ascInvalidFieldCDB)
		}
		buf := make([]byte, min(n, 1<<20))
		for done := uint64(0); done < n; {
			c := min(n-done, uint64(len(buf)))
			if err := l.readAt(buf[:c], off+int64(done)); err != nil {
				return checkStatus(keyMediumError, ascReadError)
			}
			for i := uint64(0); i < c; i++ {
				exp := d[(done+i)%want]
				if bytchk == 1 {
					exp = d[done+i]
				}
				if buf[i] != exp {
					return miscompare(uint32(done + i))
				}
			}
			done += c
		}
		return statusGood, nil
	}}
}

func miscompare(offset uint32) (byte, []byte) {
	s := senseData(keyMiscompare, ascMiscompareVerify)
	s[0] |= 0x80 // INFORMATION is valid
	put32(s[3:], offset)
	return statusCheckCondition, s
}

func syncCache(cmd *scsiCmd) plan {
	l := cmd.lun
	var lba, n uint64
	if cmd.cdb[0] == 0x35 {
		lba, n = uint64(be32(cmd.cdb[2:])), uint64(be16(cmd.cdb[7:]))
	} else {
		lba, n = be64(cmd.cdb[2:]), uint64(be32(cmd.cdb[10:]))
	}
	if !l.inRange(lba, n) {
		return check(keyIllegalRequest, ascLBAOutOfRange)
	}
	if l.ro {
		return good()
	}
	if err := l.sync(); err != nil {
		return check(keyMediumError, ascWriteError)
	}
	return good()
}

func prefetch(cmd *scsiCmd) plan {
	l := cmd.lun
	var lba, n uint64
	if cmd.cdb[0] == 0x34 {
		lba, n = uint64(be32(cmd.cdb[2:])), uint64(be16(cmd.cdb[7:]))
	} else {
		lba, n = be64(cmd.cdb[2:]), uint64(be32(cmd.cdb[10:]))
	}
	if !l.inRange(lba, n) {
		return check(keyIllegalRequest, ascLBAOutOfRange)
	}
	if n == 0 {
		n = l.blocks - lba
	}
	// Ask the kernel to read ahead; the answer does not depend on it.
	l.control(func(fd int) error {
		syscall.Syscall(syscall.SYS_READAHEAD, uintptr(fd), uintptr(lba*uint64(l.bs)), uintptr(n*uint64(l.bs)))
		return nil
	})
	return good()
}

func writeSame(cmd *scsiCmd) plan {
	l := cmd.lun
	cdb := cmd.cdb
	var lba, n uint64
	if cdb[0] == 0x41 {
		lba, n = uint64(be32(cdb[2:])), uint64(be16(cdb[7:]))
	} else {
		lba, n = be64(cdb[2:]), uint64(be32(cdb[10:]))
	}
	unmapBit := cdb[1]&0x08 != 0
	anchor := cdb[1]&0x10 != 0
	ndob := cdb[0] == 0x93 && cdb[1]&0x01 != 0
	if cdb[1]>>5 != 0 || anchor {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	if !l.inRange(lba, n) {
		return check(keyIllegalRequest, ascLBAOutOfRange)
	}
	if p, ok := l.checkWritable(); !ok {
		return p
	}
	if n == 0 {
		n = l.blocks - lba
	}
	bs := uint64(l.bs)
	off, length := int64(lba*bs), int64(n*bs)
	fill := func(block []byte) (byte, []byte) {
		if unmapBit || (allZero(block) && !l.blockDev) {
			// UNMAP asks for deallocation, and holes read back as zeros
			// (LBPRZ): a zero fill is best done the same way.
			if err := l.punch(off, length); err != nil {
				return checkStatus(keyMediumError, ascWriteError)
			}
			return statusGood, nil
		}
		chunk := make([]byte, min(uint64(length), 1<<20/bs*bs))
		for i := 0; i < len(chunk); i += len(block) {
			copy(chunk[i:], block)
		}
		for done := int64(0); done < length; {
			c := min(length-done, int64(len(chunk)))
			if err := l.writeAt(chunk[:c], off+done); err != nil {
				return checkStatus(keyMediumError, ascWriteError)
			}
			done += c
		}
		return statusGood, nil
	}
	if !ndob && cmd.edtl != uint32(bs) {
		// The Data-Out must be exactly one logical block.
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	if ndob {
		st, sense := fill(make([]byte, bs))
		return plan{status: st, sense: sense}
	}
	return plan{outLen: uint32(bs), finish: func(d []byte) (byte, []byte) {
		if uint64(len(d)) < bs {
			return checkStatus(keyIllegalRequest, ascInvalidFieldCDB)
		}
		return fill(d[:bs])
	}}
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func unmap(cmd *scsiCmd) plan {
	l := cmd.lun
	cdb := cmd.cdb
	if cdb[1]&0x01 != 0 { // ANCHOR
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	plen := be16(cdb[7:])
	if plen == 0 {
		return good()
	}
	if plen < 8 {
		return check(keyIllegalRequest, ascParamListLength)
	}
	if p, ok := l.checkWritable(); !ok {
		return p
	}
	return plan{outLen: plen, finish: func(d []byte) (byte, []byte) {
		if len(d) < 8 {
			return checkStatus(keyIllegalRequest, ascParamListLength)
		}
		bdl := int(be16(d[2:]))
		descs := d[8:]
		if bdl < len(descs) {
			descs = descs[:bdl]
		}
		descs = descs[:len(descs)/16*16]
		if len(descs)/16 > 256 {
			return checkStatus(keyIllegalRequest, ascInvalidFieldParam)
		}
		for i := 0; i < len(descs); i += 16 {
			lba, n := be64(descs[i:]), uint64(be32(descs[i+8:]))
			if !l.inRange(lba, n) {
				return checkStatus(keyIllegalRequest, ascLBAOutOfRange)
			}
		}
		for i := 0; i < len(descs); i += 16 {
			lba, n := be64(descs[i:]), uint64(be32(descs[i+8:]))
			if err := l.punch(int64(lba*uint64(l.bs)), int64(n*uint64(l.bs))); err != nil {
				return checkStatus(keyMediumError, ascWriteError)
			}
		}
		return statusGood, nil
	}}
}

func compareAndWrite(cmd *scsiCmd) plan {
	l := cmd.lun
	cdb := cmd.cdb
	lba, n := be64(cdb[2:]), uint64(cdb[13])
	if cdb[1]>>5 != 0 {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	if n > uint64(maxCompareAndWrite(l.bs)) {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	if !l.inRange(lba, n) {
		return check(keyIllegalRequest, ascLBAOutOfRange)
	}
	if p, ok := l.checkWritable(); !ok {
		return p
	}
	size := n * uint64(l.bs)
	off := int64(lba * uint64(l.bs))
	if cmd.edtl != uint32(2*size) {
		// The Data-Out must hold exactly the compare and the write blocks.
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	if n == 0 {
		return good()
	}
	return plan{outLen: uint32(2 * size), finish: func(d []byte) (byte, []byte) {
		if uint64(len(d)) < 2*size {
			return checkStatus(keyIllegalRequest, ascInvalidFieldCDB)
		}
		l.rmu.Lock() // the compare and the write are one atomic operation
		defer l.rmu.Unlock()
		cur := make([]byte, size)
		if err := l.readAt(cur, off); err != nil {
			return checkStatus(keyMediumError, ascReadError)
		}
		for i := range cur {
			if cur[i] != d[i] {
				return miscompare(uint32(i))
			}
		}
		if err := l.writeAt(d[size:2*size], off); err != nil {
			return checkStatus(keyMediumError, ascWriteError)
		}
		return statusGood, nil
	}}
}

func orWrite(cmd *scsiCmd) plan {
	l := cmd.lun
	r, _ := decodeRW(cmd.cdb)
	if r.protect != 0 {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	if !l.inRange(r.lba, uint64(r.blocks)) {
		return check(keyIllegalRequest, ascLBAOutOfRange)
	}
	if p, ok := l.checkWritable(); !ok {
		return p
	}
	if r.blocks == 0 {
		return good()
	}
	size := uint64(r.blocks) * uint64(l.bs)
	if size > maxBufferedOut {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	off := int64(r.lba * uint64(l.bs))
	return plan{outLen: uint32(size), finish: func(d []byte) (byte, []byte) {
		if uint64(len(d)) < size {
			return checkStatus(keyIllegalRequest, ascInvalidFieldCDB)
		}
		l.rmu.Lock()
		defer l.rmu.Unlock()
		cur := make([]byte, size)
		if err := l.readAt(cur, off); err != nil {
			return checkStatus(keyMediumError, ascReadError)
		}
		for i := range cur {
			cur[i] |= d[i]
		}
		if err := l.writeAt(cur, off); err != nil {
			return checkStatus(keyMediumError, ascWriteError)
		}
		if r.fua {
			if err := l.sync(); err != nil {
				return checkStatus(keyMediumError, ascWriteError)
			}
		}
		return statusGood, nil
	}}
}

func modeSense(cmd *scsiCmd) plan {
	l := cmd.lun
	cdb := cmd.cdb
	six := cdb[0] == 0x1a
	dbd := cdb[1]&0x08 != 0
	pc := cdb[2] >> 6
	page := cdb[2] & 0x3f
	sub := cdb[3]
	var alloc int
	if six {
		alloc = int(cdb[4])
	} else {
		alloc = int(be16(cdb[7:]))
	}
	if pc == 3 {
		return check(keyIllegalRequest, ascSavingNotSupported)
	}
	if sub != 0 && !(sub == 0xff && page == 0x3f) {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	changeable := pc == 1
	mk := func(code byte, length int, fill func(p []byte)) []byte {
		p := make([]byte, length+2)
		p[0], p[1] = code, byte(length)
		if !changeable {
			fill(p)
		}
		return p
	}
	rwRecovery := func() []byte { return mk(0x01, 0x0a, func(p []byte) {}) }
	caching := func() []byte { return mk(0x08, 0x12, func(p []byte) { p[2] = 0x04 }) } // WCE
	control := func() []byte {
		p := mk(0x0a, 0x0a, func(p []byte) {
			p[3] = 0x10          // unrestricted reordering
			put16(p[8:], 0xffff) // busy timeout: unlimited
			put16(p[10:], 0)     // no self-test
			p[4] = controlSWP * boolByte(l.swp.Load())
		})
		if changeable {
			p[4] = controlSWP // the one field MODE SELECT may change
		}
		return p
	}
	infoExc := func() []byte { return mk(0x1c, 0x0a, func(p []byte) {}) }
	var pages []byte
	switch page {
	case 0x01:
		pages = rwRecovery()
	case 0x08:
		pages = caching()
	case 0x0a:
		pages = control()
	case 0x1c:
		pages = infoExc()
	case 0x3f:
		pages = append(append(append(rwRecovery(), caching()...), control()...), infoExc()...)
	default:
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	devSpecific := byte(0x10) // DPOFUA
	if l.writeProtected() {
		devSpecific |= 0x80 // WP
	}
	var bd []byte
	if !dbd {
		bd = make([]byte, 8)
		nb := l.blocks
		if six || nb > 0xffffff {
			nb = min(nb, 0xffffff)
		}
		bd[1], bd[2], bd[3] = byte(nb>>16), byte(nb>>8), byte(nb)
		bd[5], bd[6], bd[7] = byte(l.bs>>16), byte(l.bs>>8), byte(l.bs)
	}
	var b []byte
	if six {
		b = []byte{0, 0, devSpecific, byte(len(bd))}
		b = append(append(b, bd...), pages...)
		b[0] = byte(min(len(b)-1, 255))
	} else {
		b = []byte{0, 0, 0, devSpecific, 0, 0, 0, byte(len(bd))}
		b = append(append(b, bd...), pages...)
		put16(b, uint16(len(b)-2))
	}
	return data(b, alloc)
}

// controlSWP is the software write protect bit in byte 4 of the control mode page.
const controlSWP = 0x08

// modeSelect accepts the control mode page with SWP set or cleared (which
// write-protects the LUN until cleared) and any other page only as it is
// reported, since nothing else is changeable. Saving pages is not supported.
func modeSelect(cmd *scsiCmd) plan {
	l := cmd.lun
	cdb := cmd.cdb
	six := cdb[0] == 0x15
	if cdb[1]&0x01 != 0 { // SP
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	var plen int
	if six {
		plen = int(cdb[4])
	} else {
		plen = int(be16(cdb[7:]))
	}
	if plen == 0 {
		return good()
	}
	return plan{outLen: uint32(plen), finish: func(d []byte) (byte, []byte) {
		hdr, bdl := 4, 0
		if six {
			if len(d) >= 4 {
				bdl = int(d[3])
			}
		} else {
			hdr = 8
			if len(d) >= 8 {
				bdl = int(be16(d[6:]))
			}
		}
		if len(d) < hdr || len(d) < hdr+bdl {
			return checkStatus(keyIllegalRequest, ascParamListLength)
		}
		swp := l.swp.Load()
		for p := d[hdr+bdl:]; len(p) > 0; {
			if len(p) < 2 || p[0]&0x40 != 0 { // sub-page format: none changeable
				return checkStatus(keyIllegalRequest, ascInvalidFieldParam)
			}
			n := 2 + int(p[1])
			if len(p) < n {
				return checkStatus(keyIllegalRequest, ascParamListLength)
			}
			if p[0]&0x3f == 0x0a && n == 12 {
				swp = p[4]&controlSWP != 0
			}
			p = p[n:]
		}
		l.swp.Store(swp)
		return statusGood, nil
	}}
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// opcodeInfo describes a supported command for REPORT SUPPORTED OPERATION CODES.
type opcodeInfo struct {
	op, sa byte
	hasSA  bool
	usage  []byte // CDB usage data: the bits the target looks at
}

var supportedOpcodes = func() []opcodeInfo {
	rw10 := []byte{0, 0x18, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0}
	rw12 := []byte{0, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}
	rw16 := []byte{0, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}
	with := func(op byte, u []byte, b1 byte) []byte {
		u = bytes.Clone(u)
		u[0] = op
		u[1] = b1
		return u
	}
	return []opcodeInfo{
		{op: 0x00, usage: []byte{0x00, 0, 0, 0, 0, 0}},
		{op: 0x03, usage: []byte{0x03, 0x01, 0, 0, 0xff, 0}},
		{op: 0x08, usage: []byte{0x08, 0x1f, 0xff, 0xff, 0xff, 0}},
		{op: 0x0a, usage: []byte{0x0a, 0x1f, 0xff, 0xff, 0xff, 0}},
		{op: 0x12, usage: []byte{0x12, 0x01, 0xff, 0xff, 0xff, 0}},
		{op: 0x15, usage: []byte{0x15, 0x10, 0, 0, 0xff, 0}},
		{op: 0x16, usage: []byte{0x16, 0, 0, 0, 0, 0}},
		{op: 0x17, usage: []byte{0x17, 0, 0, 0, 0, 0}},
		{op: 0x1a, usage: []byte{0x1a, 0x08, 0xff, 0xff, 0xff, 0}},
		{op: 0x1b, usage: []byte{0x1b, 0x01, 0, 0x0f, 0xf7, 0}},
		{op: 0x1e, usage: []byte{0x1e, 0, 0, 0, 0x03, 0}},
		{op: 0x25, usage: []byte{0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{op: 0x28, usage: with(0x28, rw10, 0x18)},
		{op: 0x2a, usage: with(0x2a, rw10, 0x18)},
		{op: 0x2e, usage: with(0x2e, rw10, 0x12)},
		{op: 0x2f, usage: with(0x2f, rw10, 0x16)},
		{op: 0x34, usage: with(0x34, rw10, 0x02)},
		{op: 0x35, usage: with(0x35, rw10, 0x02)},
		{op: 0x37, usage: []byte{0x37, 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0}},
		{op: 0x41, usage: with(0x41, rw10, 0x08)},
		{op: 0x42, usage: []byte{0x42, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0}},
		{op: 0x48, sa: sanitizeBlockErase, hasSA: true, usage: sanitizeUsage(sanitizeBlockErase)},
		{op: 0x48, sa: sanitizeExitFailureMode, hasSA: true, usage: sanitizeUsage(sanitizeExitFailureMode)},
		{op: 0x55, usage: []byte{0x55, 0x10, 0, 0, 0, 0, 0, 0xff, 0xff, 0}},
		{op: 0x56, usage: []byte{0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{op: 0x57, usage: []byte{0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{op: 0x5a, usage: []byte{0x5a, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0}},
		{op: 0x5e, sa: 0x00, hasSA: true, usage: []byte{0x5e, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0}},
		{op: 0x5e, sa: 0x01, hasSA: true, usage: []byte{0x5e, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0}},
		{op: 0x5e, sa: 0x02, hasSA: true, usage: []byte{0x5e, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0}},
		{op: 0x5e, sa: 0x03, hasSA: true, usage: []byte{0x5e, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0}},
		{op: 0x5f, sa: 0x00, hasSA: true, usage: []byte{0x5f, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0}},
		{op: 0x5f, sa: 0x01, hasSA: true, usage: []byte{0x5f, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0}},
		{op: 0x5f, sa: 0x02, hasSA: true, usage: []byte{0x5f, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0}},
		{op: 0x5f, sa: 0x03, hasSA: true, usage: []byte{0x5f, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0}},
		{op: 0x5f, sa: 0x04, hasSA: true, usage: []byte{0x5f, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0}},
		{op: 0x5f, sa: 0x05, hasSA: true, usage: []byte{0x5f, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0}},
		{op: 0x5f, sa: 0x06, hasSA: true, usage: []byte{0x5f, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0}},
		{op: 0x88, usage: with(0x88, rw16, 0x18)},
		{op: 0x89, usage: []byte{0x89, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0, 0}},
		{op: 0x8a, usage: with(0x8a, rw16, 0x18)},
		{op: 0x8b, usage: with(0x8b, rw16, 0x18)},
		{op: 0x8e, usage: with(0x8e, rw16, 0x12)},
		{op: 0x8f, usage: with(0x8f, rw16, 0x16)},
		{op: 0x90, usage: with(0x90, rw16, 0x02)},
		{op: 0x91, usage: with(0x91, rw16, 0x02)},
		{op: 0x93, usage: with(0x93, rw16, 0x09)},
		{op: 0x9e, sa: 0x10, hasSA: true, usage: []byte{0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0}},
		{op: 0x9e, sa: 0x12, hasSA: true, usage: []byte{0x9e, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}},
		{op: 0xa0, usage: []byte{0xa0, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0}},
		{op: 0xa3, sa: 0x0c, hasSA: true, usage: []byte{0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}},
		{op: 0xa3, sa: 0x0d, hasSA: true, usage: []byte{0xa3, 0x0d, 0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0}},
		{op: 0xa8, usage: with(0xa8, rw12, 0x18)},
		{op: 0xaa, usage: with(0xaa, rw12, 0x18)},
		{op: 0xae, usage: with(0xae, rw12, 0x12)},
		{op: 0xaf, usage: with(0xaf, rw12, 0x16)},
		{op: 0xb7, usage: []byte{0xb7, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0}},
	}
}()

func reportOpcodes(cmd *scsiCmd) plan {
	cdb := cmd.cdb
	rctd := cdb[2]&0x80 != 0
	opts := cdb[2] & 0x07
	reqOp, reqSA := cdb[3], be16(cdb[4:])
	alloc := int(be32(cdb[6:]))
	timeouts := func() []byte {
		t := make([]byte, 12)
		put16(t, 0x0a)
		return t
	}
	switch opts {
	case 0:
		b := make([]byte, 4)
		for _, oi := range supportedOpcodes {
			d := make([]byte, 8)
			d[0] = oi.op
			put16(d[2:], uint16(oi.sa))
			if oi.hasSA {
				d[5] |= 0x01
			}
			if rctd {
				d[5] |= 0x02
			}
			put16(d[6:], uint16(len(oi.usage)))
			b = append(b, d...)
			if rctd {
				b = append(b, timeouts()...)
			}
		}
		put32(b, uint32(len(b)-4))
		return data(b, alloc)
	case 1, 2, 3:
		var found *opcodeInfo
		hasSA := false
		for i := range supportedOpcodes {
			oi := &supportedOpcodes[i]
			if oi.op != reqOp {
				continue
			}
			hasSA = hasSA || oi.hasSA
			if !oi.hasSA || uint32(oi.sa) == reqSA {
				found = oi
			}
		}
		if (opts == 1 && hasSA) || (opts == 2 && !hasSA && found != nil) {
			return check(keyIllegalRequest, ascInvalidFieldCDB)
		}
		if opts == 1 || (opts == 3 && !hasSA) {
			if found != nil && found.hasSA {
				found = nil
			}
		}
		b := make([]byte, 4)
		if found == nil {
			b[1] = 0x01 // not supported
			return data(b, alloc)
		}
		b[1] = 0x03 // supported, conforming to the standard
		if rctd {
			b[1] |= 0x80
		}
		put16(b[2:], uint16(len(found.usage)))
		b = append(b, found.usage...)
		if rctd {
			b = append(b, timeouts()...)
		}
		return data(b, alloc)
	}
	return check(keyIllegalRequest, ascInvalidFieldCDB)
}

func reportTMFs(cmd *scsiCmd) plan {
	alloc := int(be32(cmd.cdb[6:]))
	b := make([]byte, 4)
	b[0] = 0x80 | 0x40 | 0x10 | 0x08 | 0x02 // ATS, ATSS, LURS, QTS?, TRS
	b[0] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02 // ABORT TASK, ABORT TASK SET, CLEAR TASK SET, LU RESET, TARGET RESET
	return data(b, alloc)
}

func readDefectData(cmd *scsiCmd) plan {
	cdb := cmd.cdb
	var alloc int
	var b []byte
	if cdb[0] == 0x37 {
		alloc = int(be16(cdb[7:]))
		b = []byte{0, cdb[2] & 0x1f, 0, 0}
	} else {
		alloc = int(be32(cdb[6:]))
		b = []byte{0, cdb[1] & 0x1f, 0, 0, 0, 0, 0, 0}
	}
	return data(b, alloc)
}

// lbppbExponent reports 4 KiB physical blocks, the page size holes are punched in.
func lbppbExponent(bs uint32) byte {
	var e byte
	for b := bs; b < 4096; b <<= 1 {
		e++
	}
	return e
}

// maxCompareAndWrite is the largest COMPARE AND WRITE in blocks: its compare
// and write data are buffered, within maxBufferedOut.
func maxCompareAndWrite(bs uint32) byte {
	return byte(min(255, maxBufferedOut/2/bs))
}
