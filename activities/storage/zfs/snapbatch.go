package zfs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clusterducks/clusterducks/activities"
)

// Snapshots asked for at the same time on one pool are taken together: one channel program
// takes a snapshot of each of several datasets in one txg and returns each guid. A burst
// of publishes so costs a few commands and txgs instead of one of each per snapshot. OpenZFS
// takes at most one snapshot of a dataset per txg (a second is refused with EAGAIN and,
// from a channel program, not retried), so a batch holds one request per dataset and the
// others wait for the next batch; a dataset's waiting requests go in the order of their
// names (v9 before v10), so concurrent publishes of a group get snapshots in the order of
// their numbers whenever they wait together.

// errAgain is a snapshot refused because its dataset got another one in the same txg.
var errAgain = errors.New("another snapshot of the dataset in this txg")

// snapAnswer is the channel program's answer for one snapshot.
type snapAnswer struct {
	GUID    string
	Created bool
	Err     error // errAgain: take it again in a later txg
}

// snapshotter is the zfs side of the batcher (a fake in its tests).
type snapshotter interface {
	// snapshotMany takes every snapshot of fulls (datasets of pool, at most one snapshot
	// each) in one channel program; an error means the program did not run.
	snapshotMany(pool string, fulls []string) (map[string]snapAnswer, error)
	// snapshotOne takes one snapshot the way a lone request does (with its fallbacks).
	snapshotOne(dataset, snap string) (guid string, created bool, err error)
}

// maxBatch bounds the snapshots of one program (its instruction and memory limits are
// far above what this many need).
const maxBatch = 64

// maxAgain bounds how many batches a request may be refused with EAGAIN (another program
// or command snapshotting its dataset at the same time) before it fails.
const maxAgain = 20

type snapReq struct {
	dataset, snap string
	again         int
	done          chan snapDone
}

type snapDone struct {
	guid    string
	created bool
	err     error
}

// snapshotBatcher runs at most one snapshot program per pool at a time; requests that
// come while one runs are taken together by the next. A lone request runs at once, after
// window if one is set (the tests set one, so that concurrent requests meet in a batch).
type snapshotBatcher struct {
	z      snapshotter
	window time.Duration

	mu      sync.Mutex
	pending map[string][]*snapReq // by pool, in arrival order
	running map[string]bool
}

func newSnapshotBatcher(z snapshotter, window time.Duration) *snapshotBatcher {
	return &snapshotBatcher{z: z, window: window, pending: map[string][]*snapReq{}, running: map[string]bool{}}
}

// snapshot takes dataset@snap with whatever else is asked for on its pool meanwhile.
func (b *snapshotBatcher) snapshot(dataset, snap string) (guid string, created bool, err error) {
	pool, _, _ := strings.Cut(dataset, "/")
	r := &snapReq{dataset: dataset, snap: snap, done: make(chan snapDone, 1)}
	b.mu.Lock()
	b.pending[pool] = append(b.pending[pool], r)
	if !b.running[pool] {
		b.running[pool] = true
		go b.loop(pool)
	}
	b.mu.Unlock()
	d := <-r.done
	return d.guid, d.created, d.err
}

