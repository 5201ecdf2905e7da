package storage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
)

// fakeZFS is an in-memory pool that speaks a toy stream format with the same rules as
// zfs send/receive -s: snapshots keep their guid across a transfer, an incremental needs
// its base (by guid), a cut stream leaves a resume token naming the sender's snapshot.
type fakeZFS struct {
	mu       sync.Mutex
	ds       map[string]*fakeDS
	holds    map[string][]string
	snapSize int
	// cutAfter, when > 0, ends the next stream sent after that many bytes (a dropped
	// connection); stall makes the next stream stop sending after cutAfter bytes until
	// its context ends.
	cutAfter int64
	stall    bool
	sent     atomic.Int64 // bytes of payload streamed by Send, all streams
	closed   atomic.Int64 // streams of Send closed by their reader
	block    chan struct{}
	holdErr  error // what Hold answers, when set
	// stateHook, when set, runs at the start of each State (outside the lock).
	stateHook func(ds string)
	// sendHook, when set, runs at the start of each Send.
	sendHook func(a zfs.SendArgs)
	// cmds counts the zfs commands the code under test ran, by method: each call of a
	// ReplicationZFS method is one command in the real package.
	cmds sync.Map // method -> *atomic.Int64
}

func (f *fakeZFS) count(method string) {
	c, _ := f.cmds.LoadOrStore(method, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
}

// commands returns the counts since the last call, and resets them.
func (f *fakeZFS) commands() (total int, by map[string]int) {
	by = map[string]int{}
	f.cmds.Range(func(k, v any) bool {
		n := int(v.(*atomic.Int64).Swap(0))
		if n > 0 {
			by[k.(string)] = n
			total += n
		}
		return true
	})
	return total, by
}

type fakeDS struct {
	snaps   []zfs.Snap
	origin  string
	written string // bytes written since the newest snapshot ("" is 0)
	partial *fakePartial
}

type fakePartial struct {
	token string
}

var guidSeq atomic.Int64

func newFake() *fakeZFS {
	return &fakeZFS{ds: map[string]*fakeDS{}, holds: map[string][]string{}, snapSize: 64 << 10}
}

// snapshot adds a snapshot with a new guid and returns the guid.
func (f *fakeZFS) snapshot(ds, name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.ds[ds]
	if d == nil {
		d = &fakeDS{}
		f.ds[ds] = d
	}
	g := strconv.FormatInt(1000+guidSeq.Add(1), 10)
	d.snaps = append(d.snaps, zfs.Snap{Name: name, GUID: g, CreateTXG: uint64(guidSeq.Load())})
	return g
}

func (f *fakeZFS) destroy(snapshot string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ds, name, _ := strings.Cut(snapshot, "@")
	d := f.ds[ds]
	d.snaps = slices.DeleteFunc(d.snaps, func(s zfs.Snap) bool { return s.Name == name })
}

// DestroySnapshot is zfs destroy of one snapshot: gone is success, held is busy.
func (f *fakeZFS) DestroySnapshot(_ context.Context, snapshot string) error {
	f.count("DestroySnapshot")
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.holds[snapshot]) > 0 {
		return &zfs.Error{Command: "zfs fake", Stderr: "cannot destroy snapshot " + snapshot + ": dataset is busy", Typed: activities.ErrBusy}
	}
	ds, name, _ := strings.Cut(snapshot, "@")
	if d := f.ds[ds]; d != nil {
		d.snaps = slices.DeleteFunc(d.snaps, func(s zfs.Snap) bool { return s.Name == name })
	}
	return nil
}

func notFoundErr(name string) error {
	return &zfs.Error{Command: "zfs fake", Stderr: "cannot open '" + name + "': dataset does not exist", Typed: activities.ErrDatasetNotFound}
}

// Snapshots is a test's look at a dataset's snapshots (not a command of the code under test).
func (f *fakeZFS) Snapshots(_ context.Context, ds string) ([]zfs.Snap, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.ds[ds]
	if d == nil {
		return nil, notFoundErr(ds)
	}
	return slices.Clone(d.snaps), nil
}

