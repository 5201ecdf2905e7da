package zfs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities"
)

// fakeSnapshotter answers as the kernel would: a snapshot's guid is its name, a dataset
// snapshotted twice in one program is refused with EAGAIN (after its first), and the
// first call waits for release so that requests pile up behind it.
type fakeSnapshotter struct {
	mu       sync.Mutex
	batches  [][]string // each call's snapshots, a lone one as a batch of one
	taken    map[string]bool
	again    map[string]int // refuse the name with EAGAIN this many times
	release  chan struct{}  // the first call waits for it
	progErr  error          // snapshotMany fails as a whole
	released bool
}

func (f *fakeSnapshotter) wait(batch []string) {
	f.mu.Lock()
	f.batches = append(f.batches, batch)
	first := !f.released
	f.released = true
	f.mu.Unlock()
	if first && f.release != nil {
		<-f.release
	}
}

func (f *fakeSnapshotter) take(full string) snapAnswer {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.again[full] > 0 {
		f.again[full]--
		return snapAnswer{Err: errAgain}
	}
	created := !f.taken[full]
	f.taken[full] = true
	return snapAnswer{GUID: "guid-" + full, Created: created}
}

func (f *fakeSnapshotter) snapshotMany(pool string, fulls []string) (map[string]snapAnswer, error) {
	f.wait(fulls)
	if f.progErr != nil {
		return nil, f.progErr
	}
	out := map[string]snapAnswer{}
	seen := map[string]bool{}
	for _, full := range fulls {
		ds, _, _ := strings.Cut(full, "@")
		if !strings.HasPrefix(ds, pool+"/") {
			return nil, fmt.Errorf("%s is not in %s", full, pool)
		}
		if seen[ds] {
			out[full] = snapAnswer{Err: errAgain}
			continue
		}
		seen[ds] = true
		out[full] = f.take(full)
	}
	return out, nil
}

func (f *fakeSnapshotter) snapshotOne(dataset, snap string) (string, bool, error) {
	f.wait([]string{dataset + "@" + snap})
	a := f.take(dataset + "@" + snap)
	return a.GUID, a.Created, a.Err
}

// burst asks for snaps (dataset@name) all at once through b and checks each answer.
func burst(t *testing.T, b *snapshotBatcher, snaps []string) {
	t.Helper()
	var wg sync.WaitGroup
	for _, full := range snaps {
		ds, name, _ := strings.Cut(full, "@")
		wg.Go(func() {
			guid, created, err := b.snapshot(ds, name)
			if err != nil || guid != "guid-"+full || !created {
				t.Errorf("snapshot %s = %q %v %v", full, guid, created, err)
			}
		})
	}
	wg.Wait()
}

