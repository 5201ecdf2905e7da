package boot

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// Boot outcomes (issue 18): after the agent tells a device to sanboot its disk, it
// watches what follows — the login of the device to that target, the blocks it reads,
// how long its session stays up, whether it asks for a boot script again or checks in —
// and decides whether the boot came up. The decision is decideOutcome, a pure function of
// what was seen and the time; the outcomes tracker samples the target and feeds it.

// The results a watched boot ends with (the wire's, as the panel's history spells them).
const (
	ResultUp      = wire.ResultUp
	ResultFailed  = wire.ResultFailed
	ResultUnknown = wire.ResultUnknown
)

// OutcomeBounds are the times a boot's result is decided within.
type OutcomeBounds struct {
	// UpAfter is the bound: a session still up this long after the script was served,
	// with reads in its last half, is a boot that came up; a device asking again, or a
	// session that drops, before it is a failed one (default 60 s).
	UpAfter time.Duration
	// DropGrace is how long a dropped session may stay gone before the boot counts as
	// failed: a booted OS logs in again under the same name when it takes the disk over
	// from the firmware (default UpAfter/4).
	DropGrace time.Duration
	// UnknownAfter ends the watch of a boot nothing decided (no login at all, a session
	// that stays idle): its result is unknown (default 10 min, at least 2×UpAfter).
	UnknownAfter time.Duration
}

func (b OutcomeBounds) withDefaults() OutcomeBounds {
	if b.UpAfter <= 0 {
		b.UpAfter = time.Minute
	}
	if b.DropGrace <= 0 {
		b.DropGrace = b.UpAfter / 4
	}
	if b.UnknownAfter <= 0 {
		b.UnknownAfter = 10 * time.Minute
	}
	b.UnknownAfter = max(b.UnknownAfter, 2*b.UpAfter)
	return b
}

// observation is what the agent saw of one boot so far; zero times were not seen.
type observation struct {
	served   time.Time // the sanboot script was answered
	login    time.Time // first login to the device's target after that
	live     bool      // a session of the target is up (since a login of this boot)
	dropped  time.Time // the session ended and none is up since
	lastRead time.Time // the last time the target's read count grew after the login
	// lateRead is the first read seen in the second half of the bound or after: the
	// reads that count as continuing.
	lateRead   time.Time
	askedAgain time.Time // the device asked for a boot script again
	checkIn    time.Time // the booted OS called /booted
}

// verdict is a decided boot: its result, when it was decided and why.
type verdict struct {
	result string
	at     time.Time
	why    string
}

// upMS is the time to up of an up verdict: boot script served → the decision (check-in).
func (v verdict) upMS(served time.Time) int64 {
	if v.result != ResultUp {
		return 0
	}
	return max(v.at.Sub(served).Milliseconds(), 0)
}

// decideOutcome decides a boot from what was seen by now, or says it is still open.
// A check-in wins over everything; then a new boot request, a session gone for good,
// a session up past the bound with reads continuing, and at last the watch's end.
func decideOutcome(o observation, b OutcomeBounds, now time.Time) (verdict, bool) {
	since := func(t time.Time) time.Duration { return t.Sub(o.served).Round(time.Millisecond) }
	switch {
	case !o.checkIn.IsZero():
		return verdict{ResultUp, o.checkIn, "checked in"}, true
	case !o.askedAgain.IsZero():
		// Every known device of a boot storm ends its last boot here: no fmt.
		return verdict{ResultFailed, o.askedAgain, "asked for a boot script again " + since(o.askedAgain).String() + " after this one"}, true
	case !o.login.IsZero() && !o.live && !o.dropped.IsZero() && now.Sub(o.dropped) >= b.DropGrace:
		return verdict{ResultFailed, now, fmt.Sprintf("its iSCSI session dropped %s after the script and did not come back", since(o.dropped))}, true
	}
	upAt := o.served.Add(b.UpAfter)
	if o.live && !now.Before(upAt) && !o.lateRead.IsZero() && now.Sub(o.lastRead) <= b.UpAfter/2 {
		// Up when the bound passed, or at the first read after it when the reads had paused.
		at := upAt
		if o.lateRead.After(at) {
			at = o.lateRead
		}
		return verdict{ResultUp, at, fmt.Sprintf("its iSCSI session stayed up past %s with reads continuing", b.UpAfter)}, true
	}
	if now.Sub(o.served) >= b.UnknownAfter {
		why := "no iSCSI login came"
		switch {
		case o.live && o.lastRead.IsZero():
			why = "its iSCSI session read nothing"
		case o.live:
			why = "its iSCSI session stayed up but idle"
		case !o.login.IsZero():
			why = "its iSCSI session came and went"
		}
		return verdict{ResultUnknown, now, why + " within " + b.UnknownAfter.String()}, true
	}
	return verdict{}, false
}

