package storage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/ktls"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
	"golang.org/x/sys/unix"
)

// A full send through crypto/tls costs the two agents the AEAD and two copies of every
// byte between the kernel and user space, while raw `zfs send | zfs receive` costs
// neither. Over wire.ProtoKernelStream the stream keeps its TLS (the agents' handshake
// and certificates, as on every replication connection) but its records are sealed and
// opened by the kernels: the master splices zfs send's pipe into the socket and the
// slave hands the socket to zfs receive as its input. Neither agent touches a byte of it.

// ServeKernelTLS makes srv, the replication endpoint (its TLSConfig set, serving through
// GatherListener), offer wire.ProtoKernelStream. It returns false, offering nothing, when
// this kernel has no TLS.
func (s *ReplicationServer) ServeKernelTLS(srv *http.Server) bool {
	if srv.TLSConfig == nil || !ktls.Available() {
		return false
	}
	srv.TLSConfig = kernelConfig(srv.TLSConfig)
	if srv.TLSNextProto == nil {
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	srv.TLSNextProto[wire.ProtoKernelStream] = s.serveKernel
	return true
}

// kernelConfig is base, agreeing to wire.ProtoKernelStream with a slave that asks for it
// (on a gathering connection, where the handshake's secrets are kept).
func kernelConfig(base *tls.Config) *tls.Config {
	base = base.Clone()
	cfg := base.Clone()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		gc, ok := hello.Conn.(*gatherConn)
		if !ok || !slices.Contains(hello.SupportedProtos, wire.ProtoKernelStream) {
			return nil, nil
		}
		kc, sec := ktls.Config(base)
		kc.NextProtos = []string{wire.ProtoKernelStream}
		gc.secrets = sec
		return kc, nil
	}
	return cfg
}

// serveKernel answers the requests of a wire.ProtoKernelStream connection (its handshake
// done, the slave's certificate checked) through kernel TLS: a send, then its
// acknowledgement. h is net/http's handler for
// the connection (the endpoint's mux, with the request's TLS state and context).
func (s *ReplicationServer) serveKernel(_ *http.Server, c *tls.Conn, h http.Handler) {
	gc, _ := c.NetConn().(*gatherConn)
	var raw *net.TCPConn
	if gc != nil {
		raw, _ = gc.Conn.(*net.TCPConn)
	}
	if raw == nil || gc.secrets == nil {
		s.Log.Warn("replication: a kernel-TLS connection without its socket or secrets", "remote", c.RemoteAddr())
		return
	}
	// The connection ends here, not through crypto/tls's close (whose close_notify would
	// go out through the kernel's record layer as data).
	defer raw.Close()
	if err := ktls.Enable(c, raw, gc.secrets, ktls.Server, ktls.TX); err != nil {
		// The slave sees the connection end without an answer and asks over HTTPS.
		s.Log.Warn("replication: kernel TLS refused", "remote", c.RemoteAddr(), "err", err)
		return
	}
	ctx := context.Background()
	if b, ok := h.(interface{ BaseContext() context.Context }); ok {
		ctx = b.BaseContext()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A send, then the acknowledgement of what it sent (one handshake for both), as long
	// as each answer ended well.
	br := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(kernelIdle))
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		kw := &kernelWriter{raw: raw, tc: c, header: http.Header{}}
		h.ServeHTTP(kw, req.WithContext(ctx))
		if !kw.finish() {
			return
		}
	}
}

// kernelIdle is how long a wire.ProtoKernelStream connection waits for its next request.
const kernelIdle = 5 * time.Minute

// kernelWriter is the http.ResponseWriter of a wire.ProtoKernelStream request: it writes
// the answer's head (length-prefixed) and body to the socket, whose kernel seals them. A
// 200 is a stream (its end is the stream's own, which zfs receive finds); any other
// answer's body is kept and sent with its Content-Length when the handler is done.
type kernelWriter struct {
	raw      *net.TCPConn
	tc       *tls.Conn
	header   http.Header
	status   int // 0 until the head is decided
	body     bytes.Buffer
	streamed bool // a 200's stream was sent to its end
	err      error
}

