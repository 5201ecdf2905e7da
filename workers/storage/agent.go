// Package storage wires `clusterducks agent`, the storage-server agent: it presents the
// server's key to the panel, receives its server id, the Temporal settings and its client
// certificate, runs the storage worker on the task queue server-<id> and reports its
// pool's health and capacity to the panel at a steady pace (the server's stats, "Panel
// to server OK"). It speaks to the panel only through the wire contract.
package storage

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/metrics"
	"github.com/clusterducks/clusterducks/activities/storage"
	agentmetrics "github.com/clusterducks/clusterducks/activities/storage/metrics"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"go.temporal.io/sdk/worker"
)

// Config is the agent's configuration, read once from its flags.
type Config struct {
	Panel   string // panel base URL, e.g. https://panel.example.com
	Key     string // the server key (install.sh -k)
	Addr    string // address the agent reports for its own endpoints (informational)
	Version string
	// StateDir holds what the agent keeps across restarts: its key and certificate, the
	// boot cache (default /var/lib/clusterducks).
	StateDir string
	Log      *slog.Logger
	Boot     *BootConfig // the iSCSI target and boot endpoint (boot.go); nil: defaults
	// Metrics are the agent's Prometheus metrics (served at /metrics); nil: Serve makes them.
	Metrics *agentmetrics.Agent
	// APIHandlers are mounted on the agent API (api.go) beside its stats and health, by
	// path pattern (e.g. "/metrics"); the panel reaches them through the tunnel.
	APIHandlers map[string]http.Handler
	// Replication is the endpoint slaves pull from (replication.go); nil: defaults.
	Replication *ReplicationConfig
	// Bridge is the server's bridge (install.sh -n): containers get an interface on it.
	Bridge string
	// LogZFS logs every zfs command and activity the agent runs with its duration
	// (--log-zfs), to see where an operation's time goes on the server.
	LogZFS bool
}

const defaultStateDir = "/var/lib/clusterducks"

// agentPollers is how many polls of its task queue the agent keeps open (the SDK's
// default is two).
const agentPollers = 8

func (c Config) stateDir() string {
	if c.StateDir == "" {
		return defaultStateDir
	}
	return c.StateDir
}

func (c Config) log() *slog.Logger {
	if c.Log == nil {
		return slog.Default()
	}
	return c.Log
}

// Run is `clusterducks agent --panel URL --key FILE`.
func Run(ctx context.Context, args []string, version string) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	panelURL := fs.String("panel", os.Getenv("CLUSTERDUCKS_PANEL"), "panel base URL (https://panel.example.com)")
	keyFile := fs.String("key", os.Getenv("CLUSTERDUCKS_KEY_FILE"), "file holding the server key")
	addr := fs.String("addr", "", "address of this agent's endpoints, as the panel should know it")
	state := fs.String("state", cmp.Or(os.Getenv("CLUSTERDUCKS_STATE"), defaultStateDir), "directory of the agent's local state (its key and certificate, the boot cache)")
	bridge := fs.String("bridge", os.Getenv("CLUSTERDUCKS_BRIDGE"), "the server's bridge (install.sh -n): each container gets a network interface on it; empty: containers share the server's network")
	logZFS := fs.Bool("log-zfs", os.Getenv("CLUSTERDUCKS_LOG_ZFS") != "", "log every zfs command and activity with its duration (where an operation's time goes)")
	debugListen := fs.String("debug-listen", os.Getenv("CLUSTERDUCKS_DEBUG_LISTEN"), "serve Go's profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; empty: off. Unauthenticated: keep it on loopback")
	bootCfg := bootFlags(fs)
	replCfg := replicationFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *debugListen != "" {
		if err := serveProfiles(ctx, *debugListen); err != nil {
			return err
		}
	}
	if *panelURL == "" || *keyFile == "" {
		return errors.New("agent: --panel URL and --key FILE are required")
	}
	if err := checkBridge(*bridge); err != nil {
		return err
	}
	u, err := url.Parse(*panelURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("agent: --panel must be an http(s) URL, got %q", *panelURL)
	}
	// The key is exchanged once for the agent's certificate: a key file deleted after the
	// first registration leaves the agent its certificate under --state to authenticate with.
	key, err := os.ReadFile(*keyFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("agent: read key: %w", err)
	}
	cfg := Config{Panel: strings.TrimRight(*panelURL, "/"), Key: strings.TrimSpace(string(key)), Addr: *addr, Version: version,
		StateDir: *state, Log: slog.Default(), Boot: bootCfg, Replication: replCfg, Bridge: *bridge, LogZFS: *logZFS}
	if cfg.Key == "" && err == nil {
		return errors.New("agent: the key file is empty")
	}
	return Serve(ctx, cfg)
}

