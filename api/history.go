package api

import (
	"context"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// historyRoutes serve what happened:
//
//	GET /audit.json?network_id=&user_id=&object=&object_id=&action=&since=&until=
//	    -> who changed what, newest first, as the caller may see it (paginated)
//	GET /devices/<id>/boots.json -> the device's latest boots (time, server, version, outcome,
//	    result, time to up)
//	GET /versions/<id>/boots.json?since= -> how devices came up on a group version (success
//	    rate, p50/p95 time to up), over each device's latest boot of it
func (h *Handler) historyRoutes(r fiber.Router) {
	r.Get("/versions/:id/boots.json", func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		var since time.Time
		if v := c.Query("since"); v != "" {
			if since, err = models.ParseSince("since", v, time.Now()); err != nil {
				return err
			}
		}
		vb, err := h.Store.VersionBoots(c.UserContext(), actor(c), id, since)
		if err != nil {
			return err
		}
		return c.JSON(vb)
	})
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
