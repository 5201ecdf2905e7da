package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage"
	agentmetrics "github.com/clusterducks/clusterducks/activities/storage/metrics"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// agentAPI is the agent's own HTTP API, served only on its tunnel session (the panel
// reaches it through the server's Tunnel Port): the pool's stats and a health answer,
// plus cfg.APIHandlers (e.g. /metrics).
func agentAPI(cfg Config, serverID uint, pool string, acts *storage.Activities) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.AgentPathStats, func(w http.ResponseWriter, r *http.Request) {
		st, err := poolStats(r.Context(), acts, pool)
		if err == nil {
			withTotals(st, cfg.Metrics)
		}
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, wire.ErrorBody{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET "+wire.AgentPathHealth, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, wire.AgentHealth{ServerID: serverID, Version: cfg.Version})
	})
	for path, h := range cfg.APIHandlers {
		mux.Handle(path, h)
	}
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck
}

// withTotals adds what the agent served (its metrics' totals) to a stats report.
func withTotals(r *wire.StatsReport, m *agentmetrics.Agent) {
	if m == nil {
		return
	}
	t := m.Totals()
	r.ISCSISessions, r.BootRequests, r.ReplicationBytes = &t.ISCSISessions, &t.BootRequests, &t.ReplicationBytes
}

// poolStats is the pool's health and capacity (and its erator); a pool that does not
// exist is reported as wire.PoolMissing, not as an error.
func poolStats(ctx context.Context, acts *storage.Activities, pool string) (*wire.StatsReport, error) {
	// A machine without OpenZFS has no pool either; say so rather than fail.
	if _, err := exec.LookPath("zpool"); err != nil {
		return &wire.StatsReport{PoolHealth: wire.PoolMissing, Detail: json.RawMessage(`{"error":"zpool is not installed on this server"}`)}, nil
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := acts.Status(sctx, storage.PoolInput{Pool: pool})
	switch {
	case err == nil:
		return st.Stats(), nil
	case activities.IsType(err, activities.TypePoolNotFound) || errors.Is(err, activities.ErrPoolNotFound):
		return &wire.StatsReport{PoolHealth: wire.PoolMissing, Detail: json.RawMessage(fmt.Sprintf(`{"error":%q}`, activities.Message(err)))}, nil
	default:
		return nil, err
	}
}
