package api

import (
	"context"

	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// historyRoutes serve what happened:
//
//	GET /audit.json?network_id=&user_id=&object=&object_id=&action=&since=&until=
//	    -> who changed what, newest first, as the caller may see it (paginated)
//	GET /devices/<id>/boots.json -> the device's latest boots (time, server, version, outcome)
func (h *Handler) historyRoutes(r fiber.Router) {
	r.Get("/devices/:id/boots.json", byID(func(ctx context.Context, a *models.Actor, id uint) ([]models.BootHistory, error) {
		return h.Store.DeviceBootHistory(ctx, a, id, 100)
	}))
	r.Get("/audit.json", func(c *fiber.Ctx) error {
		p, err := page(c)
		if err != nil {
			return err
		}
		f, err := models.AuditFilterFrom(func(k string) string { return c.Query(k) })
		if err != nil {
			return err
		}
		events, total, err := h.Store.ListAudit(c.UserContext(), actor(c), p, f)
		if err != nil {
			return err
		}
		return sendList(c, events, total, p)
	})
}
