package storage

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// tcpPair is a connected pair of TCP connections on loopback.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

// The answer's head is read exactly (its length first): the bytes after it, the stream,
// stay on the socket for zfs receive.
func TestKernelAnswerHeadIsReadExactly(t *testing.T) {
	m, s := tcpPair(t)
	kw := &kernelWriter{raw: m, header: http.Header{}}
	kw.Header().Set(wire.HeaderGUID, "123")
	kw.Header().Set(wire.HeaderSize, "9")
	var counted int64
	n, err := kw.stream(strings.NewReader("ZFSSTREAM"), func(k int64) { counted += k })
	if err != nil || n != 9 || counted != 9 || !kw.finish() {
		t.Fatalf("stream: %d bytes, counted %d, %v", n, counted, err)
	}
	m.CloseWrite()
	resp, err := readKernelAnswer(s)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get(wire.HeaderGUID) != "123" || resp.Header.Get(wire.HeaderSize) != "9" {
		t.Errorf("answer %d %v", resp.StatusCode, resp.Header)
	}
	if rest, _ := io.ReadAll(s); string(rest) != "ZFSSTREAM" {
		t.Errorf("after the head: %q", rest)
	}
	// Other answers go whole, with their length, when the handler is done; the connection
	// then carries the next one.
	m2, s2 := tcpPair(t)
	kw = &kernelWriter{raw: m2, header: http.Header{}}
	kw.WriteHeader(http.StatusNoContent)
	if !kw.finish() {
		t.Fatal("a 204 ended the connection")
	}
	kw = &kernelWriter{raw: m2, header: http.Header{}}
	replError(kw, http.StatusGone, wire.CodeStaleToken, "gone")
	if !kw.finish() {
		t.Fatal("an error answer ended the connection")
	}
	if resp, err = readKernelAnswer(s2); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first answer %v %v", resp, err)
	}
	resp, err = readKernelAnswer(s2)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body = io.NopCloser(io.LimitReader(s2, resp.ContentLength))
	if err := answerError(resp); !strings.Contains(err.Error(), "gone") || resp.StatusCode != http.StatusGone {
		t.Errorf("error answer %d: %v", resp.StatusCode, err)
	}
	// A stream that did not end well leaves nothing the next answer could follow.
	m3, _ := tcpPair(t)
	kw = &kernelWriter{raw: m3, header: http.Header{}}
	if _, err := kw.stream(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(io.ErrUnexpectedEOF)), func(int64) {}); err == nil || kw.finish() {
		t.Errorf("a cut stream: %v, and the connection goes on", err)
	}
}

// A head longer than any answer's is refused, not allocated.
func TestKernelAnswerRefusesAHugeHead(t *testing.T) {
	m, s := tcpPair(t)
	if _, err := m.Write([]byte{0x7f, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := readKernelAnswer(s); err == nil {
		t.Fatal("a 2 GiB head was taken")
	}
}

// splicePipe moves a pipe's bytes into a socket in order, counting them, until the
// pipe's end.
func TestSplicePipe(t *testing.T) {
	m, s := tcpPair(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := range 64 {
		want = append(want, bytes.Repeat([]byte{byte(i)}, 100<<10+i)...)
	}
	go func() {
		_, _ = pw.Write(want)
		pw.Close()
	}()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(s)
		got <- b
	}()
	var counted atomic.Int64
	n, err := splicePipe(m, pr, func(k int64) { counted.Add(k) })
	pr.Close()
	m.CloseWrite()
	if err != nil || n != int64(len(want)) || counted.Load() != n {
		t.Fatalf("spliced %d of %d (counted %d): %v", n, len(want), counted.Load(), err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("received %d bytes, not the %d written", len(b), len(want))
	}
}

// peek shows the stream's first bytes without taking them; received counts what the
// socket took in.
func TestKernelBodyPeekAndReceived(t *testing.T) {
	m, s := tcpPair(t)
	kb := &kernelBody{raw: s}
	if _, err := m.Write([]byte("BEGINRECORD and more")); err != nil {
		t.Fatal(err)
	}
	if head := kb.peek(11); string(head) != "BEGINRECORD" {
		t.Errorf("peek %q", head)
	}
	all := make([]byte, 20)
	if _, err := io.ReadFull(kb, all); err != nil || string(all) != "BEGINRECORD and more" {
		t.Errorf("read after peek %q %v", all, err)
	}
	if n := kb.received(); n != 20 {
		t.Errorf("received %d bytes, want 20", n)
	}
}

// A master that agrees to kernel TLS where the kernel then refuses it (no TLS module, as
// on this machine) costs a transfer nothing but the attempt: the slave asks over HTTPS,
// and asks that master over HTTPS only for a while.
func TestKernelTLSRefusedFallsBackToHTTPS(t *testing.T) {
	defer func(f func() bool) { kernelTLS = f }(kernelTLS)
	kernelTLS = func() bool { return true }
	r := newKernelRig(t)
	g1 := r.master.snapshot("mpool/iscsi/volumes/5", "group-7")
	in := r.input("iscsi/volumes/5", "group-7", g1)
	res, err := r.acts.Replicate(context.Background(), in)
	if err != nil || res.GUID != g1 {
		t.Fatalf("replicate: %+v %v", res, err)
	}
	if r.acts.kernel.usable(in.MasterAddr) {
		t.Error("the master that could not use kernel TLS is asked through it again")
	}
	if got := r.guids(t, "iscsi/volumes/5"); len(got) != 1 || got[0] != "group-7="+g1 {
		t.Errorf("slave holds %v", got)
	}
}

// newKernelRig is newRig with the master offering wire.ProtoKernelStream.
func newKernelRig(t *testing.T) *replRig {
	return newRigWith(t, 0, slaveID, func(r *replRig) {
		r.srv.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){wire.ProtoKernelStream: r.rs.serveKernel}
		r.srv.TLS = kernelConfig(r.srv.TLS)
	})
}

// Kernel TLS takes AES-GCM streams up to kernelAESGCMMax (it never updates a key), and
// ChaCha20-Poly1305 streams of any length.
func TestKernelFits(t *testing.T) {
	for _, c := range []struct {
		suite uint16
		size  int64
		want  bool
	}{
		{tls.TLS_AES_128_GCM_SHA256, 100 << 30, true},
		{tls.TLS_AES_128_GCM_SHA256, 300 << 30, false},
		{tls.TLS_AES_256_GCM_SHA384, 300 << 30, false},
		{tls.TLS_CHACHA20_POLY1305_SHA256, 4 << 40, true},
		{tls.TLS_AES_128_GCM_SHA256, 0, true}, // no estimate
	} {
		if got := kernelFits(c.suite, c.size); got != c.want {
			t.Errorf("%s, %d bytes: %v", tls.CipherSuiteName(c.suite), c.size, got)
		}
	}
}
