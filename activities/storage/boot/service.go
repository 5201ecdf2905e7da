package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// Config is what the boot service is built from; the agent fills it from its own config.
type Config struct {
	ServerID uint
	// Portal is the host:port at which devices reach this server's iSCSI target (the
	// server's iSCSI IP and port), written into sanboot URIs.
	Portal string
	// BootPort is the port of every agent's boot endpoint, for redirects to other servers
	// (default 8080).
	BootPort  int
	Panel     Panel
	Provision Provisioner
	Disks     Disks
	Target    Target
	Cache     *Cache // nil: in memory only
	Logger    *slog.Logger

	// PanelTimeout bounds a question to the panel on the hot path (default 3 s; five times
	// that for a device the cache does not know).
	PanelTimeout time.Duration
	// ProvisionWait is how long a request waits for a clone before telling the device to
	// ask again (default 8 s).
	ProvisionWait time.Duration
	// RetryPause and RebootPause are the device-side pauses of the retry and reboot-loop
	// scripts (defaults 3 s and 10 s).
	RetryPause  time.Duration
	RebootPause time.Duration
	// VersionsTTL is how long the list of local versions of a group is reused (default 2 s).
	VersionsTTL time.Duration
	// ReconcileEvery is how often exports are compared with the panel's (default 30 s).
	ReconcileEvery time.Duration
	// ReportTimeout bounds one delivery of boot reports (default 15 s: off the hot path, it
	// may wait for a busy panel longer than a boot question). ReportRetry is the first
	// pause before undelivered reports are sent again (default 1 s, doubling up to 30 s).
	ReportTimeout time.Duration
	ReportRetry   time.Duration
	// CHAPKey, when set, makes every target of this server require CHAP, with a secret
	// per target derived from the key (CHAPCredentials); the sanboot scripts carry it.
	CHAPKey []byte
	// Observer, when set, is told of every device boot request (the agent's metrics).
	Observer Observer
	// View, when set, answers known devices from the agent's own view of the network
	// (bootview): no panel round trip. Strict groups boot from it within its lease.
	View View

	// MaxProvisions bounds the provisionings (new clones) this server runs at once
	// (default 32); MaxLogins the devices told to sanboot whose iSCSI login has not come
	// yet (default 256). A device beyond either is told to ask again after a jittered
	// pause, never left to time out.
	MaxProvisions int
	MaxLogins     int
	// LoginWindow is how long a sanboot answer holds its login slot when no login comes
	// (default 30 s).
	LoginWindow time.Duration
	// Outcomes are the bounds a sanbooted device's result (up, failed, unknown) is decided
	// within; OutcomePoll how often the watched boots' targets are sampled (default
	// UpAfter/20, between 50 ms and 1 s).
	Outcomes    OutcomeBounds
	OutcomePoll time.Duration
	// Now is the service's clock for the boot outcomes (default time.Now).
	Now func() time.Time
}

// ResultObserver, when the Observer is one too, is told of every decided boot (the
// agent's metrics): its result and, for up, the time from the script to up.
type ResultObserver interface {
	BootResult(result string, up time.Duration)
}

// Observer is told when a device's boot request arrives and how it was answered.
type Observer interface {
	BootStarted()
	// BootDone gets the kind of script sent (ScriptKind) and the time it took.
	BootDone(result string, d time.Duration)
}

// Service answers devices' boot requests (GET /boot.ipxe) and keeps this server's targets
// exported. One per agent.
type Service struct {
	cfg Config
	log *slog.Logger

	vmu      sync.Mutex
	versions map[uint]cachedVersions

	pmu      sync.Mutex
	inflight map[uint]*flight // provisioning by device

	lmu     sync.Mutex
	logins  map[string]pendingLogin // sanboot answers awaiting their login, by target
	refused atomic.Uint64           // requests told to come back by admission control

	// The admission bounds in force (SetBounds may change them while the service runs).
	maxProvisions, maxLogins atomic.Int64
	// vdisks is each device's vdisk (its target's LUN 1), from the panel's exports and the
	// vdisk workflows; the target of a device gets it at every export.
	dmu    sync.Mutex
	vdisks map[uint]uint

	out *outcomes // the boots served, watched until they came up or not

	chap    sync.Map // target IQN -> its CHAP credentials ([2]string), derived once
	configs sync.Map // target IQN -> *exportConfig: its target as last exported

	// The reports not yet taken by the background: a slice under a lock, not a channel,
	// so a storm's thousands of reports do not wake the background goroutine one by one.
	rmu      sync.Mutex
	incoming []wire.Report
	spare    []wire.Report // the slice the background took last, reused
	rready   chan struct{} // sendAtOnce reports are waiting
	waiting  atomic.Int64  // reports not yet taken by the panel: incoming, queued or being delivered
	stop     chan struct{}
	done     sync.WaitGroup
}

type cachedVersions struct {
	v  map[int]string
	at time.Time
}

// pendingLogin is a device told to sanboot a target: it holds a login slot until the
// target's login count passes base, or until.
type pendingLogin struct {
	base  uint64
	until time.Time
}

type flight struct {
	version int
	done    chan struct{}
	err     error
}

