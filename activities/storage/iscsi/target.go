package iscsi

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// target is a configured target with its LUNs and counters.
type target struct {
	cfg     TargetConfig
	mu      sync.RWMutex
	luns    map[uint64]*lun
	removed atomic.Bool
	stats   targetCounters
}

func newTarget(tc TargetConfig) *target {
	return &target{cfg: tc, luns: map[uint64]*lun{}}
}

func (t *target) lun(n uint64) *lun {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.luns[n]
}

func (t *target) lunNumbers() []uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ns := make([]uint64, 0, len(t.luns))
	for n := range t.luns {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

func (t *target) closeLUNs() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range t.luns {
		l.close()
	}
}

func (t *target) allows(initiator string) bool {
	return len(t.cfg.AllowedInitiators) == 0 || slices.Contains(t.cfg.AllowedInitiators, initiator)
}

// lun is one logical unit over a file or block device.
type lun struct {
	cfg      LUNConfig
	number   uint64
	f        *os.File
	raw      syscall.RawConn // fd access that is safe against a concurrent Close
	bs       uint32
	blocks   uint64
	ro       bool
	blockDev bool
	serial   string
	naa      [16]byte
	closed   atomic.Bool
	swp      atomic.Bool // software write protect (control mode page), set by MODE SELECT

	// rmu guards the reservation state (SPC-2 RESERVE and SPC-3 persistent reservations).
	rmu sync.Mutex
	rsv reservations
}

func openLUN(iqn string, number uint64, lc LUNConfig) (*lun, error) {
	if lc.BlockSize == 0 {
		lc.BlockSize = 512
	}
	if lc.BlockSize < 512 || lc.BlockSize > 65536 || lc.BlockSize&(lc.BlockSize-1) != 0 {
		return nil, fmt.Errorf("%w: block size %d", ErrInvalidConfig, lc.BlockSize)
	}
	flag := os.O_RDWR
	if lc.ReadOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(lc.Path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open LUN %d: %w", number, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat LUN %d: %w", number, err)
	}
	size := fi.Size()
	blockDev := fi.Mode()&os.ModeDevice != 0
	if blockDev {
		if size, err = f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, fmt.Errorf("size of LUN %d: %w", number, err)
		}
	} else if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is neither a file nor a block device", ErrInvalidConfig, lc.Path)
	}
	blocks := uint64(size) / uint64(lc.BlockSize)
	if blocks == 0 {
		f.Close()
		return nil, fmt.Errorf("%w: %s is smaller than one block", ErrInvalidConfig, lc.Path)
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d", iqn, number))
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("LUN %d: %w", number, err)
	}
	l := &lun{
		cfg: lc, number: number, f: f, raw: raw, bs: lc.BlockSize, blocks: blocks,
		ro: lc.ReadOnly, blockDev: blockDev, serial: lc.Serial,
	}
	if l.serial == "" {
		l.serial = fmt.Sprintf("%x", sum[:8])
	}
	// NAA 6 (IEEE registered extended) with a locally administered-looking id.
	l.naa[0] = 0x60 | sum[8]&0x0f
	copy(l.naa[1:], sum[9:24])
	return l, nil
}

func (l *lun) close() {
	if l.closed.CompareAndSwap(false, true) {
		l.f.Close()
	}
}

// control runs fn with the LUN's descriptor held open, so a concurrent
// RemoveLUN cannot close it (and the number be reused) under the call.
func (l *lun) control(fn func(fd int) error) error {
	var ferr error
	if err := l.raw.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func (l *lun) readAt(b []byte, off int64) error {
	n, err := l.f.ReadAt(b, off)
	if err == io.EOF {
		// Past the end of a truncated file reads as zeros.
		clear(b[n:])
		return nil
	}
	return err
}

func (l *lun) writeAt(b []byte, off int64) error {
	_, err := l.f.WriteAt(b, off)
	return err
}

func (l *lun) sync() error {
	return l.control(func(fd int) error {
		for {
			if err := syscall.Fdatasync(fd); err != syscall.EINTR {
				return err
			}
		}
	})
}

const (
	fallocPunchHole = 0x02
	fallocKeepSize  = 0x01
)

// punch deallocates a byte range: holes in files, discard on block devices.
func (l *lun) punch(off, n int64) error {
	if n == 0 {
		return nil
	}
	err := l.control(func(fd int) error {
		if l.blockDev {
			r := [2]uint64{uint64(off), uint64(n)}
			const blkDiscard = 0x1277
			if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), blkDiscard, uintptrOf(&r)); e != 0 {
				return e
			}
			return nil
		}
		for {
			err := syscall.Fallocate(fd, fallocPunchHole|fallocKeepSize, off, n)
			if err != syscall.EINTR {
				return err
			}
		}
	})
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EINVAL) {
		// No hole punching or discard here: zeros written read back the same.
		return l.writeZeros(off, n)
	}
	return err
}