func (k *kernelWriter) Header() http.Header { return k.header }

func (k *kernelWriter) WriteHeader(code int) {
	if k.status != 0 {
		return
	}
	k.status = code
	if code == http.StatusOK {
		k.err = k.writeHead(nil)
	}
}

// writeHead writes the length-prefixed head, and body after it when body is not nil.
func (k *kernelWriter) writeHead(body []byte) error {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 0, 0})
	fmt.Fprintf(&b, "HTTP/1.1 %03d %s\r\n", k.status, http.StatusText(k.status))
	if body != nil {
		k.header.Set("Content-Length", fmt.Sprint(len(body)))
	}
	_ = k.header.Write(&b)
	b.WriteString("\r\n")
	binary.BigEndian.PutUint32(b.Bytes(), uint32(b.Len()-4))
	b.Write(body)
	_, err := k.raw.Write(b.Bytes())
	return err
}

func (k *kernelWriter) Write(p []byte) (int, error) {
	k.WriteHeader(http.StatusOK)
	if k.status != http.StatusOK {
		return k.body.Write(p)
	}
	if k.err != nil {
		return 0, k.err
	}
	return k.raw.Write(p)
}

// finish sends a kept answer, and says whether the connection can carry another request:
// not after a stream that did not end well, nor after a failed write.
func (k *kernelWriter) finish() bool {
	switch k.status {
	case http.StatusOK:
		return k.err == nil && k.streamed
	case 0:
		k.status = http.StatusInternalServerError // a handler that answered nothing
	}
	body := k.body.Bytes()
	if body == nil {
		body = []byte{} // a Content-Length of 0 all the same
	}
	return k.writeHead(body) == nil
}

// Flush: every write goes out at once. (http.ResponseController uses it.)
func (k *kernelWriter) Flush() {}

// SetReadDeadline bounds the wait for the request's body (http.ResponseController).
func (k *kernelWriter) SetReadDeadline(t time.Time) error { return k.tc.SetReadDeadline(t) }

// kernelAESGCMMax is the longest stream sent through kernel TLS with AES-GCM: TLS 1.3
// wants an AES-GCM key updated within 2^24.5 records (about 370 GiB of 16 KiB records),
// and the kernel does not update keys. ChaCha20-Poly1305 has no such bound.
const kernelAESGCMMax = 256 << 30

// fits says whether a stream of about size bytes may go through this connection's
// kernel TLS.
func (k *kernelWriter) fits(size int64) bool {
	return kernelFits(k.tc.ConnectionState().CipherSuite, size)
}

func kernelFits(suite uint16, size int64) bool {
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384:
		return size <= kernelAESGCMMax
	}
	return true
}

// pace caps the connection's rate at bytesPerSecond (the kernel's TCP pacing), the
// slave's bandwidth limit.
func (k *kernelWriter) pace(bytesPerSecond int64) error {
	sc, err := k.raw.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := sc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE, int(min(bytesPerSecond, 1<<31-1)))
	}); err != nil {
		return err
	}
	return serr
}

// stream sends src, zfs send's output, after the answer's head: what Send already read
// ahead is written, and the rest is spliced from zfs send's pipe into the socket, never
// read by the agent. count is told every piece sent.
func (k *kernelWriter) stream(src io.Reader, count func(int64)) (int64, error) {
	k.WriteHeader(http.StatusOK)
	if k.err != nil {
		return 0, k.err
	}
	var total int64
	if ps, ok := src.(interface{ Pipe() ([]byte, *os.File) }); ok {
		if head, pipe := ps.Pipe(); pipe != nil {
			n, err := k.raw.Write(head)
			total += int64(n)
			count(int64(n))
			if err != nil {
				return total, err
			}
			n64, err := splicePipe(k.raw, pipe, count)
			k.streamed = err == nil
			return total + n64, err
		}
	}
	n, err := io.CopyBuffer(onlyWriter{countingWriter{k.raw, count}}, onlyReader{src}, make([]byte, streamBuffer))
	k.streamed = err == nil
	return n, err
}

