package iscsi

import (
	"slices"
)

// reservations hold a LUN's SPC-2 reservation and SPC-3 persistent
// reservation state. Nexus identities are "initiator,i,0xISID,target".
type reservations struct {
	spc2Holder string
	regs       map[string]uint64 // registered nexus -> key
	generation uint32
	prHolder   string // nexus holding the persistent reservation ("" for all-registrants types)
	prType     byte   // 0: no persistent reservation
	// ua holds a pending unit attention (ASC/ASCQ) per I_T nexus.
	ua map[string]uint16
}

// setUnitAttention queues a unit attention for each nexus.
func (l *lun) setUnitAttention(nexuses []string, asc uint16) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if l.rsv.ua == nil {
		l.rsv.ua = map[string]uint16{}
	}
	for _, n := range nexuses {
		l.rsv.ua[n] = asc
	}
}

// takeUnitAttention returns and clears the nexus's pending unit attention.
func (l *lun) takeUnitAttention(nexus string) (uint16, bool) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	asc, ok := l.rsv.ua[nexus]
	if ok {
		delete(l.rsv.ua, nexus)
	}
	return asc, ok
}

// Persistent reservation types.
const (
	prWriteExclusive     = 1
	prExclusiveAccess    = 3
	prWriteExclusiveRO   = 5
	prExclusiveAccessRO  = 6
	prWriteExclusiveAR   = 7
	prExclusiveAccessAR  = 8
	prParamListLen       = 24
	spc2ConflictDisallow = true
)

func validPRType(t byte) bool {
	switch t {
	case prWriteExclusive, prExclusiveAccess, prWriteExclusiveRO, prExclusiveAccessRO,
		prWriteExclusiveAR, prExclusiveAccessAR:
		return true
	}
	return false
}

func allRegistrants(t byte) bool { return t == prWriteExclusiveAR || t == prExclusiveAccessAR }

// isHolder reports whether nexus holds the persistent reservation. Caller holds rmu.
func (r *reservations) isHolder(nexus string) bool {
	if r.prType == 0 {
		return false
	}
	if allRegistrants(r.prType) {
		_, ok := r.regs[nexus]
		return ok
	}
	return r.prHolder == nexus
}

// commandClass sorts opcodes for reservation checks.
func commandClass(cdb []byte) (alwaysAllowed, writes bool) {
	switch cdb[0] {
	case 0x12, 0xa0, 0x03, 0x5e, 0x5f, 0x00, 0x25, 0x1b:
		return true, false
	case 0xa3:
		return true, false
	case 0x9e:
		return cdb[1]&0x1f == 0x10, false
	case 0x0a, 0x2a, 0xaa, 0x8a, 0x2e, 0xae, 0x8e, 0x41, 0x93, 0x42, 0x89, 0x8b, 0x48, 0x35, 0x91, 0x15, 0x55, 0x16, 0x56, 0x17, 0x57:
		return false, true
	}
	return false, false
}

// conflicts reports whether cmd from nexus must end in RESERVATION CONFLICT.
func (l *lun) conflicts(nexus string, cdb []byte) bool {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	r := &l.rsv
	op := cdb[0]
	if r.spc2Holder != "" && r.spc2Holder != nexus {
		switch op {
		case 0x12, 0xa0, 0x03, 0x17, 0x57, 0xa3:
			return false
		case 0x9e:
			return cdb[1]&0x1f != 0x10
		}
		return true
	}
	if r.prType == 0 || r.isHolder(nexus) {
		return false
	}
	allowed, writes := commandClass(cdb)
	if op == 0x16 || op == 0x56 || op == 0x17 || op == 0x57 {
		return true // SPC-2 reservations conflict with persistent ones
	}
	if allowed {
		return false
	}
	_, registered := r.regs[nexus]
	switch r.prType {
	case prWriteExclusive:
		return writes
	case prExclusiveAccess:
		return true
	case prWriteExclusiveRO, prWriteExclusiveAR:
		return writes && !registered
	case prExclusiveAccessRO, prExclusiveAccessAR:
		return !registered
	}
	return false
}

