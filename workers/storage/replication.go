package storage

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
)

// ReplicationConfig is where the agent serves its datasets to the network's slaves.
type ReplicationConfig struct {
	Listen    string // TLS listen address, default ":8082"; "-" serves nothing
	Advertise string // host:port slaves dial, told to the panel; "" lets the panel use the server's Replication IP, port 8082
	MaxSends  int    // slaves served at once (storage.DefaultMaxSends when 0)
	// KernelTLS lets streams' TLS records be sealed and opened by the kernel where it has
	// TLS (wire.ProtoKernelStream), both as master and as slave; default on.
	KernelTLS bool
}

func replicationFlags(fs *flag.FlagSet) *ReplicationConfig {
	r := &ReplicationConfig{}
	fs.StringVar(&r.Listen, "replication-listen", cmp.Or(os.Getenv("CLUSTERDUCKS_REPLICATION_LISTEN"), fmt.Sprintf(":%d", wire.DefaultReplicationPort)), "replication endpoint (TLS) listen address; - for none")
	fs.StringVar(&r.Advertise, "replication-advertise", os.Getenv("CLUSTERDUCKS_REPLICATION_ADVERTISE"), "host:port slaves reach the replication endpoint at (default: the server's replication IP, port 8082)")
	fs.IntVar(&r.MaxSends, "replication-max-sends", storage.DefaultMaxSends, "slaves served at once; more are asked to retry")
	fs.BoolVar(&r.KernelTLS, "replication-kernel-tls", os.Getenv("CLUSTERDUCKS_REPLICATION_KERNEL_TLS") != "0", "let the kernel seal and open the streams' TLS records where it has TLS (no copy of a stream through the agent)")
	return r
}

// tlsIdentity hands out the agent's current key pair and the panel's CA at each handshake,
// so a renewed certificate is used without a restart.
type tlsIdentity struct {
	mu sync.Mutex
	id *identity
}

func (t *tlsIdentity) pair() (*tls.Certificate, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.id == nil || t.id.cert == nil {
		return nil, errors.New("the agent has no certificate from the panel")
	}
	return &tls.Certificate{Certificate: [][]byte{t.id.cert.Raw}, PrivateKey: t.id.key, Leaf: t.id.cert}, nil
}

func (t *tlsIdentity) roots() (*x509.CertPool, error) {
	t.mu.Lock()
	dir := t.id.dir
	t.mu.Unlock()
	b, err := os.ReadFile(filepath.Join(dir, caFile))
	if err != nil {
		return nil, fmt.Errorf("the panel's CA: %w", err)
	}
	ca, err := wire.ParseCertificate(string(b))
	if err != nil {
		return nil, fmt.Errorf("the panel's CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, nil
}

// client is the TLS configuration the slave side dials its master with.
func (t *tlsIdentity) client() (*tls.Config, error) {
	roots, err := t.roots()
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return t.pair() }}, nil
}

// server is the master side's: only clients with a certificate of the panel's CA.
func (t *tlsIdentity) server() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAnyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return t.pair() },
		// The CA is read per handshake (it may arrive after the listener starts), so the
		// chain is checked here rather than through a fixed ClientCAs.
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			roots, err := t.roots()
			if err != nil {
				return err
			}
			certs := make([]*x509.Certificate, len(raw))
			for i, r := range raw {
				if certs[i], err = x509.ParseCertificate(r); err != nil {
					return err
				}
			}
			inter := x509.NewCertPool()
			for _, c := range certs[1:] {
				inter.AddCert(c)
			}
			_, err = certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			return err
		}}
}

// startReplication serves the replication endpoint until ctx ends (the returned stop
// closes it). Without a certificate the agent can neither serve nor pull: it says so.
func startReplication(ctx context.Context, rc *ReplicationConfig, tid *tlsIdentity, self wire.AgentIdentity, pool string, z *zfs.ZFS, m storage.ReplicationMetrics, log *slog.Logger) (func(), error) {
	if rc.Listen == "-" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", rc.Listen)
	if err != nil {
		return nil, fmt.Errorf("replication: %w", err)
	}
	rs := &storage.ReplicationServer{ZFS: z, Pool: pool, Self: self, MaxSends: rc.MaxSends, Log: log, Metrics: m}
	srv := &http.Server{Handler: rs.Handler(), TLSConfig: tid.server(), ReadHeaderTimeout: 30 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }, ConnContext: storage.GatherContext}
	kernel := rc.KernelTLS && rs.ServeKernelTLS(srv)
	go func() {
		if err := srv.ServeTLS(storage.GatherListener(ln), "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("replication endpoint", "err", err)
		}
	}()
	log.Info("replication endpoint", "listen", ln.Addr().String(), "advertise", rc.Advertise, "kernel_tls", kernel)
	return func() { _ = srv.Close() }, nil
}
