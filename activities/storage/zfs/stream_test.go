package zfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities"
)

func TestSendArgs(t *testing.T) {
	for _, c := range []struct {
		in   SendArgs
		want []string
	}{
		{SendArgs{Snapshot: "tank/iscsi/volumes/5@group-7"}, []string{"send", "-c", "tank/iscsi/volumes/5@group-7"}},
		{SendArgs{Snapshot: "tank/iscsi/groups/7@v2", From: "tank/iscsi/volumes/5@group-7"}, []string{"send", "-c", "-I", "tank/iscsi/volumes/5@group-7", "tank/iscsi/groups/7@v2"}},
		{SendArgs{Snapshot: "tank/iscsi/groups/7@v2", From: "tank/iscsi/groups/7@v1", Raw: true}, []string{"send", "-w", "-I", "tank/iscsi/groups/7@v1", "tank/iscsi/groups/7@v2"}},
		{SendArgs{Snapshot: "tank/iscsi/groups/7@v2", From: "tank/iscsi/groups/7@v1", Single: true}, []string{"send", "-c", "-i", "tank/iscsi/groups/7@v1", "tank/iscsi/groups/7@v2"}},
		{SendArgs{Snapshot: "ignored", From: "ignored", Token: "1-abc"}, []string{"send", "-t", "1-abc"}},
	} {
		if got := c.in.args(); !slices.Equal(got, c.want) {
			t.Errorf("%+v: %v, want %v", c.in, got, c.want)
		}
	}
}

func TestParseSnaps(t *testing.T) {
	out := "tank/iscsi/groups/7@v1\t111\t20\ntank/iscsi/groups/7@v2\t222\t31\n\n"
	got := parseSnaps(out)
	want := []Snap{{Name: "v1", GUID: "111", CreateTXG: 20}, {Name: "v2", GUID: "222", CreateTXG: 31}}
	if !slices.Equal(got, want) {
		t.Errorf("%+v", got)
	}
}

// The stderr of OpenZFS 2.1's send and receive, as a master or slave sees it.
func TestClassifyStream(t *testing.T) {
	for _, c := range []struct {
		stderr string
		want   error
	}{
		{"cannot resume send: 'tank/iscsi/groups/7@v2' used in the initial send no longer exists", ErrStaleToken},
		{"cannot resume send: 'tank/iscsi/groups/7@v2' is no longer the same snapshot used in the initial send", ErrStaleToken},
		{"cannot receive new filesystem stream: destination sat/iscsi/volumes/5 contains partially-complete state from \"zfs receive -s\".", ErrNotResumable},
		{"cannot receive: out of space", activities.ErrPoolFull},
		{"cannot open 'tank/iscsi/volumes/9': dataset does not exist", activities.ErrDatasetNotFound},
	} {
		if got := classifyStream(c.stderr); !errors.Is(got, c.want) {
			t.Errorf("%q: %v, want %v", c.stderr, got, c.want)
		}
	}
}

func TestParseState(t *testing.T) {
	out := "tank/iscsi/groups/7\t901\t10\t-\toff\ttank/iscsi/volumes/5@group-7\t-\t0\n" +
		"tank/iscsi/groups/7@v1\t111\t20\t1\toff\t-\t-\t-\n" +
		"tank/iscsi/groups/7/child\t555\t25\t-\toff\t-\t-\t8192\n" +
		"tank/iscsi/groups/7@v2\t222\t31\t0\toff\t-\t-\t-\n"
	st, err := parseState("tank/iscsi/groups/7", out)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Snap{{Name: "v1", GUID: "111", CreateTXG: 20}, {Name: "v2", GUID: "222", CreateTXG: 31}}; !slices.Equal(st.Snaps, want) {
		t.Errorf("snaps %+v", st.Snaps)
	}
	if !slices.Equal(st.Held, []string{"v1"}) || st.Origin != "tank/iscsi/volumes/5@group-7" || st.Encryption != "off" ||
		st.ResumeToken != "" || st.Written != "0" {
		t.Errorf("state %+v", st)
	}
	st, err = parseState("sat/iscsi/volumes/5", "sat/iscsi/volumes/5\t77\t9\t-\toff\t-\t1-abc-def\t0\n")
	if err != nil || st.ResumeToken != "1-abc-def" || len(st.Snaps) != 0 || st.Origin != "" {
		t.Errorf("partial: %+v %v", st, err)
	}
	if _, err := parseState("tank/x", ""); err == nil {
		t.Error("an empty listing is a state")
	}
}

func TestOnlyBenign(t *testing.T) {
	exists := func(l string) bool { return strings.Contains(l, "tag already exists") }
	e := func(stderr string) error { return &Error{Command: "zfs hold", Stderr: stderr, Typed: Classify(stderr)} }
	if err := onlyBenign(e("cannot hold snapshot 'tank/a@v1': tag already exists on this dataset\n"), exists); err != nil {
		t.Errorf("one benign line: %v", err)
	}
	if err := onlyBenign(e("cannot hold snapshot 'tank/a@v1': tag already exists on this dataset\ncannot hold snapshot 'tank/a@v2': out of space\n"), exists); err == nil {
		t.Error("a real failure beside a benign one is success")
	}
	if err := onlyBenign(e(""), exists); err == nil {
		t.Error("a failure without stderr is success")
	}
	if err := onlyBenign(errors.New("exec: not found"), exists); err == nil {
		t.Error("a failure to run is success")
	}
}

