// Package webui is the panel's dashboard: server-rendered pages (html/template, embedded in
// the binary), a little vanilla JavaScript, and the live-progress stream (server-sent events).
// Every read and write goes through models.Store with the logged-in user's Actor, so a page
// can never show what the API hides or do what the API refuses.
package webui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
)

//go:embed templates/*.html static/*
var files embed.FS

// Options configure the dashboard.
type Options struct {
	// TemporalUI is the base URL of the Temporal Web UI (e.g. http://127.0.0.1:8233); when
	// set, operations link to their workflow there.
	TemporalUI string
	// TemporalNamespace is the namespace in those links ("default" when empty).
	TemporalNamespace string
	// SecureCookies always marks cookies Secure. Without it, cookies are Secure when the
	// request came over TLS or through a proxy that sent X-Forwarded-Proto: https; a plain
	// http://127.0.0.1 dev panel gets cookies without Secure, or the browser would never
	// send them back and nobody could log in.
	SecureCookies bool
	// OnLogin, when set, is told of every dashboard login (the panel mails the account
	// holder when SMTP is configured).
	OnLogin func(a *models.Actor, ip string)
	// OnLoginBackoff, when set, is told when failed logins made an account back off (the
	// panel mails the account holder); ip is the address of the last failure.
	OnLoginBackoff func(a *models.Actor, ip string)
	// StreamLifetime bounds one live-progress stream (default 5 minutes); the browser
	// reconnects by itself for operations still running.
	StreamLifetime time.Duration
	// PollInterval is how often a stream reads the operations (default 500 ms).
	PollInterval time.Duration
	// APIDocument returns the API's OpenAPI document, rendered at /api-docs.
	APIDocument func() []byte
}

// UI holds the dashboard's dependencies.
type UI struct {
	store *models.Store
	opts  Options
	pages map[string]*template.Template
}

const (
	csrfField       = "csrf"
	loginCSRFCookie = "cd_login_csrf"
	localActor      = "webui.actor"
	localSession    = "webui.session"
)

// Mount registers the dashboard's routes on app. The UI it returns renders the
// not-found page (NotFound), to be used once every other route is mounted.
func Mount(app *fiber.App, store *models.Store, o Options) *UI {
	if o.TemporalNamespace == "" {
		o.TemporalNamespace = "default"
	}
	if o.StreamLifetime <= 0 {
		o.StreamLifetime = 5 * time.Minute
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	u := &UI{store: store, opts: o, pages: parsePages()}

	static, _ := fs.Sub(files, "static")
	app.Use("/static", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderCacheControl, "public, max-age=300")
		return c.Next()
	}, filesystem.New(filesystem.Config{Root: http.FS(static)}))

	app.Get("/login", u.h(u.loginPage))
	app.Post("/login", u.h(u.login))
	app.Post("/logout", u.h(u.logout))

	// Each page carries the authentication itself (not a Use on "/"), so routes that other
	// packages mount later (agent endpoints) are not put behind the dashboard's login.
	r := routes{app: app, mw: u.authenticate}
	r.get("/", u.h(u.dashboard))
	r.get("/account", u.h(u.account))
	r.post("/account/password", u.h(u.changePassword))
	r.post("/account/token", u.h(u.regenerateToken))
	r.post("/account/tokens", u.h(u.createToken))
	r.post("/account/tokens/:id/revoke", u.h(u.withID(u.revokeToken)))
	r.get("/api-docs", u.h(u.apiDocs))
	r.get("/audit", u.h(u.audit))
	r.get("/settings", u.h(u.settings))
	r.post("/settings", u.h(u.saveSettings))
	r.get("/operations", u.h(u.operations))
	r.get("/operations/:id", u.h(u.withID(u.operation)))
	r.post("/operations/:id/cancel", u.h(u.withID(u.controlOperation(false))))
	r.post("/operations/:id/retry", u.h(u.withID(u.controlOperation(true))))
	for _, signal := range []string{models.RolloutPause, models.RolloutResume, models.RolloutAbort} {
		r.post("/rollouts/:id/"+signal, u.h(u.withID(u.controlRollout(signal))))
	}
	r.get("/events/operations", u.h(u.events))
	r.get("/networks/:id/delegations", u.h(u.withID(u.delegations)))
	r.post("/networks/:id/delegations", u.h(u.withID(u.delegate)))
	r.post("/networks/:id/delegations/:user/delete", u.h(u.withID(u.undelegate)))
	r.post("/devices/bulk", u.h(u.bulkDevices))
	r.post("/devices/:id/lock", u.h(u.withID(u.lockDevice(true))))
	r.post("/devices/:id/unlock", u.h(u.withID(u.lockDevice(false))))
	r.post("/servers/:id/key", u.h(u.withID(u.rotateKey)))
	for _, action := range models.ContainerActions {
		r.post("/containers/:id/"+action, u.h(u.withID(u.containerAction(action))))
	}
	r.post("/containers/:id/rebase", u.h(u.withID(u.containerRebase)))
	r.post("/servers/:id/promote", u.h(u.objectForm("servers", "promoted-", u.promote)))
	r.post("/groups/:id/publish", u.h(u.groupForm("published-", u.publish)))
	r.post("/groups/:id/assign", u.h(u.groupForm("assigned-", u.assign)))
	r.post("/groups/:id/maintenance", u.h(u.groupForm("maintenance-", maintenance(u.store.SetMaintenance, true))))
	r.post("/groups/:id/maintenance/off", u.h(u.groupForm("maintenance-", maintenance(u.store.SetMaintenance, false))))
	r.post("/volumes/:id/maintenance", u.h(u.volumeForm("maintenance-", maintenance(u.store.SetVolumeMaintenance, true))))
	r.post("/volumes/:id/maintenance/off", u.h(u.volumeForm("maintenance-", maintenance(u.store.SetVolumeMaintenance, false))))
	for _, res := range resources() {
		u.mountResource(r, res)
	}
	return u
}