func (l *lun) writeZeros(off, n int64) error {
	z := make([]byte, min(n, 1<<20))
	for n > 0 {
		c := min(n, int64(len(z)))
		if err := l.writeAt(z[:c], off); err != nil {
			return err
		}
		off, n = off+c, n-c
	}
	return nil
}

// mapped reports whether the block at lba holds data and how many following
// blocks share that state (SEEK_DATA/SEEK_HOLE; block devices are all mapped).
func (l *lun) mapped(lba uint64) (bool, uint64) {
	end := int64(l.blocks * uint64(l.bs))
	off := int64(lba * uint64(l.bs))
	if l.blockDev {
		return true, l.blocks - lba
	}
	const seekData, seekHole = 3, 4
	var data, hole int64
	var derr, herr error
	l.control(func(fd int) error {
		data, derr = syscall.Seek(fd, off, seekData)
		hole, herr = syscall.Seek(fd, off, seekHole)
		return nil
	})
	if derr != nil || data >= end {
		return false, l.blocks - lba
	}
	if data > off {
		return false, uint64(data-off) / uint64(l.bs)
	}
	if herr != nil || hole > end {
		hole = end
	}
	n := (uint64(hole-off) + uint64(l.bs) - 1) / uint64(l.bs)
	return true, max(n, 1)
}

// targetCounters are the live statistics of one target.
type targetCounters struct {
	sessions      atomic.Int64
	logins        atomic.Uint64
	loginFailures atomic.Uint64
	commands      atomic.Uint64
	errors        atomic.Uint64
	bytesRead     atomic.Uint64
	bytesWritten  atomic.Uint64
	latency       [len(latencyBounds) + 1]atomic.Uint64
}

// latencyBounds are the upper bounds of the command latency histogram buckets.
var latencyBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second,
}

func (c *targetCounters) observe(d time.Duration) {
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	c.latency[i].Add(1)
}

// TargetStats is a snapshot of one target's counters.
type TargetStats struct {
	IQN           string
	Sessions      int
	Logins        uint64
	LoginFailures uint64
	Commands      uint64
	Errors        uint64 // commands that ended with a status other than GOOD
	BytesRead     uint64 // bytes sent to initiators from LUNs
	BytesWritten  uint64 // bytes written to LUNs
	// Latency is a cumulative-free histogram: Latency[i].Count commands took at
	// most Latency[i].UpperBound (the last bucket's bound is 0: "more").
	Latency []LatencyBucket
}

// LatencyBucket is one histogram bucket of TargetStats.
type LatencyBucket struct {
	UpperBound time.Duration
	Count      uint64
}

// Stats returns a snapshot of every target's counters, sorted by IQN.
func (s *Server) Stats() []TargetStats {
	s.mu.Lock()
	ts := make([]*target, 0, len(s.targets))
	for _, t := range s.targets {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	slices.SortFunc(ts, func(a, b *target) int {
		switch {
		case a.cfg.IQN < b.cfg.IQN:
			return -1
		case a.cfg.IQN > b.cfg.IQN:
			return 1
		}
		return 0
	})
	out := make([]TargetStats, 0, len(ts))
	for _, t := range ts {
		c := &t.stats
		st := TargetStats{
			IQN: t.cfg.IQN, Sessions: int(c.sessions.Load()), Logins: c.logins.Load(),
			LoginFailures: c.loginFailures.Load(), Commands: c.commands.Load(), Errors: c.errors.Load(),
			BytesRead: c.bytesRead.Load(), BytesWritten: c.bytesWritten.Load(),
		}
		for i := range c.latency {
			b := LatencyBucket{Count: c.latency[i].Load()}
			if i < len(latencyBounds) {
				b.UpperBound = latencyBounds[i]
			}
			st.Latency = append(st.Latency, b)
		}
		out = append(out, st)
	}
	return out
}

func put16(b []byte, v uint16) { binary.BigEndian.PutUint16(b, v) }
func put32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }
func put64(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }
