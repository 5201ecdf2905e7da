package replication

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections from a free loopback port to the master's replication
// port, counting the bytes the master sends and able to drop every open connection (a
// network cut the endpoints do not cause).
type Proxy struct {
	Port   int
	ln     net.Listener
	target string
	down   atomic.Int64 // bytes from the master
	cut    atomic.Bool  // connections are refused (Cut)
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

// StartProxy listens on a free loopback port (Port) and forwards to target until the
// test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Port: ln.Addr().(*net.TCPAddr).Port, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.Drop() })
	go p.serve()
	return p
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

func (p *Proxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
}

func (p *Proxy) pipe(c net.Conn) {
	if p.cut.Load() {
		c.Close()
		return
	}
	m, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.track(c, m)
	done := make(chan struct{}, 2)
	go func() { io.Copy(m, c); done <- struct{}{} }() //nolint:errcheck
	go func() {
		// A MiB at a time through io.CopyN, which splices socket to socket in the kernel
		// as the benchmarks' raw relay does, and counts as it goes (Bytes, mid-transfer).
		for {
			n, err := io.CopyN(c, m, 1<<20)
			p.down.Add(n)
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}()
	<-done
	c.Close()
	m.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, m)
	p.mu.Unlock()
}

// Bytes is how many bytes the master sent through the proxy so far.
func (p *Proxy) Bytes() int64 { return p.down.Load() }

// Drop closes every open connection and returns how many pairs there were.
func (p *Proxy) Drop() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	n := len(p.conns) / 2
	clear(p.conns)
	return n
}

// Cut cuts the link (on: open connections dropped, new ones closed at once) or mends it.
func (p *Proxy) Cut(on bool) {
	p.cut.Store(on)
	if on {
		p.Drop()
	}
}
