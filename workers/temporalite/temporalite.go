// Package temporalite runs a single-process Temporal server: all four services in this
// process, the namespace pre-registered, and Temporal's Web UI beside it. For
// `clusterducks dev` the state is one SQLite file (kept across restarts); for
// `clusterducks temporal`, the server of the production topology, it is PostgreSQL
// (schema created and upgraded at start from the schema files compiled into the server
// module). Nothing is downloaded at run time and the server's version check (which calls
// the internet) is off.
package temporalite

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/clusterducks/clusterducks/workers/temporalclient"
	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	tlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	"go.temporal.io/server/temporal"
)

// Options say where the server keeps its state and listens.
type Options struct {
	Dir       string // directory of temporal.db (created if missing)
	IP        string // listen address of the frontend and the UI; default 127.0.0.1
	Port      int    // frontend gRPC port; default 7233, -1 for any free port
	UIPort    int    // Web UI port; default Port+1000 (8233), -1 for none
	Namespace string // registered at start; default "default"
	LogLevel  string // the server's own log level; default "error"
	// Postgres, when set, keeps the state in PostgreSQL instead of SQLite under Dir: a URL
	// postgres://user:password@host:port/database?sslmode=…; the visibility store is the
	// database named database_visibility on the same server. Both are created when absent.
	Postgres string
	// RegisterSearchAttributes registers the panel's custom search attributes
	// (temporalclient.SearchAttributeTypes) in the namespace at start.
	RegisterSearchAttributes bool
	// TLS, when set, serves the frontend (the only port clients use) over TLS.
	TLS *TLS
}

// TLS is the frontend's certificate (files), the CA that signed it and the name in it;
// with ClientCA set, clients must present a certificate signed by it (mTLS).
type TLS struct {
	CertFile, KeyFile, CAFile, ServerName string
	ClientCA                              string
}

// rootTLS is the server's TLS settings: the frontend listener, and the server's own system
// worker (schedules, batch jobs), which dials the frontend like any client.
func (t *TLS) rootTLS() config.RootTLS {
	if t == nil {
		return config.RootTLS{}
	}
	srv := config.ServerTLS{CertFile: t.CertFile, KeyFile: t.KeyFile}
	worker := config.WorkerTLS{Client: config.ClientTLS{ServerName: t.ServerName, RootCAFiles: []string{t.CAFile}}}
	if t.ClientCA != "" {
		srv.RequireClientAuth, srv.ClientCAFiles = true, []string{t.ClientCA}
		worker.CertFile, worker.KeyFile = t.CertFile, t.KeyFile
	}
	return config.RootTLS{Frontend: config.GroupTLS{Server: srv}, SystemWorker: worker}
}

// Server is a running embedded Temporal.
type Server struct {
	Address   string // host:port of the frontend
	Namespace string
	UIURL     string // "" without the UI

	srv temporal.Server
	ui  *uiserver.Server
	log *stopQuiet
}

// servicePort is a free port for an internal service: below 32768, because Temporal's
// PostgreSQL schema keeps membership ports as SMALLINT (the kernel's ephemeral ports are
// above it).
func servicePort(ip string) (int, error) {
	var last error
	for range 200 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err == nil {
			l.Close()
			return port, nil
		}
		last = err
	}
	return 0, fmt.Errorf("no free port below 32768: %w", last)
}

// portsLock is the file whose flock servers of this kind take while they pick their
// ports and bind them (lockPorts).
var portsLock = filepath.Join(os.TempDir(), "clusterducks-temporalite-ports.lock")

// lockPorts waits for the machine's other starting servers of this kind to have bound
// their ports (an exclusive flock on portsLock, released by the returned func; a process
// that dies releases it too). The lock only guards against a rare race: a server that
// cannot take it (a temporary directory it may not write) starts without it.
func lockPorts() func() {
	f, err := os.OpenFile(portsLock, os.O_CREATE|os.O_RDONLY, 0o666) // a flock needs no write access
	if err == nil {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		slog.Warn("temporal: starting without the ports lock", "lock", portsLock, "err", err)
		return func() {}
	}
	return sync.OnceFunc(func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it as well
		f.Close()
	})
}

