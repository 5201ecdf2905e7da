package storage

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage/ktls"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/time/rate"
)

// ReplicationZFS is what replication needs of zfs (package zfs; a fake in unit tests).
// Each call is one zfs command: in a loaded or emulated server each costs from a fraction
// of a second to seconds, so a transfer asks as few as it can (State lists a dataset's
// snapshots and properties at once; Hold and Release take every snapshot at once; Send
// tells the stream's estimated size).
type ReplicationZFS interface {
	State(ctx context.Context, dataset string) (*zfs.State, error)
	Property(ctx context.Context, name, prop string) (string, error)
	AbortReceive(ctx context.Context, dataset string) error
	TokenTarget(ctx context.Context, token string) (string, error)
	Hold(ctx context.Context, tag string, snapshots ...string) error
	Release(ctx context.Context, tag string, snapshots ...string) error
	Holds(ctx context.Context, root string) (map[string][]string, error)
	Send(ctx context.Context, a zfs.SendArgs) (stream io.ReadCloser, size int64, err error)
	Receive(ctx context.Context, a zfs.ReceiveArgs, r io.Reader) error
	DestroySnapshot(ctx context.Context, snapshot string) error
	// StreamGUIDs reads, from a stream's first bytes, the guids of the one snapshot it
	// makes and of its base; ok is false when it cannot tell (zfs.StreamGUIDs).
	StreamGUIDs(head []byte) (to, from string, ok bool)
}

var _ ReplicationZFS = (*zfs.ZFS)(nil)

// Replication's defaults.
const (
	// DefaultMaxSends is how many slaves a master sends to at once; more are told "busy"
	// and retry, so a slow slave takes one slot and never holds back the others.
	DefaultMaxSends = 4
	// DefaultStall is how long a receive may go without a byte before it is cut and retried
	// (from its resume token).
	DefaultStall = 60 * time.Second
)

