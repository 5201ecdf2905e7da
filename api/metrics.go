package api

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel/agentclient"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"gorm.io/gorm"
)

// PathMetrics is where the panel serves its Prometheus metrics.
const PathMetrics = "/metrics"

// PathAgentMetrics is where the panel serves an agent's metrics, by server id.
const PathAgentMetrics = "/metrics/servers/:id"

// MountMetrics serves h (the panel's Prometheus registry) at /metrics, and each agent's
// metrics at /metrics/servers/<server id>, fetched through the server's tunnel (agents
// accept nothing else): a Prometheus that reaches only the panel scrapes every agent there.
// With a token, a scrape must send "Authorization: Bearer <token>" (Prometheus'
// authorization setting); without one the metrics are public: they hold counts by bounded
// labels only.
func MountMetrics(app *fiber.App, h http.Handler, token string, db *gorm.DB) {
	handler := adaptor.HTTPHandler(h)
	auth := func(c *fiber.Ctx) error {
		if token != "" {
			got := c.Get(fiber.HeaderAuthorization)
			if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+token)) != 1 {
				return fiber.NewError(fiber.StatusUnauthorized, "metrics need the scrape token (Authorization: Bearer)")
			}
		}
		return c.Next()
	}
	app.Get(PathMetrics, auth, handler)
	if db == nil {
		return
	}
	agents := &agentclient.Client{DB: db, Timeout: 10 * time.Second}
	app.Get(PathAgentMetrics, auth, func(c *fiber.Ctx) error {
		id, err := strconv.ParseUint(c.Params("id"), 10, 32)
		if err != nil || id == 0 {
			return fiber.NewError(fiber.StatusBadRequest, "id: must be a server id")
		}
		ctx := c.UserContext()
		var s models.Server
		if err := db.WithContext(ctx).Take(&s, id).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return fiber.NewError(fiber.StatusNotFound, "no server with id "+c.Params("id"))
			}
			return err
		}
		t, err := models.SelectedTunnel(ctx, db, s.NetworkID)
		if err != nil {
			return err
		}
		if t == nil || s.TunnelPort == 0 {
			return fiber.NewError(fiber.StatusServiceUnavailable, "server "+s.Name+" has no tunnel port on a selected tunnel: the panel cannot reach its agent")
		}
		b, err := agents.Fetch(ctx, t, s.TunnelPort, PathMetrics)
		if err != nil {
			return fiber.NewError(fiber.StatusBadGateway, "server "+s.Name+"'s agent through tunnel "+t.Alias+": "+err.Error())
		}
		c.Set(fiber.HeaderContentType, "text/plain; version=0.0.4; charset=utf-8")
		return c.Send(b)
	})
}
