// Package tunnel is the tunnel server's logic: storage agents of its network dial out to
// it over TLS with their panel-issued certificates, one yamux session each; for every
// server it opens the server's Tunnel Port, where only the panel (its client certificate
// from the panel CA) may connect, and carries each connection to that agent's API over a
// new stream of the agent's session. Activities (activities.go) open, move and close the
// ports on the task queue tunnel-<id>.
package tunnel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/hashicorp/yamux"
)

// Relay is one tunnel process's state: the agents' sessions and the open tunnel ports.
// Safe for concurrent use.
type Relay struct {
	Identity wire.TunnelIdentity
	Cert     tls.Certificate // the tunnel's, signed by the panel CA
	CA       *x509.CertPool  // the panel CA
	// PortsHost is the address tunnel ports bind to ("" for every address).
	PortsHost string
	// Panel is the panel's host:port: a stream an agent opens on its session is carried
	// there (the agent's boot view watches the panel through its tunnel). "": refused.
	Panel string
	Log   *slog.Logger

	mu       sync.Mutex
	sessions map[uint]*yamux.Session // by server id
	ports    map[uint]*openPort      // by server id
}

type openPort struct {
	port int
	ln   net.Listener
}

// handshakeTimeout bounds a TLS handshake and the hello that follows, so a port scan or a
// stalled peer holds nothing.
const handshakeTimeout = 10 * time.Second

// YamuxConfig is the session configuration both ends use: keep-alives every 10 s (a dead
// peer is noticed within about 10 s plus the write timeout) and a write timeout.
func YamuxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = true
	c.KeepAliveInterval = 10 * time.Second
	c.ConnectionWriteTimeout = 10 * time.Second
	c.StreamOpenTimeout = 10 * time.Second
	c.LogOutput = io.Discard
	return c
}

func (r *Relay) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

// ServeAgents accepts agents on ln (plain TCP: the TLS is the relay's) until ctx ends.
func (r *Relay) ServeAgents(ctx context.Context, ln net.Listener) error {
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go r.agent(ctx, c)
	}
}

// agent authenticates one agent connection and keeps its session until it ends.
func (r *Relay) agent(ctx context.Context, raw net.Conn) {
	tc := tls.Server(raw, &tls.Config{
		Certificates: []tls.Certificate{r.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    r.CA,
		MinVersion:   tls.VersionTLS13,
	})
	raw.SetDeadline(time.Now().Add(handshakeTimeout)) //nolint:errcheck
	id, err := r.admit(ctx, tc)
	if err != nil {
		r.log().Warn("agent refused", "remote", raw.RemoteAddr().String(), "err", err)
		if id.ServerID != 0 || errors.Is(err, errRefused) {
			b, _ := json.Marshal(wire.TunnelWelcome{Error: err.Error()})
			tc.Write(append(b, '\n')) //nolint:errcheck
		}
		tc.Close()
		return
	}
	raw.SetDeadline(time.Time{}) //nolint:errcheck
	sess, err := yamux.Server(tc, YamuxConfig())
	if err != nil {
		tc.Close()
		return
	}
	r.mu.Lock()
	if old := r.sessions[id.ServerID]; old != nil {
		old.Close() // the agent came back: its old session is dead or about to be
	}
	if r.sessions == nil {
		r.sessions = map[uint]*yamux.Session{}
	}
	r.sessions[id.ServerID] = sess
	r.mu.Unlock()
	r.log().Info("agent connected", "server", id.ServerID, "remote", raw.RemoteAddr().String())
	r.toPanel(id.ServerID, sess)
	r.mu.Lock()
	if r.sessions[id.ServerID] == sess {
		delete(r.sessions, id.ServerID)
	}
	r.mu.Unlock()
	r.log().Info("agent disconnected", "server", id.ServerID)
}

// maxPanelStreams bounds an agent's streams to the panel at once (its boot view's watch
// needs one or two).
const maxPanelStreams = 8

// toPanel carries every stream the agent opens on its session to the panel (only there:
// the tunnel is no proxy to anywhere else; the panel authenticates the agent's requests
// itself), until the session ends.
func (r *Relay) toPanel(serverID uint, sess *yamux.Session) {
	slots := make(chan struct{}, maxPanelStreams)
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			return // the session ended
		}
		if r.Panel == "" {
			st.Close()
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			r.log().Warn("agent stream to the panel refused: too many at once", "server", serverID, "max", maxPanelStreams)
			st.Close()
			continue
		}
		go func() {
			defer func() { <-slots }()
			pc, err := net.DialTimeout("tcp", r.Panel, handshakeTimeout)
			if err != nil {
				r.log().Warn("agent stream to the panel", "server", serverID, "panel", r.Panel, "err", err)
				st.Close()
				return
			}
			splice(st, pc)
		}()
	}
}

var errRefused = errors.New("refused")