// NewService returns the boot service and starts its background work (reports to the
// panel, cache flushes); Close stops it.
func NewService(cfg Config) (*Service, error) {
	if cfg.Panel == nil || cfg.Disks == nil || cfg.Target == nil || cfg.Provision == nil {
		return nil, errors.New("boot: Panel, Disks, Target and Provision are required")
	}
	if cfg.Portal == "" {
		return nil, errors.New("boot: Portal (the iSCSI address devices reach) is required")
	}
	if cfg.BootPort == 0 {
		cfg.BootPort = 8080
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Cache == nil {
		cfg.Cache, _ = OpenCache("")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.PanelTimeout, 3*time.Second)
	def(&cfg.ProvisionWait, 8*time.Second)
	def(&cfg.RetryPause, 3*time.Second)
	def(&cfg.RebootPause, 10*time.Second)
	def(&cfg.VersionsTTL, 2*time.Second)
	def(&cfg.ReconcileEvery, 30*time.Second)
	def(&cfg.ReportTimeout, 15*time.Second)
	def(&cfg.ReportRetry, time.Second)
	def(&cfg.LoginWindow, 30*time.Second)
	cfg.Outcomes = cfg.Outcomes.withDefaults()
	def(&cfg.OutcomePoll, min(max(cfg.Outcomes.UpAfter/20, 50*time.Millisecond), time.Second))
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{
		cfg: cfg, log: cfg.Logger,
		versions: map[uint]cachedVersions{},
		inflight: map[uint]*flight{},
		logins:   map[string]pendingLogin{},
		vdisks:   map[uint]uint{},
		rready:   make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	s.SetBounds(cfg.MaxProvisions, cfg.MaxLogins)
	src, _ := cfg.Target.(activitySource)
	s.out = newOutcomes(cfg.Outcomes, src, cfg.Now, s.decided)
	s.done.Add(1)
	go s.background()
	return s, nil
}

// Close stops the background work, sends what is queued (the boots still watched as
// unknown) and writes the cache.
func (s *Service) Close() error {
	select {
	case <-s.stop:
	default:
		s.out.close()
		close(s.stop)
	}
	s.done.Wait()
	return s.cfg.Cache.Flush()
}

// background sends boot reports to the panel in batches and flushes the cache: neither
// belongs on a device's hot path.
func (s *Service) background() {
	defer s.done.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	reconcile := time.NewTicker(s.cfg.ReconcileEvery)
	defer reconcile.Stop()
	watch := time.NewTicker(s.cfg.OutcomePoll)
	defer watch.Stop()
	q := reportQueue{retry: s.cfg.ReportRetry}
	for {
		select {
		case <-s.rready:
			// Delivered on the tick, not as a batch fills: during a boot storm the
			// devices' answers come first, and the panel gets a few large deliveries
			// instead of one per batch. Half the bound pending goes at once, so a
			// storm larger than the bound loses nothing while the panel answers.
			s.takeReports(&q)
			if len(q.pending) >= sendAtOnce {
				s.sendReports(&q, false)
			}
		case <-watch.C:
			s.out.poll()
		case <-reconcile.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if _, err := s.restore(ctx, false); err != nil {
				s.log.Warn("boot: reconcile exports", "err", err)
			}
			cancel()
		case <-tick.C:
			s.takeReports(&q)
			s.sendReports(&q, false)
			if err := s.cfg.Cache.Flush(); err != nil {
				s.log.Warn("boot cache", "err", err)
			}
		case <-s.stop:
			s.takeReports(&q)
			s.sendReports(&q, true)
			return
		}
	}
}

// takeReports moves the reports made since the last call into q.
func (s *Service) takeReports(q *reportQueue) {
	s.rmu.Lock()
	in := s.incoming
	s.incoming, s.spare = s.spare[:0], nil
	s.rmu.Unlock()
	dropped := false
	for _, r := range in {
		if q.add(r) {
			dropped = true
			s.waiting.Add(-1)
		}
	}
	if dropped {
		s.log.Warn("boot reports: the panel has been unreachable too long, the oldest are dropped", "kept", maxPendingReports, "dropped", q.dropped)
	}
	clear(in) // the reports' strings are not kept alive by the spare slice
	s.rmu.Lock()
	if s.spare == nil && cap(in) <= maxPendingReports {
		s.spare = in[:0]
	}
	s.rmu.Unlock()
}

// decided reports a watched boot's result to the panel and the metrics.
func (s *Service) decided(r wire.Report, v verdict) {
	if s.log.Enabled(context.Background(), slog.LevelInfo) { // a storm decides a boot per request: no boxing when off
		s.log.Info("boot: result", "device", r.DeviceID, "group", r.GroupID, "version", r.Version, "result", r.Result,
			"up_ms", r.UpMS, "why", r.Why)
	}
	if ro, ok := s.cfg.Observer.(ResultObserver); ok {
		ro.BootResult(v.result, time.Duration(r.UpMS)*time.Millisecond)
	}
	s.report(r)
}

// Boot reports are delivered once a second, or at once when sendAtOnce are pending, in
// batches of at most reportBatch. While the panel cannot be reached, at most
// maxPendingReports are kept (the oldest go first) and sent again after a pause that
// doubles from Config.ReportRetry up to maxReportRetry.
const (
	reportBatch       = 256
	maxPendingReports = 4096
	sendAtOnce        = maxPendingReports / 2
	maxReportRetry    = 30 * time.Second
)

// reportQueue is the boot reports not yet delivered, oldest first. A report is the only
// record of a boot: a device that booted does not ask again, so a report is kept until
// the panel has taken it (or refused it for good), not dropped on the first failure.
type reportQueue struct {
	pending []wire.Report
	retry   time.Duration // the first pause after a failed delivery
	pause   time.Duration // the current pause; 0 after a delivery
	next    time.Time     // no delivery before
	dropped uint64        // reports dropped because too many were pending
}

// add queues r, dropping the oldest report beyond maxPendingReports; it reports whether
// one was dropped.
func (q *reportQueue) add(r wire.Report) bool {
	q.pending = append(q.pending, r)
	if len(q.pending) <= maxPendingReports {
		return false
	}
	q.pending = slices.Delete(q.pending, 0, len(q.pending)-maxPendingReports)
	q.dropped++
	return true
}

// failed schedules the next delivery after a doubling pause.
func (q *reportQueue) failed(now time.Time) {
	q.pause = min(max(2*q.pause, q.retry), maxReportRetry)
	q.next = now.Add(q.pause)
}

// sendReports delivers the pending reports, a batch at a time, unless a failed delivery's
// pause is running (final: the service stops, one last try whatever the pause). A report
// the panel refuses (4xx: asking again the same way will not help) is dropped; on any
// other failure (unreachable, a timeout, a 5xx) the reports stay for the next try.
func (s *Service) sendReports(q *reportQueue, final bool) {
	if len(q.pending) == 0 || (!final && time.Now().Before(q.next)) {
		return
	}
	for len(q.pending) > 0 {
		n := min(len(q.pending), reportBatch)
		timeout := s.cfg.ReportTimeout
		if final {
			timeout = s.cfg.PanelTimeout // a stopping agent does not wait long for an absent panel
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := s.cfg.Panel.Booted(ctx, q.pending[:n])
		cancel()
		var se *wire.StatusError
		switch {
		case err == nil:
		case errors.As(err, &se) && se.Status < 500:
			s.log.Warn("boot reports refused by the panel, dropped", "n", n, "err", err)
		default:
			q.failed(time.Now())
			s.log.Info("boot reports not delivered, kept for the next try", "n", len(q.pending), "retry_in", q.pause, "err", err)
			return
		}
		q.pending = slices.Delete(q.pending, 0, n)
		s.waiting.Add(-int64(n))
		q.pause, q.next = 0, time.Time{}
	}
}

// report queues r for the panel; beyond maxPendingReports waiting to be taken, r is
// dropped (the background takes them at least every second).
func (s *Service) report(r wire.Report) {
	s.rmu.Lock()
	n := len(s.incoming)
	if n < maxPendingReports {
		s.incoming = append(s.incoming, r)
		n++
		s.waiting.Add(1)
	}
	s.rmu.Unlock()
	if n == sendAtOnce {
		select {
		case s.rready <- struct{}{}:
		default:
		}
	}
}

// ReportsWaiting counts the boot reports the panel has not taken yet: made, queued, or
// being delivered.
func (s *Service) ReportsWaiting() int { return int(s.waiting.Load()) }

// ServeHTTP answers GET /boot.ipxe as Endpoint does (answerQuery); the agent serves it
// through Endpoint, this form is for an http.ServeMux.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, s.answerQuery(r.Context(), r.URL.Query().Get)) //nolint:errcheck // the device is gone
}

// maxHops bounds the chain of redirects one boot may follow: a device is sent to the
// server that holds its version or its clone, which boots it, so a legitimate chain is
// one or two hops. More means servers that each believe another holds the disk.
const maxHops = 3

// Script returns the iPXE script of one boot request. It never fails: whatever goes wrong
// becomes a script that says so and reboots (or asks again).
func (s *Service) Script(ctx context.Context, macIn, uuidIn string, menuGroup uint) string {
	return s.script(ctx, macIn, uuidIn, menuGroup, 0)
}

// script is Script for a request that other servers redirected hop times.
func (s *Service) script(ctx context.Context, macIn, uuidIn string, menuGroup uint, hop int) string {
	mac, err := wire.NormalizeMAC(macIn)
	if err != nil {
		return RebootScript(fmt.Sprintf("bad MAC address %q", macIn), s.cfg.RebootPause)
	}
	// Asking again ends the boot this server was watching: it did not stay up.
	s.out.asked(mac)
	uuid := wire.NormalizeUUID(uuidIn)
	if uuid == "" {
		return RebootScript("this machine reports no SMBIOS UUID: its disk cannot be protected", s.cfg.RebootPause)
	}
	if s.cfg.View != nil {
		if info, fresh, ok := s.cfg.View.Lookup(mac, menuGroup); ok {
			stale := ""
			if !fresh {
				stale = "has not confirmed this server's view within its lease"
			}
			return s.answer(ctx, mac, uuid, info, menuGroup, stale, hop)
		}
	}
	// A device the cache knows gets a quick fallback when the panel is slow; for one it
	// does not (a first boot, registration) there is nothing to fall back to: wait longer.
	timeout := s.cfg.PanelTimeout
	if _, _, known := s.cfg.Cache.Get(mac); !known {
		timeout *= 5
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	info, err := s.cfg.Panel.Boot(pctx, wire.Query{ServerID: s.cfg.ServerID, MAC: mac, UUID: uuid, GroupID: menuGroup})
	cancel()
	offline := ""
	if err != nil {
		cached, at, ok := s.cfg.Cache.Get(mac)
		if !ok {
			s.log.Warn("boot: panel unreachable, device unknown here", "mac", mac, "err", err)
			return RebootScript("the panel is unreachable and this server does not know this device yet", s.cfg.RebootPause)
		}
		s.log.Info("boot: panel unreachable, answering from the cache", "mac", mac, "cached_at", at, "err", err)
		info, offline = cached, "is unreachable"
	} else {
		s.cfg.Cache.Put(mac, info)
	}
	return s.answer(ctx, mac, uuid, info, menuGroup, offline, hop)
}

// answer turns the device's Info (from the panel, the view or the cache) into its script.
// offline, when not "", says why the panel's word is missing (strict groups then do not boot).
func (s *Service) answer(ctx context.Context, mac, uuid string, info *wire.Info, menuGroup uint, offline string, hop int) string {
	if !info.Registered {
		msg := info.Message
		if msg == "" {
			msg = "this device is not registered"
		}
		return RebootScript(fmt.Sprintf("%s (MAC %s)", msg, mac), s.cfg.RebootPause)
	}
	if info.Device.UUID != "" {
		// The disk is protected by the UUID the device registered with, not the one it claims now.
		uuid = info.Device.UUID
	}
	if info.Volume != nil {
		// A maintenance device boots its volume whatever its menu or group (it may have none:
		// a device registered through the API to install the first OS).
		return s.bootVolume(ctx, info, uuid, hop)
	}
	if info.Menu != nil && menuGroup == 0 {
		entries := info.Menu.Entries
		return MenuScript(info.Menu.Name, entries, 10*time.Second)
	}
	if info.Group == nil {
		return RebootScript("this device has no group and the network has no default group or menu", s.cfg.RebootPause)
	}
	return s.boot(ctx, mac, info, uuid, offline, hop)
}

func (s *Service) boot(ctx context.Context, mac string, info *wire.Info, uuid string, offline string, hop int) string {
	dev, g := info.Device, info.Group
	if offline != "" && g.Strict {
		return RebootScript(fmt.Sprintf("strict versioning: group %q needs the panel, which %s", g.Name, offline), s.cfg.RebootPause)
	}
	in := DecideInput{Strict: g.Strict, Lazy: g.Lazy, Locked: dev.Locked, Assigned: g.Assigned,
		Maintenance: g.Maintenance && g.MaintenanceDevice == dev.ID, Canary: g.Canary}
	if dev.CloneVersion > 0 && dev.CloneGroupID == g.ID {
		in.Clone = dev.CloneVersion
		in.CloneElsewhere = dev.CloneServerID != 0 && dev.CloneServerID != s.cfg.ServerID
	}
	local, err := s.localVersions(ctx, g.ID)
	if err != nil {
		s.log.Warn("boot: local versions", "group", g.ID, "err", err)
		return RetryScript("this server cannot read its storage; asking again", s.cfg.RetryPause)
	}
	for n := range local {
		if s.holds(g, local, n) && n > in.Newest {
			in.Newest = n
		}
	}
	in.HasAssigned = g.Assigned > 0 && s.holds(g, local, g.Assigned)
	if g.Assigned > 0 {
		in.AssignedElsewhere = s.serverWith(info, g.Assigned) != nil
	}
	// A clone recorded here whose disk is gone (trashed by hand) is no clone.
	var devPath string
	iqn := wire.DeviceIQN(dev.NetworkID, dev.ID)
	if in.Clone > 0 && !in.CloneElsewhere {
		p, ok, err := s.devicePath(ctx, iqn, dev.ID)
		if err != nil {
			return RetryScript("this server cannot read its storage; asking again", s.cfg.RetryPause)
		}
		if !ok {
			in.Clone = 0
		}
		devPath = p
	}
	d := Decide(in)
	rep := wire.Report{ServerID: s.cfg.ServerID, DeviceID: dev.ID, GroupID: g.ID, Version: d.Version, Action: d.Action,
		NonCompliant: d.NonCompliant, Reason: d.Reason}
	banner := "clusterducks: device " + strconv.FormatUint(uint64(dev.ID), 10) + " boots group " + strconv.FormatUint(uint64(g.ID), 10) +
		" v" + strconv.Itoa(d.Version) + " from server " + strconv.FormatUint(uint64(s.cfg.ServerID), 10)
	switch d.Action {
	case wire.BootClone:
		return s.sanbootDevice(mac, iqn, dev, rep, uuid, devPath, banner)
	case wire.Provision:
		if offline != "" {
			if in.Clone > 0 {
				rep.Action, rep.Version = wire.BootClone, in.Clone
				return s.sanbootDevice(mac, iqn, dev, rep, uuid, devPath, fmt.Sprintf("%s (panel unreachable: v%d as is)", banner, in.Clone))
			}
			return RebootScript("the panel is unreachable: a new disk cannot be made now", s.cfg.RebootPause)
		}
		req := wire.ProvisionRequest{NetworkID: dev.NetworkID, DeviceID: dev.ID, GroupID: g.ID, ServerID: s.cfg.ServerID,
			Version: d.Version, VersionID: versionID(g, d.Version), UUID: uuid, Locked: dev.Locked, Revision: dev.Revision}
		if dev.CloneVersion > 0 {
			req.Reprovision, req.OldServerID = true, dev.CloneServerID
		}
		err := s.provision(ctx, req)
		switch {
		case err == nil:
		case errors.Is(err, errBusy):
			why := fmt.Sprintf("this server is making %d new disks already", s.maxProvisions.Load())
			if peer := s.provisionPeer(info, d.Version, in, hop); peer != nil {
				return s.redirect(fmt.Sprintf("%s; server %s holds v%d too", why, peer.Name, d.Version), peer, hop)
			}
			return s.busy(why)
		case errors.Is(err, ErrLocked):
			// Locked while this answer was being decided: the next request sees the lock.
			return RetryScript(fmt.Sprintf("device %d was just locked: it keeps its disk; asking again", dev.ID), s.cfg.RetryPause)
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			return RetryScript(fmt.Sprintf("preparing this device's disk (group %d v%d); please wait", g.ID, d.Version), s.cfg.RetryPause)
		case in.Clone > 0 && !g.Strict:
			s.log.Warn("boot: provisioning failed, booting the old clone", "device", dev.ID, "err", err)
			rep.Action, rep.Version = wire.BootClone, in.Clone
			return s.sanbootDevice(mac, iqn, dev, rep, uuid, devPath, banner)
		default:
			s.log.Warn("boot: provisioning failed", "device", dev.ID, "version", d.Version, "err", err)
			return RebootScript(fmt.Sprintf("preparing the disk failed: %v", err), s.cfg.RebootPause)
		}
		s.cfg.Cache.SetClone(mac, g.ID, d.Version, req.VersionID, s.cfg.ServerID)
		if s.cfg.View != nil {
			s.cfg.View.Provisioned(dev.ID, req.VersionID, s.cfg.ServerID)
		}
		p, ok, err := s.cfg.Disks.DevicePath(ctx, dev.ID)
		if err != nil || !ok {
			return RetryScript("the new disk is not visible yet; asking again", s.cfg.RetryPause)
		}
		return s.sanbootDevice(mac, iqn, dev, rep, uuid, p, banner)
	case wire.Redirect:
		var to *wire.ServerInfo
		if d.To == ToClone {
			to = findServer(info, dev.CloneServerID)
		} else {
			to = s.serverWith(info, g.Assigned)
		}
		if to == nil {
			return RebootScript(d.Reason+": no server to go to", s.cfg.RebootPause)
		}
		s.report(rep)
		return s.redirect(d.Reason, to, hop)
	case wire.Maintenance:
		if info.MasterServerID != 0 && info.MasterServerID != s.cfg.ServerID {
			if to := findServer(info, info.MasterServerID); to != nil {
				return s.redirect("the group head is on the master", to, hop)
			}
		}
		p, ok, err := s.cfg.Disks.GroupPath(ctx, g.ID)
		if err != nil || !ok {
			return RebootScript(fmt.Sprintf("group %d's head is not on this server", g.ID), s.cfg.RebootPause)
		}
		iqn := wire.GroupHeadIQN(dev.NetworkID, g.ID)
		if err := s.exportMaintenance(iqn, wire.Export{Kind: "group", ID: g.ID, NetworkID: dev.NetworkID, UUID: uuid}, p); err != nil {
			return RebootScript(fmt.Sprintf("exporting the group head failed: %v", err), s.cfg.RebootPause)
		}
		s.report(rep)
		return SanbootScript(fmt.Sprintf("clusterducks: device %d boots group %d's head read-write (maintenance)", dev.ID, g.ID),
			s.sanTarget(iqn), s.cfg.RebootPause)
	default: // Wait
		s.report(rep)
		return RebootScript(d.Reason, s.cfg.RebootPause)
	}
}

// bootVolume boots the volume the device maintains, read-write, from the master (which
// holds the volumes): on another server the device is sent to the master.
func (s *Service) bootVolume(ctx context.Context, info *wire.Info, uuid string, hop int) string {
	dev, vid := info.Device, info.Volume.ID
	if info.MasterServerID != 0 && info.MasterServerID != s.cfg.ServerID {
		if to := findServer(info, info.MasterServerID); to != nil {
			return s.redirect(fmt.Sprintf("volume %d is on the master", vid), to, hop)
		}
	}
	p, ok, err := s.cfg.Disks.VolumePath(ctx, vid)
	if err != nil {
		s.log.Warn("boot: volume path", "volume", vid, "err", err)
		return RetryScript("this server cannot read its storage; asking again", s.cfg.RetryPause)
	}
	if !ok {
		return RebootScript(fmt.Sprintf("volume %d is not on this server", vid), s.cfg.RebootPause)
	}
	iqn := wire.VolumeIQN(dev.NetworkID, vid)
	if err := s.exportMaintenance(iqn, wire.Export{Kind: "volume", ID: vid, NetworkID: dev.NetworkID, UUID: uuid}, p); err != nil {
		s.log.Warn("boot: export", "target", iqn, "err", err)
		return RebootScript(fmt.Sprintf("exporting the volume failed: %v", err), s.cfg.RebootPause)
	}
	s.report(wire.Report{ServerID: s.cfg.ServerID, DeviceID: dev.ID, Action: wire.Maintenance, Reason: fmt.Sprintf("volume %d in maintenance", vid)})
	return SanbootScript(fmt.Sprintf("clusterducks: device %d boots volume %d read-write (maintenance)", dev.ID, vid),
		s.sanTarget(iqn), s.cfg.RebootPause)
}

// sanbootDevice answers a device with the sanboot script of its own disk and reports
// the boot (rep), which it watches from then on; a device that cannot be answered so
// (its disk not visible, admission full) is told to ask again and nothing is reported.
func (s *Service) sanbootDevice(mac, iqn string, dev wire.DeviceInfo, rep wire.Report, uuid, path, banner string) string {
	if path == "" {
		return RetryScript("this device's disk is not visible yet; asking again", s.cfg.RetryPause)
	}
	if !s.admitLogin(iqn) {
		return s.busy(fmt.Sprintf("%d devices are logging in to this server already", s.maxLogins.Load()))
	}
	if err := s.export(iqn, wire.Export{Kind: "device", ID: dev.ID, NetworkID: dev.NetworkID, UUID: uuid}, path); err != nil {
		s.log.Warn("boot: export", "target", iqn, "err", err)
		return RebootScript(fmt.Sprintf("exporting this device's disk failed: %v", err), s.cfg.RebootPause)
	}
	s.out.served(mac, &rep, iqn, uuid)
	s.report(rep)
	return SanbootScript(banner, s.sanTarget(iqn), s.cfg.RebootPause)
}

// sanTarget is target iqn on this server as a device reaches it, with its CHAP
// credentials when the server requires CHAP.
func (s *Service) sanTarget(iqn string) SANTarget {
	t := SANTarget{Portal: s.cfg.Portal, IQN: iqn}
	if len(s.cfg.CHAPKey) > 0 {
		t.User, t.Secret = s.chapCredentials(iqn)
	}
	return t
}

// chapCredentials is CHAPCredentials of iqn with this server's key, derived once per
// target: every boot's export and script need them.
func (s *Service) chapCredentials(iqn string) (user, secret string) {
	if c, ok := s.chap.Load(iqn); ok {
		return c.([2]string)[0], c.([2]string)[1]
	}
	user, secret = CHAPCredentials(s.cfg.CHAPKey, iqn)
	s.chap.Store(iqn, [2]string{user, secret})
	return user, secret
}

// exportConfig is a target's configuration as built for a disk and an initiator.
type exportConfig struct {
	path, uuid string
	tc         iscsi.TargetConfig
}

// targetConfig is the configuration of target iqn for the disk at path and the device
// whose SMBIOS UUID is uuid, built once per target, disk and device: a known device's
// every boot exports its target again, and AddTarget only compares it with the live one.
func (s *Service) targetConfig(iqn, path, uuid string) iscsi.TargetConfig {
	if c, ok := s.configs.Load(iqn); ok {
		if c := c.(*exportConfig); c.path == path && c.uuid == uuid {
			return c.tc
		}
	}
	tc := TargetConfig(iqn, path, uuid, false)
	if len(s.cfg.CHAPKey) > 0 {
		user, secret := s.chapCredentials(iqn)
		tc.CHAP = &iscsi.CHAPConfig{User: user, Secret: secret}
	}
	s.configs.Store(iqn, &exportConfig{path: path, uuid: uuid, tc: tc})
	return tc
}

// devicePath is the device's disk: LUN 0 of its exported target when there is one (the
// LUN holds the disk open, and every flow that trashes a disk unexports it first, so no
// stat per boot), its block device otherwise, where a disk trashed by hand is no disk.
func (s *Service) devicePath(ctx context.Context, iqn string, id uint) (string, bool, error) {
	if p, ok := s.cfg.Target.LUNPath(iqn, 0); ok {
		return p, true, nil
	}
	return s.cfg.Disks.DevicePath(ctx, id)
}

// Export makes sure a target is there and records it for a restart; adding the same
// target again is a no-op, so the hot path pays one map lookup for a device already
// exported.
func (s *Service) Export(iqn string, e wire.Export, path string) error { return s.export(iqn, e, path) }

func (s *Service) export(iqn string, e wire.Export, path string) error {
	if e.Kind == "device" {
		s.dmu.Lock()
		e.VDiskID = s.vdisks[e.ID]
		s.dmu.Unlock()
	}
	if err := s.cfg.Target.AddTarget(s.targetConfig(iqn, path, e.UUID)); err != nil {
		return err
	}
	if e.Kind == "device" {
		if err := s.serveVDisk(context.Background(), iqn, e.VDiskID); err != nil {
			return err
		}
	}
	s.cfg.Cache.Exported(iqn, e, false)
	return nil
}

// serveVDisk makes LUN 1 of a device's exported target vdisk (0: no LUN 1). A vdisk whose
// zvol is not here is left out (the target still boots); a target not exported is left
// alone: its next export adds the LUN.
func (s *Service) serveVDisk(ctx context.Context, iqn string, vdisk uint) error {
	if vdisk == 0 {
		return s.cfg.Target.RemoveLUN(iqn, 1)
	}
	p, ok, err := s.cfg.Disks.VDiskPath(ctx, vdisk)
	if err != nil || !ok {
		if err == nil {
			s.log.Warn("boot: vdisk not on this server", "target", iqn, "vdisk", vdisk)
		}
		return err
	}
	err = s.cfg.Target.AddLUN(iqn, 1, iscsi.LUNConfig{Path: p})
	if errors.Is(err, iscsi.ErrLUNExists) {
		// Another vdisk was LUN 1 before (a detach the agent missed): this one replaces it.
		if err := s.cfg.Target.RemoveLUN(iqn, 1); err != nil {
			return err
		}
		err = s.cfg.Target.AddLUN(iqn, 1, iscsi.LUNConfig{Path: p})
	}
	if errors.Is(err, iscsi.ErrTargetNotFound) {
		return nil
	}
	return err
}

// AttachVDisk makes vdisk (0: none) LUN 1 of the device's target from now on: at once if
// the target is exported, and at every later export (boot, reprovisioning, restart).
// Leaving a device that has a session on its target (booted: its OS would lose a disk it
// uses) is activities.ErrDeviceBooted. Safe to repeat.
func (s *Service) AttachVDisk(ctx context.Context, networkID, deviceID, vdisk uint, leaving bool) error {
	iqn := wire.DeviceIQN(networkID, deviceID)
	if leaving {
		if n := s.cfg.Target.Sessions(iqn); n > 0 {
			return fmt.Errorf("device %d: %w (%d sessions)", deviceID, activities.ErrDeviceBooted, n)
		}
	}
	s.dmu.Lock()
	if vdisk == 0 {
		delete(s.vdisks, deviceID)
	} else {
		s.vdisks[deviceID] = vdisk
	}
	s.dmu.Unlock()
	if err := s.serveVDisk(ctx, iqn, vdisk); err != nil {
		return err
	}
	for _, e := range s.cfg.Cache.Exports() {
		if e.Kind == "device" && e.ID == deviceID {
			e.VDiskID = vdisk
			s.cfg.Cache.Exported(iqn, e, false)
		}
	}
	return nil
}

// exportMaintenance exports a group head or a volume to its maintenance device. The
// maintenance may have moved to another device while the target is still exported to the
// previous one (another ACL): that target, and the old device's session, goes first.
func (s *Service) exportMaintenance(iqn string, e wire.Export, path string) error {
	err := s.export(iqn, e, path)
	if errors.Is(err, iscsi.ErrTargetExists) {
		if err := s.Unexport(iqn); err != nil {
			return err
		}
		err = s.export(iqn, e, path)
	}
	return err
}

// provision runs one provisioning per device at a time on this agent; concurrent requests
// for the same device and version wait for the same result.
func (s *Service) provision(ctx context.Context, req wire.ProvisionRequest) error {
	s.pmu.Lock()
	f, ok := s.inflight[req.DeviceID]
	if !ok && int64(len(s.inflight)) >= s.maxProvisions.Load() {
		s.pmu.Unlock()
		return errBusy
	}
	if !ok || f.version != req.Version {
		f = &flight{version: req.Version, done: make(chan struct{})}
		s.inflight[req.DeviceID] = f
		go func() {
			// The work outlives the request that started it: the next request joins it.
			pctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			f.err = s.cfg.Provision.Provision(pctx, req)
			close(f.done)
			s.pmu.Lock()
			if s.inflight[req.DeviceID] == f {
				delete(s.inflight, req.DeviceID)
			}
			s.pmu.Unlock()
			s.forgetVersions(req.GroupID)
		}()
	}
	s.pmu.Unlock()
	wait := time.NewTimer(s.cfg.ProvisionWait)
	defer wait.Stop()
	select {
	case <-f.done:
		return f.err
	case <-wait.C:
		return context.DeadlineExceeded
	case <-ctx.Done():
		return ctx.Err()
	}
}

// localVersions lists the group's versions on this server, reused for VersionsTTL so a
// boot storm costs one storage listing per group, not one per device.
func (s *Service) localVersions(ctx context.Context, groupID uint) (map[int]string, error) {
	s.vmu.Lock()
	c, ok := s.versions[groupID]
	s.vmu.Unlock()
	if ok && time.Since(c.at) < s.cfg.VersionsTTL {
		return c.v, nil
	}
	v, err := s.cfg.Disks.Versions(ctx, groupID)
	if err != nil {
		return nil, err
	}
	s.vmu.Lock()
	s.versions[groupID] = cachedVersions{v: v, at: time.Now()}
	s.vmu.Unlock()
	return v, nil
}

// forgetVersions drops the cached list after work that may have changed it.
func (s *Service) forgetVersions(groupID uint) {
	s.vmu.Lock()
	delete(s.versions, groupID)
	s.vmu.Unlock()
}

// holds reports whether this server holds version n of g: the snapshot exists and, when
// the panel knows the version's guid, has that guid (DESIGN §6: a copy counts only once
// its guid matches the master's).
func (s *Service) holds(g *wire.GroupInfo, local map[int]string, n int) bool {
	guid, ok := local[n]
	if !ok {
		return false
	}
	for _, v := range g.Versions {
		if v.Number == n {
			return v.GUID == "" || guid == "" || v.GUID == guid
		}
	}
	// A snapshot the panel does not list as a ready version (pending publish, deleted) is not bootable.
	return false
}

// serverWith picks another server that holds version n of the device's group.
func (s *Service) serverWith(info *wire.Info, n int) *wire.ServerInfo {
	if others := s.othersWith(info, n); len(others) > 0 {
		return others[0]
	}
	return nil
}

// othersWith is every other server of the network that holds version n of the group.
func (s *Service) othersWith(info *wire.Info, n int) []*wire.ServerInfo {
	var out []*wire.ServerInfo
	for _, v := range info.Group.Versions {
		if v.Number != n {
			continue
		}
		for _, id := range v.Servers {
			if id != s.cfg.ServerID {
				if srv := findServer(info, id); srv != nil {
					out = append(out, srv)
				}
			}
		}
	}
	return out
}

// provisionPeer is the server a device whose new disk this server has no room to make
// now is sent to instead: another server holding version n, picked by the device's id so
// that a storm spreads over every holder. Only a device's first request is sent on (a
// redirected one that meets a full server there is told to ask again, so a device is
// never passed around), and only one with no disk on this server to keep.
func (s *Service) provisionPeer(info *wire.Info, n int, in DecideInput, hop int) *wire.ServerInfo {
	if hop > 0 || (in.Clone > 0 && !in.CloneElsewhere) {
		return nil
	}
	peers := s.othersWith(info, n)
	if len(peers) == 0 {
		return nil
	}
	return peers[int(info.Device.ID)%len(peers)]
}

func findServer(info *wire.Info, id uint) *wire.ServerInfo {
	for i := range info.Servers {
		if info.Servers[i].ID == id {
			return &info.Servers[i]
		}
	}
	return nil
}

func versionID(g *wire.GroupInfo, n int) uint {
	for _, v := range g.Versions {
		if v.Number == n {
			return v.ID
		}
	}
	return 0
}

func (s *Service) bootURL(srv *wire.ServerInfo) string {
	return "http://" + net.JoinHostPort(srv.IP, strconv.Itoa(s.cfg.BootPort)) + "/boot.ipxe"
}

// redirect sends the device to another server's boot endpoint, counting the hop; past
// maxHops the answer is a reboot loop that says why (two servers each sure the other
// holds the disk would otherwise pass the device back and forth for ever).
func (s *Service) redirect(why string, to *wire.ServerInfo, hop int) string {
	if hop >= maxHops {
		s.log.Warn("boot: redirect loop", "to", to.ID, "hops", hop, "why", why)
		return RebootScript(fmt.Sprintf("%s, but this boot was already redirected %d times and no server could boot it: check which servers hold its versions", why, hop), s.cfg.RebootPause)
	}
	return RedirectScript(why, s.bootURL(to)+"?hop="+strconv.Itoa(hop+1))
}

// Restore exports again what this server exported before a restart: the panel's list,
// or the cache's when the panel is unreachable. Disks that are gone are skipped. With the
// panel's list, group heads and volumes it no longer lists (maintenance ended) are
// unexported; device targets are only ever removed by their device workflow, which knows
// when a clone is replaced.
func (s *Service) Restore(ctx context.Context) (int, error) { return s.restore(ctx, true) }

// restore is Restore; without devices it leaves device targets alone: while the agent
// runs they belong to the device workflows and the boot path (re-adding one while its
// workflow swaps the disk would serve the old disk).
func (s *Service) restore(ctx context.Context, devices bool) (int, error) {
	pctx, cancel := context.WithTimeout(ctx, s.cfg.PanelTimeout)
	exports, err := s.cfg.Panel.Exports(pctx)
	cancel()
	if err != nil {
		s.log.Info("boot: panel unreachable, restoring exports from the cache", "err", err)
		exports = s.cfg.Cache.Exports()
	} else {
		want := map[wire.Export]bool{}
		for _, e := range exports {
			want[wire.Export{Kind: e.Kind, ID: e.ID, NetworkID: e.NetworkID}] = true
		}
		for _, e := range s.cfg.Cache.Exports() {
			if e.Kind != "device" && !want[wire.Export{Kind: e.Kind, ID: e.ID, NetworkID: e.NetworkID}] {
				iqn := e.IQN()
				if err := s.Unexport(iqn); err != nil {
					s.log.Warn("boot: unexport", "target", iqn, "err", err)
				} else {
					s.log.Info("boot: unexported, no longer wanted", "target", iqn)
				}
			}
		}
	}
	n := 0
	var errs []error
	for _, e := range exports {
		if e.Kind == "device" && !devices {
			// While the agent runs, a device's target is its workflow's and its LUN 1 (the
			// vdisk) the agent's own AttachVDisk: the panel records a move after the agent
			// made it, so its list may lag behind (and serve a vdisk twice).
			continue
		}
		if e.Kind == "device" {
			s.dmu.Lock()
			if e.VDiskID == 0 {
				delete(s.vdisks, e.ID)
			} else {
				s.vdisks[e.ID] = e.VDiskID
			}
			s.dmu.Unlock()
		}
		var path string
		var ok bool
		var perr error
		switch e.Kind {
		case "device":
			path, ok, perr = s.cfg.Disks.DevicePath(ctx, e.ID)
		case "group":
			path, ok, perr = s.cfg.Disks.GroupPath(ctx, e.ID)
		case "volume":
			path, ok, perr = s.cfg.Disks.VolumePath(ctx, e.ID)
		default:
			continue
		}
		iqn := e.IQN()
		if perr != nil {
			errs = append(errs, perr)
			continue
		}
		if !ok {
			continue
		}
		export := s.export
		if e.Kind != "device" {
			export = s.exportMaintenance
		}
		if err := export(iqn, e, path); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Unexport removes a target and forgets it.
func (s *Service) Unexport(iqn string) error {
	if err := s.cfg.Target.RemoveTarget(iqn); err != nil {
		return err
	}
	s.cfg.Cache.Exported(iqn, wire.Export{}, true)
	s.configs.Delete(iqn)
	return nil
}
