package webui

import (
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// secure reports whether cookies set on this response get the Secure attribute: always
// when configured, otherwise when the request came over TLS or through a proxy that said so
// (c.Protocol reads X-Forwarded-Proto).
func (u *UI) secure(c *fiber.Ctx) bool {
	return u.opts.SecureCookies || c.Protocol() == "https"
}

// localPath reports whether p is a path on this panel as a browser reads it. Browsers
// follow the WHATWG URL rules: they drop tabs and newlines anywhere, strip leading C0
// controls and spaces, and read a backslash as a slash, so "/\t/evil.example" and
// "/\\evil.example" are "//evil.example", another host. Only printable ASCII without
// backslashes is accepted, starting with one slash, with no scheme or host once parsed.
func localPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] >= 0x7f || p[i] == '\\' {
			return false
		}
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil && strings.HasPrefix(u.Path, "/") && !strings.HasPrefix(u.Path, "//")
}

// safeNext keeps a post-login redirect on this panel (and off the login page itself).
func safeNext(next string) string {
	if !localPath(next) || strings.HasPrefix(next, "/login") {
		return "/"
	}
	return next
}

type loginData struct {
	Email   string
	Next    string
	Error   string
	CSRF    string
	Message string
}

// loginPage shows the login form. Before a session exists, the form is protected by a
// double-submit token: a random cookie that the form must repeat.
func (u *UI) loginPage(c *fiber.Ctx) error {
	if _, _, err := models.AuthenticateSession(c.UserContext(), u.store.DB, c.Cookies(api.SessionCookie)); err == nil {
		return c.Redirect(safeNext(c.Query("next")), fiber.StatusSeeOther)
	}
	return u.showLogin(c, loginData{Next: safeNext(c.Query("next")), Message: notices[c.Query("notice")]})
}

func (u *UI) showLogin(c *fiber.Ctx, d loginData) error {
	d.CSRF = models.NewSecret("")
	c.Cookie(&fiber.Cookie{Name: loginCSRFCookie, Value: d.CSRF, Path: "/", HTTPOnly: true, Secure: u.secure(c), SameSite: fiber.CookieSameSiteStrictMode, Expires: time.Now().Add(time.Hour)})
	return u.render(c, "login", "Log in", "", d)
}

func (u *UI) login(c *fiber.Ctx) error {
	d := loginData{Email: c.FormValue("email"), Next: c.FormValue("next")}
	tok := c.FormValue(csrfField)
	if tok == "" || tok != c.Cookies(loginCSRFCookie) {
		c.Status(fiber.StatusForbidden)
		d.Error = "The form was sent without a valid CSRF token: please try again."
		return u.showLogin(c, d)
	}
	a, err := models.Login(c.UserContext(), u.store.DB, d.Email, c.FormValue("password"), c.IP())
	var rl *models.RateLimitedError
	switch {
	case errors.As(err, &rl):
		c.Status(fiber.StatusTooManyRequests)
		c.Set(fiber.HeaderRetryAfter, itoa(int(rl.RetryAfter.Seconds())))
		d.Error = "Too many failed logins. " + strings.ToUpper(rl.Error()[:1]) + rl.Error()[1:] + "."
		return u.showLogin(c, d)
	case errors.Is(err, models.ErrBadCredentials):
		var backoff *models.LoginBackoffError
		if errors.As(err, &backoff) && u.opts.OnLoginBackoff != nil {
			u.opts.OnLoginBackoff(&models.Actor{User: backoff.User}, c.IP())
		}
		c.Status(fiber.StatusUnauthorized)
		d.Error = "Wrong e-mail or password."
		return u.showLogin(c, d)
	case err != nil:
		return err
	}
	secret, _, err := models.CreateSession(c.UserContext(), u.store.DB, a.ID, c.IP())
	if err != nil {
		return err
	}
	c.ClearCookie(loginCSRFCookie)
	// The session cookie lives as long as the browser session; the server side expires it
	// after models.SessionTTL without activity.
	c.Cookie(&fiber.Cookie{Name: api.SessionCookie, Value: secret, Path: "/", HTTPOnly: true, Secure: u.secure(c), SameSite: fiber.CookieSameSiteLaxMode})
	if u.opts.OnLogin != nil {
		u.opts.OnLogin(a, c.IP())
	}
	return c.Redirect(safeNext(d.Next), fiber.StatusSeeOther)
}

