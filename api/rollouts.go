package api

import (
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// rolloutRoutes show and steer the rollouts of group versions (a publish with "rollout"
// starts one):
//
//	GET  /rollouts.json                -> the rollouts, newest first
//	GET  /rollouts/<id>.json           -> a rollout: its canaries, thresholds, state and report
//	POST /rollouts/<id>/pause.json     -> 202, the rollout (its workflow pauses the canary wait)
//	POST /rollouts/<id>/resume.json    -> 202, the rollout (the wait goes on)
//	POST /rollouts/<id>/abort.json     -> 202, the rollout (back to the previous version, canaries' disks restored)
func (h *Handler) rolloutRoutes(r fiber.Router) {
	r.Get("/rollouts.json", func(c *fiber.Ctx) error {
		p, err := page(c)
		if err != nil {
			return err
		}
		rs, total, err := h.Store.ListRollouts(c.UserContext(), actor(c), p)
		if err != nil {
			return err
		}
		return sendList(c, rs, total, p)
	})
	r.Get("/rollouts/:id.json", func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		ro, err := h.Store.GetRollout(c.UserContext(), actor(c), id)
		if err != nil {
			return err
		}
		return c.JSON(ro)
	})
	for _, signal := range []string{models.RolloutPause, models.RolloutResume, models.RolloutAbort} {
		r.Post("/rollouts/:id/"+signal+".json", func(c *fiber.Ctx) error {
			id, err := idParam(c)
			if err != nil {
				return err
			}
			ro, err := h.Store.ControlRollout(c.UserContext(), actor(c), id, signal)
			if err != nil {
				return err
			}
			return c.Status(fiber.StatusAccepted).JSON(ro)
		})
	}
}
