package storage

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	agentmetrics "github.com/clusterducks/clusterducks/activities/storage/metrics"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/activities/tunnel"
	"github.com/hashicorp/yamux"
)

// Reconnect backoff of the tunnel dialer: from 1 s, doubling to at most maxBackoff, each
// wait jittered by ±50 % so that agents of a restarted tunnel do not come back at once.
// An agent finds a restarted tunnel within about maxBackoff×1.5 plus a handshake.
const maxBackoff = 8 * time.Second

// noTunnelPoll is how often an agent whose network has no tunnel (yet) asks the panel for one.
const noTunnelPoll = 5 * time.Second

// tunnelDialer keeps the agent's one session with its network's selected tunnel: it
// dials out (the agent accepts nothing from outside), serves the agent API on the
// session's streams and redials, with backoff, when the session ends or the tunnel moves.
type tunnelDialer struct {
	id      *identity
	roots   *x509.CertPool
	network uint
	server  uint
	handler http.Handler
	log     *slog.Logger
	// lookup asks the panel where the network's tunnel is now; the dialer asks after every
	// session that ends, so that an agent dropped by a tunnel that is no longer its
	// network's follows the move at once instead of at its next stats tick. May be nil.
	lookup func(ctx context.Context) (string, error)
	// metrics, when set, count the sessions and say whether one is up.
	metrics *agentmetrics.Tunnel

	mu   sync.Mutex
	addr string
	// panelTr is panelClient's transport: its idle direct connections are closed when a
	// session comes up, so the next request goes through the tunnel.
	panelTr *http.Transport
	// sess is the session while one is up, for the agent's own connections to the panel.
	sess atomic.Pointer[yamux.Session]
}

// panelClient is panel's client whose connections go through the tunnel's session while
// one is up (the tunnel carries each to the panel), and straight to the panel otherwise.
func (d *tunnelDialer) panelClient(panel *wire.Client) *wire.Client {
	tr := panel.HTTP.Transport.(*http.Transport).Clone()
	if tr.Proxy != nil {
		// An agent that reaches the panel through an HTTP proxy keeps doing so.
		if u, err := url.Parse(panel.URL); err == nil {
			if p, err := tr.Proxy(&http.Request{URL: u}); p != nil || err != nil {
				return panel
			}
		}
	}
	direct := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if s := d.sess.Load(); s != nil && !s.IsClosed() {
			st, err := s.OpenStream()
			if err == nil {
				d.count("tunnel")
				return st, nil
			}
			d.log.Warn("tunnel: a stream to the panel", "err", err)
		}
		d.count("direct")
		return direct.DialContext(ctx, network, addr)
	}
	d.mu.Lock()
	d.panelTr = tr
	d.mu.Unlock()
	c := *panel
	c.HTTP = &http.Client{Transport: tr, Timeout: panel.HTTP.Timeout}
	return &c
}

func (d *tunnelDialer) count(via string) {
	if d.metrics != nil {
		d.metrics.PanelConns.WithLabelValues(via).Inc()
	}
}

// setAddr points the dialer at a tunnel (host:port), "" for none; a session with another
// tunnel ends.
func (d *tunnelDialer) setAddr(a string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a != d.addr {
		d.log.Info("tunnel", "addr", a)
	}
	d.addr = a
}

func (d *tunnelDialer) current() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addr
}

// run dials and serves until ctx ends.
func (d *tunnelDialer) run(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		addr := d.current()
		if addr == "" {
			// No tunnel yet (or its process had not registered when the agent did): ask
			// the panel again soon rather than at the next stats tick.
			sleep(ctx, noTunnelPoll)
			if d.lookup != nil && ctx.Err() == nil {
				if now, err := d.lookup(ctx); err == nil {
					d.setAddr(now)
				}
			}
			continue
		}
		start := time.Now()
		err := d.session(ctx, addr)
		if time.Since(start) > time.Minute {
			backoff = time.Second // the session lived: a new failure starts the backoff over
		}
		if d.lookup != nil && ctx.Err() == nil {
			if now, lerr := d.lookup(ctx); lerr == nil && now != addr {
				d.setAddr(now)
				backoff = time.Second // another tunnel: its first dial is not a retry
			}
		}
		wait := time.Duration(float64(backoff) * (0.5 + rand.Float64()))
		if ctx.Err() == nil {
			d.log.Warn("tunnel session ended", "tunnel", addr, "err", err, "retry_in", wait.Round(time.Millisecond))
		}
		sleep(ctx, wait)
		backoff = min(backoff*2, maxBackoff)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// session dials the tunnel, says which server it is and serves the agent API on the
// session until it ends (the tunnel went away, moved, or ctx ended).
func (d *tunnelDialer) session(ctx context.Context, addr string) error {
	if d.id.cert == nil {
		return errors.New("the agent has no certificate yet")
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{d.id.cert.Raw}, PrivateKey: d.id.key, Leaf: d.id.cert}},
		MinVersion:   tls.VersionTLS13,
		// The tunnel's name is not known to the agent; it must be a tunnel of the agent's
		// network, certified by the panel CA, which VerifyConnection checks instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the tunnel sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: d.roots, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return fmt.Errorf("the tunnel's certificate: %w", err)
			}
			tid, err := wire.TunnelIdentityOf(cs.PeerCertificates[0])
			if err != nil {
				return err
			}
			if tid.NetworkID != d.network {
				return fmt.Errorf("the tunnel serves network %d, this server is of network %d", tid.NetworkID, d.network)
			}
			return nil
		},
	}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}, Config: cfg}
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	conn, err := dialer.DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second)) //nolint:errcheck
	hello, _ := json.Marshal(wire.TunnelHello{ServerID: d.server})
	if _, err := conn.Write(append(hello, '\n')); err != nil {
		conn.Close()
		return fmt.Errorf("hello: %w", err)
	}
	line, err := wire.ReadLine(conn)
	if err != nil {
		conn.Close()
		return fmt.Errorf("welcome: %w", err)
	}
	var welcome wire.TunnelWelcome
	if err := json.Unmarshal(line, &welcome); err != nil || welcome.Error != "" {
		conn.Close()
		return fmt.Errorf("the tunnel refused the agent: %s%v", welcome.Error, err)
	}
	conn.SetDeadline(time.Time{}) //nolint:errcheck
	sess, err := yamux.Client(conn, tunnel.YamuxConfig())
	if err != nil {
		conn.Close()
		return err
	}
	defer sess.Close()
	d.sess.Store(sess)
	defer d.sess.CompareAndSwap(sess, nil)
	d.mu.Lock()
	if d.panelTr != nil {
		d.panelTr.CloseIdleConnections()
	}
	d.mu.Unlock()
	d.log.Info("tunnel session up", "tunnel", addr)
	if d.metrics != nil {
		d.metrics.Sessions.Inc()
		d.metrics.Up.Set(1)
		defer d.metrics.Up.Set(0)
	}
	// The session ends with ctx, or when the panel moves the network to another tunnel.
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				sess.Close()
				return
			case <-sess.CloseChan():
				return
			case <-t.C:
				if d.current() != addr {
					sess.Close()
					return
				}
			}
		}
	}()
	srv := &http.Server{Handler: d.handler, ReadHeaderTimeout: 10 * time.Second}
	err = srv.Serve(sess)
	srv.Close()
	return err
}