// State is zfs list of the dataset and its snapshots.
func (f *fakeZFS) State(_ context.Context, ds string) (*zfs.State, error) {
	f.count("State")
	if f.stateHook != nil {
		f.stateHook(ds)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.ds[ds]
	if d == nil {
		return nil, notFoundErr(ds)
	}
	st := &zfs.State{Snaps: slices.Clone(d.snaps), Held: []string{}, Encryption: "off", Origin: d.origin, Written: cmpStr(d.written, "0")}
	if d.partial != nil {
		st.ResumeToken = d.partial.token
	}
	for _, s := range d.snaps {
		if len(f.holds[ds+"@"+s.Name]) > 0 {
			st.Held = append(st.Held, s.Name)
		}
	}
	return st, nil
}

func (f *fakeZFS) find(full string) (*fakeDS, int) {
	ds, name, _ := strings.Cut(full, "@")
	d := f.ds[ds]
	if d == nil {
		return nil, -1
	}
	return d, slices.IndexFunc(d.snaps, func(s zfs.Snap) bool { return s.Name == name })
}

func (f *fakeZFS) Property(_ context.Context, name, prop string) (string, error) {
	f.count("Property")
	f.mu.Lock()
	defer f.mu.Unlock()
	switch prop {
	case "guid":
		d, i := f.find(name)
		if i < 0 {
			return "", notFoundErr(name)
		}
		return d.snaps[i].GUID, nil
	case "origin":
		d := f.ds[name]
		if d == nil {
			return "", notFoundErr(name)
		}
		return cmpStr(d.origin, "-"), nil
	case "encryption":
		return "off", nil
	case "written":
		d := f.ds[name]
		if d == nil {
			return "", notFoundErr(name)
		}
		return cmpStr(d.written, "0"), nil
	}
	return "-", nil
}

func cmpStr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// ResumeToken is a test's look at a dataset's resume token.
func (f *fakeZFS) ResumeToken(_ context.Context, ds string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.ds[ds]; d != nil && d.partial != nil {
		return d.partial.token, nil
	}
	return "", nil
}

func (f *fakeZFS) AbortReceive(_ context.Context, ds string) error {
	f.count("AbortReceive")
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.ds[ds]; d != nil {
		d.partial = nil
		if len(d.snaps) == 0 {
			delete(f.ds, ds)
		}
	}
	return nil
}

// A token is "tok|<sender's snapshot>|<from guid>|<offset>".
func (f *fakeZFS) TokenTarget(_ context.Context, token string) (string, error) {
	f.count("TokenTarget")
	p := strings.Split(token, "|")
	if len(p) != 4 || p[0] != "tok" {
		return "", fmt.Errorf("bad token: %w", zfs.ErrStaleToken)
	}
	return p[1], nil
}

// Hold is one zfs hold of every snapshot (none: no command).
func (f *fakeZFS) Hold(_ context.Context, tag string, snaps ...string) error {
	if len(snaps) == 0 {
		return nil
	}
	f.count("Hold")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holdErr != nil {
		return f.holdErr
	}
	for _, snap := range snaps {
		if !slices.Contains(f.holds[snap], tag) {
			f.holds[snap] = append(f.holds[snap], tag)
		}
	}
	return nil
}

// Release is one zfs release of every snapshot (none: no command).
func (f *fakeZFS) Release(_ context.Context, tag string, snaps ...string) error {
	if len(snaps) == 0 {
		return nil
	}
	f.count("Release")
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, snap := range snaps {
		f.holds[snap] = slices.DeleteFunc(f.holds[snap], func(t string) bool { return t == tag })
		if len(f.holds[snap]) == 0 {
			delete(f.holds, snap)
		}
	}
	return nil
}

func (f *fakeZFS) Holds(_ context.Context, root string) (map[string][]string, error) {
	f.count("Holds")
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]string{}
	for s, tags := range f.holds {
		if strings.HasPrefix(s, root+"/") || strings.HasPrefix(s, root+"@") {
			out[s] = slices.Clone(tags)
		}
	}
	if len(out) > 0 {
		f.count("Holds(zfs holds)") // the package lists, then asks zfs holds of the held ones
	}
	return out, nil
}

// record is one snapshot of a toy stream: a JSON line, then Size-Offset payload bytes.
type record struct {
	To       string // sender's full snapshot name
	GUID     string
	FromGUID string // "" full
	Size     int
	Offset   int
	More     bool // more records follow (-I): the stream is compound
}

// StreamGUIDs reads the toy stream's first record, as zfs.StreamGUIDs reads a BEGIN.
func (f *fakeZFS) StreamGUIDs(head []byte) (to, from string, ok bool) {
	line, _, found := bytes.Cut(head, []byte("\n"))
	var rec record
	if !found || json.Unmarshal(line, &rec) != nil || rec.More || rec.GUID == "" {
		return "", "", false
	}
	return rec.GUID, rec.FromGUID, true
}

func (f *fakeZFS) records(a zfs.SendArgs) ([]record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a.Token != "" {
		p := strings.Split(a.Token, "|")
		d, i := f.find(p[1])
		if i < 0 {
			return nil, &zfs.Error{Command: "zfs send -t", Stderr: "cannot resume send: '" + p[1] + "' used in the initial send no longer exists", Typed: zfs.ErrStaleToken}
		}
		off, _ := strconv.Atoi(p[3])
		return []record{{To: p[1], GUID: d.snaps[i].GUID, FromGUID: p[2], Size: f.snapSize, Offset: off}}, nil
	}
	d, ti := f.find(a.Snapshot)
	if ti < 0 {
		return nil, notFoundErr(a.Snapshot)
	}
	ds, _, _ := strings.Cut(a.Snapshot, "@")
	if a.From == "" {
		return []record{{To: a.Snapshot, GUID: d.snaps[ti].GUID, Size: f.snapSize}}, nil
	}
	fd, fi := f.find(a.From)
	if fi < 0 {
		return nil, notFoundErr(a.From)
	}
	from := fd.snaps[fi].GUID
	if a.Single {
		// -i: the target alone, as if nothing lay between (a wrong Single loses versions).
		return []record{{To: a.Snapshot, GUID: d.snaps[ti].GUID, FromGUID: from, Size: f.snapSize}}, nil
	}
	start := 0
	if fd == d {
		start = fi + 1
	}
	var recs []record
	for i := start; i <= ti; i++ {
		recs = append(recs, record{To: ds + "@" + d.snaps[i].Name, GUID: d.snaps[i].GUID, FromGUID: from, Size: f.snapSize, More: i < ti})
		from = d.snaps[i].GUID
	}
	return recs, nil
}