// fakeSend puts a zfs on PATH whose send behaves as script says.
func fakeSend(t *testing.T, script string) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "zfs"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// zfs send -P prints its estimate on stderr before the stream (OpenZFS 2.1, seen in the
// lab's guest): Send reads it and streams stdout untouched.
func TestSendReadsTheEstimate(t *testing.T) {
	fakeSend(t, `printf 'incremental\tv1\ttank/v@v2\t300\nsize\t300\n' >&2; printf 'STREAM'; printf 'late note\n' >&2`)
	z := New(slog.Default())
	r, size, err := z.Send(context.Background(), SendArgs{Snapshot: "tank/v@v2", From: "tank/v@v1"})
	if err != nil || size != 300 {
		t.Fatalf("size %d err %v", size, err)
	}
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "STREAM" {
		t.Errorf("stream %q %v", b, err)
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
	// No estimate: the stream still flows, size 0.
	fakeSend(t, `printf 'STREAM'`)
	r, size, err = z.Send(context.Background(), SendArgs{Snapshot: "tank/v@v2"})
	if err != nil || size != 0 {
		t.Fatalf("no estimate: size %d err %v", size, err)
	}
	b, _ = io.ReadAll(r)
	if string(b) != "STREAM" || r.Close() != nil {
		t.Errorf("no estimate: stream %q", b)
	}
	// A send that fails before its stream fails here, classified.
	fakeSend(t, `echo "cannot resume send: 'tank/v@v2' used in the initial send no longer exists" >&2; exit 1`)
	if _, _, err = z.Send(context.Background(), SendArgs{Token: "1-abc"}); !errors.Is(err, ErrStaleToken) {
		t.Errorf("stale token: %v", err)
	}
}

// Receive hands zfs receive the whole stream, in order, through its coalescing copy; a
// stream that breaks is the error, not receive's complaint about a short input.
func TestReceiveFeedsTheStream(t *testing.T) {
	got := filepath.Join(t.TempDir(), "received")
	fakeSend(t, `cat > `+got)
	z := New(slog.Default())
	src := &pieces{end: io.EOF}
	var want []byte
	for i := range 200 {
		p := bytes.Repeat([]byte{byte(i)}, 16<<10+i)
		src.left = append(src.left, p)
		want = append(want, p...)
	}
	if err := z.Receive(context.Background(), ReceiveArgs{Dataset: "tank/v"}, src); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, want) {
		t.Fatalf("zfs receive read %d bytes of %d (%v)", len(b), len(want), err)
	}
	fakeSend(t, `cat > /dev/null; echo "cannot receive: failed to read from stream" >&2; exit 1`)
	cut := errors.New("connection reset by peer")
	err := z.Receive(context.Background(), ReceiveArgs{Dataset: "tank/v"}, &pieces{left: [][]byte{[]byte("abc")}, end: cut})
	if !errors.Is(err, cut) || !strings.Contains(err.Error(), "stream") {
		t.Fatalf("a cut stream: %v", err)
	}
}

// Pipe hands over what Send read ahead and zfs send's pipe: the two make the whole stream.
func TestSendPipe(t *testing.T) {
	fakeSend(t, `printf 'size\t6\n' >&2; printf 'STR'; sleep 0.2; printf 'EAM'`)
	r, _, err := New(slog.Default()).Send(context.Background(), SendArgs{Snapshot: "tank/v@v2"})
	if err != nil {
		t.Fatal(err)
	}
	head, pipe := r.(*Stream).Pipe()
	if pipe == nil {
		t.Fatal("no pipe")
	}
	rest, err := io.ReadAll(pipe)
	if err != nil || string(head)+string(rest) != "STREAM" {
		t.Errorf("head %q, rest %q (%v)", head, rest, err)
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
}

// Given a socket, zfs receive reads it itself; when ctx ends, the socket's reading side
// is shut and receive sees the end of its input (and would save its resume state).
func TestReceiveReadsASocket(t *testing.T) {
	got := filepath.Join(t.TempDir(), "received")
	fakeSend(t, `cat > `+got+`; echo "cannot receive: failed to read from stream" >&2; exit 1`)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := peer.Write([]byte("partial stream")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(slog.Default()).Receive(ctx, ReceiveArgs{Dataset: "tank/v"}, f) }()
	time.Sleep(300 * time.Millisecond)
	cancel() // the peer stays silent: only the shut socket ends receive's input
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("receive did not end after its context")
	}
	if err == nil {
		t.Fatal("a cut receive succeeded")
	}
	if b, _ := os.ReadFile(got); string(b) != "partial stream" {
		t.Errorf("receive read %q", b)
	}
}
