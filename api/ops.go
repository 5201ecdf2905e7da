package api

import (
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// opsRoutes are the long operations that are not a plain create, update or delete:
//
//	POST /groups/<id>/publish.json        {"note", "version"} -> 202, the version and its operation
//	POST /volumes/<id>/restore.json       -> 202, a deleted volume back from the erator
//	POST /groups/<id>/restore.json        -> 202, a deleted group back from the erator
//	GET  /servers/<id|name>/erator.json   -> the server's erator, as its agent last reported it
//	POST /servers/<id|name>/erator/purge.json {"older_than": "24h"} -> 202 (admins only)
//	POST /servers/<id>/promote.json       -> 202: the slave becomes the master (409 naming what it lacks)
//	POST /devices/bulk.json               {"action", "devices", "group_id"} -> 200, or 202 with its one operation (Location)
func (h *Handler) opsRoutes(r fiber.Router) {
	r.Post("/devices/bulk.json", func(c *fiber.Ctx) error {
		var in models.DeviceBulkInput
		if err := models.DecodeJSON(c.Body(), &in); err != nil {
			return err
		}
		res, err := h.Store.BulkDevices(c.UserContext(), actor(c), &in)
		if err != nil {
			return err
		}
		v := BulkView{DeviceBulkResult: *res, Operations: []OperationView{}}
		if res.Operation != nil {
			ov := viewOperation(res.Operation)
			v.Operation = &ov
			v.Operations = append(v.Operations, ov)
		}
		for _, op := range res.Others {
			v.Operations = append(v.Operations, viewOperation(op))
		}
		if v.Operation != nil {
			c.Location(v.Operation.URL)
			return c.Status(fiber.StatusAccepted).JSON(v)
		}
		return c.JSON(v)
	})
	r.Post("/servers/:id/promote.json", func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		res, err := h.Store.PromoteServer(c.UserContext(), actor(c), id)
		if err != nil {
			return err
		}
		return sendCreated(c, "servers", res, fiber.StatusAccepted)
	})
	r.Post("/groups/:id/publish.json", func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		var in models.PublishInput
		if len(c.Body()) > 0 {
			if err := models.DecodeJSON(c.Body(), &in); err != nil {
				return err
			}
		}
		res, err := h.Store.PublishGroup(c.UserContext(), actor(c), id, &in)
		if err != nil {
			return err
		}
		return sendCreated(c, "versions", res, fiber.StatusAccepted)
	})
	restore := func(name string, fn func(*fiber.Ctx, uint) (*models.Created, error)) {
		r.Post("/"+name+"/:id/restore.json", func(c *fiber.Ctx) error {
			id, err := idParam(c)
			if err != nil {
				return err
			}
			res, err := fn(c, id)
			if err != nil {
				return err
			}
			return sendCreated(c, name, res, fiber.StatusAccepted)
		})
	}
	restore("volumes", func(c *fiber.Ctx, id uint) (*models.Created, error) {
		return h.Store.RestoreVolume(c.UserContext(), actor(c), id)
	})
	restore("groups", func(c *fiber.Ctx, id uint) (*models.Created, error) {
		return h.Store.RestoreGroup(c.UserContext(), actor(c), id)
	})
	r.Get("/servers/:name/erator.json", func(c *fiber.Ctx) error {
		items, err := h.Store.Erator(c.UserContext(), actor(c), c.Params("name"))
		if err != nil {
			return err
		}
		return c.JSON(items)
	})
	r.Post("/servers/:name/erator/purge.json", func(c *fiber.Ctx) error {
		var in models.PurgeInput
		if len(c.Body()) > 0 {
			if err := models.DecodeJSON(c.Body(), &in); err != nil {
				return err
			}
		}
		res, err := h.Store.PurgeErator(c.UserContext(), actor(c), c.Params("name"), &in)
		if err != nil {
			return err
		}
		return sendCreated(c, "servers", res, fiber.StatusAccepted)
	})
}

// BulkView is the answer to a bulk action on devices: per device what it did; the one
// operation that does what runs after the commit (also in Location; its result keeps
// each device's outcome); and every operation it started (that one first, then the ends
// of maintenances a deleted device held).
type BulkView struct {
	models.DeviceBulkResult
	Operation  *OperationView  `json:"operation,omitempty"`
	Operations []OperationView `json:"operations"`
}
