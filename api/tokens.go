package api

import (
	"fmt"

	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// TokenView is an API token as listed: never its secret (stored hashed).
type TokenView struct {
	models.APIToken
	Name string `json:"name"`
}

// tokenRoutes are the caller's named API tokens:
//
//	GET    /account/tokens.json      -> the caller's tokens, with their last use
//	POST   /account/tokens.json      {"name"} -> 201, the token with its secret ("token"), shown once
//	DELETE /account/tokens/<id>.json -> 204, that token stops working
func (h *Handler) tokenRoutes(r fiber.Router) {
	r.Get("/account/tokens.json", func(c *fiber.Ctx) error {
		toks, err := h.Store.AccountTokens(c.UserContext(), actor(c))
		if err != nil {
			return err
		}
		views := make([]TokenView, len(toks))
		for i, t := range toks {
			views[i] = TokenView{APIToken: t, Name: t.Label}
		}
		return c.JSON(views)
	})
	r.Post("/account/tokens.json", func(c *fiber.Ctx) error {
		var in models.TokenInput
		if err := models.DecodeJSON(c.Body(), &in); err != nil {
			return err
		}
		t, secret, err := h.Store.CreateToken(c.UserContext(), actor(c), &in)
		if err != nil {
			return err
		}
		c.Location(fmt.Sprintf("%s/account/tokens/%d.json", Prefix, t.ID))
		return c.Status(fiber.StatusCreated).JSON(fiber.Map{"id": t.ID, "name": t.Label, "created_at": t.CreatedAt, "token": secret})
	})
	r.Delete("/account/tokens/:id.json", func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		if err := h.Store.RevokeToken(c.UserContext(), actor(c), id); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	})
}