// NotFound answers a request no route took: a page for a browser (one that
// accepts HTML, outside the API), JSON for everything else.
func (u *UI) NotFound(c *fiber.Ctx) error {
	if strings.HasPrefix(c.Path(), "/api/") || !strings.Contains(c.Get(fiber.HeaderAccept), "text/html") {
		return fiber.NewError(fiber.StatusNotFound, fmt.Sprintf("no such page: %s %s", c.Method(), c.Path()))
	}
	setSecurityHeaders(c)
	// A logged-in operator gets the page with its navigation; anyone else a link to log in.
	if a, s, err := models.AuthenticateSession(c.UserContext(), u.store.DB, c.Cookies(api.SessionCookie)); err == nil {
		c.Locals(localActor, a)
		c.Locals(localSession, s)
	}
	return u.render(c.Status(fiber.StatusNotFound), "error", "Not found", "",
		map[string]any{"Code": fiber.StatusNotFound, "Message": "There is no page at " + c.Path() + "."})
}

// routes registers dashboard pages behind the login middleware.
type routes struct {
	app fiber.Router
	mw  fiber.Handler
}

func (x routes) get(path string, h fiber.Handler)  { x.app.Get(path, x.mw, h) }
func (x routes) post(path string, h fiber.Handler) { x.app.Post(path, x.mw, h) }

// h adapts a handler that returns an error into one that renders the error as a page
// (the app's own error handler answers in JSON, for the API).
func (u *UI) h(fn func(c *fiber.Ctx) error) fiber.Handler {
	return func(c *fiber.Ctx) error {
		setSecurityHeaders(c)
		err := fn(c)
		if err == nil {
			return nil
		}
		code, body := api.Status(err)
		return u.render(c.Status(code), "error", "Error", "", map[string]any{"Code": code, "Message": body.Error, "Field": body.Field, "Back": backTo(c)})
	}
}

// backTo is the page the request came from, when it is one of this panel's.
func backTo(c *fiber.Ctx) string {
	ref, err := url.Parse(c.Get(fiber.HeaderReferer))
	if err != nil || ref.Host != c.Hostname() || ref.Path == c.Path() || !localPath(ref.RequestURI()) {
		return ""
	}
	return ref.RequestURI()
}

func setSecurityHeaders(c *fiber.Ctx) {
	c.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "same-origin")
	c.Set("X-Frame-Options", "DENY")
	c.Set(fiber.HeaderCacheControl, "no-store")
}

