// Package dev wires `clusterducks dev`: the panel on an embedded default (SQLite file
// database) for a laptop.
package dev

import (
	"context"
	"flag"
	"fmt"
	"github.com/clusterducks/clusterducks/activities/metrics"
	"net"
	"os"
	"path/filepath"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/webui"
	"github.com/clusterducks/clusterducks/workers/panel"
)

// Run is `clusterducks dev`.
func Run(ctx context.Context, args []string, mounts ...panel.Mount) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	data := fs.String("data", "./.clusterducks", "directory for the SQLite database and other state")
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP listen address")
	adminEmail := fs.String("admin-email", "admin@localhost", "e-mail of the first admin (first start only)")
	temporalPort := fs.Int("temporal-port", 7233, "port of the embedded Temporal server (-1: any free port; its Web UI is on port+1000)")
	noUI := fs.Bool("no-temporal-ui", false, "do not serve Temporal's Web UI")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dsn := "sqlite:" + filepath.Join(*data, "panel.db")
	db, first, err := panel.OpenDatabase(ctx, dsn, *adminEmail)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *listen, err)
	}
	// A dev panel's servers and tunnels may be this machine (the lab's agents are).
	store := &models.Store{DB: db, AllowLoopback: true}
	m := metrics.New("panel", "")
	t, tinfo, err := startTemporal(ctx, store, filepath.Join(*data, "temporal"), *temporalPort, *noUI, m)
	if err != nil {
		return err
	}
	defer tinfo.stop()
	defer t.Stop()
	base := "http://" + ln.Addr().String()
	fmt.Printf("clusterducks dev (data in %s)\n", *data)
	fmt.Printf("  Dashboard: %s/\n  API:       %s/api/v0.9.2/\n", base, base)
	fmt.Printf("  Temporal:  %s (namespace %s)\n", tinfo.address, tinfo.namespace)
	if tinfo.ui != "" {
		fmt.Printf("  Temporal Web UI: %s/\n", tinfo.ui)
	}
	if first.Created {
		panel.PrintFirstStart(first, panel.ResetHint(first.Email, *data))
	} else {
		// The account token is stored hashed and cannot be shown again; a dev panel issues
		// a fresh "dev" token at each start (replacing the previous one) so the tour works.
		var admin models.User
		if err := db.Where("role = ?", models.RoleSuperAdmin).Order("id").Take(&admin).Error; err != nil {
			return fmt.Errorf("find admin: %w", err)
		}
		tok, err := models.IssueToken(ctx, db, admin.ID, "dev")
		if err != nil {
			return err
		}
		fmt.Printf("Admin: %s (password shown at first start)\n", admin.Email)
		fmt.Printf("API token: %s\n", tok)
	}
	ui := webui.Options{TemporalUI: tinfo.ui, TemporalNamespace: tinfo.namespace}
	return panel.Serve(ctx, panel.NewApp(panel.Options{Store: store, Mounts: mounts, Early: []panel.Mount{t.AgentMount(store)}, WebUI: ui, OnAccess: t.OnAccess(store),
		Metrics: m, MetricsToken: os.Getenv("METRICS_TOKEN"), AgentBinary: os.Getenv("CLUSTERDUCKS_AGENT_BINARY")}), ln)
}
