package api

import (
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// operationRoutes control a long operation:
//
//	POST /operations/<id>/cancel.json -> 202, the operation (cancelling; its undo runs first)
//	POST /operations/<id>/retry.json  -> 202, the new operation running the same work again
func (h *Handler) operationRoutes(r fiber.Router) {
	act := func(name string, fn func(*fiber.Ctx, uint) (*models.Operation, error)) {
		r.Post("/operations/:id/"+name+".json", func(c *fiber.Ctx) error {
			id, err := idParam(c)
			if err != nil {
				return err
			}
			op, err := fn(c, id)
			if err != nil {
				return err
			}
			v := viewOperation(op)
			c.Location(v.URL)
			return c.Status(fiber.StatusAccepted).JSON(v)
		})
	}
	act("cancel", func(c *fiber.Ctx, id uint) (*models.Operation, error) {
		return h.Store.CancelOperation(c.UserContext(), actor(c), id)
	})
	act("retry", func(c *fiber.Ctx, id uint) (*models.Operation, error) {
		return h.Store.RetryOperation(c.UserContext(), actor(c), id)
	})
}
