// Package temporalite runs a single-process Temporal server for `clusterducks dev`: all
// four services in this process, state in one SQLite file (kept across restarts), the
// default namespace pre-registered, and Temporal's Web UI beside it. Nothing is
// downloaded at run time and the server's version check (which calls the internet) is off.
package temporalite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
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
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/schema/sqlite"
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
	// RegisterSearchAttributes registers the panel's custom search attributes
	// (temporalclient.SearchAttributeTypes) in the namespace at start.
	RegisterSearchAttributes bool
}

// Server is a running embedded Temporal.
type Server struct {
	Address   string // host:port of the frontend
	Namespace string
	UIURL     string // "" without the UI

	srv temporal.Server
	ui  *uiserver.Server
}

func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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
	var err error
	switch o.Port {
	case 0:
		o.Port = 7233
	case -1:
		if o.Port, err = freePort(o.IP); err != nil {
			return nil, err
		}
	}
	if o.UIPort == 0 {
		o.UIPort = o.Port + 1000
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	// Each service listens on its own port; only the frontend's is fixed.
	ports := make([]int, 8)
	for i := range ports {
		if ports[i], err = freePort(o.IP); err != nil {
			return nil, err
		}
	}
	service := func(grpc, membership int) config.Service {
		return config.Service{RPC: config.RPC{GRPCPort: grpc, MembershipPort: membership, BindOnIP: o.IP}}
	}
	frontend := net.JoinHostPort(o.IP, strconv.Itoa(o.Port))
	store := config.SQL{
		PluginName:        sqliteplugin.PluginName,
		DatabaseName:      filepath.Join(o.Dir, "temporal.db"),
		ConnectAttributes: map[string]string{"mode": "rwc", "_journal_mode": "wal", "_synchronous": "normal"},
	}
	cfg := &config.Config{
		Global: config.Global{
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: o.IP},
			Metrics: &metrics.Config{Prometheus: &metrics.PrometheusConfig{
				ListenAddress: net.JoinHostPort(o.IP, strconv.Itoa(ports[6])), HandlerPath: "/metrics"}},
		},
		Persistence: config.Persistence{
			DefaultStore: sqliteplugin.PluginName, VisibilityStore: sqliteplugin.PluginName, NumHistoryShards: 1,
			DataStores: map[string]config.DataStore{sqliteplugin.PluginName: {SQL: &store}},
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
	if _, err := os.Stat(store.DatabaseName); errors.Is(err, os.ErrNotExist) {
		if err := sqlite.SetupSchema(&store); err != nil {
			return nil, fmt.Errorf("temporal schema: %w", err)
		}
	}
	ns, err := sqlite.NewNamespaceConfig("active", o.Namespace, false, nil)
	if err != nil {
		return nil, err
	}
	if err := sqlite.CreateNamespaces(&store, ns); err != nil {
		return nil, fmt.Errorf("temporal namespace: %w", err)
	}
	logger := tlog.NewZapLogger(tlog.BuildZapLogger(tlog.Config{Level: o.LogLevel}))
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
	s := &Server{Address: frontend, Namespace: o.Namespace, srv: srv}
	if err := waitListening(frontend, time.Minute); err != nil {
		s.Stop()
		return nil, err
	}
	if o.RegisterSearchAttributes {
		if err := registerSearchAttributes(frontend, o.Namespace); err != nil {
			s.Stop()
			return nil, err
		}
	}
	if o.UIPort > 0 {
		ui := uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
			Host: o.IP, Port: o.UIPort, TemporalGRPCAddress: frontend, EnableUI: true,
			DefaultNamespace: o.Namespace, HideLogs: true, DisableNewsFetch: true,
			CORS: uiconfig.CORS{CookieInsecure: true},
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
func registerSearchAttributes(frontend, ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: frontend, Namespace: ns, Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
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
	if s.ui != nil {
		s.ui.Stop()
	}
	if err := s.srv.Stop(); err != nil {
		slog.Warn("stop temporal", "err", err)
	}
}
