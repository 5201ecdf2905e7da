package api

import (
	"strings"

	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// SessionCookie is the dashboard's session cookie; the API accepts it too, with CSRF.
const SessionCookie = "cd_session"

// CSRFHeader carries the session's CSRF token on API calls made with the session cookie.
const CSRFHeader = "X-CSRF-Token"

// parseToken reads `Token token="..."` (the guide's form), also accepting `Token ...` and `Bearer ...`.
func parseToken(h string) string {
	h = strings.TrimSpace(h)
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok {
		return ""
	}
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(scheme) {
	case "token":
		if v, ok := strings.CutPrefix(rest, "token="); ok {
			return strings.Trim(v, `"`)
		}
		return strings.Trim(rest, `"`)
	case "bearer":
		return rest
	}
	return ""
}

// actorKey is where the authenticated actor is kept in the request's locals.
const actorKey = "actor"

// Authenticate resolves the caller from an API token or a session cookie; unsafe methods
// with a cookie need the CSRF header.
func (h *Handler) Authenticate(c *fiber.Ctx) error {
	if tok := parseToken(c.Get(fiber.HeaderAuthorization)); tok != "" {
		a, use, err := models.AuthenticateToken(c.UserContext(), h.Store.DB, tok, c.IP())
		if err != nil {
			return err
		}
		if use.NewIP && h.OnTokenUse != nil {
			h.OnTokenUse(a, c.IP())
		}
		c.Locals(actorKey, a)
		return c.Next()
	}
	if cookie := c.Cookies(SessionCookie); cookie != "" {
		a, s, err := models.AuthenticateSession(c.UserContext(), h.Store.DB, cookie)
		if err != nil {
			return err
		}
		switch c.Method() {
		case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		default:
			if !s.CheckCSRF(c.Get(CSRFHeader)) {
				return models.Forbidden("missing or wrong %s header for a session-authenticated request", CSRFHeader)
			}
		}
		c.Locals(actorKey, a)
		return c.Next()
	}
	return models.ErrBadCredentials
}

// actor returns the authenticated caller.
func actor(c *fiber.Ctx) *models.Actor {
	a, _ := c.Locals(actorKey).(*models.Actor)
	return a
}