// Start starts the server and, unless disabled, its Web UI; it returns once the frontend
// accepts connections (or fails after a minute).
func Start(o Options) (*Server, error) {
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.LogLevel == "" {
		o.LogLevel = "error"
	}
	st, err := openStore(o)
	if err != nil {
		return nil, err
	}
	if err := st.setup(o.Namespace, o.LogLevel); err != nil {
		return nil, err
	}
	// The ports are probed free and bound by the server a moment later: another server of
	// this kind starting meanwhile on the machine (parallel test binaries) could probe the
	// same ones, and Temporal exits on a port it cannot bind. Starts take turns, from the
	// first probe to the bind.
	unlock := lockPorts()
	defer unlock()
	switch o.Port {
	case 0:
		o.Port = 7233
	case -1:
		if o.Port, err = servicePort(o.IP); err != nil {
			return nil, err
		}
	}
	if o.UIPort == 0 {
		o.UIPort = o.Port + 1000
	}
	// Each service listens on its own port; only the frontend's is fixed.
	ports := make([]int, 8)
	for i := range ports {
		if ports[i], err = servicePort(o.IP); err != nil {
			return nil, err
		}
	}
	service := func(grpc, membership int) config.Service {
		return config.Service{RPC: config.RPC{GRPCPort: grpc, MembershipPort: membership, BindOnIP: o.IP}}
	}
	frontend := net.JoinHostPort(o.IP, strconv.Itoa(o.Port))
	cfg := &config.Config{
		Global: config.Global{
			TLS:        o.TLS.rootTLS(),
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: o.IP},
			Metrics: &metrics.Config{Prometheus: &metrics.PrometheusConfig{
				ListenAddress: net.JoinHostPort(o.IP, strconv.Itoa(ports[6])), HandlerPath: "/metrics"}},
		},
		Persistence: config.Persistence{
			DefaultStore: "default", VisibilityStore: st.visibilityName(), NumHistoryShards: st.shards,
			DataStores: st.dataStores(),
		},
		ClusterMetadata: &cluster.Config{
			EnableGlobalNamespace: false, FailoverVersionIncrement: 10,
			MasterClusterName: "active", CurrentClusterName: "active",
			ClusterInformation: map[string]cluster.ClusterInformation{
				"active": {Enabled: true, InitialFailoverVersion: 1, RPCAddress: frontend},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services: map[string]config.Service{
			"frontend": service(o.Port, ports[0]),
			"history":  service(ports[1], ports[2]),
			"matching": service(ports[3], ports[4]),
			"worker":   service(ports[5], ports[7]),
		},
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History: config.HistoryArchivalNamespaceDefaults{State: "disabled"}, Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
		}},
		PublicClient: config.PublicClient{HostPort: frontend},
	}
	logger := newStopQuiet(tlog.NewZapLogger(tlog.BuildZapLogger(tlog.Config{Level: o.LogLevel})))
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(logger),
		temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			dynamicconfig.EnableServerVersionCheck.Key(): []dynamicconfig.ConstrainedValue{{Value: false}},
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("temporal server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start temporal: %w", err)
	}
	unlock() // every port is bound
	s := &Server{Address: frontend, Namespace: o.Namespace, srv: srv, log: logger}
	if err := waitListening(frontend, time.Minute); err != nil {
		s.Stop()
		return nil, err
	}
	if st.visibility != nil {
		// SQLite's namespace is written into the file before the start; on PostgreSQL the
		// namespace is registered through the running frontend, as any cluster's is.
		if err := registerNamespace(frontend, o.Namespace, o.TLS, time.Minute); err != nil {
			s.Stop()
			return nil, err
		}
	}
	if o.RegisterSearchAttributes {
		if err := registerSearchAttributes(frontend, o.Namespace, o.TLS); err != nil {
			s.Stop()
			return nil, err
		}
	}
	if o.UIPort > 0 {
		ui := uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
			Host: o.IP, Port: o.UIPort, TemporalGRPCAddress: frontend, EnableUI: true,
			DefaultNamespace: o.Namespace, HideLogs: true, DisableNewsFetch: true,
			CORS: uiconfig.CORS{CookieInsecure: true}, TLS: o.TLS.uiTLS(),
		}))
		s.ui = ui
		s.UIURL = "http://" + net.JoinHostPort(o.IP, strconv.Itoa(o.UIPort))
		go func() {
			if err := ui.Start(); err != nil {
				slog.Warn("temporal web ui", "err", err)
			}
		}()
	}
	return s, nil
}

// registerSearchAttributes adds the missing custom search attributes to namespace ns.
func registerSearchAttributes(frontend, ns string, t *TLS) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tc, err := t.clientTLS()
	if err != nil {
		return err
	}
	c, err := client.DialContext(ctx, client.Options{HostPort: frontend, Namespace: ns, Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
		ConnectionOptions: client.ConnectionOptions{TLS: tc}})
	if err != nil {
		return fmt.Errorf("temporal client: %w", err)
	}
	defer c.Close()
	return temporalclient.RegisterSearchAttributes(ctx, c, ns)
}

func waitListening(addr string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("temporal frontend %s did not come up: %w", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the UI and the server.
func (s *Server) Stop() {
	s.Quiet()
	if s.ui != nil {
		s.ui.Stop()
	}
	if err := s.srv.Stop(); err != nil {
		slog.Warn("stop temporal", "err", err)
	}
}

// Quiet silences the server's warnings and errors from now on: the process is shutting
// down (its workers' polls are being cancelled, its services leaving one by one), and
// what the services say about it is noise, not news.
func (s *Server) Quiet() { s.log.stopping.Store(true) }

// uiTLS is how the Web UI dials a TLS frontend.
func (t *TLS) uiTLS() uiconfig.TLS {
	if t == nil {
		return uiconfig.TLS{}
	}
	u := uiconfig.TLS{CaFile: t.CAFile, ServerName: t.ServerName, EnableHostVerification: true}
	if t.ClientCA != "" {
		u.CertFile, u.KeyFile = t.CertFile, t.KeyFile
	}
	return u
}

// clientTLS is how this process's own clients (the namespace registration) dial a TLS
// frontend; nil without TLS.
func (t *TLS) clientTLS() (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	ca, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("temporal TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("temporal TLS CA %s holds no PEM certificate", t.CAFile)
	}
	c := &tls.Config{RootCAs: pool, ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.ClientCA != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("temporal TLS certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