// Serve registers with the panel and runs the storage worker and the stats heartbeat
// until ctx ends. A panel or Temporal that is not reachable yet is retried.
func Serve(ctx context.Context, cfg Config) error {
	log := cfg.log()
	if cfg.Metrics == nil {
		cfg.Metrics = agentmetrics.NewAgent(metrics.New("agent", cfg.Version))
	}
	// The panel scrapes the agent's metrics through its tunnel, on the agent API.
	if _, ok := cfg.APIHandlers["/metrics"]; !ok {
		handlers := map[string]http.Handler{"/metrics": cfg.Metrics.Registry.Handler()}
		for p, h := range cfg.APIHandlers {
			handlers[p] = h
		}
		cfg.APIHandlers = handlers
	}
	panel := wire.NewClient(cfg.Panel, cfg.Key)
	reg, id, err := register(ctx, cfg, panel)
	if err != nil {
		return err
	}
	tc := temporalclient.FromWire(reg.Temporal)
	if tc.Address == "" {
		return errors.New("agent: the panel has no workflow engine (TEMPORAL_ADDRESS is not set on the panel)")
	}
	tc.Address = temporalclient.Reachable(tc.Address, cfg.Panel)
	tc.Metrics = cfg.Metrics.Registry
	tc.SmallCalls = true // polls and activities of a few hundred bytes each
	log.Info("registered", "server", reg.ServerID, "name", reg.Name, "pool", reg.Pool, "queue", reg.TaskQueue, "temporal", tc.Address)
	c, err := tc.Dial(log, 10*time.Minute)
	if err != nil {
		return err
	}
	defer c.Close()
	zlog := log
	if cfg.LogZFS {
		// The wrapper logs each command at debug level, with its duration.
		zlog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	acts := &storage.Activities{ZFS: zfs.New(zlog), Bridge: cfg.Bridge}
	if id != nil {
		tid := &tlsIdentity{id: id}
		acts.ReplicationTLS = tid.client
		rc := cmp.Or(cfg.Replication, &ReplicationConfig{Listen: fmt.Sprintf(":%d", wire.DefaultReplicationPort), KernelTLS: true})
		acts.NoKernelTLS = !rc.KernelTLS
		stopRepl, err := startReplication(ctx, rc, tid, wire.AgentIdentity{NetworkID: reg.NetworkID, ServerID: reg.ServerID}, reg.Pool, acts.ZFS, cfg.Metrics.Replication, log)
		if err != nil {
			log.Error("replication endpoint not started: slaves cannot pull from this server", "err", err)
		} else {
			defer stopRepl()
		}
	}
	// Heartbeats reach Temporal every few seconds rather than at 0.8 × each activity's
	// heartbeat timeout: a transfer's bytes are shown live on its operation from them.
	// More pollers than the default two take a burst of activities (concurrent publishes)
	// off the queue in parallel: each poll crosses the network to the panel's Temporal.
	wopts := worker.Options{MaxHeartbeatThrottleInterval: 3 * time.Second, MaxConcurrentActivityTaskPollers: agentPollers}
	if cfg.LogZFS {
		wopts.Interceptors = append(wopts.Interceptors, &activityTimes{log: zlog})
	}
	w := worker.New(c, wire.ServerQueue(reg.ServerID), wopts)
	w.RegisterActivity(acts)
	// The panel reaches the agent through its network's tunnel; the agent pushes its
	// stats itself only while there is none (or it has no certificate to dial one with).
	var tun *tunnelDialer
	if id != nil && id.cert != nil {
		roots := x509.NewCertPool()
		if ca, err := wire.ParseCertificate(reg.PanelCAPEM); err == nil {
			roots.AddCert(ca)
		}
		tun = &tunnelDialer{id: id, roots: roots, network: reg.NetworkID, server: reg.ServerID,
			handler: agentAPI(cfg, reg.ServerID, reg.Pool, acts), log: log, metrics: cfg.Metrics.Tunnel,
			lookup: func(ctx context.Context) (string, error) {
				info, err := panel.Server(ctx)
				if err != nil {
					return "", err
				}
				return tunnelAddr(info.Tunnel, cfg.Panel), nil
			}}
		tun.setAddr(tunnelAddr(reg.Tunnel, cfg.Panel))
		go tun.run(ctx)
	}
	// The boot view's watch goes through the tunnel while its session is up.
	viewPanel := panel
	if tun != nil {
		viewPanel = tun.panelClient(panel)
	}
	stopBoot, bootSvc := startBootOrWarn(ctx, cfg, panel, viewPanel, reg.ServerID, reg.Pool, c, w, acts.ZFS, log)
	defer stopBoot()
	if err := w.Start(); err != nil {
		return fmt.Errorf("storage worker: %w", err)
	}
	defer w.Stop()
	every := time.Duration(reg.StatsSeconds) * time.Second
	if every <= 0 {
		every = 15 * time.Second
	}
	// The server as the panel holds it now: its network's tunnel (which may be added or
	// changed) and its admission bounds; read at start and at every tick.
	follow := func() {
		info, err := panel.Server(ctx)
		if err != nil {
			return
		}
		if tun != nil {
			tun.setAddr(tunnelAddr(info.Tunnel, cfg.Panel))
		}
		applyBounds(bootSvc, cfg.Boot, info)
	}
	follow()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var renewAt time.Time // a renewal that failed is tried again an hour later
	for {
		if tun == nil || tun.current() == "" {
			if err := reportStats(ctx, panel, acts, reg.Pool, cfg.Metrics); err != nil {
				if wire.IsStatus(err, http.StatusUnauthorized) {
					// The key was rotated or the server deleted: this agent no longer speaks for it.
					return fmt.Errorf("agent: the panel no longer accepts this server key: %w", err)
				}
				log.Warn("stats report", "err", err)
			}
		}
		// An agent that runs for a year renews its certificate without a restart.
		if now := time.Now(); id != nil && id.due(now) && now.After(renewAt) {
			renewAt = now.Add(time.Hour)
			if err := id.renew(ctx, panel); err != nil {
				log.Warn("renew the agent certificate", "err", err)
			} else {
				log.Info("agent certificate renewed", "until", id.cert.NotAfter)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		follow()
	}
}

// tunnelAddr is where to dial a tunnel the panel named: a loopback one is where the panel is.
func tunnelAddr(addr, panelURL string) string {
	if addr == "" {
		return ""
	}
	return temporalclient.Reachable(addr, panelURL)
}

// Register presents the server key to the panel (see register) and returns what the
// panel answered and the agent's certificate, nil when the agent has none.
func Register(ctx context.Context, cfg Config) (*wire.RegisterResponse, *x509.Certificate, error) {
	reg, id, err := register(ctx, cfg, wire.NewClient(cfg.Panel, cfg.Key))
	if err != nil || id == nil {
		return reg, nil, err
	}
	return reg, id.cert, nil
}

// register presents the key until the panel answers (a key the panel does not know is
// fatal: retrying cannot fix it) and keeps the agent's certificate valid: a CSR goes with
// the registration when the agent has no certificate or its one nears its end. A
// certificate that cannot be had is logged, not fatal (nothing requires it yet); the
// identity is nil when the state directory cannot hold one.
func register(ctx context.Context, cfg Config, panel *wire.Client) (*wire.RegisterResponse, *identity, error) {
	log := cfg.log()
	req := wire.RegisterRequest{Addr: cfg.Addr, Version: cfg.Version}
	if cfg.Replication != nil {
		req.ReplicationAddr = cfg.Replication.Advertise
	}
	id, err := loadIdentity(cfg.stateDir())
	if cfg.Key == "" && (err != nil || id.cert == nil) {
		return nil, nil, fmt.Errorf("agent: no server key and no certificate under %s: run install.sh -k with the server's key again", cfg.stateDir())
	}
	if err != nil {
		log.Error("agent certificate: cannot keep a key", "dir", cfg.stateDir(), "err", err)
	} else if id.due(time.Now()) {
		if req.CSRPEM, err = id.csr(); err != nil {
			log.Error("agent certificate", "err", err)
		}
	}
	if id != nil {
		panel.Cert = id.pair // used only once the key is gone
	}
	wait := time.Second
	for {
		reg, err := panel.Register(ctx, req)
		if err == nil {
			if id != nil {
				if err := id.enroll(ctx, panel, reg); err != nil {
					log.Warn("agent certificate: none from the panel", "err", err)
				}
			}
			return reg, id, nil
		}
		if wire.IsStatus(err, http.StatusUnauthorized) {
			return nil, nil, fmt.Errorf("agent: the panel does not know this server key: %w", err)
		}
		log.Warn("register with the panel", "panel", cfg.Panel, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// reportStats sends the pool's health and capacity (and its erator) to the panel.
func reportStats(ctx context.Context, panel *wire.Client, acts *storage.Activities, pool string, m *agentmetrics.Agent) error {
	r, err := poolStats(ctx, acts, pool)
	if err != nil {
		return err
	}
	withTotals(r, m)
	return panel.Stats(ctx, r)
}

// checkBridge validates --bridge: a Linux interface name (at most 15 bytes, no slash,
// space or colon), since it goes into each container's unit and nspawn's command line.
func checkBridge(name string) error {
	if name == "" {
		return nil
	}
	if len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n%$\"'\\") {
		return fmt.Errorf("agent: --bridge (CLUSTERDUCKS_BRIDGE) %q is not a network interface name", name)
	}
	return nil
}

// serveProfiles serves net/http/pprof's profiles on addr until ctx ends (--debug-listen):
// where a busy agent's CPU goes, read on the server itself.
func serveProfiles(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("agent: --debug-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	slog.Default().Info("profiles served", "addr", ln.Addr().String())
	return nil
}
