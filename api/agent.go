package api

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// AgentTemporal is the Temporal endpoint the panel hands its agents.
type AgentTemporal struct {
	Address    string `json:"address"`
	Namespace  string `json:"namespace"`
	TLS        bool   `json:"tls"`
	ServerName string `json:"server_name,omitempty"`
	CAPEM      string `json:"ca_pem,omitempty"`
}

// Agents serves the endpoints storage-server agents call with their server key (from
// install.sh -k), not with a user's token:
//
//	POST /api/v0.9.2/agent/register.json  {"addr": "..."} -> server id, task queue, Temporal settings
//	POST /api/v0.9.2/agent/stats.json     models.StatsReport -> 204
//
// The key goes in `Authorization: Bearer <key>` (or `Key key="<key>"`).
type Agents struct {
	Store    *models.Store
	Temporal AgentTemporal
	// StatsEvery is how often agents report their pool's stats (default 15 s).
	StatsEvery time.Duration
	// TaskQueue builds a server's task queue name (workflows.ServerQueue).
	TaskQueue func(serverID uint) string
}

// RegisterResponse is what an agent receives when it presents its key.
type RegisterResponse struct {
	ServerID     uint           `json:"server_id"`
	Name         string         `json:"name"`
	NetworkID    uint           `json:"network_id"`
	Pool         string         `json:"pool"`
	TaskQueue    string         `json:"task_queue"`
	Temporal     AgentTemporal  `json:"temporal"`
	StatsSeconds int            `json:"stats_seconds"`
	Operation    *OperationView `json:"operation,omitempty"`
}

// Mount registers the agent endpoints; it must run before the API's authenticated group
// (a panel "early" mount), because agents carry no user credentials.
func (g *Agents) Mount(app *fiber.App, _ *models.Store) {
	app.Post(Prefix+"/agent/register.json", g.register)
	app.Post(Prefix+"/agent/stats.json", g.stats)
}

func (g *Agents) server(c *fiber.Ctx) (*models.Server, error) {
	h := strings.TrimSpace(c.Get(fiber.HeaderAuthorization))
	key := ""
	switch {
	case strings.HasPrefix(h, "Bearer "):
		key = strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))
	case strings.HasPrefix(h, "Key "):
		key = strings.Trim(strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(h, "Key ")), "key="), `"`)
	}
	srv, err := models.ServerByKey(c.UserContext(), g.Store.DB, key)
	if errors.Is(err, models.ErrBadServerKey) {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="clusterducks-agent"`)
		return nil, fiber.NewError(fiber.StatusUnauthorized, "missing or unknown server key: send Authorization: Bearer <the server's key>")
	}
	return srv, err
}

func (g *Agents) register(c *fiber.Ctx) error {
	srv, err := g.server(c)
	if err != nil {
		return err
	}
	var in struct {
		Addr    string `json:"addr"`
		Version string `json:"version"`
	}
	if len(c.Body()) > 0 {
		if err := json.Unmarshal(c.Body(), &in); err != nil {
			return &models.MalformedError{Msg: "body must be a JSON object: " + err.Error()}
		}
	}
	op, err := g.Store.RegisterAgent(c.UserContext(), srv, in.Addr)
	if err != nil {
		return err
	}
	every := g.StatsEvery
	if every <= 0 {
		every = 15 * time.Second
	}
	v := viewOperation(op)
	return c.JSON(RegisterResponse{
		ServerID: srv.ID, Name: srv.Name, NetworkID: srv.NetworkID, Pool: srv.Pool,
		TaskQueue: g.TaskQueue(srv.ID), Temporal: g.Temporal, StatsSeconds: int(every / time.Second), Operation: &v,
	})
}

func (g *Agents) stats(c *fiber.Ctx) error {
	srv, err := g.server(c)
	if err != nil {
		return err
	}
	var r models.StatsReport
	if err := json.Unmarshal(c.Body(), &r); err != nil {
		return &models.MalformedError{Msg: "body must be a stats report: " + err.Error()}
	}
	if r.PoolHealth == "" {
		return models.Invalid("pool_health", "is required")
	}
	if err := models.RecordServerStats(c.UserContext(), g.Store.DB, srv.ID, &r); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
