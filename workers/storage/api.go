package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
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
			// Without systemd to ask, the report says nothing of containers (nil) rather
			// than "none": the panel must not judge them from it.
			if st.Containers, err = storage.ContainerUnits(r.Context(), acts.UnitDir); err != nil {
				cfg.log().Warn("stats: container units not reported", "err", err)
				st.Containers, err = nil, nil
			}
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
	rootfs := &storage.RootFS{ZFS: acts.ZFS}
	mux.HandleFunc("PUT "+wire.AgentPathCTemplateRootFS, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		id, _ := strconv.ParseUint(q.Get("id"), 10, 32)
		version, _ := strconv.Atoi(q.Get("version"))
		limit, _ := strconv.ParseInt(q.Get("limit"), 10, 64)
		if id == 0 || version < 1 || limit < 1 || len(q.Get("sha256")) != 64 {
			writeJSON(w, http.StatusBadRequest, wire.ErrorBody{Error: "id, version, sha256 and limit are required"})
			return
		}
		res, err := rootfs.Receive(r.Context(), storage.RootFSInput{Pool: pool, CTemplateID: uint(id), Version: version,
			SHA256: strings.ToLower(q.Get("sha256")), Limit: limit}, r.Body)
		if err != nil {
			status, field := rootFSStatus(err)
			writeJSON(w, status, wire.ErrorBody{Error: err.Error(), Field: field})
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET "+wire.AgentPathContainerStatus, func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseUint(r.URL.Query().Get("id"), 10, 32)
		lines, _ := strconv.Atoi(r.URL.Query().Get("lines"))
		if id == 0 {
			writeJSON(w, http.StatusBadRequest, wire.ErrorBody{Error: "id is required"})
			return
		}
		st, err := storage.ContainerState(r.Context(), uint(id), lines)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, wire.ErrorBody{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	for path, h := range cfg.APIHandlers {
		mux.Handle(path, h)
	}
	return mux
}

// rootFSStatus is the HTTP status (and the field to blame) of a refused upload.
func rootFSStatus(err error) (int, string) {
	switch {
	case errors.Is(err, activities.ErrChecksum):
		return http.StatusUnprocessableEntity, "sha256"
	case errors.Is(err, activities.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "rootfs"
	case errors.Is(err, activities.ErrExists):
		return http.StatusConflict, "version"
	case errors.Is(err, activities.ErrBusy):
		return http.StatusConflict, ""
	case strings.HasPrefix(err.Error(), "tar:"), strings.HasPrefix(err.Error(), "gzip:"):
		return http.StatusUnprocessableEntity, "rootfs"
	}
	return http.StatusInternalServerError, ""
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