var (
	datasetID = regexp.MustCompile(`^[0-9]+$`)
	snapName  = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,200}$`)
)

// replicated reports whether rel (relative to the pool) is a dataset a master may send:
// one directly under a replicated root, named by its id.
func replicated(rel string) bool {
	for _, root := range wire.ReplicatedRoots {
		if id, ok := strings.CutPrefix(rel, root); ok && datasetID.MatchString(id) {
			return true
		}
	}
	return false
}

// ReplicationServer is the master's side: it streams zfs send to the slaves of its own
// network that ask, and keeps a hold on each slave's incremental base. It never receives.
type ReplicationServer struct {
	ZFS      ReplicationZFS
	Pool     string
	Self     wire.AgentIdentity
	MaxSends int // default DefaultMaxSends
	// BodyWait bounds the wait for a send request's body once its headers came (the
	// slave lists its copy meanwhile); default a minute.
	BodyWait time.Duration
	Log      *slog.Logger
	// Metrics count what is sent to each slave (replicate_metrics.go); nil: nothing.
	Metrics ReplicationMetrics
	slots   chan struct{}
	// releasing are the acknowledgements' releases still running, by tag and dataset: a
	// send for the same slave and dataset waits for its end before placing its holds.
	releasing sync.Map // tag + " " + dataset -> chan struct{} (closed at the end)
	released  sync.WaitGroup
	// sent is each slave's last complete stream of a dataset, by tag and dataset: its
	// acknowledgement then places no hold (the send did) and lists nothing.
	sent sync.Map // tag + " " + dataset -> sentHolds
	// acked is each slave's last acknowledged snapshot of a dataset, by tag and dataset:
	// the base its next incremental is started from before its request's body.
	acked sync.Map // tag + " " + dataset -> ackedBase
}

// ackedBase is a slave's last acknowledged snapshot of a dataset (its full name and
// guid) and whether the dataset travels raw (encrypted).
type ackedBase struct {
	snap, guid string
	raw        bool
}

// sentHolds is what a complete send left for its acknowledgement: the snapshot it
// streamed (held for the slave; the slave's base once acknowledged) and the snapshots
// whose holds the acknowledgement releases.
type sentHolds struct {
	ackedBase
	release []string
}

// Handler serves the replication endpoints. It expects a TLS server that required and
// verified a client certificate of the panel's CA.
func (s *ReplicationServer) Handler() http.Handler {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	s.slots = make(chan struct{}, max(cmp.Or(s.MaxSends, DefaultMaxSends), 1))
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+wire.PathReplicationSend, s.send)
	mux.HandleFunc("POST "+wire.PathReplicationAck, s.ack)
	return mux
}

func replError(w http.ResponseWriter, status int, code, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(wire.ReplicationError{Code: code, Message: fmt.Sprintf(format, args...)})
}

// peer is the verified identity of the slave asking, or false (an answer was sent) when
// it is not a server of this network.
func (s *ReplicationServer) peer(w http.ResponseWriter, r *http.Request) (wire.AgentIdentity, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		replError(w, http.StatusForbidden, wire.CodeForbidden, "a client certificate is required")
		return wire.AgentIdentity{}, false
	}
	id, err := wire.IdentityOf(r.TLS.PeerCertificates[0])
	if err != nil {
		replError(w, http.StatusForbidden, wire.CodeForbidden, "%v", err)
		return id, false
	}
	if id.NetworkID != s.Self.NetworkID || id.ServerID == s.Self.ServerID {
		replError(w, http.StatusForbidden, wire.CodeForbidden, "server %d of network %d is not a slave of network %d", id.ServerID, id.NetworkID, s.Self.NetworkID)
		return id, false
	}
	return id, true
}

// statusOf maps a zfs failure to the answer a slave acts on.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, zfs.ErrStaleToken):
		return http.StatusGone, wire.CodeStaleToken
	case errors.Is(err, activities.ErrDatasetNotFound):
		return http.StatusNotFound, wire.CodeNotFound
	}
	return http.StatusInternalServerError, wire.CodeFailed
}

func (s *ReplicationServer) send(w http.ResponseWriter, r *http.Request) {
	slave, ok := s.peer(w, r)
	if !ok {
		return
	}
	kw, kernel := w.(*kernelWriter) // over wire.ProtoKernelStream
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		replError(w, http.StatusServiceUnavailable, wire.CodeBusy, "sending to %d slaves already", cap(s.slots))
		return
	}
	ctx := r.Context()
	begun := time.Now()
	// The dataset named before the body is listed while the slave writes the body (it
	// lists its own copy first): the two listings overlap. When the request names its
	// snapshot too, and this slave acknowledged a snapshot of the dataset before, the
	// incremental from that one is started meanwhile as well (speculate).
	tag := wire.HoldTag(slave.ServerID)
	var early chan listed
	var spec *speculation
	if ds := r.Header.Get(wire.HeaderDataset); replicated(ds) {
		early = make(chan listed, 1)
		go func() {
			st, err := s.ZFS.State(ctx, s.Pool+"/"+ds)
			early <- listed{ds, st, err}
		}()
		snap := r.Header.Get(wire.HeaderSnapshot)
		if base, known := s.acked.Load(tag + " " + s.Pool + "/" + ds); known && snapName.MatchString(snap) {
			spec = &speculation{ch: make(chan *speculated, 1)}
			defer spec.drop()
			go func() { spec.ch <- s.speculate(ctx, tag, s.Pool+"/"+ds, snap, base.(ackedBase)) }()
		}
	}
	// The body comes once the slave has listed its copy; a slave that never sends it
	// gives its sending slot back after BodyWait. The bound ends with the body: the
	// stream that follows may take hours.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(cmp.Or(s.BodyWait, time.Minute)))
	var req wire.SendRequest
	err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req)
	_ = rc.SetReadDeadline(time.Time{})
	if err != nil {
		replError(w, http.StatusBadRequest, wire.CodeBadRequest, "body: %v", err)
		return
	}
	if kernel && req.BytesPerSecond > 0 {
		if err := kw.pace(req.BytesPerSecond); err != nil {
			replError(w, http.StatusInternalServerError, wire.CodeFailed, "pace the stream at %d B/s: %v", req.BytesPerSecond, err)
			return
		}
	}
	var held []string // the dataset's snapshots held before this send, any tag
	args, from, target, guid, err := s.plan(ctx, req, &held, early)
	planned := time.Since(begun)
	if err != nil {
		var re *wire.ReplicationError
		if errors.As(err, &re) {
			status := map[string]int{wire.CodeNotFound: http.StatusNotFound, wire.CodeForbidden: http.StatusForbidden,
				wire.CodeBadRequest: http.StatusBadRequest}[re.Code]
			replError(w, cmp.Or(status, http.StatusBadRequest), re.Code, "%s", re.Message)
			return
		}
		status, code := statusOf(err)
		s.Log.Warn("replication: send refused", "slave", slave.ServerID, "dataset", req.Dataset, "err", err)
		replError(w, status, code, "%s", zfsMessage(err))
		return
	}
	if slices.Contains(req.Have, guid) {
		w.Header().Set(wire.HeaderGUID, guid)
		w.WriteHeader(http.StatusNoContent) // the slave has it already
		return
	}
	hold := holds(s.Pool+"/"+req.Dataset, from, target)
	var stream io.ReadCloser
	var size int64
	var herr error
	sp := spec.take(args)
	if sp != nil {
		stream, size = sp.stream, sp.size // started before the body came, as the body asks
	} else {
		if !s.waitRelease(ctx, tag, s.Pool+"/"+req.Dataset) {
			return
		}
		stream, size, err, herr = s.start(ctx, tag, args, hold)
	}
	if err != nil {
		status, code := statusOf(err)
		replError(w, status, code, "%s", zfsMessage(err))
		return
	}
	if herr != nil {
		_ = stream.Close()
		replError(w, http.StatusInternalServerError, wire.CodeFailed, "hold %s: %s", strings.Join(hold, " "), zfsMessage(herr))
		return
	}
	if size == 0 {
		s.Log.Info("replication: no size estimate", "target", target)
	}
	if kernel && !kw.fits(size) {
		_ = stream.Close()
		replError(w, http.StatusMisdirectedRequest, wire.CodeUseHTTPS, "a stream of ~%d bytes is longer than kernel TLS may seal with one key: ask over HTTPS", size)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(wire.HeaderFrom, strings.TrimPrefix(from, s.Pool+"/"))
	w.Header().Set(wire.HeaderGUID, guid)
	w.Header().Set(wire.HeaderSize, strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	// The headers go at once: the slave learns the stream's guid and size, and times its
	// stall bound from here, not from the first 4 KiB.
	_ = rc.Flush()
	start := time.Now()
	started := start.Sub(begun) - planned // the hold and zfs send's start, to the headers
	var mw *meteredWriter
	if s.Metrics != nil {
		mw = newMeteredWriter(w, s.Metrics, slave.ServerID, size)
		defer mw.done()
	}
	var n int64
	var cerr error
	if kernel {
		// Kernel TLS: zfs send's pipe is spliced into the socket.
		n, cerr = kw.stream(stream, func(k int64) {
			if mw != nil {
				mw.count(k)
			}
		})
	} else {
		var out io.Writer = w
		if mw != nil {
			out = mw
		}
		if gc, ok := r.Context().Value(gatherKey{}).(*gatherConn); ok {
			_ = gc.gather(true)
			defer func() { _ = gc.gather(false) }() // before net/http ends the response
			out = gatheredWriter{w: out, rc: rc, gc: gc}
		}
		n, cerr = io.CopyBuffer(onlyWriter{out}, onlyReader{stream}, make([]byte, streamBuffer))
	}
	err = stream.Close()
	if cerr == nil && err == nil && held != nil {
		// The slave's acknowledgement of this snapshot needs no zfs command on its path:
		// this send held it, and the release of the others can be decided now.
		release := make([]string, 0, len(held)+1)
		for _, snap := range append(held, from) {
			if snap != target && strings.HasPrefix(snap, s.Pool+"/"+req.Dataset+"@") && !slices.Contains(release, snap) {
				release = append(release, snap)
			}
		}
		s.sent.Store(tag+" "+s.Pool+"/"+req.Dataset, sentHolds{ackedBase{snap: target, guid: guid, raw: args.Raw}, release})
	}
	s.Log.Info("replication: sent", "slave", slave.ServerID, "target", target, "from", from, "resumed", req.Token != "", "early", sp != nil, "kernel_tls", kernel,
		"bytes", n, "took", time.Since(start), "plan", planned.Round(time.Millisecond), "start", started.Round(time.Millisecond),
		"copy_err", cerr, "err", err)
}

// holds are the snapshots of dataset a send holds for its slave: the base the slave is
// about to build on and the target it is receiving. Neither may be destroyed before the
// slave acknowledges a newer snapshot (a cut stream's token needs its target to survive
// too). A base outside dataset (a clone's origin) is not held.
func holds(dataset, from, target string) []string {
	var hold []string
	for _, snap := range []string{from, target} {
		if snap != "" && strings.HasPrefix(snap, dataset+"@") {
			hold = append(hold, snap)
		}
	}
	return hold
}

// waitRelease waits for an acknowledgement's release for this slave (tag) and dataset,
// which could otherwise take the tag off a snapshot a send is about to hold; false when
// ctx ended first.
func (s *ReplicationServer) waitRelease(ctx context.Context, tag, dataset string) bool {
	if ch, ok := s.releasing.Load(tag + " " + dataset); ok {
		select {
		case <-ch.(chan struct{}):
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// start holds hold for the slave (one zfs hold) beside zfs send's start (each is a
// process, 0.3 s in a TCG guest): while zfs send runs, the kernel keeps its snapshots
// from being destroyed, and the caller sends no byte before the hold is in place (herr).
// The size comes with the stream (zfs send -P prints its estimate first).
func (s *ReplicationServer) start(ctx context.Context, tag string, args zfs.SendArgs, hold []string) (stream io.ReadCloser, size int64, err, herr error) {
	holdDone := make(chan error, 1)
	go func() { holdDone <- s.ZFS.Hold(ctx, tag, hold...) }()
	stream, size, err = s.ZFS.Send(ctx, args)
	herr = <-holdDone
	return stream, size, err, herr
}

// speculated is an incremental started before its request's body came (speculate).
type speculated struct {
	args   zfs.SendArgs
	stream io.ReadCloser
	size   int64
}

// speculation is the incremental a send request's headers let the master start early:
// take hands it over when the body asks for the same stream; drop ends one not taken.
type speculation struct {
	ch    chan *speculated // one value (nil: none was started)
	taken bool             // take received it (and closed it unless it was the one)
}

// take waits for the speculation and returns it when it streams args. One that streams
// anything else is closed unsent first: its zfs send must not wait, blocked on its pipe,
// for the end of the stream the request does ask for (hours, for a full one).
func (p *speculation) take(args zfs.SendArgs) *speculated {
	if p == nil {
		return nil
	}
	p.taken = true
	sp := <-p.ch
	if sp != nil && sp.args != args {
		_ = sp.stream.Close()
		return nil
	}
	return sp
}

// drop ends a speculation take never saw (the request ended before its plan): its zfs
// send is closed unsent. Its holds stay, as a cut stream's do, until the slave's next
// acknowledgement releases them.
func (p *speculation) drop() {
	if p == nil || p.taken {
		return
	}
	go func() {
		if sp := <-p.ch; sp != nil {
			_ = sp.stream.Close()
		}
	}()
}

// speculate starts the stream a slave that last acknowledged base most likely asks for
// next: the incremental from base to snap with nothing between (-i), started beside the
// dataset's listing rather than after it. The body that follows decides (take): the
// listing tells whether base is still the slave's newest common snapshot and whether
// snapshots lie between. nil when starting it failed (a snapshot missing): the request
// then plans and starts its stream as usual.
func (s *ReplicationServer) speculate(ctx context.Context, tag, full, snap string, base ackedBase) *speculated {
	args := zfs.SendArgs{Snapshot: full + "@" + snap, From: base.snap, Single: true, Raw: base.raw}
	if args.From == args.Snapshot || !strings.HasPrefix(args.From, full+"@") || !s.waitRelease(ctx, tag, full) {
		return nil
	}
	stream, size, err, herr := s.start(ctx, tag, args, holds(full, args.From, args.Snapshot))
	if err != nil {
		return nil
	}
	if herr != nil {
		_ = stream.Close()
		return nil
	}
	return &speculated{args: args, stream: stream, size: size}
}

// rawSend: an encrypted dataset travels as it is stored (zfs send -w).
func rawSend(st *zfs.State) bool {
	return st.Encryption != "" && st.Encryption != "off" && st.Encryption != "-"
}

// zfsMessage is a zfs failure as a peer may read it: the command's stderr, never more.
func zfsMessage(err error) string {
	var e *zfs.Error
	if errors.As(err, &e) {
		return strings.TrimSpace(e.Stderr)
	}
	return err.Error()
}

// listed is a listing of a dataset (relative to the pool) made before the request's body
// was read. The slave learns from its own listing whether it resumes a cut stream (or
// holds the snapshot already), so such a request's early listing is made for nothing.
type listed struct {
	dataset string
	state   *zfs.State
	err     error
}

// plan decides the stream of a request: its zfs send arguments, its base snapshot ("" for
// a full stream), the snapshot it ends at (full names) and that snapshot's guid. held
// gets the dataset's snapshots that carry a hold (full names; left nil for a resumed
// stream, which lists nothing). early, when not nil, brings the listing the request's
// header asked for before its body came.
func (s *ReplicationServer) plan(ctx context.Context, req wire.SendRequest, held *[]string, early <-chan listed) (zfs.SendArgs, string, string, string, error) {
	if req.Token != "" {
		target, err := s.ZFS.TokenTarget(ctx, req.Token)
		if err != nil {
			return zfs.SendArgs{}, "", "", "", err
		}
		ds, _, _ := strings.Cut(target, "@")
		if rel, ok := strings.CutPrefix(ds, s.Pool+"/"); !ok || !replicated(rel) {
			return zfs.SendArgs{}, "", "", "", &wire.ReplicationError{Code: wire.CodeForbidden, Message: "the token names a dataset that is not replicated"}
		}
		guid, err := s.ZFS.Property(ctx, target, "guid")
		if errors.Is(err, activities.ErrDatasetNotFound) {
			return zfs.SendArgs{}, "", "", "", fmt.Errorf("%s is gone: %w", target, zfs.ErrStaleToken)
		}
		if err != nil {
			return zfs.SendArgs{}, "", "", "", err
		}
		return zfs.SendArgs{Token: req.Token}, "", target, guid, nil
	}
	if !replicated(req.Dataset) {
		return zfs.SendArgs{}, "", "", "", &wire.ReplicationError{Code: wire.CodeForbidden, Message: fmt.Sprintf("dataset %q is not replicated", req.Dataset)}
	}
	if req.Snapshot != "" && !snapName.MatchString(req.Snapshot) {
		return zfs.SendArgs{}, "", "", "", &wire.ReplicationError{Code: wire.CodeBadRequest, Message: fmt.Sprintf("snapshot %q is not a snapshot name", req.Snapshot)}
	}
	full := s.Pool + "/" + req.Dataset
	// One listing: the snapshots with their guids, the encryption and the origin (made
	// while the body came, when the request named its dataset first).
	var l listed
	if early != nil {
		l = <-early
	}
	if l.dataset != req.Dataset { // none came, or of another dataset
		l.state, l.err = s.ZFS.State(ctx, full)
	}
	st, err := l.state, l.err
	if err != nil {
		return zfs.SendArgs{}, "", "", "", err
	}
	snaps := st.Snaps
	*held = make([]string, 0, len(st.Held))
	for _, name := range st.Held {
		*held = append(*held, full+"@"+name)
	}
	ti := len(snaps) - 1
	if req.Snapshot != "" {
		ti = slices.IndexFunc(snaps, func(x zfs.Snap) bool { return x.Name == req.Snapshot })
	}
	if ti < 0 {
		return zfs.SendArgs{}, "", "", "", &wire.ReplicationError{Code: wire.CodeNotFound, Message: fmt.Sprintf("%s has no snapshot %q", req.Dataset, req.Snapshot)}
	}
	args := zfs.SendArgs{Snapshot: full + "@" + snaps[ti].Name}
	guid := snaps[ti].GUID
	args.Raw = rawSend(st)
	// The newest common snapshot by guid (names may repeat with other contents).
	for i := ti - 1; i >= 0; i-- {
		if slices.Contains(req.Have, snaps[i].GUID) {
			args.From, args.Single = full+"@"+snaps[i].Name, i == ti-1
			return args, args.From, args.Snapshot, guid, nil
		}
	}
	// None: a clone builds on its origin when the slave has that.
	if origin := st.Origin; origin != "" {
		og, err := s.ZFS.Property(ctx, origin, "guid")
		if err != nil {
			return zfs.SendArgs{}, "", "", "", err
		}
		if slices.Contains(req.Have, og) {
			args.From, args.Single = origin, ti == 0
			return args, origin, args.Snapshot, guid, nil
		}
	}
	return args, "", args.Snapshot, guid, nil
}

func (s *ReplicationServer) ack(w http.ResponseWriter, r *http.Request) {
	slave, ok := s.peer(w, r)
	if !ok {
		return
	}
	var req wire.AckRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		replError(w, http.StatusBadRequest, wire.CodeBadRequest, "body: %v", err)
		return
	}
	if !replicated(req.Dataset) {
		replError(w, http.StatusForbidden, wire.CodeForbidden, "dataset %q is not replicated", req.Dataset)
		return
	}
	dataset, tag := s.Pool+"/"+req.Dataset, wire.HoldTag(slave.ServerID)
	base := ackedBase{guid: req.GUID}
	if v, ok := s.sent.LoadAndDelete(tag + " " + dataset); ok && v.(sentHolds).guid == req.GUID {
		// This agent's last send of the dataset to this slave streamed the snapshot and
		// held it for the slave: only the older holds are left to release.
		base = v.(sentHolds).ackedBase
		s.releaseLater(dataset, tag, v.(sentHolds).release)
	} else {
		release, kept, raw, err := moveHold(r.Context(), s.ZFS, dataset, req.GUID, tag)
		if err != nil {
			status, code := statusOf(err)
			replError(w, status, code, "%s", zfsMessage(err))
			return
		}
		base.snap, base.raw = kept, raw
		s.releaseLater(dataset, tag, release)
	}
	s.acked.Store(tag+" "+dataset, base) // the slave's next incremental starts from it
	if s.Metrics != nil {
		s.Metrics.Succeeded(slave.ServerID) // the slave verified the snapshot's guid
	}
	w.WriteHeader(http.StatusNoContent)
}

// moveHold puts tag on dataset's snapshot guid and returns the other held snapshots of
// the dataset, to take tag off: the slave's next incremental base is the only one kept
// for it. Two zfs commands: the listing (which tells the held snapshots) and one hold.
func moveHold(ctx context.Context, z ReplicationZFS, dataset, guid, tag string) (release []string, kept string, raw bool, err error) {
	st, err := z.State(ctx, dataset)
	if err != nil {
		return nil, "", false, err
	}
	i := slices.IndexFunc(st.Snaps, func(x zfs.Snap) bool { return x.GUID == guid })
	if i < 0 {
		return nil, "", false, fmt.Errorf("%s has no snapshot of guid %s: %w", dataset, guid, activities.ErrDatasetNotFound)
	}
	keep := st.Snaps[i].Name
	if err := z.Hold(ctx, tag, dataset+"@"+keep); err != nil {
		return nil, "", false, err
	}
	for _, name := range st.Held {
		if name != keep {
			release = append(release, dataset+"@"+name)
		}
	}
	return release, dataset + "@" + keep, rawSend(st), nil
}

// releaseLater takes tag off snapshots with one zfs release after the acknowledgement
// was answered: the slave's new base is held already, and the release (a pool sync)
// is only the old bases' clean-up, off the slave's path. One that carries only other
// slaves' tags is left as it is (zfs release reports "no such tag" for it). A release
// that fails is retried by the next acknowledgement, which releases every other held
// snapshot again.
func (s *ReplicationServer) releaseLater(dataset, tag string, snaps []string) {
	if len(snaps) == 0 {
		return
	}
	key := tag + " " + dataset
	done := make(chan struct{})
	if prev, loaded := s.releasing.Swap(key, done); loaded {
		<-prev.(chan struct{}) // one release per slave and dataset at a time
	}
	s.released.Add(1)
	go func() {
		defer s.released.Done()
		defer close(done)
		defer s.releasing.CompareAndDelete(key, done)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := s.ZFS.Release(ctx, tag, snaps...); err != nil {
			s.Log.Warn("replication: release after an acknowledgement", "dataset", dataset, "tag", tag, "snapshots", snaps, "err", err)
		}
	}()
}

// WaitReleases waits for the acknowledgements' releases under way.
func (s *ReplicationServer) WaitReleases() { s.released.Wait() }

// ReleaseReplicationHoldsInput names a slave whose holds a master drops (the slave was
// removed from the network).
type ReleaseReplicationHoldsInput struct {
	Pool    string // the master's pool
	SlaveID uint
}

// ReleaseReplicationHoldsResult lists the snapshots that were released.
type ReleaseReplicationHoldsResult struct {
	Released []string
}

// ReleaseReplicationHolds drops every hold the master keeps for a slave, on the master's
// queue. Repeating it finds nothing left to release.
func (a *Activities) ReleaseReplicationHolds(ctx context.Context, in ReleaseReplicationHoldsInput) (*ReleaseReplicationHoldsResult, error) {
	z := a.replZFS()
	res := &ReleaseReplicationHoldsResult{Released: []string{}}
	tag := wire.HoldTag(in.SlaveID)
	err := a.alive(ctx, func() error {
		holds, err := z.Holds(ctx, in.Pool+"/iscsi")
		if err != nil {
			return err
		}
		for snap, tags := range holds {
			if slices.Contains(tags, tag) {
				res.Released = append(res.Released, snap)
			}
		}
		slices.Sort(res.Released)
		return z.Release(ctx, tag, res.Released...)
	})
	return res, err
}

// SnapshotsInput names a dataset relative to the pool (iscsi/groups/7).
type SnapshotsInput struct {
	Pool    string
	Dataset string
}

// SnapshotsResult is a dataset's snapshots, oldest first, with guids; Exists is false when
// the dataset is not on this server, Partial when it holds a cut receive.
type SnapshotsResult struct {
	Exists    bool
	Partial   bool
	Snapshots []zfs.Snap
}

// Snapshots lists a dataset's snapshots with their guids (the reconcile compares master
// and slaves by them). Read only.
func (a *Activities) Snapshots(ctx context.Context, in SnapshotsInput) (*SnapshotsResult, error) {
	st, err := a.replZFS().State(ctx, in.Pool+"/"+in.Dataset)
	if errors.Is(err, activities.ErrDatasetNotFound) {
		return &SnapshotsResult{Snapshots: []zfs.Snap{}}, nil
	}
	if err != nil {
		return nil, activities.Wrap(err)
	}
	return &SnapshotsResult{Exists: true, Partial: st.ResumeToken != "", Snapshots: append([]zfs.Snap{}, st.Snaps...)}, nil
}

// ReplicateInput asks a slave's agent to pull one dataset from its master up to a
// snapshot, and to verify it by guid.
type ReplicateInput struct {
	MasterAddr string             // host:port of the master's replication endpoint
	Master     wire.AgentIdentity // whom the master's certificate must name
	Pool       string             // the slave's pool
	Dataset    string             // relative to the pools: iscsi/groups/7
	Snapshot   string             // v2
	// GUID is the master's guid of Snapshot: what the slave must end with. "" when the
	// panel does not record it (a volume's snapshot): the master's answer names it, and
	// the slave must end with that.
	GUID string
	// Origin is the dataset's origin snapshot relative to the pool (a group's volume
	// snapshot, iscsi/volumes/5@group-7): a new dataset is received as its clone.
	Origin         string
	BytesPerSecond int64 // 0: unlimited
	StallSeconds   int   // no byte for this long cuts the stream (retried); 0: DefaultStall
}

// ReplicateResult is what the slave holds at the end.
type ReplicateResult struct {
	Snapshot string
	GUID     string
	Bytes    int64 // received over the wire, every attempt of this activity together
	Resumed  bool  // this attempt continued a cut stream
	UpToDate bool  // the slave held it already
	// Snapshots are the slave's snapshots of the dataset at the end, oldest first: the
	// listing the guid was verified with (nil from agents that predate it).
	Snapshots []zfs.Snap
}

// ReplicateProgress is the activity's heartbeat details: a retry goes on counting bytes.
type ReplicateProgress struct {
	Bytes int64 // received, all attempts
	Size  int64 // the current stream's estimated size
	Done  int64 // received of the current stream
}

// Error types of Replicate a retry cannot fix.
const (
	TypeGUIDMismatch       = "GUIDMismatch"
	TypeReplicationRefused = "ReplicationRefused"
	// TypeBadInput: the input names no replicated dataset or snapshot (or, from agents
	// older than the master's guid in the answer, lacks the guid).
	TypeBadInput = "BadInput"
)

// ErrGUIDMismatch: the slave received a snapshot whose guid is not the master's.
var ErrGUIDMismatch = errors.New("received snapshot's guid differs from the master's")

// Replicate pulls one dataset from the master (see ReplicateInput), on the slave's queue:
// the rest of a cut stream when the slave holds one, else an incremental from the newest
// common snapshot (or its origin), else a full stream. It heartbeats the bytes received
// and cuts a stalled stream, which the retry resumes from the token. A retry after success
// finds the snapshot there and only acknowledges it again.
func (a *Activities) Replicate(ctx context.Context, in ReplicateInput) (*ReplicateResult, error) {
	var prog ReplicateProgress
	if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &prog)
	}
	// Heartbeat from the start, not only while bytes flow: listing snapshots and sizing
	// the stream take a while on a loaded server, and a silent attempt is timed out.
	var pub atomic.Pointer[ReplicateProgress]
	first := prog
	pub.Store(&first)
	stop := make(chan struct{})
	defer close(stop)
	if activity.IsActivity(ctx) {
		go func() {
			tick := time.NewTicker(a.heartbeatEvery())
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					activity.RecordHeartbeat(ctx, *pub.Load())
				}
			}
		}()
	}
	var res *ReplicateResult
	c, err := a.client(in)
	if err == nil {
		// One client for the whole run: the acknowledgement reuses the stream's connection.
		defer c.CloseIdleConnections()
		res, err = a.replicate(ctx, c, in, &prog, &pub)
	}
	if res != nil {
		res.Bytes = prog.Bytes
	}
	if errors.Is(err, ErrGUIDMismatch) {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), TypeGUIDMismatch, err)
	}
	var re *wire.ReplicationError
	if errors.As(err, &re) && (re.Code == wire.CodeForbidden || re.Code == wire.CodeBadRequest) {
		// The master refuses this slave or this dataset: asking again cannot change that.
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), TypeReplicationRefused, err)
	}
	return res, activities.Wrap(err)
}

func (a *Activities) replZFS() ReplicationZFS {
	if a.ReplicationZFS != nil {
		return a.ReplicationZFS
	}
	return a.ZFS
}

func (a *Activities) heartbeatEvery() time.Duration {
	if a.HeartbeatEvery <= 0 {
		return 5 * time.Second
	}
	return a.HeartbeatEvery
}

func (a *Activities) replicate(ctx context.Context, c *http.Client, in ReplicateInput, prog *ReplicateProgress, pub *atomic.Pointer[ReplicateProgress]) (*ReplicateResult, error) {
	if !replicated(in.Dataset) || !snapName.MatchString(in.Snapshot) {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("replicate: bad input %q@%q guid %q", in.Dataset, in.Snapshot, in.GUID), TypeBadInput, nil)
	}
	z := a.replZFS()
	local := in.Pool + "/" + in.Dataset
	res := &ReplicateResult{Snapshot: in.Snapshot, GUID: in.GUID}
	// Where a transfer's time goes, logged once it is verified: the listing, the master's
	// answer (connection, its listing, hold and zfs send's start), the stream, the
	// verifying listing and the acknowledgement.
	phases, last := []any{"dataset", local, "snapshot", in.Snapshot}, time.Now()
	mark := func(name string) {
		now := time.Now()
		phases, last = append(phases, name, now.Sub(last).Round(time.Millisecond)), now
	}
	// The request's headers go first, naming the dataset: the connection is made and the
	// master lists its dataset while this listing runs; the body follows it.
	p := a.startPull(ctx, c, in)
	defer p.abandon()
	// One listing: the guids the slave has and a cut stream's resume token.
	have, token, exists, snaps, err := a.localState(ctx, z, local)
	if err != nil {
		return nil, err
	}
	mark("list")
	if in.GUID != "" && slices.Contains(have, in.GUID) {
		p.abandon()
		res.UpToDate, res.Snapshots = true, snaps
		return res, a.ackMaster(ctx, c, in)
	}
	req := wire.SendRequest{Dataset: in.Dataset, Snapshot: in.Snapshot, Have: have}
	recv := zfs.ReceiveArgs{Dataset: local}
	if token != "" {
		req.Token = token
		res.Resumed = true
	} else if !exists && in.Origin != "" {
		origin := in.Pool + "/" + in.Origin
		og, err := z.Property(ctx, origin, "guid")
		if errors.Is(err, activities.ErrDatasetNotFound) {
			// Retryable: the workflow replicates the origin's volume first.
			return nil, fmt.Errorf("origin %s is not on this server yet", origin)
		}
		if err != nil {
			return nil, err
		}
		req.Have, recv.Origin = []string{og}, origin
	}
	resp, err := p.send(req)
	mark("answer")
	var re *wire.ReplicationError
	if errors.As(err, &re) && re.Code == wire.CodeStaleToken {
		// The master lost the token's snapshot: drop the partial receive, start again from
		// the newest common snapshot (never from scratch while one exists).
		if activity.IsActivity(ctx) {
			activity.GetLogger(ctx).Warn("stale resume token: aborting the partial receive", "dataset", local, "err", err)
		}
		if err := z.AbortReceive(ctx, local); err != nil {
			return nil, err
		}
		return a.replicate(ctx, c, in, prog, pub)
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		// Read to its end, the connection carries the acknowledgement next (no second
		// TLS handshake); zfs receive stops at the stream's last record.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	if resp.StatusCode == http.StatusNoContent {
		g := resp.Header.Get(wire.HeaderGUID)
		if in.GUID == "" && g != "" && slices.ContainsFunc(snaps, func(x zfs.Snap) bool { return x.Name == in.Snapshot && x.GUID == g }) {
			// The master named the guid, and the slave holds it: up to date.
			in.GUID, res.GUID = g, g
			res.UpToDate, res.Snapshots = true, snaps
			return res, a.ackOn(ctx, c, p, in)
		}
		return nil, fmt.Errorf("master says %s@%s (guid %s) is here, but it is not", in.Dataset, in.Snapshot, g)
	}
	if g := resp.Header.Get(wire.HeaderGUID); in.GUID == "" && req.Token == "" {
		if g == "" {
			return nil, fmt.Errorf("the master streams %s@%s without naming its guid", in.Dataset, in.Snapshot)
		}
		in.GUID, res.GUID = g, g // what the slave must end with
	}
	// A resumed stream ends at the snapshot it was cut in, which may be one before the
	// target (-I); a fresh one ends at the target.
	if g := resp.Header.Get(wire.HeaderGUID); req.Token == "" && g != in.GUID {
		return nil, fmt.Errorf("master streams guid %s, wanted %s: %w", g, in.GUID, ErrGUIDMismatch)
	}
	prog.Size, _ = strconv.ParseInt(resp.Header.Get(wire.HeaderSize), 10, 64)
	prog.Done = 0
	head := &headReader{ReadCloser: resp.Body, max: 4 << 10}
	var body io.ReadCloser = head
	if kb, ok := resp.Body.(*kernelBody); ok {
		// zfs receive reads the socket itself; the first record is peeked at for its guid.
		head.head, body = kb.peek(head.max), kb
		phases = append(phases, "kernel_tls", true)
	}
	if err := a.receive(ctx, z, in, recv, body, prog, pub); err != nil {
		if errors.Is(err, zfs.ErrNotResumable) && req.Token == "" {
			// A partial receive appeared since the token was read (an earlier attempt's
			// receive still ending): the next attempt resumes it.
			return nil, fmt.Errorf("%s: a partial receive is pending, resume it next: %w", local, err)
		}
		return nil, err
	}
	mark("stream")
	// The stream is read to its end: the connection carries the acknowledgement.
	finish := func() (*ReplicateResult, error) {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		err := a.ackOn(ctx, c, p, in)
		mark("ack")
		if err == nil && activity.IsActivity(ctx) {
			activity.GetLogger(ctx).Info("replication: received", append(phases, "bytes", prog.Done)...)
		}
		return res, err
	}
	// A stream of one snapshot names its guid in its first record, and zfs receive, which
	// ended well, made the snapshot with that guid: verified without a listing (a zfs
	// command, 0.2-0.3 s in a TCG guest). A compound or resumed stream is verified by
	// listing the dataset.
	if to, from, ok := z.StreamGUIDs(head.head); ok && req.Token == "" {
		if to != in.GUID {
			return nil, guidMismatch(local, in, to)
		}
		mark("verify")
		phases = append(phases, "verified_by", "stream")
		res.Snapshots = receivedOnto(snaps, from, zfs.Snap{Name: in.Snapshot, GUID: to})
		return finish()
	}
	after, err := z.State(ctx, local)
	if err != nil {
		return nil, err
	}
	mark("verify")
	phases = append(phases, "verified_by", "listing")
	snaps = after.Snaps
	i := slices.IndexFunc(snaps, func(x zfs.Snap) bool { return x.Name == in.Snapshot })
	if (i < 0 || in.GUID == "") && req.Token != "" {
		// A resumed stream ends with the snapshot it was cut in; the ones after it
		// (-I) come with a fresh incremental from there. Without the master's guid, a
		// fresh request gets it named (the master answers that the slave holds it).
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		r, err := a.replicate(ctx, c, in, prog, pub)
		if r != nil {
			r.Resumed = true
		}
		return r, err
	}
	if i < 0 || snaps[i].GUID != in.GUID {
		got := ""
		if i >= 0 {
			got = snaps[i].GUID
		}
		return nil, guidMismatch(local, in, got)
	}
	res.Snapshots = snaps
	return finish()
}

// guidMismatch: the slave's dataset local received in.Snapshot with guid got, not the
// master's.
func guidMismatch(local string, in ReplicateInput, got string) error {
	return fmt.Errorf("%s@%s: received guid %q, master's %s: %w", local, in.Snapshot, got, in.GUID, ErrGUIDMismatch)
}

// receivedOnto is a dataset's snapshots after a receive of one snapshot's stream that
// ended well: those before, up to the stream's base (guid from; a newer one would have
// failed the receive), then the received one. A full stream, or one based on a clone's
// origin, leaves only the received snapshot.
func receivedOnto(before []zfs.Snap, from string, got zfs.Snap) []zfs.Snap {
	i := slices.IndexFunc(before, func(x zfs.Snap) bool { return x.GUID == from })
	if from == "" || i < 0 {
		return []zfs.Snap{got}
	}
	return append(slices.Clone(before[:i+1]), got)
}

// headReader keeps the first bytes read through it (a stream's first record).
type headReader struct {
	io.ReadCloser
	head []byte
	max  int
}

func (h *headReader) Read(p []byte) (int, error) {
	n, err := h.ReadCloser.Read(p)
	if k := min(n, h.max-len(h.head)); k > 0 {
		h.head = append(h.head, p[:k]...)
	}
	return n, err
}

// localState is the slave's view of dataset in one listing: its snapshots' guids, the
// resume token of a cut stream ("" none), whether it exists, and its snapshots.
func (a *Activities) localState(ctx context.Context, z ReplicationZFS, dataset string) ([]string, string, bool, []zfs.Snap, error) {
	st, err := z.State(ctx, dataset)
	if errors.Is(err, activities.ErrDatasetNotFound) {
		return []string{}, "", false, []zfs.Snap{}, nil
	}
	if err != nil {
		return nil, "", false, nil, err
	}
	out := make([]string, len(st.Snaps))
	for i, s := range st.Snaps {
		out[i] = s.GUID
	}
	return out, st.ResumeToken, true, st.Snaps, nil
}

// receive feeds body into zfs receive through the bandwidth limit, heartbeating the
// bytes, and cuts it when no byte came for the stall bound.
func (a *Activities) receive(ctx context.Context, z ReplicationZFS, in ReplicateInput, recv zfs.ReceiveArgs, body io.ReadCloser, prog *ReplicateProgress, pub *atomic.Pointer[ReplicateProgress]) error {
	stall := DefaultStall
	if in.StallSeconds > 0 {
		stall = time.Duration(in.StallSeconds) * time.Second
	}
	if kb, ok := body.(*kernelBody); ok {
		return a.receiveKernel(ctx, z, recv, kb, stall, prog, pub)
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cr := &countingReader{r: body, ctx: rctx}
	cr.last.Store(time.Now().UnixNano())
	if in.BytesPerSecond > 0 {
		burst := int(min(in.BytesPerSecond, 256<<10))
		cr.limit = rate.NewLimiter(rate.Limit(in.BytesPerSecond), burst)
	}
	done := make(chan error, 1)
	go func() { done <- z.Receive(rctx, recv, cr) }()
	return a.watchReceive(ctx, rctx, cancel, done, receiving{
		progress: func(time.Time) (int64, time.Time) { return cr.n.Load(), time.Unix(0, cr.last.Load()) },
		cut:      func() { _ = body.Close() }, // unblocks a read waiting on the silent connection
	}, stall, prog, pub)
}

// receiving is how watchReceive follows a running receive: progress gives the bytes
// received so far and when the last one came; cut ends a receive whose context was
// cancelled (its input waits on a silent connection).
type receiving struct {
	progress func(now time.Time) (n int64, last time.Time)
	cut      func()
}

// watchReceive heartbeats a running receive's bytes until it ends (done) and cuts it
// when no byte came for the stall bound. rctx is the receive's context, cancel its
// cancel.
func (a *Activities) watchReceive(ctx, rctx context.Context, cancel context.CancelCauseFunc, done <-chan error, r receiving, stall time.Duration, prog *ReplicateProgress, pub *atomic.Pointer[ReplicateProgress]) error {
	tick := time.NewTicker(min(a.heartbeatEvery(), time.Second))
	defer tick.Stop()
	base := prog.Bytes
	update := func(now time.Time) time.Time {
		n, last := r.progress(now)
		prog.Done = n
		prog.Bytes = base + prog.Done
		snap := *prog
		pub.Store(&snap)
		return last
	}
	for {
		select {
		case err := <-done:
			update(time.Now())
			if cause := context.Cause(rctx); cause != nil && ctx.Err() == nil {
				return cause
			}
			return err
		case now := <-tick.C:
			if idle := now.Sub(update(now)); idle > stall {
				cancel(fmt.Errorf("stalled: no byte from the master for %s (received %d of ~%d)", idle.Round(time.Second), prog.Done, prog.Size))
				r.cut()
			}
		}
	}
}

// countingReader counts and paces what it reads and notes when the last byte came.
type countingReader struct {
	r     io.Reader
	ctx   context.Context
	limit *rate.Limiter
	n     atomic.Int64
	last  atomic.Int64 // unix nanoseconds
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	if c.limit != nil && len(p) > c.limit.Burst() {
		p = p[:c.limit.Burst()]
	}
	n, err := c.r.Read(p)
	if n > 0 {
		c.n.Add(int64(n))
		c.last.Store(time.Now().UnixNano())
		if c.limit != nil {
			if werr := c.limit.WaitN(c.ctx, n); werr != nil && err == nil {
				err = context.Cause(c.ctx)
			}
		}
	}
	return n, err
}

// client is an HTTPS client that presents the agent's certificate and accepts only the
// master named in.Master.
func (a *Activities) client(in ReplicateInput) (*http.Client, error) {
	cfg, err := a.tlsConfig(in)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: false,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := replDialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return newGatherConn(c), nil
		},
		// The master answers once it has sized the stream (zfs send -n): minutes at most.
		TLSHandshakeTimeout: replHandshake, ResponseHeaderTimeout: 5 * time.Minute}}, nil
}

// How a slave reaches its master, over HTTPS and over kernel TLS alike.
var replDialer = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}

const replHandshake = 30 * time.Second

// tlsConfig is the TLS configuration of a slave's connections to in.Master: the agent's
// certificate, and only that master's accepted.
func (a *Activities) tlsConfig(in ReplicateInput) (*tls.Config, error) {
	if a.ReplicationTLS == nil {
		return nil, errors.New("this agent has no certificate for replication")
	}
	cfg, err := a.ReplicationTLS()
	if err != nil {
		return nil, err
	}
	cfg = cfg.Clone()
	cfg.ServerName = in.Master.DNSName()
	want := in.Master
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the master presented no certificate")
		}
		got, err := wire.IdentityOf(cs.PeerCertificates[0])
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s answers as server %d of network %d, not the master %d of network %d", in.MasterAddr, got.ServerID, got.NetworkID, want.ServerID, want.NetworkID)
		}
		return nil
	}
	return cfg, nil
}

// earlyPull is a send request whose headers (naming the dataset, wire.HeaderDataset) are
// on their way while the slave lists its copy; send writes the body and waits for the
// answer, abandon drops a request the slave no longer needs.
type earlyPull struct {
	pw   *io.PipeWriter
	done chan pulled
	sent bool
}

type pulled struct {
	resp *http.Response
	err  error
}

var errPullAbandoned = errors.New("the slave needs nothing from this request")

// puller is a send request on its way (earlyPull over HTTPS, kernelPull over kernel TLS).
type puller interface {
	send(req wire.SendRequest) (*http.Response, error)
	abandon()
}

// startPull starts a send request: over wire.ProtoKernelStream where this kernel has TLS
// and the master has not refused it lately, over HTTPS otherwise.
func (a *Activities) startPull(ctx context.Context, c *http.Client, in ReplicateInput) puller {
	if !a.NoKernelTLS && a.kernel.usable(in.MasterAddr) && kernelTLS() {
		// The same TLS configuration as c's (a.client): the agent's certificate, only this master.
		if t, ok := c.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
			return startKernelPull(ctx, c, t.TLSClientConfig, &a.kernel, in)
		}
	}
	return startPull(ctx, c, in)
}

// kernelTLS says, once, whether this kernel has TLS.
var kernelTLS = sync.OnceValue(ktls.Available)

func startPull(ctx context.Context, c *http.Client, in ReplicateInput) *earlyPull {
	pr, pw := io.Pipe()
	p := &earlyPull{pw: pw, done: make(chan pulled, 1)}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+in.MasterAddr+wire.PathReplicationSend, pr)
	if err != nil {
		p.done <- pulled{err: err}
		return p
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(wire.HeaderDataset, in.Dataset)
	if in.Snapshot != "" {
		r.Header.Set(wire.HeaderSnapshot, in.Snapshot)
	}
	go func() {
		resp, err := c.Do(r)
		// A body the transport never read (the dial failed) must not block its writer.
		pr.CloseWithError(errPullAbandoned)
		p.done <- pulled{resp, err}
	}()
	return p
}

// send writes req as the body and returns the master's answer: 200 (the stream) or 204
// (the slave has it); any other becomes a *wire.ReplicationError (busy is retried by
// Temporal like any other error).
func (p *earlyPull) send(req wire.SendRequest) (*http.Response, error) {
	p.sent = true
	go func() {
		b, err := json.Marshal(req)
		if err == nil {
			_, err = p.pw.Write(b)
		}
		p.pw.CloseWithError(err) // nil: the body ends here
	}()
	r := <-p.done
	if r.err != nil {
		return nil, r.err
	}
	if r.resp.StatusCode == http.StatusOK || r.resp.StatusCode == http.StatusNoContent {
		return r.resp, nil
	}
	defer r.resp.Body.Close()
	return nil, answerError(r.resp)
}

// abandon ends a request whose body was never sent (none: nothing to do).
func (p *earlyPull) abandon() {
	if p.sent {
		return
	}
	p.sent = true
	p.pw.CloseWithError(errPullAbandoned)
	if r := <-p.done; r.resp != nil {
		r.resp.Body.Close()
	}
}

func answerError(resp *http.Response) error {
	var re wire.ReplicationError
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &re) != nil || re.Code == "" {
		re = wire.ReplicationError{Code: wire.CodeFailed, Message: fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))}
	}
	return &re
}

func post(ctx context.Context, c *http.Client, in ReplicateInput, path string, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+in.MasterAddr+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/json")
	return c.Do(r)
}

// ackOn acknowledges in.Snapshot on p's kernel-TLS connection when it can carry it, over
// HTTPS (c) otherwise.
func (a *Activities) ackOn(ctx context.Context, c *http.Client, p puller, in ReplicateInput) error {
	if kp, ok := p.(*kernelPull); ok {
		if ok, err := kp.ack(in); ok {
			if err != nil {
				return fmt.Errorf("acknowledge %s@%s to the master: %w", in.Dataset, in.Snapshot, err)
			}
			return nil
		}
	}
	return a.ackMaster(ctx, c, in)
}

// ackMaster tells the master the slave holds in.Snapshot, verified: it moves its hold.
func (a *Activities) ackMaster(ctx context.Context, c *http.Client, in ReplicateInput) error {
	resp, err := post(ctx, c, in, wire.PathReplicationAck, wire.AckRequest{Dataset: in.Dataset, GUID: in.GUID})
	if err != nil {
		return fmt.Errorf("acknowledge %s@%s to the master: %w", in.Dataset, in.Snapshot, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("acknowledge %s@%s to the master: %w", in.Dataset, in.Snapshot, answerError(resp))
	}
	return nil
}