// activitySource is a target whose per-target activity can be read (an *iscsi.Server).
type activitySource interface {
	Activity(iqn string) (iscsi.TargetActivity, bool)
}

// watchedBoot is one sanboot answer being watched, or decided and kept for a late check-in.
type watchedBoot struct {
	rep  wire.Report // as reported when served (with its boot id)
	iqn  string
	uuid string // the device's registered SMBIOS UUID: its initiator name
	obs  observation
	// Counters of the target when last sampled; baseLogins when the script was served.
	baseLogins, logins, bytes uint64
	sampled                   bool
	verdict                   verdict // result "" while open
}

// outcomes watches the boots this agent serves, one per MAC (a device's next boot
// request ends the watch of its last one).
type outcomes struct {
	bounds OutcomeBounds
	src    activitySource // nil: no target to watch (only check-ins, requests and the end)
	now    func() time.Time
	// decided is told of every decided boot, outside the lock: the report to the panel
	// and the metrics.
	decided func(wire.Report, verdict)

	mu    sync.Mutex
	boots map[string]*watchedBoot // by normalized MAC
}

func newOutcomes(b OutcomeBounds, src activitySource, now func() time.Time, decided func(wire.Report, verdict)) *outcomes {
	return &outcomes{bounds: b.withDefaults(), src: src, now: now, decided: decided, boots: map[string]*watchedBoot{}}
}

// newBootID names one boot for the panel: the agent's report when the script is served
// and its result later update the same history row.
func newBootID() string {
	// Not a secret, only unique per device: the runtime's generator, no system call.
	const hex = "0123456789abcdef"
	var b [16]byte
	for i, v := 0, rand.Uint64(); i < len(b); i, v = i+1, v>>4 {
		b[i] = hex[v&15]
	}
	return string(b[:])
}

// served starts the watch of a sanboot answer; rep gets its boot id and time.
func (o *outcomes) served(mac string, rep *wire.Report, iqn, uuid string) {
	now := o.now()
	rep.BootID, rep.At = newBootID(), now
	w := &watchedBoot{rep: *rep, iqn: iqn, uuid: wire.NormalizeUUID(uuid), obs: observation{served: now}}
	if o.src != nil {
		if a, ok := o.src.Activity(iqn); ok {
			w.baseLogins, w.logins, w.bytes, w.sampled = a.Logins, a.Logins, a.BytesRead, true
		}
	}
	o.mu.Lock()
	prev := o.boots[mac]
	o.boots[mac] = w
	var done []watchedBoot
	if prev != nil && prev.verdict.result == "" {
		// asked() normally decided it already; a watch replaced without a request is
		// a boot answered twice at once.
		prev.obs.askedAgain = now
		done = o.decideLocked(prev, now, done)
	}
	o.mu.Unlock()
	o.emit(done)
}

// asked records a device's boot request: the boot it is watching failed (it did not
// stay up) unless already decided.
func (o *outcomes) asked(mac string) {
	now := o.now()
	o.mu.Lock()
	var done []watchedBoot
	if w := o.boots[mac]; w != nil && w.verdict.result == "" {
		w.obs.askedAgain = now
		done = o.decideLocked(w, now, done)
	}
	o.mu.Unlock()
	o.emit(done)
}

