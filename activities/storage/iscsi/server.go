package iscsi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config holds the server-wide settings. The zero value is usable: NewServer
// fills in defaults.
type Config struct {
	// Logger receives one line per session event; nil discards.
	Logger *slog.Logger
	// PortalGroupTag is reported in logins and SendTargets (default 1).
	PortalGroupTag uint16
	// TargetAddress is the "host:port" announced by SendTargets; empty means the
	// local address of the discovery connection.
	TargetAddress string
	// MaxRecvDataSegmentLength is the largest data segment we accept (default 256 KiB).
	MaxRecvDataSegmentLength uint32
	// MaxBurstLength and FirstBurstLength cap what initiators may negotiate
	// (defaults 1 MiB and 256 KiB).
	MaxBurstLength   uint32
	FirstBurstLength uint32
	// InitialR2T forces InitialR2T=Yes (no unsolicited Data-Out).
	InitialR2T bool
	// PreferDigests selects CRC32C when the initiator offers it.
	PreferDigests bool
	// QueueDepth is the CmdSN window per session (default 128).
	QueueDepth uint32
	// NopInterval is the idle time after which the target pings the initiator
	// with a NOP-In; an initiator that does not answer within NopTimeout is
	// dropped. Defaults 30 s and 15 s; a negative interval disables pings.
	NopInterval time.Duration
	NopTimeout  time.Duration
	// LoginTimeout bounds the whole login phase (default 15 s).
	LoginTimeout time.Duration
	// Sendfile serves media reads with sendfile(2) (page cache to socket,
	// no copy through user space) instead of pread(2) and writev(2). It
	// applies to TCP connections without data digests.
	Sendfile bool
}

// TargetConfig describes one target.
type TargetConfig struct {
	// IQN is the target name, e.g. "iqn.2026-11.dev.clusterducks:host1".
	IQN string
	// Alias is sent as TargetAlias when set.
	Alias string
	// LUNs are numbered by position: LUNs[0] is LUN 0.
	LUNs []LUNConfig
	// AllowedInitiators lists initiator names allowed to log in; empty allows all.
	AllowedInitiators []string
	// CHAP, when set, requires CHAP authentication.
	CHAP *CHAPConfig
}

// LUNConfig describes a logical unit backed by a file or a block device.
type LUNConfig struct {
	// Path of a regular file or a block device (e.g. /dev/zvol/pool/disk).
	Path string
	// ReadOnly opens the backing store read-only and reports write protection.
	ReadOnly bool
	// BlockSize is the logical block size (default 512).
	BlockSize uint32
	// Serial is the unit serial number (VPD 0x80); default derived from IQN and LUN.
	Serial string
}

// CHAPConfig holds the secrets for CHAP (RFC 1994 with MD5, RFC 7143 §12.1.3).
type CHAPConfig struct {
	// User and Secret authenticate the initiator to the target.
	User   string
	Secret string
	// MutualUser and MutualSecret, when set, let the initiator authenticate the target.
	MutualUser   string
	MutualSecret string
}

// Typed errors returned by Server methods.
var (
	ErrServerClosed   = errors.New("iscsi: server closed")
	ErrTargetExists   = errors.New("iscsi: target already exists with another configuration")
	ErrTargetNotFound = errors.New("iscsi: target not found")
	ErrLUNExists      = errors.New("iscsi: LUN already exists")
	ErrLUNNotFound    = errors.New("iscsi: LUN not found")
	ErrInvalidConfig  = errors.New("iscsi: invalid configuration")
)

// Server is an iSCSI target serving any number of targets on any number of
// listeners. All methods are safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	targets   map[string]*target
	sessions  map[uint16]*session // by TSIH
	nextTSIH  uint16
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closed    bool
	connWG    sync.WaitGroup
	panics    atomic.Uint64 // recovered connection panics: bugs, counted for tests
}