type countingWriter struct {
	w     io.Writer
	count func(int64)
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.count(int64(n))
	return n, err
}

// splicePipe moves pipe's bytes into dst until the pipe's end, in the kernel. The pipe
// is put in blocking mode: a splice waits for zfs send's next bytes, and a full socket
// is waited for by Go's poller.
func splicePipe(dst *net.TCPConn, pipe *os.File, count func(int64)) (int64, error) {
	pfd := int(pipe.Fd())
	sc, err := dst.SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		var n int64
		var serr error
		werr := sc.Write(func(fd uintptr) bool {
			n, serr = unix.Splice(pfd, nil, int(fd), nil, 1<<20, unix.SPLICE_F_MOVE)
			return serr != unix.EAGAIN
		})
		if n > 0 {
			total += n
			count(n)
		}
		switch {
		case werr != nil:
			return total, werr
		case serr == unix.EINTR:
		case serr != nil:
			return total, fmt.Errorf("splice: %w", serr)
		case n == 0:
			return total, nil // zfs send closed its output
		}
	}
}

// kernelDialer is how a slave reaches its master over wire.ProtoKernelStream; masters
// that refused it (no kernel TLS there) are remembered for a while and asked over HTTPS.
type kernelDialer struct {
	mu      sync.Mutex
	refused map[string]time.Time // master address -> when
}

// kernelRetry is how long a master that refused kernel TLS is asked over HTTPS only.
const kernelRetry = 10 * time.Minute

func (d *kernelDialer) usable(addr string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	at, ok := d.refused[addr]
	return !ok || time.Since(at) > kernelRetry
}

func (d *kernelDialer) refuse(addr string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refused == nil {
		d.refused = map[string]time.Time{}
	}
	d.refused[addr] = time.Now()
}

// errNoKernelTLS: the master (or this side) cannot use kernel TLS for this connection;
// the request goes over HTTPS.
var errNoKernelTLS = errors.New("kernel TLS not agreed")

// kernelPull is a send request over wire.ProtoKernelStream, its headers on their way
// while the slave lists its copy (like earlyPull). Before the master's answer, a failure
// of kernel TLS turns the request into an earlyPull over HTTPS.
type kernelPull struct {
	ctx   context.Context
	c     *http.Client
	in    ReplicateInput
	d     *kernelDialer
	ready chan error // the connection is up and the request's headers sent
	tc    *tls.Conn
	raw   *net.TCPConn
	sent  bool
	kb    *kernelBody // the answer's body, once it came
}

func startKernelPull(ctx context.Context, c *http.Client, cfg *tls.Config, d *kernelDialer, in ReplicateInput) *kernelPull {
	p := &kernelPull{ctx: ctx, c: c, in: in, d: d, ready: make(chan error, 1)}
	go func() { p.ready <- p.dial(cfg) }()
	return p
}

