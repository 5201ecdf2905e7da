// Package panel wires the panel process: configuration, database, the HTTP app (API and
// dashboard) and, where configured, the workflow engine.
package panel

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/clusterducks/clusterducks/activities/panel/agentclient"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/metrics"
	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/deploy"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/webui"
	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"
)

// Mounts are the parts of the HTTP app other than the API (the dashboard, agent endpoints),
// registered by the packages that own them.
type Mount func(app *fiber.App, store *models.Store)

// Options are what the panel's HTTP app is built from.
type Options struct {
	Store  *models.Store
	API    *api.Handler // optional; built from Store when nil
	Mounts []Mount
	// Early mounts go before the API: routes under its prefix with their own
	// authentication (the agents' server keys).
	Early []Mount
	WebUI webui.Options // the dashboard's options (Temporal Web UI link, cookies)
	// TrustedProxies are the load balancers whose X-Forwarded-For names the client.
	TrustedProxies []string
	// OnAccess, when set, is told of every account access (dashboard login, API token
	// from a new address): the panel mails the account holder.
	OnAccess func(a *models.Actor, how, ip string)
	// Metrics, when set, are served at /metrics (MetricsToken, when set, guards them).
	Metrics      *metrics.Registry
	MetricsToken string
	// AgentBinary is the agent executable served to install.sh; "" serves the panel's own
	// executable when it is the static linux/amd64 build.
	AgentBinary string
	// BootLease is how long strict groups boot from an agent's unconfirmed view (BOOT_LEASE; default 60 s).
	BootLease time.Duration
}

// NewApp builds the panel's HTTP app: the API under /api/v0.9.2 and the given mounts.
func NewApp(o Options) *fiber.App {
	app := api.NewApp(o.TrustedProxies...)
	h := o.API
	if h == nil {
		h = &api.Handler{Store: o.Store, Extra: []func(fiber.Router){api.BootRoutes(o.Store)}, Agents: agentclient.New(o.Store.DB)}
	}
	if o.OnAccess != nil {
		h.OnTokenUse = func(a *models.Actor, ip string) { o.OnAccess(a, "API token", ip) }
		o.WebUI.OnLogin = func(a *models.Actor, ip string) { o.OnAccess(a, "dashboard login", ip) }
		o.WebUI.OnLoginBackoff = func(a *models.Actor, ip string) { o.OnAccess(a, models.AccessFailedLogins, ip) }
	}
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.SendString("ok") })
	// What install.sh and a new server fetch; public, like /healthz.
	(&api.Downloads{Script: deploy.InstallScript, Binary: o.AgentBinary}).Mount(app)
	if o.Metrics != nil {
		api.MountMetrics(app, o.Metrics.Handler(), o.MetricsToken, o.Store.DB)
	}
	// The boot path's agent endpoints (server-key auth), before the API's user auth.
	(&api.BootAgents{Store: o.Store, Lease: o.BootLease}).Mount(app, o.Store)
	for _, m := range o.Early {
		m(app, o.Store)
	}
	h.Mount(app)
	o.WebUI.APIDocument = func() []byte { return h.Document(app) }
	ui := webui.Mount(app, o.Store, o.WebUI)
	for _, m := range o.Mounts {
		m(app, o.Store)
	}
	app.Use(ui.NotFound)
	return app
}

// OpenDatabase opens the database, applies pending versioned migrations and, on an empty
// database, creates the first client and admin.
func OpenDatabase(ctx context.Context, dsn, adminEmail string) (*gorm.DB, models.FirstStart, error) {
	db, err := models.Open(dsn)
	if err != nil {
		return nil, models.FirstStart{}, err
	}
	pending, err := models.PendingMigrations(ctx, db)
	if err != nil {
		return nil, models.FirstStart{}, fmt.Errorf("read migrations: %w", err)
	}
	if len(pending) > 0 {
		slog.Info("applying migrations", "pending", pending)
		if err := models.Migrate(ctx, db); err != nil {
			return nil, models.FirstStart{}, err
		}
	}
	fs, err := models.Bootstrap(ctx, db, adminEmail)
	return db, fs, err
}

