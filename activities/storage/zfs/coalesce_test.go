package zfs

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// pieces is a source that returns its pieces one per read, then its end.
type pieces struct {
	mu   sync.Mutex
	left [][]byte
	end  error
	gate chan struct{} // when set, each read after the first waits for a value
	n    int
}

func (p *pieces) Read(b []byte) (int, error) {
	p.mu.Lock()
	n := p.n
	p.n++
	p.mu.Unlock()
	if p.gate != nil && n > 0 {
		<-p.gate
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.left) == 0 {
		return 0, p.end
	}
	k := copy(b, p.left[0])
	p.left = p.left[1:]
	return k, nil
}

// slowWriter keeps each write, the first one held until release is closed.
type slowWriter struct {
	mu      sync.Mutex
	writes  [][]byte
	release chan struct{}
	fail    error
}

func (w *slowWriter) Write(b []byte) (int, error) {
	if w.release != nil {
		<-w.release
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return 0, w.fail
	}
	w.writes = append(w.writes, bytes.Clone(b))
	return len(b), nil
}

func TestCopyCoalescedJoinsWhatArrivesDuringAWrite(t *testing.T) {
	var want []byte
	src := &pieces{end: io.EOF}
	for i := range 40 {
		p := bytes.Repeat([]byte{byte(i)}, 16<<10)
		src.left = append(src.left, p)
		want = append(want, p...)
	}
	// The first write waits until every piece has been read: the second carries them all.
	dst := &slowWriter{release: make(chan struct{})}
	go func() {
		for {
			src.mu.Lock()
			done := len(src.left) == 0
			src.mu.Unlock()
			if done {
				time.Sleep(10 * time.Millisecond)
				close(dst.release)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	n, err := copyCoalesced(dst, src)
	if err != nil || n != int64(len(want)) {
		t.Fatalf("copied %d of %d: %v", n, len(want), err)
	}
	if got := bytes.Join(dst.writes, nil); !bytes.Equal(got, want) {
		t.Fatal("the bytes written are not the bytes read, in order")
	}
	if len(dst.writes) > 3 {
		t.Fatalf("%d writes for 40 records read during one write", len(dst.writes))
	}
}

func TestCopyCoalescedWritesWithoutWaitingForMore(t *testing.T) {
	gate := make(chan struct{})
	src := &pieces{left: [][]byte{[]byte("first"), []byte("second")}, end: io.EOF, gate: gate}
	dst := &slowWriter{}
	done := make(chan error, 1)
	go func() { _, err := copyCoalesced(dst, src); done <- err }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		dst.mu.Lock()
		k := len(dst.writes)
		dst.mu.Unlock()
		if k == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first piece was not written while the source waited")
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	if err := <-done; err != nil || string(bytes.Join(dst.writes, nil)) != "firstsecond" {
		t.Fatalf("%q %v", dst.writes, err)
	}
}

func TestCopyCoalescedErrors(t *testing.T) {
	cut := errors.New("connection reset")
	src := &pieces{left: [][]byte{[]byte("abc")}, end: cut}
	dst := &slowWriter{}
	if n, err := copyCoalesced(dst, src); !errors.Is(err, cut) || n != 3 {
		t.Fatalf("a cut source: %d %v (its bytes first, then its error)", n, err)
	}
	broken := errors.New("broken pipe")
	src = &pieces{left: [][]byte{[]byte("abc"), []byte("def")}, end: io.EOF}
	if _, err := copyCoalesced(&slowWriter{fail: broken}, src); !errors.Is(err, broken) {
		t.Fatalf("a failed write: %v", err)
	}
}