// Requests that come while a program runs share the next one: one snapshot per dataset
// per program, a dataset's in the order of their names, every answer its own guid.
func TestSnapshotBatcherTakesABurstTogether(t *testing.T) {
	f := &fakeSnapshotter{taken: map[string]bool{}, release: make(chan struct{})}
	b := newSnapshotBatcher(f, 0)
	// The first request runs alone and holds the pool until released.
	first := make(chan error, 1)
	go func() { _, _, err := b.snapshot("tank/g/1", "v1"); first <- err }()
	for {
		f.mu.Lock()
		n := len(f.batches)
		f.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var snaps []string
	for n := 2; n <= 10; n++ {
		for g := 1; g <= 5; g++ {
			if g != 1 || n != 1 {
				snaps = append(snaps, fmt.Sprintf("tank/g/%d@v%d", g, n))
			}
		}
	}
	for g := 2; g <= 5; g++ {
		snaps = append(snaps, fmt.Sprintf("tank/g/%d@v1", g))
	}
	done := make(chan struct{})
	go func() { burst(t, b, snaps); close(done) }()
	for {
		b.mu.Lock()
		n := len(b.pending["tank"])
		b.mu.Unlock()
		if n == len(snaps) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(f.release)
	<-done
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// v1 of group 1 alone, then ten programs, each with at most one snapshot of a group,
	// a group's in the order of their numbers.
	if len(f.batches) != 11 {
		t.Fatalf("%d programs, want 11: %v", len(f.batches), f.batches)
	}
	next := map[string]int{}
	for i, batch := range f.batches {
		seen := map[string]bool{}
		for _, full := range batch {
			ds, name, _ := strings.Cut(full, "@")
			if seen[ds] {
				t.Errorf("program %d took two snapshots of %s: %v", i, ds, batch)
			}
			seen[ds] = true
			if next[ds]++; name != fmt.Sprintf("v%d", next[ds]) {
				t.Errorf("program %d took %s, want v%d: %v", i, full, next[ds], batch)
			}
		}
	}
	for {
		b.mu.Lock()
		idle := len(b.pending) == 0 && len(b.running) == 0
		b.mu.Unlock()
		if idle {
			break
		}
		time.Sleep(time.Millisecond)
	}
}

// A snapshot refused with EAGAIN (another command took one of its dataset in the txg) is
// taken again by a later program; one refused for ever fails.
func TestSnapshotBatcherTakesRefusedAgain(t *testing.T) {
	f := &fakeSnapshotter{taken: map[string]bool{}, again: map[string]int{"tank/a@s": 2, "tank/b@s": maxAgain + 1}}
	b := newSnapshotBatcher(f, 5*time.Millisecond)
	var wg sync.WaitGroup
	var errB error
	wg.Go(func() {
		guid, _, err := b.snapshot("tank/a", "s")
		if err != nil || guid != "guid-tank/a@s" {
			t.Errorf("a: %q %v", guid, err)
		}
	})
	wg.Go(func() { _, _, errB = b.snapshot("tank/b", "s") })
	wg.Wait()
	if !errors.Is(errB, errAgain) {
		t.Errorf("b refused for ever: %v", errB)
	}
}

// A program that does not run (channel programs refused) leaves each request to the lone
// path; a missing pool fails them all.
func TestSnapshotBatcherFallsBackToLoneSnapshots(t *testing.T) {
	for _, tc := range []struct {
		progErr error
		want    error
	}{
		{errors.New("zfs program: refused"), nil},
		{activities.ErrPoolNotFound, activities.ErrPoolNotFound},
	} {
		f := &fakeSnapshotter{taken: map[string]bool{}, progErr: tc.progErr}
		b := newSnapshotBatcher(f, 20*time.Millisecond)
		var wg sync.WaitGroup
		for _, ds := range []string{"tank/a", "tank/b", "tank/c"} {
			wg.Go(func() {
				guid, _, err := b.snapshot(ds, "s")
				if !errors.Is(err, tc.want) || tc.want == nil && guid != "guid-"+ds+"@s" {
					t.Errorf("%v: %s: %q %v", tc.progErr, ds, guid, err)
				}
			})
		}
		wg.Wait()
		lone := 0
		for _, batch := range f.batches {
			if len(batch) == 1 {
				lone++
			}
		}
		if want := map[bool]int{true: 3, false: 0}[tc.want == nil]; lone != want {
			t.Errorf("%v: %d lone snapshots, want %d: %v", tc.progErr, lone, want, f.batches)
		}
	}
}

func TestPickBatch(t *testing.T) {
	req := func(full string) *snapReq {
		ds, name, _ := strings.Cut(full, "@")
		return &snapReq{dataset: ds, snap: name}
	}
	names := func(rs []*snapReq) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.dataset+"@"+r.snap)
		}
		return out
	}
	for _, tc := range []struct {
		waiting     []string
		max         int
		batch, rest []string
	}{
		{nil, 4, nil, nil},
		{[]string{"p/a@v10", "p/b@x", "p/a@v9", "p/a@v11"}, 4, []string{"p/a@v9", "p/b@x"}, []string{"p/a@v10", "p/a@v11"}},
		{[]string{"p/a@v2", "p/b@v1", "p/c@v1"}, 2, []string{"p/a@v2", "p/b@v1"}, []string{"p/c@v1"}},
	} {
		var waiting []*snapReq
		for _, w := range tc.waiting {
			waiting = append(waiting, req(w))
		}
		batch, rest := pickBatch(waiting, tc.max)
		if !slices.Equal(names(batch), tc.batch) || !slices.Equal(names(rest), tc.rest) {
			t.Errorf("pickBatch(%v, %d) = %v, %v; want %v, %v", tc.waiting, tc.max, names(batch), names(rest), tc.batch, tc.rest)
		}
	}
}

// The answer of snapshotManyLua as `zfs program -j` prints it in the storage lab.
func TestParseSnapshotManyProgram(t *testing.T) {
	got, err := parseSnapshotManyProgram([]byte(`{"return": {"tank/g/1@v2": {"created": true, "guid": -5106226066138826394}, "tank/g/2@v2": {"created": false, "guid": 42}, "tank/g/3@v2": {"errno": 11}, "tank/g/4@v2": {"errno": 2}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if a := got["tank/g/1@v2"]; a.Err != nil || !a.Created || a.GUID != "13340518007570725222" {
		t.Errorf("created: %+v", a)
	}
	if a := got["tank/g/2@v2"]; a.Err != nil || a.Created || a.GUID != "42" {
		t.Errorf("existing: %+v", a)
	}
	if a := got["tank/g/3@v2"]; !errors.Is(a.Err, errAgain) {
		t.Errorf("EAGAIN: %+v", a)
	}
	if a := got["tank/g/4@v2"]; !errors.Is(a.Err, activities.ErrDatasetNotFound) {
		t.Errorf("ENOENT: %+v", a)
	}
	if _, err := parseSnapshotManyProgram([]byte(`oops`)); err == nil {
		t.Error("garbage parsed")
	}
}