// NewServer returns a server with no targets.
func NewServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PortalGroupTag == 0 {
		cfg.PortalGroupTag = 1
	}
	if cfg.MaxRecvDataSegmentLength == 0 {
		cfg.MaxRecvDataSegmentLength = 256 << 10
	}
	cfg.MaxRecvDataSegmentLength = min(max(cfg.MaxRecvDataSegmentLength, 512), 1<<24-1)
	if cfg.MaxBurstLength == 0 {
		cfg.MaxBurstLength = 1 << 20
	}
	cfg.MaxBurstLength = min(max(cfg.MaxBurstLength, 512), 1<<24-1)
	if cfg.FirstBurstLength == 0 {
		cfg.FirstBurstLength = 256 << 10
	}
	cfg.FirstBurstLength = min(max(cfg.FirstBurstLength, 512), cfg.MaxBurstLength)
	if cfg.QueueDepth == 0 {
		cfg.QueueDepth = 128
	}
	if cfg.NopInterval == 0 {
		cfg.NopInterval = 30 * time.Second
	}
	if cfg.NopTimeout <= 0 {
		cfg.NopTimeout = 15 * time.Second
	}
	if cfg.LoginTimeout <= 0 {
		cfg.LoginTimeout = 15 * time.Second
	}
	return &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		targets:   map[string]*target{},
		sessions:  map[uint16]*session{},
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
	}
}

