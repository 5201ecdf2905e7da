package boot

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

var t0 = time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// One row per rule of decideOutcome, with the bound at 60 s (drop grace 15 s, end 10 min).
func TestDecideOutcome(t *testing.T) {
	b := OutcomeBounds{}.withDefaults()
	cases := []struct {
		name   string
		obs    observation
		now    float64
		result string // "" still open
		upAt   float64
		why    string
	}{
		{"nothing yet", observation{}, 30, "", 0, ""},
		{"check-in", observation{login: at(2), live: true, checkIn: at(20)}, 21, ResultUp, 20, "checked in"},
		{"check-in wins over a request", observation{askedAgain: at(10), checkIn: at(20)}, 21, ResultUp, 20, "checked in"},
		{"asked again within the bound", observation{login: at(2), live: true, lastRead: at(5), askedAgain: at(12)}, 12, ResultFailed, 0, "again 12s"},
		{"session dropped, within grace", observation{login: at(2), dropped: at(10)}, 20, "", 0, ""},
		{"session dropped past grace", observation{login: at(2), dropped: at(10)}, 25, ResultFailed, 0, "dropped 10s"},
		{"session back after a drop", observation{login: at(2), live: true, lastRead: at(40), lateRead: at(31)}, 60, ResultUp, 60, "stayed up"},
		{"up at the bound with reads", observation{login: at(2), live: true, lastRead: at(59), lateRead: at(31)}, 60.4, ResultUp, 60, "stayed up"},
		{"live, reads only early", observation{login: at(2), live: true, lastRead: at(10)}, 61, "", 0, ""},
		{"live, reads stopped", observation{login: at(2), live: true, lastRead: at(29), lateRead: at(29)}, 61, "", 0, ""},
		{"reads resume after the bound", observation{login: at(2), live: true, lastRead: at(80), lateRead: at(80)}, 80.5, ResultUp, 80, "stayed up"},
		{"before the bound", observation{login: at(2), live: true, lastRead: at(50), lateRead: at(31)}, 59, "", 0, ""},
		{"no login at all", observation{}, 600, ResultUnknown, 0, "no iSCSI login"},
		{"idle session", observation{login: at(2), live: true, lastRead: at(3)}, 600, ResultUnknown, 0, "idle"},
		{"session that read nothing", observation{login: at(2), live: true}, 600, ResultUnknown, 0, "read nothing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.obs.served = t0
			v, ok := decideOutcome(c.obs, b, at(c.now))
			if ok != (c.result != "") || v.result != c.result {
				t.Fatalf("decided %v %+v, want %q", ok, v, c.result)
			}
			if !strings.Contains(v.why, c.why) {
				t.Errorf("why %q, want it to say %q", v.why, c.why)
			}
			if c.result == ResultUp && v.upMS(t0) != int64(c.upAt*1000) {
				t.Errorf("up after %d ms, want %v s", v.upMS(t0), c.upAt)
			}
		})
	}
}

// fakeTarget is a target whose activity the test sets.
type fakeTarget struct {
	mu sync.Mutex
	a  map[string]iscsi.TargetActivity
}

func (f *fakeTarget) Activity(iqn string) (iscsi.TargetActivity, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.a[iqn]
	return a, ok
}

func (f *fakeTarget) set(iqn string, logins uint64, sessions int, bytes uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.a[iqn] = iscsi.TargetActivity{Logins: logins, Sessions: sessions, BytesRead: bytes}
}

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) advance(d time.Duration) { c.now = c.now.Add(d) }