func (p *kernelPull) dial(cfg *tls.Config) error {
	c, err := replDialer.DialContext(p.ctx, "tcp", p.in.MasterAddr)
	if err != nil {
		return err
	}
	raw := c.(*net.TCPConn)
	kc, sec := ktls.Config(cfg)
	kc.NextProtos = []string{wire.ProtoKernelStream, "http/1.1"}
	tc := tls.Client(raw, kc)
	hctx, cancel := context.WithTimeout(p.ctx, replHandshake)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return err
	}
	if tc.ConnectionState().NegotiatedProtocol != wire.ProtoKernelStream {
		raw.Close()
		p.d.refuse(p.in.MasterAddr)
		return errNoKernelTLS
	}
	// The master sends nothing before it has the request: nothing of its was read ahead
	// by crypto/tls, and the kernel opens its records from the first.
	if err := ktls.Enable(tc, raw, sec, ktls.Client, ktls.RX); err != nil {
		raw.Close()
		p.d.refuse(p.in.MasterAddr)
		return fmt.Errorf("%w: %v", errNoKernelTLS, err)
	}
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s: %s\r\n", wire.PathReplicationSend, p.in.MasterAddr, wire.HeaderDataset, p.in.Dataset)
	if p.in.Snapshot != "" {
		head += fmt.Sprintf("%s: %s\r\n", wire.HeaderSnapshot, p.in.Snapshot)
	}
	head += "Transfer-Encoding: chunked\r\n\r\n"
	if _, err := io.WriteString(tc, head); err != nil {
		raw.Close()
		return err
	}
	p.tc, p.raw = tc, raw
	return nil
}

// send writes req as the body and returns the master's answer, as earlyPull.send does.
// A 200's body is a *kernelBody.
func (p *kernelPull) send(req wire.SendRequest) (*http.Response, error) {
	p.sent = true
	if err := <-p.ready; err != nil {
		if errors.Is(err, errNoKernelTLS) {
			return startPull(p.ctx, p.c, p.in).send(req)
		}
		return nil, err
	}
	stop := context.AfterFunc(p.ctx, func() { _ = p.raw.Close() })
	defer stop()
	req.BytesPerSecond = p.in.BytesPerSecond
	b, err := json.Marshal(req)
	if err == nil {
		_, err = fmt.Fprintf(p.tc, "%x\r\n%s\r\n0\r\n\r\n", len(b), b)
	}
	if err != nil {
		p.raw.Close()
		return nil, err
	}
	resp, err := readKernelAnswer(p.raw)
	if err != nil {
		p.raw.Close()
		if p.ctx.Err() != nil {
			return nil, context.Cause(p.ctx)
		}
		if errors.Is(err, io.EOF) {
			// Closed before a byte of the answer: the master's kernel refused kernel TLS
			// after agreeing to it (or the master went away). Ask over HTTPS.
			p.d.refuse(p.in.MasterAddr)
			return startPull(p.ctx, p.c, p.in).send(req)
		}
		return nil, fmt.Errorf("the master's answer: %w", err)
	}
	kb := &kernelBody{raw: p.raw}
	resp.Body = kb
	switch resp.StatusCode {
	case http.StatusOK:
		p.kb = kb
		return resp, nil
	case http.StatusNoContent:
		p.kb = kb
		kb.end() // nothing follows but the next answer
		return resp, nil
	}
	defer resp.Body.Close()
	resp.Body = io.NopCloser(io.LimitReader(kb, max(resp.ContentLength, 0)))
	err = answerError(resp)
	if re := (*wire.ReplicationError)(nil); errors.As(err, &re) && re.Code == wire.CodeUseHTTPS {
		return startPull(p.ctx, p.c, p.in).send(req)
	}
	return nil, err
}