// admit checks the agent: a certificate of the panel CA (the handshake), naming a server
// of this tunnel's network that has a tunnel port here, and a hello naming that same
// server (an agent registers only as itself).
func (r *Relay) admit(ctx context.Context, tc *tls.Conn) (wire.AgentIdentity, error) {
	if err := tc.HandshakeContext(ctx); err != nil {
		return wire.AgentIdentity{}, fmt.Errorf("TLS: %w", err)
	}
	certs := tc.ConnectionState().PeerCertificates
	id, err := wire.IdentityOf(certs[0])
	if err != nil {
		return id, fmt.Errorf("%w: %w", errRefused, err)
	}
	line, err := wire.ReadLine(tc)
	if err != nil {
		return id, fmt.Errorf("%w: no hello: %v", errRefused, err)
	}
	var hello wire.TunnelHello
	if err := json.Unmarshal(line, &hello); err != nil {
		return id, fmt.Errorf("%w: the hello is not JSON: %v", errRefused, err)
	}
	switch {
	case hello.ServerID != id.ServerID:
		return id, fmt.Errorf("%w: the agent says it is server %d, its certificate names server %d", errRefused, hello.ServerID, id.ServerID)
	case id.NetworkID != r.Identity.NetworkID:
		return id, fmt.Errorf("%w: server %d is of network %d, this tunnel serves network %d", errRefused, id.ServerID, id.NetworkID, r.Identity.NetworkID)
	}
	r.mu.Lock()
	_, served := r.ports[id.ServerID]
	r.mu.Unlock()
	if !served {
		return id, fmt.Errorf("%w: server %d has no tunnel port on this tunnel", errRefused, id.ServerID)
	}
	b, _ := json.Marshal(wire.TunnelWelcome{})
	if _, err := tc.Write(append(b, '\n')); err != nil {
		return id, err
	}
	return id, nil
}

// Connected lists the servers whose agents have a session, in order.
func (r *Relay) Connected() []uint {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]uint, 0, len(r.sessions))
	for id, s := range r.sessions {
		if !s.IsClosed() {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Sync makes the open tunnel ports exactly ports: it opens the missing ones, moves those
// whose port changed and closes the others (their agents' sessions too). Safe to repeat.
func (r *Relay) Sync(ctx context.Context, ports []wire.TunnelPort) error {
	want := map[uint]int{}
	for _, p := range ports {
		if p.Port > 0 {
			want[p.ServerID] = p.Port
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ports == nil {
		r.ports = map[uint]*openPort{}
	}
	for id, op := range r.ports {
		if want[id] != op.port {
			op.ln.Close()
			delete(r.ports, id)
			r.log().Info("tunnel port closed", "server", id, "port", op.port)
		}
		if want[id] == 0 {
			if s := r.sessions[id]; s != nil {
				s.Close()
			}
		}
	}
	var errs []error
	for _, p := range ports {
		if p.Port <= 0 || r.ports[p.ServerID] != nil {
			continue
		}
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(r.PortsHost, fmt.Sprint(p.Port)))
		if err != nil {
			errs = append(errs, fmt.Errorf("open the tunnel port %d of server %d: %w", p.Port, p.ServerID, err))
			continue
		}
		r.ports[p.ServerID] = &openPort{port: p.Port, ln: ln}
		go r.servePort(p.ServerID, ln)
		r.log().Info("tunnel port open", "server", p.ServerID, "port", p.Port)
	}
	return errors.Join(errs...)
}

// Close closes every port and session.
func (r *Relay) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, op := range r.ports {
		op.ln.Close()
	}
	for _, s := range r.sessions {
		s.Close()
	}
}

// servePort accepts the panel on a server's tunnel port until the port is closed.
func (r *Relay) servePort(serverID uint, ln net.Listener) {
	cfg := &tls.Config{
		Certificates: []tls.Certificate{r.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    r.CA,
		MinVersion:   tls.VersionTLS13,
		// A certificate of the panel CA is not enough: agents and tunnels have those too.
		VerifyPeerCertificate: func(_ [][]byte, chains [][]*x509.Certificate) error {
			if len(chains) == 0 || !wire.IsPanel(chains[0][0]) {
				return errors.New("only the panel may use a tunnel port")
			}
			return nil
		},
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		go r.carry(serverID, tls.Server(c, cfg))
	}
}

// carry relays one panel connection to the server's agent over a new stream.
func (r *Relay) carry(serverID uint, pc *tls.Conn) {
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := pc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		r.log().Warn("tunnel port: refused", "server", serverID, "remote", pc.RemoteAddr().String(), "err", err)
		return
	}
	r.mu.Lock()
	sess := r.sessions[serverID]
	r.mu.Unlock()
	if sess == nil {
		return // the agent is not connected: the panel sees the connection close
	}
	st, err := sess.Open()
	if err != nil {
		r.log().Warn("tunnel port: no stream to the agent", "server", serverID, "err", err)
		return
	}
	splice(st, pc)
}

// splice copies both ways between a and b, passing each end's close on as a half close
// (a yamux stream's Close is one), and closes both once both ways have ended.
func splice(a, b net.Conn) {
	half := func(c net.Conn) {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite() //nolint:errcheck
			return
		}
		c.Close()
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(a, b); half(a); done <- struct{}{} }() //nolint:errcheck
	go func() { io.Copy(b, a); half(b); done <- struct{}{} }() //nolint:errcheck
	<-done
	<-done
	a.Close()
	b.Close()
}