// Send is zfs send -P: the stream and its estimated size.
func (f *fakeZFS) Send(ctx context.Context, a zfs.SendArgs) (io.ReadCloser, int64, error) {
	f.count("Send")
	if f.sendHook != nil {
		f.sendHook(a)
	}
	recs, err := f.records(a)
	if err != nil {
		return nil, 0, err
	}
	var size int64
	for _, r := range recs {
		size += int64(r.Size - r.Offset)
	}
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	cut, stall := f.cutAfter, f.stall
	f.cutAfter, f.stall = 0, false
	f.mu.Unlock()
	pr, pw := io.Pipe()
	go func() {
		var sent int64
		for _, r := range recs {
			h, _ := json.Marshal(r)
			if _, err := pw.Write(append(h, '\n')); err != nil {
				return
			}
			payload := make([]byte, r.Size-r.Offset)
			for i := range payload {
				payload[i] = byte(r.Offset + i)
			}
			if cut > 0 && sent+int64(len(payload)) > cut {
				n := cut - sent
				_, _ = pw.Write(payload[:n])
				f.sent.Add(n)
				if stall {
					<-ctx.Done()
				}
				pw.CloseWithError(io.ErrUnexpectedEOF)
				return
			}
			if _, err := pw.Write(payload); err != nil {
				return
			}
			sent += int64(len(payload))
			f.sent.Add(int64(len(payload)))
		}
		pw.Close()
	}()
	return &fakeStream{pr, &f.closed}, size, nil
}

// fakeStream counts its Close.
type fakeStream struct {
	*io.PipeReader
	closed *atomic.Int64
}

func (s *fakeStream) Close() error {
	s.closed.Add(1)
	return s.PipeReader.Close()
}

func (f *fakeZFS) Receive(ctx context.Context, a zfs.ReceiveArgs, r io.Reader) error {
	f.count("Receive")
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("zfs receive: incomplete stream header: %w", err)
		}
		var rec record
		if err := json.Unmarshal(line, &rec); err != nil {
			return err
		}
		if err := f.check(a, rec); err != nil {
			return err
		}
		n, err := io.CopyN(io.Discard, br, int64(rec.Size-rec.Offset))
		f.mu.Lock()
		d := f.ds[a.Dataset]
		if d == nil {
			d = &fakeDS{}
			f.ds[a.Dataset] = d
			if a.Origin != "" {
				d.origin = a.Origin
			}
		}
		if err != nil {
			d.partial = &fakePartial{token: fmt.Sprintf("tok|%s|%s|%d", rec.To, rec.FromGUID, rec.Offset+int(n))}
			f.mu.Unlock()
			return fmt.Errorf("zfs receive: checksum mismatch or incomplete stream; partially received snapshot is saved: %w", err)
		}
		_, name, _ := strings.Cut(rec.To, "@")
		d.partial = nil
		d.snaps = append(d.snaps, zfs.Snap{Name: name, GUID: rec.GUID})
		f.mu.Unlock()
	}
}

// check applies receive's rules: a partial receive takes only its own resumption, an
// incremental needs its base as the newest snapshot (or the origin, for a new clone).
func (f *fakeZFS) check(a zfs.ReceiveArgs, rec record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.ds[a.Dataset]
	if d != nil && d.partial != nil && rec.Offset > 0 {
		return nil // a resumption: the token carries the checks made at its start
	}
	if d != nil && d.partial != nil {
		return &zfs.Error{Command: "zfs receive", Stderr: "destination contains partially-complete state from \"zfs receive -s\"", Typed: zfs.ErrNotResumable}
	}
	if rec.FromGUID == "" {
		if d != nil && len(d.snaps) > 0 {
			return errors.New("zfs receive: destination exists")
		}
		return nil
	}
	if d == nil || len(d.snaps) == 0 {
		od, oi := f.find(a.Origin)
		if a.Origin == "" || oi < 0 || od.snaps[oi].GUID != rec.FromGUID {
			return errors.New("zfs receive: local origin for clone does not exist")
		}
		return nil
	}
	if d.snaps[len(d.snaps)-1].GUID != rec.FromGUID {
		return errors.New("zfs receive: most recent snapshot does not match incremental source")
	}
	return nil
}