// PrintFirstStart prints the first admin's credentials, which exist nowhere else in clear,
// and the command (reset) that makes a new password if this one is lost.
func PrintFirstStart(fs models.FirstStart, reset string) {
	if !fs.Created {
		return
	}
	fmt.Printf("First start: created the first client and its admin (shown once, keep them):\n")
	fmt.Printf("  E-mail:   %s\n  Password: %s\n", fs.Email, fs.Password)
	fmt.Printf("  Lost the password? On this host: %s\n", reset)
	fmt.Printf("API token: %s\n", fs.Token)
}

// Serve runs app on listen until ctx ends, then shuts it down gracefully.
func Serve(ctx context.Context, app *fiber.App, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- app.Listener(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return app.ShutdownWithContext(sctx)
	}
}

// Run is `clusterducks panel`: the production panel on PostgreSQL (DATABASE_URL).
func Run(ctx context.Context, args []string, mounts ...Mount) error {
	fs := flag.NewFlagSet("panel", flag.ContinueOnError)
	listen := fs.String("listen", cmp.Or(os.Getenv("LISTEN"), ":8080"), "HTTP listen address")
	adminEmail := fs.String("admin-email", cmp.Or(os.Getenv("ADMIN_EMAIL"), "admin@localhost"), "e-mail of the first admin (first start only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" {
		return errors.New("DATABASE_URL is not set (e.g. postgres://user:pass@host/clusterducks)")
	}
	db, first, err := OpenDatabase(ctx, dsn, *adminEmail)
	if err != nil {
		return err
	}
	PrintFirstStart(first, ResetHint(first.Email, ""))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *listen, err)
	}
	// CLUSTERDUCKS_ALLOW_LOOPBACK=1 accepts servers and tunnels at loopback addresses, for
	// a test or lab panel whose agents run on its own machine.
	loopback, err := strconv.ParseBool(cmp.Or(os.Getenv("CLUSTERDUCKS_ALLOW_LOOPBACK"), "0"))
	if err != nil {
		return fmt.Errorf("CLUSTERDUCKS_ALLOW_LOOPBACK=%q: want 1 or 0", os.Getenv("CLUSTERDUCKS_ALLOW_LOOPBACK"))
	}
	store := &models.Store{DB: db, AllowLoopback: loopback}
	lease, err := time.ParseDuration(cmp.Or(os.Getenv("BOOT_LEASE"), "60s"))
	if err != nil || lease < time.Second {
		return fmt.Errorf("BOOT_LEASE=%q: want a duration of at least 1s", os.Getenv("BOOT_LEASE"))
	}
	m := metrics.New("panel", "")
	t, err := TemporalFromEnv(ctx, store, slog.Default(), m)
	if err != nil {
		return err
	}
	defer t.Stop()
	slog.Info("panel listening", "addr", ln.Addr().String())
	// TEMPORAL_UI_URL, when set, lets operations link to their workflow in Temporal's Web UI.
	ui := webui.Options{TemporalUI: os.Getenv("TEMPORAL_UI_URL"), TemporalNamespace: os.Getenv("TEMPORAL_NAMESPACE")}
	// TRUSTED_PROXIES (comma-separated addresses or CIDRs) names the load balancers in front.
	var proxies []string
	for _, p := range strings.Split(os.Getenv("TRUSTED_PROXIES"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			proxies = append(proxies, p)
		}
	}
	// METRICS_TOKEN guards /metrics; CLUSTERDUCKS_AGENT_BINARY is the agent served to install.sh.
	return Serve(ctx, NewApp(Options{Store: store, Mounts: mounts, Early: []Mount{t.AgentMount(store)}, WebUI: ui, TrustedProxies: proxies, OnAccess: t.OnAccess(store),
		Metrics: m, MetricsToken: os.Getenv("METRICS_TOKEN"), AgentBinary: os.Getenv("CLUSTERDUCKS_AGENT_BINARY"), BootLease: lease}), ln)
}

// Migrate is `clusterducks migrate`: applies pending migrations to DATABASE_URL (or --db).
func Migrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	dsn := fs.String("db", os.Getenv("DATABASE_URL"), "database (PostgreSQL URL or sqlite:<path>)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, err := models.Open(*dsn)
	if err != nil {
		return err
	}
	pending, err := models.PendingMigrations(ctx, db)
	if err != nil {
		return err
	}
	if err := models.Migrate(ctx, db); err != nil {
		return err
	}
	fmt.Printf("applied %d migration(s) %v\n", len(pending), pending)
	return nil
}