func (u *UI) logout(c *fiber.Ctx) error {
	setSecurityHeaders(c)
	cookie := c.Cookies(api.SessionCookie)
	if _, s, err := models.AuthenticateSession(c.UserContext(), u.store.DB, cookie); err == nil {
		if !s.CheckCSRF(c.FormValue(csrfField)) {
			return u.render(c.Status(fiber.StatusForbidden), "error", "Refused", "",
				map[string]any{"Code": 403, "Message": "the form was sent without a valid CSRF token: reload the page and try again"})
		}
		if err := models.DeleteSession(c.UserContext(), u.store.DB, cookie); err != nil {
			return err
		}
	}
	c.Cookie(&fiber.Cookie{Name: api.SessionCookie, Value: "", Path: "/", HTTPOnly: true, Secure: u.secure(c), SameSite: fiber.CookieSameSiteLaxMode, Expires: time.Unix(1, 0), MaxAge: -1})
	return c.Redirect("/login?notice=loggedout", fiber.StatusSeeOther)
}

type accountData struct {
	User      models.User
	Tokens    []models.APIToken
	NewToken  string
	Form      *formView
	TokenForm *formView
}

func (u *UI) accountData(c *fiber.Ctx) (*accountData, error) {
	a := actorOf(c)
	toks, err := u.store.AccountTokens(c.UserContext(), a)
	if err != nil {
		return nil, err
	}
	return &accountData{User: a.User, Tokens: toks, Form: passwordForm(), TokenForm: tokenForm()}, nil
}

func tokenForm() *formView {
	return &formView{ID: "token-", Action: "/account/tokens", Submit: "Create token", Fields: []field{
		{Name: "name", Label: "Token name", Type: "text", Required: true, Help: "What the token is for (a script, a host): tokens are listed and revoked by name."},
	}}
}

// createToken makes a named API token and shows it once on the account page
// (Post/Redirect/Get: a reload makes no second token).
func (u *UI) createToken(c *fiber.Ctx) error {
	name := c.FormValue("name")
	_, secret, err := u.store.CreateToken(c.UserContext(), actorOf(c), &models.TokenInput{Name: &name})
	if err != nil {
		code, body := api.Status(err)
		if code >= 500 {
			return err
		}
		d, derr := u.accountData(c)
		if derr != nil {
			return derr
		}
		d.TokenForm.setError(body)
		d.TokenForm.fill(url.Values{"name": {name}})
		return u.render(c.Status(code), "account", "Account settings", "account", d)
	}
	return u.redirectWithSecret(c, "/account", "?notice=token", secret)
}

// revokeToken deletes one of the caller's tokens.
func (u *UI) revokeToken(c *fiber.Ctx, r *rc, id uint) error {
	if err := u.store.RevokeToken(r.ctx, r.a, id); err != nil {
		return err
	}
	return c.Redirect("/account?notice=revoked", fiber.StatusSeeOther)
}

func passwordForm() *formView {
	return &formView{Action: "/account/password", Submit: "Change password", Fields: []field{
		{Name: "current_password", Label: "Current password", Type: "password", Required: true, Autocomplete: "current-password"},
		{Name: "new_password", Label: "New password", Type: "password", Required: true, Autocomplete: "new-password", Help: "At least 10 characters."},
		{Name: "confirm_password", Label: "Repeat the new password", Type: "password", Required: true, Autocomplete: "new-password"},
	}}
}

func (u *UI) account(c *fiber.Ctx) error {
	d, err := u.accountData(c)
	if err != nil {
		return err
	}
	d.NewToken = u.takeSecret(c)
	return u.render(c, "account", "Account settings", "account", d)
}

func (u *UI) changePassword(c *fiber.Ctx) error {
	d, err := u.accountData(c)
	if err != nil {
		return err
	}
	next, confirm := c.FormValue("new_password"), c.FormValue("confirm_password")
	if next != confirm {
		err = models.Invalid("confirm_password", "does not match the new password")
	} else {
		err = u.store.ChangePassword(c.UserContext(), actorOf(c), c.FormValue("current_password"), next)
	}
	if err != nil {
		code, body := api.Status(err)
		if code >= 500 {
			return err
		}
		d.Form.setError(body)
		return u.render(c.Status(code), "account", "Account settings", "account", d)
	}
	return c.Redirect("/account?notice=password", fiber.StatusSeeOther)
}

// regenerateToken replaces the account's API token and shows the new one, once
// (Post/Redirect/Get: a reload issues no second token).
func (u *UI) regenerateToken(c *fiber.Ctx) error {
	tok, err := models.IssueToken(c.UserContext(), u.store.DB, actorOf(c).ID, "account")
	if err != nil {
		return err
	}
	return u.redirectWithSecret(c, "/account", "?notice=token", tok)
}