func (l *lun) reserve6(cmd *scsiCmd) plan {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if l.rsv.prType != 0 {
		return plan{status: statusReservationConflict}
	}
	if l.rsv.spc2Holder != "" && l.rsv.spc2Holder != cmd.nexus {
		return plan{status: statusReservationConflict}
	}
	l.rsv.spc2Holder = cmd.nexus
	return good()
}

func (l *lun) release6(cmd *scsiCmd) plan {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if l.rsv.spc2Holder == cmd.nexus {
		l.rsv.spc2Holder = ""
	}
	return good()
}

// reset is a LUN or target reset: SPC-2 reservations go, persistent ones stay.
func (l *lun) reset() {
	l.rmu.Lock()
	l.rsv.spc2Holder = ""
	l.rmu.Unlock()
}

// nexusLost releases what an ended I_T nexus held (SPC-2 reservations only).
func (l *lun) nexusLost(nexus string) {
	l.rmu.Lock()
	delete(l.rsv.ua, nexus)
	if l.rsv.spc2Holder == nexus {
		l.rsv.spc2Holder = ""
	}
	l.rmu.Unlock()
}

func (l *lun) prIn(cmd *scsiCmd) plan {
	cdb := cmd.cdb
	sa := cdb[1] & 0x1f
	alloc := int(be16(cdb[7:]))
	l.rmu.Lock()
	defer l.rmu.Unlock()
	r := &l.rsv
	switch sa {
	case 0x00: // READ KEYS
		b := make([]byte, 8)
		put32(b, r.generation)
		for _, n := range sortedKeys(r.regs) {
			k := make([]byte, 8)
			put64(k, r.regs[n])
			b = append(b, k...)
		}
		put32(b[4:], uint32(len(b)-8))
		return data(b, alloc)
	case 0x01: // READ RESERVATION
		b := make([]byte, 8)
		put32(b, r.generation)
		if r.prType != 0 {
			d := make([]byte, 16)
			if !allRegistrants(r.prType) {
				put64(d, r.regs[r.prHolder])
			}
			d[13] = r.prType
			b = append(b, d...)
			put32(b[4:], 16)
		}
		return data(b, alloc)
	case 0x02: // REPORT CAPABILITIES
		b := make([]byte, 8)
		put16(b, 8)
		b[2] = 0x10 // CRH: RESERVE/RELEASE conflict handling per SPC-3
		b[3] = 0x80 // TMV: the type mask is valid
		b[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02
		b[5] = 0x01
		return data(b, alloc)
	case 0x03: // READ FULL STATUS
		b := make([]byte, 8)
		put32(b, r.generation)
		for _, n := range sortedKeys(r.regs) {
			tid := transportID(n)
			d := make([]byte, 24, 24+len(tid))
			put64(d, r.regs[n])
			if r.isHolder(n) {
				d[12] = 0x01
				d[13] = r.prType
			}
			put32(d[20:], uint32(len(tid)))
			b = append(append(b, d...), tid...)
		}
		put32(b[4:], uint32(len(b)-8))
		return data(b, alloc)
	}
	return check(keyIllegalRequest, ascInvalidFieldCDB)
}

// transportID encodes an iSCSI initiator port TransportID (SPC-4 7.6.4.6).
func transportID(nexus string) []byte {
	name := nexus
	for i := len(nexus) - 1; i >= 0; i-- {
		if nexus[i] == ',' { // drop the target part
			name = nexus[:i]
			break
		}
	}
	n := len(name) + 1
	n = (n + 3) &^ 3
	b := make([]byte, 4+n)
	b[0] = 0x40 | 0x05
	put16(b[2:], uint16(n))
	copy(b[4:], name)
	return b
}

func sortedKeys(m map[string]uint64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (l *lun) prOut(cmd *scsiCmd) plan {
	cdb := cmd.cdb
	sa := cdb[1] & 0x1f
	typ := cdb[2] & 0x0f
	scope := cdb[2] >> 4
	plen := be32(cdb[5:])
	if sa > 6 {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	if plen != prParamListLen {
		return check(keyIllegalRequest, ascParamListLength)
	}
	if (sa == 1 || sa == 2 || sa == 4 || sa == 5) && (scope != 0 || !validPRType(typ)) {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	return plan{outLen: prParamListLen, finish: func(d []byte) (byte, []byte) {
		if len(d) < prParamListLen {
			return checkStatus(keyIllegalRequest, ascParamListLength)
		}
		key, sakey := be64(d), be64(d[8:])
		flags := d[20]
		if flags&0x08 != 0 { // SPEC_I_PT is not supported
			return checkStatus(keyIllegalRequest, ascInvalidFieldParam)
		}
		l.rmu.Lock()
		defer l.rmu.Unlock()
		r := &l.rsv
		if r.regs == nil {
			r.regs = map[string]uint64{}
		}
		n := cmd.nexus
		cur, registered := r.regs[n]
		conflict := func() (byte, []byte) { return statusReservationConflict, nil }
		switch sa {
		case 0x00, 0x06: // REGISTER, REGISTER AND IGNORE EXISTING KEY
			if sa == 0x00 {
				if !registered && key != 0 {
					return conflict()
				}
				if registered && key != cur {
					return conflict()
				}
			}
			if sakey == 0 {
				if registered {
					r.unregister(n)
				}
			} else {
				r.regs[n] = sakey
			}
			r.generation++
			return statusGood, nil
		}
		if !registered || key != cur {
			return conflict()
		}
		switch sa {
		case 0x01: // RESERVE
			if r.spc2Holder != "" {
				return conflict()
			}
			if r.prType == 0 {
				r.prType, r.prHolder = typ, n
				if allRegistrants(typ) {
					r.prHolder = ""
				}
				return statusGood, nil
			}
			if r.isHolder(n) && r.prType == typ {
				return statusGood, nil
			}
			return conflict()
		case 0x02: // RELEASE
			if r.prType == 0 || !r.isHolder(n) {
				return statusGood, nil
			}
			if r.prType != typ {
				return checkStatus(keyIllegalRequest, ascInvalidReleasePR)
			}
			r.prType, r.prHolder = 0, ""
			return statusGood, nil
		case 0x03: // CLEAR
			r.regs = map[string]uint64{}
			r.prType, r.prHolder = 0, ""
			r.generation++
			return statusGood, nil
		case 0x04, 0x05: // PREEMPT, PREEMPT AND ABORT
			if r.prType != 0 && allRegistrants(r.prType) && sakey == 0 {
				for other := range r.regs {
					if other != n {
						delete(r.regs, other)
					}
				}
				r.prType, r.prHolder = typ, n
				r.generation++
				return statusGood, nil
			}
			if sakey == 0 {
				return checkStatus(keyIllegalRequest, ascInvalidFieldParam)
			}
			holderKey, holderOK := r.regs[r.prHolder]
			removed := false
			for other, k := range r.regs {
				if k == sakey && other != n {
					delete(r.regs, other)
					removed = true
				}
			}
			if r.prType != 0 && holderOK && holderKey == sakey {
				r.prType, r.prHolder = typ, n
			} else if !removed {
				return conflict()
			}
			r.generation++
			return statusGood, nil
		}
		return checkStatus(keyIllegalRequest, ascInvalidFieldCDB)
	}}
}

// unregister drops a registration and, per SPC-4 5.14.11, a reservation it held.
func (r *reservations) unregister(n string) {
	delete(r.regs, n)
	if r.prType == 0 {
		return
	}
	if allRegistrants(r.prType) {
		if len(r.regs) == 0 {
			r.prType, r.prHolder = 0, ""
		}
		return
	}
	if r.prHolder == n {
		r.prType, r.prHolder = 0, ""
	}
}