// authenticate resolves the session cookie; without a valid session, pages redirect to the
// login page and posts are refused. Every POST must carry the session's CSRF token.
func (u *UI) authenticate(c *fiber.Ctx) error {
	setSecurityHeaders(c)
	a, s, err := models.AuthenticateSession(c.UserContext(), u.store.DB, c.Cookies(api.SessionCookie))
	if err != nil {
		if c.Method() == fiber.MethodGet && !strings.HasPrefix(c.Path(), "/events/") {
			return c.Redirect("/login?next="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
		}
		return u.render(c.Status(fiber.StatusUnauthorized), "error", "Not logged in", "",
			map[string]any{"Code": 401, "Message": "your session has ended: log in again"})
	}
	if c.Method() == fiber.MethodPost && !s.CheckCSRF(c.FormValue(csrfField)) {
		return u.render(c.Status(fiber.StatusForbidden), "error", "Refused", "",
			map[string]any{"Code": 403, "Message": "the form was sent without a valid CSRF token: reload the page and try again"})
	}
	c.Locals(localActor, a)
	c.Locals(localSession, s)
	return c.Next()
}

func actorOf(c *fiber.Ctx) *models.Actor {
	a, _ := c.Locals(localActor).(*models.Actor)
	return a
}

func sessionOf(c *fiber.Ctx) *models.Session {
	s, _ := c.Locals(localSession).(*models.Session)
	return s
}

// page is what every template receives.
type page struct {
	Title  string
	Nav    string
	Actor  *models.Actor
	CSRF   string
	Notice string
	Data   any
}

func (u *UI) render(c *fiber.Ctx, name, title, nav string, data any) error {
	t, ok := u.pages[name]
	if !ok {
		return fmt.Errorf("no template %q", name)
	}
	p := page{Title: title, Nav: nav, Actor: actorOf(c), Data: data, Notice: notices[c.Query("notice")]}
	if s := sessionOf(c); s != nil {
		p.CSRF = s.CSRF
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		slog.Error("render", "template", name, "err", err)
		return c.Status(fiber.StatusInternalServerError).SendString("internal error rendering the page")
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(buf.Bytes())
}

// notices are the fixed messages a redirect can ask for (?notice=...).
var notices = map[string]string{
	"created":        "Created.",
	"saved":          "Saved.",
	"deleted":        "Deleted.",
	"queued":         "Accepted: the work runs in the background; its progress shows below.",
	"locked":         "Device locked.",
	"unlocked":       "Device unlocked.",
	"lockqueued":     "The device is being provisioned: the lock change is queued and takes effect when that ends.",
	"password":       "Password changed; your other sessions were logged out.",
	"delegated":      "Access delegated.",
	"undelegated":    "Delegation removed.",
	"loggedout":      "You are logged out.",
	"published":      "Publishing the next version: its progress shows below.",
	"promoted":       "Switching the master: its progress shows below.",
	"assigned":       "Assigned version saved.",
	"maintenance":    "Maintenance changed.",
	"token":          "Token created: copy it now, it is shown only once.",
	"revoked":        "Token revoked: it no longer works.",
	"bulk-lock":      "The selected devices are locked.",
	"bulk-unlock":    "The selected devices are unlocked.",
	"bulk-move":      "The selected devices moved to the group.",
	"bulk-restore":   "Accepted: the selected devices' disks are being restored; Operations shows their progress.",
	"bulk-delete":    "The selected devices are deleted; their disks, if any, go to the erator.",
	"cancelling":     "Cancelling: the workflow undoes what it made (on the server, once its agent answers), then the operation ends cancelled.",
	"rollout-pause":  "Pausing: the rollout stops looking at its canaries until it is resumed (its canaries keep the new version).",
	"rollout-resume": "Resuming: the rollout looks at its canaries' boots again.",
	"rollout-abort":  "Aborting: the group goes back to the previous version and reprovisioned canaries get their previous disks back.",
}

func parsePages() map[string]*template.Template {
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t := template.Must(template.New(base).Funcs(funcs).ParseFS(files, "templates/layout.html", n))
		out[base] = t
	}
	return out
}
