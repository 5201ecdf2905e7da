package api

import (
	"github.com/gofiber/fiber/v2"
)

// alerts serves GET /alerts.json: the same list the dashboard shows, from models.Store.Alerts.
func (h *Handler) alerts(r fiber.Router) {
	r.Get("/alerts.json", func(c *fiber.Ctx) error {
		list, err := h.Store.Alerts(c.UserContext(), actor(c))
		if err != nil {
			return err
		}
		return c.JSON(list)
	})
}