// loop runs the pool's batches until no request waits.
func (b *snapshotBatcher) loop(pool string) {
	if b.window > 0 {
		time.Sleep(b.window)
	}
	for {
		b.mu.Lock()
		batch, rest := pickBatch(b.pending[pool], maxBatch)
		b.pending[pool] = rest
		if len(batch) == 0 {
			delete(b.pending, pool)
			delete(b.running, pool)
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		if again := b.run(pool, batch); len(again) > 0 {
			b.mu.Lock()
			b.pending[pool] = append(again, b.pending[pool]...)
			b.mu.Unlock()
		}
	}
}

// pickBatch takes one request per dataset, at most max: of a dataset's requests the one
// with the lowest name (shorter first, so v9 comes before v10); the rest stay waiting in
// their order.
func pickBatch(waiting []*snapReq, max int) (batch, rest []*snapReq) {
	first := map[string]int{} // dataset → index in batch
	for _, r := range waiting {
		i, ok := first[r.dataset]
		switch {
		case !ok && len(batch) < max:
			first[r.dataset] = len(batch)
			batch = append(batch, r)
		case ok && nameLess(r.snap, batch[i].snap):
			rest = append(rest, batch[i])
			batch[i] = r
		default:
			rest = append(rest, r)
		}
	}
	return batch, rest
}

func nameLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// run takes a batch and answers its requests; it returns those to take again.
func (b *snapshotBatcher) run(pool string, batch []*snapReq) (again []*snapReq) {
	if len(batch) == 1 {
		r := batch[0]
		guid, created, err := b.z.snapshotOne(r.dataset, r.snap)
		r.done <- snapDone{guid, created, err}
		return nil
	}
	fulls := make([]string, len(batch))
	for i, r := range batch {
		fulls[i] = r.dataset + "@" + r.snap
	}
	answers, err := b.z.snapshotMany(pool, fulls)
	if errors.Is(err, activities.ErrPoolNotFound) {
		for _, r := range batch {
			r.done <- snapDone{err: err}
		}
		return nil
	}
	if err != nil {
		// The program did not run (refused, or an answer we cannot read): each request
		// takes the lone path, with its own fallbacks, as before batching.
		var wg sync.WaitGroup
		for _, r := range batch {
			wg.Go(func() {
				guid, created, err := b.z.snapshotOne(r.dataset, r.snap)
				r.done <- snapDone{guid, created, err}
			})
		}
		wg.Wait()
		return nil
	}
	for i, r := range batch {
		a, ok := answers[fulls[i]]
		switch {
		case !ok:
			r.done <- snapDone{err: fmt.Errorf("zfs program: no answer for %s", fulls[i])}
		case errors.Is(a.Err, errAgain) && r.again < maxAgain:
			r.again++
			again = append(again, r)
		case a.Err != nil:
			r.done <- snapDone{err: fmt.Errorf("%s: %w", fulls[i], a.Err)}
		default:
			r.done <- snapDone{guid: a.GUID, created: a.Created}
		}
	}
	return again
}

// snapshotManyLua takes each snapshot named by its arguments (one per dataset; EEXIST is
// not an error: a retry) and returns, by name, whether it made it and its guid, or an
// errno.
const snapshotManyLua = `args = ...
out = {}
for _, snap in ipairs(args["argv"]) do
	err = zfs.sync.snapshot(snap)
	if err == 0 or err == 17 then
		out[snap] = {created = (err == 0), guid = zfs.get_prop(snap, "guid")}
	else
		out[snap] = {errno = err}
	end
end
return out
`

// snapshotMany runs snapshotManyLua over fulls, datasets of pool.
func (z *ZFS) snapshotMany(pool string, fulls []string) (map[string]snapAnswer, error) {
	args := append([]string{"program", "-j", pool, "/dev/stdin"}, fulls...)
	out, _, err := z.runIn(context.Background(), strings.NewReader(snapshotManyLua), args...)
	if err != nil {
		return nil, err
	}
	return parseSnapshotManyProgram([]byte(out))
}

// snapshotOne is the lone request's path: snapshotLua, or two commands where channel
// programs are refused.
func (z *ZFS) snapshotOne(dataset, snap string) (guid string, created bool, err error) {
	for range maxAgain {
		guid, created, err = z.snapshotAlone(dataset, snap)
		if !errors.Is(err, errAgain) {
			break
		}
	}
	return guid, created, err
}

// parseSnapshotManyProgram reads snapshotManyLua's answer as `zfs program -j` prints it.
func parseSnapshotManyProgram(out []byte) (map[string]snapAnswer, error) {
	var v struct {
		Return map[string]programAnswer `json:"return"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("zfs program: %w: %q", err, out)
	}
	answers := make(map[string]snapAnswer, len(v.Return))
	for name, a := range v.Return {
		guid, created, err := a.result()
		answers[name] = snapAnswer{GUID: guid, Created: created, Err: err}
	}
	return answers, nil
}

// programAnswer is one snapshot's answer from a channel program.
type programAnswer struct {
	Errno   int         `json:"errno"`
	Created bool        `json:"created"`
	GUID    json.Number `json:"guid"`
}

// result maps an answer to the snapshot's guid (the 64-bit unsigned number Lua holds as a
// signed one) or a typed error.
func (a programAnswer) result() (guid string, created bool, err error) {
	switch a.Errno {
	case 0:
	case 2: // ENOENT
		return "", false, activities.ErrDatasetNotFound
	case 11: // EAGAIN: the dataset got another snapshot in this txg
		return "", false, errAgain
	default:
		return "", false, fmt.Errorf("zfs program: snapshot failed with errno %d", a.Errno)
	}
	n, err := strconv.ParseInt(a.GUID.String(), 10, 64)
	if err != nil {
		return "", false, fmt.Errorf("zfs program: guid %q: %w", a.GUID, err)
	}
	return strconv.FormatUint(uint64(n), 10), a.Created, nil
}
