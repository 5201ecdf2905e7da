package panel

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/clusterducks/clusterducks/activities/metrics"
	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/panel/agentclient"
	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"github.com/clusterducks/clusterducks/workflows"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
)

// Temporal is the panel's workflow engine once wired: the client, the panel worker and
// the agent endpoints that hand agents the Temporal settings.
type Temporal struct {
	Client client.Client
	Worker worker.Worker
	Engine *Engine
	Agents *api.Agents
}

// Stop stops the panel worker and closes the client; nil-safe.
func (t *Temporal) Stop() {
	if t == nil {
		return
	}
	if t.Worker != nil {
		t.Worker.Stop()
	}
	if t.Client != nil {
		t.Client.Close()
	}
}

// AgentMount is the agent endpoints, to register as an early mount (before the API). A
// panel without Temporal (nil) still answers agents, with an empty Temporal address.
func (t *Temporal) AgentMount(store *models.Store) Mount {
	if t == nil {
		return NewAgents(store, temporalclient.Config{}).Mount
	}
	return t.Agents.Mount
}

// NewAgents returns the agent endpoints handing out cfg (the Temporal address agents dial).
func NewAgents(store *models.Store, cfg temporalclient.Config) *api.Agents {
	return &api.Agents{Store: store, TaskQueue: workflows.ServerQueue, Temporal: cfg.Wire()}
}

// StartTemporal wires Temporal into a panel: a panel worker on the task queue "panel"
// (the storage workflows and the database activities), store.Engine so that recorded
// operations start their workflows, and the operations that were queued while no engine
// ran. agentCfg is what agents are told to dial (often the same as cfg).
func StartTemporal(ctx context.Context, c client.Client, store *models.Store, agentCfg temporalclient.Config, log *slog.Logger) (*Temporal, error) {
	if log == nil {
		log = slog.Default()
	}
	w := worker.New(c, workflows.PanelQueue, worker.Options{})
	workflows.Register(w)
	e := &Engine{Client: c, DB: store.DB, Log: log}
	w.RegisterActivity(&panel.Activities{DB: store.DB, Agents: agentclient.New(store.DB), Store: store, Devices: e})
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("panel worker: %w", err)
	}
	store.Engine = e
	if err := EnsureSchedules(ctx, c); err != nil {
		// Replication still runs from its triggers; the next panel start tries again.
		log.Warn("schedules not created", "err", err)
	}
	go e.ResumeQueued(ctx)
	return &Temporal{Client: c, Worker: w, Engine: e, Agents: NewAgents(store, agentCfg)}, nil
}

// TemporalFromEnv wires Temporal from TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and the TLS
// settings (see temporalclient.FromEnv); TEMPORAL_AGENT_ADDRESS, when set, is the address
// agents are told to dial instead of TEMPORAL_ADDRESS. Without TEMPORAL_ADDRESS the panel
// runs without an engine (operations stay queued until one is configured) and it returns nil.
func TemporalFromEnv(ctx context.Context, store *models.Store, log *slog.Logger, m *metrics.Registry) (*Temporal, error) {
	cfg, err := temporalclient.FromEnv()
	if err != nil {
		return nil, err
	}
	cfg.Metrics = m
	if cfg.Address == "" {
		slog.Warn("TEMPORAL_ADDRESS is not set: operations stay queued until the panel runs with Temporal")
		return nil, nil
	}
	c, err := cfg.Dial(log, time.Minute)
	if err != nil {
		return nil, err
	}
	agentCfg := cfg
	agentCfg.Metrics = nil
	if a := os.Getenv("TEMPORAL_AGENT_ADDRESS"); a != "" {
		agentCfg.Address = a
	}
	t, err := StartTemporal(ctx, c, store, agentCfg, log)
	if err != nil {
		c.Close()
		return nil, err
	}
	hc, err := HealthFromEnv()
	if err == nil {
		err = t.StartHealth(ctx, hc)
	}
	if err != nil {
		t.Stop()
		return nil, err
	}
	slog.Info("workflow engine ready", "temporal", cfg.Address, "namespace", cfg.Namespace, "queue", workflows.PanelQueue)
	return t, nil
}