// checkedIn records the booted OS's check-in for the device's last boot: a definite up,
// also over a result decided before (a session drop the OS recovered from).
func (o *outcomes) checkedIn(mac string) {
	now := o.now()
	o.mu.Lock()
	var done []watchedBoot
	if w := o.boots[mac]; w != nil && w.verdict.result != ResultUp {
		w.obs.checkIn = now
		w.verdict = verdict{}
		done = o.decideLocked(w, now, done)
	}
	o.mu.Unlock()
	o.emit(done)
}

// lookup returns a copy of the device's last watched boot.
func (o *outcomes) lookup(mac string) (watchedBoot, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.boots[mac]
	if w == nil {
		return watchedBoot{}, false
	}
	return *w, true
}

// poll samples the target of every open boot, decides what can be, and forgets decided
// boots once their watch would have ended (a check-in then has nothing to revise).
func (o *outcomes) poll() {
	now := o.now()
	o.mu.Lock()
	var done []watchedBoot
	for mac, w := range o.boots {
		if w.verdict.result != "" {
			if now.Sub(w.obs.served) >= o.bounds.UnknownAfter {
				delete(o.boots, mac)
			}
			continue
		}
		o.sample(w, now)
		done = o.decideLocked(w, now, done)
	}
	o.mu.Unlock()
	o.emit(done)
}

// sample reads the boot's target and updates what was seen: a login since the script,
// the session's state and its reads.
func (o *outcomes) sample(w *watchedBoot, now time.Time) {
	if o.src == nil {
		return
	}
	a, ok := o.src.Activity(w.iqn)
	if !ok {
		a = iscsi.TargetActivity{Logins: w.logins, BytesRead: w.bytes} // target removed: no session
	}
	if !w.sampled {
		w.baseLogins, w.logins, w.bytes, w.sampled = a.Logins, a.Logins, a.BytesRead, true
	}
	newLogin := a.Logins > w.logins
	if a.Logins > w.baseLogins && w.obs.login.IsZero() {
		w.obs.login = now
	}
	w.logins = a.Logins
	if w.obs.login.IsZero() {
		w.bytes = a.BytesRead
		return
	}
	if a.BytesRead > w.bytes {
		w.obs.lastRead = now
		if w.obs.lateRead.IsZero() && now.Sub(w.obs.served) >= o.bounds.UpAfter/2 {
			w.obs.lateRead = now
		}
	}
	w.bytes = a.BytesRead
	switch {
	case a.Sessions > 0:
		w.obs.live, w.obs.dropped = true, time.Time{}
	case w.obs.live || newLogin:
		// Gone since the last sample (or came and went between two).
		w.obs.live, w.obs.dropped = false, now
	}
}

// decideLocked decides w if it can be, appending it to done. Callers hold mu.
func (o *outcomes) decideLocked(w *watchedBoot, now time.Time, done []watchedBoot) []watchedBoot {
	v, ok := decideOutcome(w.obs, o.bounds, now)
	if !ok {
		return done
	}
	w.verdict = v
	return append(done, *w)
}

// close decides every open boot as unknown: the agent stops watching.
func (o *outcomes) close() {
	now := o.now()
	o.mu.Lock()
	var done []watchedBoot
	for _, w := range o.boots {
		if w.verdict.result == "" {
			w.verdict = verdict{ResultUnknown, now, "the agent stopped before it could tell"}
			done = append(done, *w)
		}
	}
	o.mu.Unlock()
	o.emit(done)
}

func (o *outcomes) emit(done []watchedBoot) {
	for _, w := range done {
		r := w.rep
		r.Result, r.UpMS, r.Why = w.verdict.result, w.verdict.upMS(w.obs.served), w.verdict.why
		o.decided(r, w.verdict)
	}
}
