package webui

import (
	"time"

	"github.com/gofiber/fiber/v2"
)

// secretCookie carries a secret made by a POST (a server or tunnel key, an API token) to
// the page the POST redirects to, which shows it once and clears it: Post/Redirect/Get
// for forms whose answer must be shown once, so a reload neither repeats the POST nor
// shows the secret again. The cookie is bound to that page's path and lives a minute.
const secretCookie = "cd_secret"

// redirectWithSecret answers a POST with a 303 to page, the secret riding along.
func (u *UI) redirectWithSecret(c *fiber.Ctx, page, query, secret string) error {
	c.Cookie(&fiber.Cookie{Name: secretCookie, Value: secret, Path: page, HTTPOnly: true, Secure: u.secure(c),
		SameSite: fiber.CookieSameSiteStrictMode, MaxAge: 60, Expires: time.Now().Add(time.Minute)})
	return c.Redirect(page+query, fiber.StatusSeeOther)
}

// takeSecret returns the secret a redirect brought to this page ("" when none) and
// clears it, so it is shown once.
func (u *UI) takeSecret(c *fiber.Ctx) string {
	s := c.Cookies(secretCookie)
	if s == "" {
		return ""
	}
	c.Cookie(&fiber.Cookie{Name: secretCookie, Value: "", Path: c.Path(), HTTPOnly: true, Secure: u.secure(c),
		SameSite: fiber.CookieSameSiteStrictMode, MaxAge: -1, Expires: time.Unix(1, 0)})
	return s
}
