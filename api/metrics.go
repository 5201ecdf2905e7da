package api

import (
	"crypto/subtle"
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
)

// PathMetrics is where the panel serves its Prometheus metrics.
const PathMetrics = "/metrics"

// MountMetrics serves h (the panel's Prometheus registry) at /metrics. With a token, a
// scrape must send "Authorization: Bearer <token>" (Prometheus' authorization setting);
// without one the metrics are public: they hold counts by bounded labels only.
func MountMetrics(app *fiber.App, h http.Handler, token string) {
	handler := adaptor.HTTPHandler(h)
	app.Get(PathMetrics, func(c *fiber.Ctx) error {
		if token != "" {
			got := c.Get(fiber.HeaderAuthorization)
			if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+token)) != 1 {
				return fiber.NewError(fiber.StatusUnauthorized, "metrics need the scrape token (Authorization: Bearer)")
			}
		}
		return handler(c)
	})
}