func validIQN(name string) bool {
	if name == "" || len(name) > 223 {
		return false
	}
	if !strings.HasPrefix(name, "iqn.") && !strings.HasPrefix(name, "eui.") && !strings.HasPrefix(name, "naa.") {
		return false
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

func sameTargetConfig(a, b TargetConfig) bool {
	if a.IQN != b.IQN || a.Alias != b.Alias || !slices.Equal(a.LUNs, b.LUNs) ||
		!slices.Equal(a.AllowedInitiators, b.AllowedInitiators) {
		return false
	}
	if (a.CHAP == nil) != (b.CHAP == nil) {
		return false
	}
	return a.CHAP == nil || *a.CHAP == *b.CHAP
}

// AddTarget opens the target's LUNs and makes it available to new logins.
// Adding a target again with the same configuration is a no-op; with another
// configuration it returns ErrTargetExists.
func (s *Server) AddTarget(tc TargetConfig) error {
	if !validIQN(tc.IQN) {
		return fmt.Errorf("%w: target name %q", ErrInvalidConfig, tc.IQN)
	}
	if tc.CHAP != nil && (tc.CHAP.User == "" || tc.CHAP.Secret == "") {
		return fmt.Errorf("%w: CHAP needs a user and a secret", ErrInvalidConfig)
	}
	s.mu.Lock()
	if old, ok := s.targets[tc.IQN]; ok {
		s.mu.Unlock()
		// The boot path exports every device it answers: the same target again is the
		// usual case, decided before anything is copied.
		if sameTargetConfig(old.cfg, tc) {
			return nil
		}
		return fmt.Errorf("add target %s: %w", tc.IQN, ErrTargetExists)
	}
	s.mu.Unlock()
	tc.LUNs = slices.Clone(tc.LUNs)
	tc.AllowedInitiators = slices.Clone(tc.AllowedInitiators)
	if tc.CHAP != nil {
		c := *tc.CHAP
		tc.CHAP = &c
	}
	t := newTarget(tc)
	for i, lc := range tc.LUNs {
		l, err := openLUN(tc.IQN, uint64(i), lc)
		if err != nil {
			t.closeLUNs()
			return fmt.Errorf("add target %s: %w", tc.IQN, err)
		}
		t.luns[uint64(i)] = l
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.targets[tc.IQN]; ok {
		t.closeLUNs()
		if sameTargetConfig(old.cfg, tc) {
			return nil
		}
		return fmt.Errorf("add target %s: %w", tc.IQN, ErrTargetExists)
	}
	s.targets[tc.IQN] = t
	s.log.Info("iscsi target added", "target", tc.IQN, "luns", len(tc.LUNs))
	return nil
}

// RemoveTarget stops new logins to the target, asks its initiators to log out
// (disconnecting those that do not within 2 s), closes its LUNs and forgets
// it. Removing a target that does not exist is a no-op.
func (s *Server) RemoveTarget(iqn string) error {
	s.mu.Lock()
	t, ok := s.targets[iqn]
	if !ok {
		s.mu.Unlock()
		return nil
	}
	delete(s.targets, iqn)
	t.removed.Store(true)
	var victims []*conn
	for _, sess := range s.sessions {
		if sess.target == t && sess.conn != nil {
			victims = append(victims, sess.conn)
		}
	}
	s.mu.Unlock()
	for _, c := range victims {
		c.requestLogout("target removed")
	}
	for _, c := range victims {
		c.waitDone(logoutGrace + time.Second)
		c.kill("target removed")
		c.waitDone(5 * time.Second)
	}
	t.closeLUNs()
	s.log.Info("iscsi target removed", "target", iqn, "sessions_ended", len(victims))
	return nil
}

// AddLUN adds a LUN with the given number to a running target. Adding the same
// LUN again with the same configuration is a no-op.
func (s *Server) AddLUN(iqn string, number uint64, lc LUNConfig) error {
	if number >= 16384 {
		return fmt.Errorf("%w: LUN %d out of range", ErrInvalidConfig, number)
	}
	s.mu.Lock()
	t, ok := s.targets[iqn]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("add LUN %d to %s: %w", number, iqn, ErrTargetNotFound)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.luns[number]; ok {
		if old.cfg == lc {
			return nil
		}
		return fmt.Errorf("add LUN %d to %s: %w", number, iqn, ErrLUNExists)
	}
	l, err := openLUN(iqn, number, lc)
	if err != nil {
		return fmt.Errorf("add LUN %d to %s: %w", number, iqn, err)
	}
	t.luns[number] = l
	return nil
}

// LUNPath returns the path behind LUN number of target iqn and whether the target is
// exported with that LUN. An exported LUN holds its disk open, so the disk is there: the
// boot path asks this instead of a stat per boot.
func (s *Server) LUNPath(iqn string, number uint64) (string, bool) {
	s.mu.Lock()
	t, ok := s.targets[iqn]
	s.mu.Unlock()
	if !ok {
		return "", false
	}
	l := t.lun(number)
	if l == nil {
		return "", false
	}
	return l.cfg.Path, true
}

// RemoveLUN closes and forgets a LUN; commands in flight to it fail. Removing a
// LUN that does not exist is a no-op.
func (s *Server) RemoveLUN(iqn string, number uint64) error {
	s.mu.Lock()
	t, ok := s.targets[iqn]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	t.mu.Lock()
	l, ok := t.luns[number]
	delete(t.luns, number)
	t.mu.Unlock()
	if ok {
		l.close()
	}
	return nil
}

// Targets returns the names of the configured targets, sorted.
func (s *Server) Targets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.targets))
	for n := range s.targets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (s *Server) lookupTarget(iqn string) *target {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.targets[iqn]
}

// Serve accepts connections on ln until Shutdown is called or ln fails. It
// always closes ln. After Shutdown it returns ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("iscsi accept: %w", err)
		}
		backoff = 0
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.connWG.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// Shutdown stops accepting, asks every initiator to log out (Async Message)
// and waits for the connections to end until ctx is done, then closes what is
// left and the LUNs. An initiator that does not log out within 2 s is
// disconnected. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.requestLogout("server shutdown")
	}
	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		// Out of patience: close what is left and let the goroutines end.
		s.mu.Lock()
		for c := range s.conns {
			c.kill("server shutdown")
		}
		s.mu.Unlock()
		<-done
	}
	s.mu.Lock()
	targets := s.targets
	s.targets = map[string]*target{}
	s.mu.Unlock()
	for _, t := range targets {
		t.removed.Store(true)
		t.closeLUNs()
	}
	return err
}

func (s *Server) connDone(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connWG.Done()
}

// allocTSIH registers sess under a free TSIH. Caller holds s.mu.
func (s *Server) allocTSIH(sess *session) bool {
	for range 65535 {
		s.nextTSIH++
		if s.nextTSIH == 0 {
			s.nextTSIH = 1
		}
		if _, used := s.sessions[s.nextTSIH]; !used {
			sess.tsih = s.nextTSIH
			s.sessions[sess.tsih] = sess
			return true
		}
	}
	return false
}

// RecoveredPanics returns how many connections ended in a recovered panic. A
// non-zero value is a bug in this package; the process keeps serving.
func (s *Server) RecoveredPanics() uint64 { return s.panics.Load() }

// SessionCount returns the number of live sessions (normal and discovery
// sessions in full feature phase).
func (s *Server) SessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// ConnectionCount returns the number of open connections, including those still logging in.
func (s *Server) ConnectionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
