package dev

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/clusterducks/clusterducks/activities/metrics"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workers/panel"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"github.com/clusterducks/clusterducks/workers/temporalite"
)

type temporalInfo struct {
	address, namespace, ui string
	stop                   func()
}

// startTemporal gives the dev panel its workflow engine: the Temporal named by
// TEMPORAL_ADDRESS when set, else an embedded server keeping its state under dir.
func startTemporal(ctx context.Context, store *models.Store, dir string, port int, noUI bool, m *metrics.Registry) (*panel.Temporal, temporalInfo, error) {
	info := temporalInfo{stop: func() {}}
	if os.Getenv("TEMPORAL_ADDRESS") != "" {
		t, err := panel.TemporalFromEnv(ctx, store, slog.Default(), m)
		if t != nil {
			cfg, _ := temporalclient.FromEnv()
			info.address, info.namespace = cfg.Address, cfg.Namespace
		}
		return t, info, err
	}
	uiPort := 0
	if noUI {
		uiPort = -1
	}
	if port > 0 && !portFree(port) {
		// Another Temporal (or another dev) holds it: a dev panel works on any port.
		fmt.Printf("Temporal's port %d is taken (another Temporal or dev?): using a free port instead (--temporal-port N picks one)\n", port)
		port = -1
	}
	srv, err := temporalite.Start(temporalite.Options{Dir: dir, Port: port, UIPort: uiPort, RegisterSearchAttributes: true})
	if err != nil {
		return nil, info, err
	}
	// At Ctrl-C the panel's worker and the server stop together: their warnings about
	// each other's polls and peers going away are not shown (dev exits quietly).
	go func() { <-ctx.Done(); srv.Quiet() }()
	log := slog.New(quietAfter(ctx, slog.Default().Handler()))
	cfg := temporalclient.Config{Address: srv.Address, Namespace: srv.Namespace}
	dial := cfg
	dial.Metrics = m
	c, err := dial.Dial(log, time.Minute)
	if err != nil {
		srv.Stop()
		return nil, info, err
	}
	t, err := panel.StartTemporal(ctx, c, store, cfg, log)
	if err == nil {
		var hc panel.HealthConfig
		if hc, err = panel.HealthFromEnv(); err == nil {
			err = t.StartHealth(ctx, hc)
		}
		if err != nil {
			t.Stop()
		}
	}
	if err != nil {
		c.Close()
		srv.Stop()
		return nil, info, err
	}
	return t, temporalInfo{address: srv.Address, namespace: srv.Namespace, ui: srv.UIURL, stop: srv.Stop}, nil
}

// portFree reports whether 127.0.0.1:port can be listened on now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// quietAfter passes records to h until ctx ends, then only errors: once dev is stopping,
// the workflow engine's warnings (polls cancelled, the server leaving) are expected.
func quietAfter(ctx context.Context, h slog.Handler) slog.Handler {
	return &quietHandler{Handler: h, ctx: ctx}
}

type quietHandler struct {
	slog.Handler
	ctx context.Context
}

func (q *quietHandler) Enabled(c context.Context, l slog.Level) bool {
	if q.ctx.Err() != nil && l < slog.LevelError {
		return l < slog.LevelWarn && q.Handler.Enabled(c, l)
	}
	return q.Handler.Enabled(c, l)
}

func (q *quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &quietHandler{Handler: q.Handler.WithAttrs(as), ctx: q.ctx}
}

func (q *quietHandler) WithGroup(n string) slog.Handler {
	return &quietHandler{Handler: q.Handler.WithGroup(n), ctx: q.ctx}
}