// readKernelAnswer reads an answer's length-prefixed head from the socket, exactly: what
// follows it is the stream, for zfs receive.
func readKernelAnswer(raw *net.TCPConn) (*http.Response, error) {
	var l [4]byte
	if _, err := io.ReadFull(raw, l[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(l[:])
	if n > 64<<10 {
		return nil, fmt.Errorf("an answer's head of %d bytes", n)
	}
	head := make([]byte, n)
	if _, err := io.ReadFull(raw, head); err != nil {
		return nil, err
	}
	return http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
}

// ack acknowledges in.Snapshot on the connection that carried its stream (or its "you
// have it" answer); false when that connection cannot carry it (then ask over HTTPS).
func (p *kernelPull) ack(in ReplicateInput) (bool, error) {
	if p.kb == nil || !p.kb.ended.Load() {
		return false, nil
	}
	b, err := json.Marshal(wire.AckRequest{Dataset: in.Dataset, GUID: in.GUID})
	if err != nil {
		return true, err
	}
	stop := context.AfterFunc(p.ctx, func() { _ = p.raw.Close() })
	defer stop()
	if _, err := fmt.Fprintf(p.tc, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		wire.PathReplicationAck, in.MasterAddr, len(b), b); err != nil {
		return false, nil
	}
	resp, err := readKernelAnswer(p.raw)
	if err != nil {
		return false, nil
	}
	if resp.StatusCode == http.StatusNoContent {
		return true, nil
	}
	resp.Body = io.NopCloser(io.LimitReader(p.raw, max(resp.ContentLength, 0)))
	return true, answerError(resp)
}

func (p *kernelPull) abandon() {
	if p.sent {
		return
	}
	p.sent = true
	if err := <-p.ready; err == nil {
		p.raw.Close()
	}
}

// kernelBody is the stream of a wire.ProtoKernelStream answer: the socket, opened by the
// kernel. Its reads are plain reads (an error's body, what is left after zfs receive);
// the stream itself goes to zfs receive as the socket (receiveKernel).
type kernelBody struct {
	raw   *net.TCPConn
	ended atomic.Bool // the stream was read to its end by zfs receive: Read gives EOF
}

func (k *kernelBody) Read(p []byte) (int, error) {
	if k.ended.Load() {
		return 0, io.EOF
	}
	return k.raw.Read(p)
}

func (k *kernelBody) Close() error { return k.raw.Close() }

// end marks the stream read to its end: the connection carries the next answer.
func (k *kernelBody) end() { k.ended.Store(true) }

// peek returns up to n of the stream's first bytes without taking them (the stream's
// first record names its guid), or nil.
func (k *kernelBody) peek(n int) []byte {
	sc, err := k.raw.SyscallConn()
	if err != nil {
		return nil
	}
	buf := make([]byte, n)
	var got int
	_ = k.raw.SetReadDeadline(time.Now().Add(time.Minute))
	defer k.raw.SetReadDeadline(time.Time{}) //nolint:errcheck
	if err := sc.Read(func(fd uintptr) bool {
		var rerr error
		got, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_PEEK)
		return rerr != unix.EAGAIN
	}); err != nil || got <= 0 {
		return nil
	}
	return buf[:got]
}

// received is what the socket has received so far (TCP_INFO), the stream's progress.
func (k *kernelBody) received() int64 {
	sc, err := k.raw.SyscallConn()
	if err != nil {
		return 0
	}
	var n int64
	_ = sc.Control(func(fd uintptr) {
		if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			n = int64(ti.Bytes_received)
		}
	})
	return n
}

// receiveKernel runs zfs receive on the socket itself, heartbeating what the socket
// received, and cuts it (the socket's reading side shut) when nothing came for stall.
func (a *Activities) receiveKernel(ctx context.Context, z ReplicationZFS, recv zfs.ReceiveArgs, kb *kernelBody, stall time.Duration, prog *ReplicateProgress, pub *atomic.Pointer[ReplicateProgress]) error {
	f, err := kb.raw.File()
	if err != nil {
		return err
	}
	defer f.Close()
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := kb.received()
	done := make(chan error, 1)
	go func() { done <- z.Receive(rctx, recv, f) }()
	// The socket counts bytes, not when they came: the last byte came when the count
	// last moved.
	last, lastAt := int64(0), time.Now()
	err = a.watchReceive(ctx, rctx, cancel, done, receiving{
		progress: func(now time.Time) (int64, time.Time) {
			if n := kb.received() - start; n != last {
				last, lastAt = n, now
			}
			return last, lastAt
		},
		cut: func() { _ = kb.raw.CloseRead() }, // zfs receive reads the end and saves its state
	}, stall, prog, pub)
	if err == nil {
		kb.end()
	}
	return err
}