// The tracker samples the target and decides: a login and continuing reads make a boot
// up at the bound; a new request fails the open one; a drop that lasts fails it; a
// check-in turns a failed boot up; the agent stopping leaves the open ones unknown.
func TestOutcomesTracker(t *testing.T) {
	const iqn, mac = "iqn.2026-11.dev.clusterducks:n1.device7", "52:54:00:00:00:07"
	var got []wire.Report
	clock := &fakeClock{now: t0}
	src := &fakeTarget{a: map[string]iscsi.TargetActivity{}}
	o := newOutcomes(OutcomeBounds{UpAfter: 10 * time.Second}, src, clock.Now, func(r wire.Report, _ verdict) { got = append(got, r) })
	last := func() wire.Report {
		t.Helper()
		if len(got) == 0 {
			t.Fatal("nothing decided")
		}
		return got[len(got)-1]
	}
	serve := func() wire.Report {
		rep := wire.Report{DeviceID: 7, GroupID: 3, Version: 2, Action: wire.BootClone}
		o.served(mac, &rep, iqn, uuid1)
		if rep.BootID == "" || !rep.At.Equal(clock.now) {
			t.Fatalf("served report %+v", rep)
		}
		return rep
	}
	// tick advances the clock by one poll, with the target's counters as given.
	tick := func(logins uint64, sessions int, bytes uint64) {
		clock.advance(500 * time.Millisecond)
		src.set(iqn, logins, sessions, bytes)
		o.poll()
	}

	// 1. Up: a login (a stale one from an earlier boot is not counted), reads every tick.
	src.set(iqn, 4, 0, 1000)
	rep := serve()
	tick(5, 1, 1512)
	var bytes uint64 = 1512
	for range 19 {
		bytes += 4096
		tick(5, 1, bytes)
	}
	if r := last(); r.Result != ResultUp || r.BootID != rep.BootID || r.UpMS != 10000 {
		t.Fatalf("boot 1: %+v", r)
	}
	// A decided boot stays decided: a later request starts nothing new for it.
	n := len(got)
	o.asked(mac)
	if len(got) != n {
		t.Fatalf("a request after up decided again: %+v", last())
	}

	// 2. Failed: the device asks for its script again 3 s after this one.
	rep = serve()
	tick(6, 1, bytes+512)
	clock.advance(2500 * time.Millisecond)
	o.asked(mac)
	if r := last(); r.Result != ResultFailed || r.BootID != rep.BootID || !strings.Contains(r.Why, "again 3s") {
		t.Fatalf("boot 2: %+v", r)
	}

	// 3. Failed: a session that logs in, reads, and is gone for good (2.5 s = bound/4).
	rep = serve()
	tick(7, 1, bytes+1024)
	tick(7, 0, bytes+1024)
	for range 4 {
		tick(7, 0, bytes+1024)
		if _, ok := o.lookup(mac); ok && last().BootID == rep.BootID {
			t.Fatalf("boot 3 decided within its drop grace: %+v", last())
		}
	}
	tick(7, 0, bytes+1024)
	if r := last(); r.Result != ResultFailed || r.BootID != rep.BootID || !strings.Contains(r.Why, "dropped") {
		t.Fatalf("boot 3: %+v", r)
	}
	// ... and the OS checks in after all: up, for the same boot.
	clock.advance(time.Second)
	o.checkedIn(mac)
	if r := last(); r.Result != ResultUp || r.BootID != rep.BootID || r.UpMS != 4500 {
		t.Fatalf("boot 3 check-in: %+v", r)
	}

	// 4. A login and a drop between two samples count as a drop too.
	serve()
	tick(9, 0, bytes+2048)
	if _, open := o.lookup(mac); !open {
		t.Fatal("boot 4 not watched")
	}
	for range 5 {
		tick(9, 0, bytes+2048)
	}
	if r := last(); r.Result != ResultFailed {
		t.Fatalf("boot 4: %+v", r)
	}

	// 5. Open when the agent stops: unknown.
	rep = serve()
	o.close()
	if r := last(); r.Result != ResultUnknown || r.BootID != rep.BootID {
		t.Fatalf("boot 5: %+v", r)
	}
	// A decided boot is forgotten once its watch would have ended.
	clock.advance(time.Hour)
	o.poll()
	if _, ok := o.lookup(mac); ok {
		t.Fatal("a decided boot outlived its watch")
	}
}
