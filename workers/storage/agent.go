// Package storage wires `clusterducks agent`, the storage-server agent: it presents the
// server's key to the panel, receives its server id and the Temporal settings, runs the
// storage worker on the task queue server-<id> and reports its pool's health and
// capacity to the panel at a steady pace (the server's stats, "Panel to server OK").
package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"github.com/clusterducks/clusterducks/workflows"
	"go.temporal.io/sdk/worker"
)

// Config is the agent's configuration, read once from its flags.
type Config struct {
	Panel   string // panel base URL, e.g. https://panel.example.com
	Key     string // the server key (install.sh -k)
	Addr    string // address the agent reports for its own endpoints (informational)
	Version string
	Log     *slog.Logger
	HTTP    *http.Client
	Boot    *BootConfig // the iSCSI target and boot endpoint (boot.go); nil: defaults
}

// Run is `clusterducks agent --panel URL --key FILE`.
func Run(ctx context.Context, args []string, version string) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	panelURL := fs.String("panel", os.Getenv("CLUSTERDUCKS_PANEL"), "panel base URL (https://panel.example.com)")
	keyFile := fs.String("key", os.Getenv("CLUSTERDUCKS_KEY_FILE"), "file holding the server key")
	addr := fs.String("addr", "", "address of this agent's endpoints, as the panel should know it")
	bootCfg := bootFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *panelURL == "" || *keyFile == "" {
		return errors.New("agent: --panel URL and --key FILE are required")
	}
	u, err := url.Parse(*panelURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("agent: --panel must be an http(s) URL, got %q", *panelURL)
	}
	key, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("agent: read key: %w", err)
	}
	cfg := Config{Panel: strings.TrimRight(*panelURL, "/"), Key: strings.TrimSpace(string(key)), Addr: *addr, Version: version,
		Log: slog.Default(), HTTP: &http.Client{Timeout: 30 * time.Second}, Boot: bootCfg}
	if cfg.Key == "" {
		return errors.New("agent: the key file is empty")
	}
	return Serve(ctx, cfg)
}

// Serve registers with the panel and runs the storage worker and the stats heartbeat
// until ctx ends. A panel or Temporal that is not reachable yet is retried.
func Serve(ctx context.Context, cfg Config) error {
	log := cfg.Log
	reg, err := register(ctx, cfg)
	if err != nil {
		return err
	}
	tc := temporalclient.Config{Address: reg.Temporal.Address, Namespace: reg.Temporal.Namespace, TLS: reg.Temporal.TLS,
		ServerName: reg.Temporal.ServerName, CAPEM: reg.Temporal.CAPEM}
	if tc.Address == "" {
		return errors.New("agent: the panel has no workflow engine (TEMPORAL_ADDRESS is not set on the panel)")
	}
	tc.Address = reachable(tc.Address, cfg.Panel)
	log.Info("registered", "server", reg.ServerID, "name", reg.Name, "pool", reg.Pool, "queue", reg.TaskQueue, "temporal", tc.Address)
	c, err := tc.Dial(log, 10*time.Minute)
	if err != nil {
		return err
	}
	defer c.Close()
	acts := &storage.Activities{ZFS: zfs.New(log)}
	w := worker.New(c, workflows.ServerQueue(reg.ServerID), worker.Options{})
	w.RegisterActivity(acts)
	stopBoot := startBootOrWarn(ctx, cfg, reg.ServerID, reg.Pool, c, w, acts.ZFS, log)
	defer stopBoot()
	if err := w.Start(); err != nil {
		return fmt.Errorf("storage worker: %w", err)
	}
	defer w.Stop()
	every := time.Duration(reg.StatsSeconds) * time.Second
	if every <= 0 {
		every = 15 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if err := reportStats(ctx, cfg, acts, reg.Pool); err != nil {
			var pe *panelError
			if errors.As(err, &pe) && pe.status == http.StatusUnauthorized {
				// The key was rotated or the server deleted: this agent no longer speaks for it.
				return fmt.Errorf("agent: the panel no longer accepts this server key: %s", pe.msg)
			}
			log.Warn("stats report", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// reachable rewrites a loopback Temporal address to the panel's host: a panel that runs
// Temporal beside itself on loopback means "where the panel is" (as agents in VMs see it).
func reachable(address, panelURL string) string {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return address
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !(ip.IsLoopback() || ip.IsUnspecified())) {
		return address
	}
	u, err := url.Parse(panelURL)
	if err != nil || u.Hostname() == "" {
		return address
	}
	return net.JoinHostPort(u.Hostname(), port)
}

func post(ctx context.Context, cfg Config, path string, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.Panel+api.Prefix+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := cfg.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		var e api.ErrorBody
		_ = json.Unmarshal(data, &e)
		return &panelError{status: resp.StatusCode, msg: e.Error}
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

type panelError struct {
	status int
	msg    string
}

func (e *panelError) Error() string { return fmt.Sprintf("panel answered %d: %s", e.status, e.msg) }

// register presents the key until the panel answers; a key the panel does not know is
// fatal (retrying cannot fix it).
func register(ctx context.Context, cfg Config) (*api.RegisterResponse, error) {
	body := map[string]string{"addr": cfg.Addr, "version": cfg.Version}
	wait := time.Second
	for {
		var reg api.RegisterResponse
		err := post(ctx, cfg, "/agent/register.json", body, &reg)
		if err == nil {
			return &reg, nil
		}
		var pe *panelError
		if errors.As(err, &pe) && pe.status == http.StatusUnauthorized {
			return nil, fmt.Errorf("agent: the panel does not know this server key: %s", pe.msg)
		}
		cfg.Log.Warn("register with the panel", "panel", cfg.Panel, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// reportStats sends the pool's health and capacity (and its erator) to the panel.
func reportStats(ctx context.Context, cfg Config, acts *storage.Activities, pool string) error {
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := acts.Status(sctx, storage.PoolInput{Pool: pool})
	var r *models.StatsReport
	switch {
	case err == nil:
		r = workflows.StatsOf(st)
	case activities.IsType(err, activities.TypePoolNotFound) || errors.Is(err, activities.ErrPoolNotFound):
		r = &models.StatsReport{PoolHealth: models.PoolMissing, Detail: json.RawMessage(fmt.Sprintf(`{"error":%q}`, activities.Message(err)))}
	default:
		return err
	}
	return post(sctx, cfg, "/agent/stats.json", r, nil)
}
