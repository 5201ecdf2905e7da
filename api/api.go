// Package api is the panel's REST API v0.9.2: one route table, one file per resource, one
// error handler. The business rules live in models.Store, which the dashboard shares.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// Prefix is the API's path prefix (the wire contract's: agents call under it too).
const Prefix = wire.Prefix

// Handler serves the API.
type Handler struct {
	Store *models.Store
	// OnTokenUse, when set, is told the first time a token is used from a new address
	// (the panel mails the account holder).
	OnTokenUse func(a *models.Actor, ip string)
	// Extra, when set, registers more routes on the authenticated API group (alerts,
	// agent endpoints and other capabilities wire themselves in here).
	Extra []func(r fiber.Router)
	// Agents, when set, reaches agents through their tunnels (ctemplate uploads, container
	// status); without it those endpoints answer 409.
	Agents AgentCaller

	spec    spec
	docOnce sync.Once
	doc     []byte
}

// Document is the OpenAPI document of app's API (the dashboard renders it too). It is
// built on first use, once every route of the app (actions, agent and boot endpoints
// registered by other packages too) is known.
func (h *Handler) Document(app *fiber.App) []byte {
	h.docOnce.Do(func() { h.doc = h.spec.document(app.GetRoutes(true)) })
	return h.doc
}

// Mount registers the API on app under Prefix.
func (h *Handler) Mount(app *fiber.App) {
	sp := &h.spec
	app.Get(Prefix+"/openapi.json", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(h.Document(c.App()))
	})
	r := app.Group(Prefix, h.Authenticate)
	h.routes(r, sp)
	h.alerts(r)
	h.opsRoutes(r)
	h.operationRoutes(r)
	h.rolloutRoutes(r)
	h.tokenRoutes(r)
	h.historyRoutes(r)
	for _, f := range h.Extra {
		f(r)
	}
	r.Use(func(c *fiber.Ctx) error {
		return fiber.NewError(fiber.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", c.Method(), c.Path()))
	})
}

// NewApp returns a Fiber app configured for the API: its error handler and body limit.
// With trusted proxies (addresses or CIDRs of the load balancers in front of the panels),
// the client address comes from their X-Forwarded-For, so per-address login limits and
// audit records see the real client, not the balancer.
func NewApp(trustedProxies ...string) *fiber.App {
	cfg := fiber.Config{
		ErrorHandler:          ErrorHandler,
		BodyLimit:             1 << 20,
		DisableStartupMessage: true,
		ReadBufferSize:        16 << 10,
	}
	if len(trustedProxies) > 0 {
		cfg.ProxyHeader = fiber.HeaderXForwardedFor
		cfg.EnableTrustedProxyCheck = true
		cfg.TrustedProxies = trustedProxies
	}
	// Bodies are streamed so that a ctemplate's root file system goes to its agent as it
	// arrives; every other route gets its body whole, within the limit (limitBodies).
	cfg.StreamRequestBody = true
	cfg.DisablePreParseMultipartForm = true // multipart bodies too go through limitBodies
	app := fiber.New(cfg)
	guardServer(app.Server())
	app.Use(limitBodies(cfg.BodyLimit))
	return app
}

// limitBodies keeps the body limit that streaming turned off: a body over limit bytes is
// 413 on every route but a ctemplate upload; a chunked one is read up to the limit.
func limitBodies(limit int) fiber.Handler {
	return func(c *fiber.Ctx) error {
		req := c.Request()
		if !req.IsBodyStream() || strings.HasSuffix(c.Path(), rootFSSuffix) {
			return c.Next()
		}
		n := req.Header.ContentLength()
		if n > limit {
			return fiber.ErrRequestEntityTooLarge
		}
		if n < 0 {
			b, err := io.ReadAll(io.LimitReader(c.Context().RequestBodyStream(), int64(limit)+1))
			if err != nil {
				return errMalformedRequest
			}
			if len(b) > limit {
				return fiber.ErrRequestEntityTooLarge
			}
			req.SetBodyStream(bytes.NewReader(b), len(b))
		}
		return c.Next()
	}
}

// guardServer makes the two answers Fiber gives below its routes and error handler JSON
// like every other: a method it does not know (it answered 400 in plain text) is 501,
// and a request fasthttp cannot parse is 400 without fasthttp's text, which quotes the
// request's bytes, its Authorization header and token included.
func guardServer(srv *fasthttp.Server) {
	handle, fail := srv.Handler, srv.ErrorHandler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		if !slices.Contains(fiber.DefaultMethods, string(ctx.Method())) {
			body, _ := json.Marshal(ErrorBody{Error: "this panel does not implement that HTTP method"})
			ctx.Response.Header.Set(fiber.HeaderAllow, strings.Join(fiber.DefaultMethods, ", "))
			ctx.SetContentType(fiber.MIMEApplicationJSON)
			ctx.SetStatusCode(fiber.StatusNotImplemented)
			ctx.SetBody(body)
			return
		}
		handle(ctx)
	}
	srv.ErrorHandler = func(ctx *fasthttp.RequestCtx, err error) {
		var small *fasthttp.ErrSmallBuffer
		var netErr net.Error
		switch {
		case errors.As(err, &small), errors.As(err, &netErr), errors.Is(err, fasthttp.ErrBodyTooLarge), errors.Is(err, fasthttp.ErrGetOnly):
			// Fiber maps these to their statuses with messages of its own.
		default:
			err = errMalformedRequest
		}
		fail(ctx, err)
	}
}

// errMalformedRequest stands for every parse error of fasthttp (Fiber answers it 400).
var errMalformedRequest = errors.New("malformed HTTP request")

func (h *Handler) routes(r fiber.Router, sp *spec) {
	resource(r, sp, "clients", models.Client{}, crud[models.ClientInput]{
		list: wrapList(h.Store.ListClients), get: getAny(h.Store.GetClient),
		create: h.Store.CreateClient, update: asAny(h.Store.UpdateClient), del: noOp(h.Store.DeleteClient),
	})
	resource(r, sp, "users", models.User{}, crud[models.UserInput]{
		list: wrapList(h.Store.ListUsers), get: getAny(h.Store.GetUser),
		create: h.Store.CreateUser, update: asAny(h.Store.UpdateUser), del: noOp(h.Store.DeleteUser),
	})
	resource(r, sp, "networks", models.Network{}, crud[models.NetworkInput]{
		list: wrapList(h.Store.ListNetworks), get: getAny(h.Store.GetNetwork),
		create: h.Store.CreateNetwork, update: asAny(h.Store.UpdateNetwork), del: noOp(h.Store.DeleteNetwork),
	})
	resource(r, sp, "tunnels", models.Tunnel{}, owned[models.Tunnel](h.Store, "tunnel", crud[models.TunnelInput]{
		create: h.Store.CreateTunnel, update: asAny(h.Store.UpdateTunnel), del: noOp(h.Store.DeleteTunnel),
	}))
	resource(r, sp, "servers", models.Server{}, owned[models.Server](h.Store, "server", crud[models.ServerInput]{
		create: h.Store.CreateServer, update: asAny(h.Store.UpdateServer), del: noOp(h.Store.DeleteServer),
	}))
	resource(r, sp, "volumes", models.Volume{}, owned[models.Volume](h.Store, "volume", crud[models.VolumeInput]{
		create: h.Store.CreateVolume, update: asAny(h.Store.UpdateVolume), del: h.Store.DeleteVolume,
	}))
	resource(r, sp, "groups", models.Group{}, owned[models.Group](h.Store, "group", crud[models.GroupInput]{
		create: h.Store.CreateGroup, update: asAny(h.Store.UpdateGroup), del: h.Store.DeleteGroup,
	}))
	resource(r, sp, "devices", models.Device{}, owned[models.Device](h.Store, "device", crud[models.DeviceInput]{
		create: h.Store.CreateDevice, update: asAny(h.Store.UpdateDevice), del: h.Store.DeleteDevice,
	}))
	resource(r, sp, "vdisks", models.VDisk{}, owned[models.VDisk](h.Store, "vdisk", crud[models.VDiskInput]{
		create: h.Store.CreateVDisk, update: asAny(h.Store.UpdateVDisk), del: h.Store.DeleteVDisk,
	}))
	resource(r, sp, "ctemplates", models.CTemplate{}, owned[models.CTemplate](h.Store, "ctemplate", crud[models.CTemplateInput]{
		create: h.Store.CreateCTemplate, update: asAny(h.Store.UpdateCTemplate), del: h.Store.DeleteCTemplate,
	}))
	resource(r, sp, "containers", models.Container{}, owned[models.Container](h.Store, "container", crud[models.ContainerInput]{
		create: h.Store.CreateContainer, update: asAny(h.Store.UpdateContainer), del: h.Store.DeleteContainer,
	}))
	h.containerRoutes(r)
	resource(r, sp, "menus", models.MenuView{}, crud[models.MenuInput]{
		list: func(ctx context.Context, a *models.Actor, p models.Page, nid uint) (any, int64, error) {
			ms, total, err := models.ListOwned[models.Menu](ctx, h.Store, a, p, nid)
			views := make([]models.MenuView, len(ms))
			for i := range ms {
				views[i] = ms[i].View()
			}
			return views, total, err
		},
		get: func(ctx context.Context, a *models.Actor, id uint) (any, error) {
			m, err := models.GetOwned[models.Menu](ctx, h.Store, a, id, "menu")
			if err != nil {
				return nil, err
			}
			v := m.View()
			return &v, nil
		},
		create: h.Store.CreateMenu,
		update: asAny(h.Store.UpdateMenu),
		del:    noOp(h.Store.DeleteMenu),
	})

	r.Get("/servers/:name/stats.json", func(c *fiber.Ctx) error {
		srv, err := h.Store.FindServer(c.UserContext(), actor(c), c.Params("name"))
		if err != nil {
			return err
		}
		return c.JSON(srv.StatsView())
	})
	r.Get("/servers/:name/samples.json", func(c *fiber.Ctx) error {
		since := time.Now().Add(-models.SampleFull)
		if v := c.Query("since"); v != "" {
			var err error
			if since, err = models.ParseSince("since", v, time.Now()); err != nil {
				return err
			}
		}
		_, samples, err := h.Store.ServerSamples(c.UserContext(), actor(c), c.Params("name"), since)
		if err != nil {
			return err
		}
		return c.JSON(samples)
	})
	r.Post("/servers/:id/key.json", func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		key, err := h.Store.RotateServerKey(c.UserContext(), actor(c), id)
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"id": id, "key": key})
	})
	r.Get("/groups/:id/versions.json", byID(h.Store.ListVersions))
	r.Get("/networks/:id/delegations.json", byID(h.Store.ListDelegations))
	r.Post("/networks/:id/delegations.json", func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		var in models.DelegationInput
		if err := models.DecodeJSON(c.Body(), &in); err != nil {
			return err
		}
		d, err := h.Store.Delegate(c.UserContext(), actor(c), id, &in)
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusCreated).JSON(d)
	})
	r.Delete("/networks/:id/delegations/:user.json", func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		uid, err := strconv.ParseUint(c.Params("user"), 10, 32)
		if err != nil {
			return models.NotFound("delegation")
		}
		if err := h.Store.Undelegate(c.UserContext(), actor(c), id, uint(uid)); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	})
	r.Get("/operations.json", func(c *fiber.Ctx) error {
		p, err := page(c)
		if err != nil {
			return err
		}
		ops, total, err := h.Store.ListOperations(c.UserContext(), actor(c), p)
		if err != nil {
			return err
		}
		views := make([]OperationView, len(ops))
		for i := range ops {
			views[i] = viewOperation(&ops[i])
		}
		return sendList(c, views, total, p)
	})
	r.Get("/operations/:id.json", func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		op, wait, err := h.Store.OperationStatus(c.UserContext(), actor(c), id)
		if err != nil {
			return err
		}
		v := viewOperation(op)
		v.Waiting = wait
		return c.JSON(v)
	})
	r.Get("/account.json", func(c *fiber.Ctx) error { return c.JSON(actor(c).User) })
	r.Post("/account/token.json", func(c *fiber.Ctx) error {
		tok, err := models.IssueToken(c.UserContext(), h.Store.DB, actor(c).ID, "account")
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusCreated).JSON(fiber.Map{"token": tok})
	})
}

// crud is the set of operations of one collection; In is its input body.
type crud[In any] struct {
	list   func(ctx context.Context, a *models.Actor, p models.Page, networkID uint) (any, int64, error)
	get    func(ctx context.Context, a *models.Actor, id uint) (any, error)
	create func(ctx context.Context, a *models.Actor, in *In) (*models.Created, error)
	update func(ctx context.Context, a *models.Actor, id uint, in *In) (any, error)
	del    func(ctx context.Context, a *models.Actor, id uint) (*models.Created, error)
}

// asAny adapts a typed store method to the collection's generic signature.
func asAny[T, A any](f func(context.Context, *models.Actor, uint, A) (T, error)) func(context.Context, *models.Actor, uint, A) (any, error) {
	return func(ctx context.Context, a *models.Actor, id uint, arg A) (any, error) { return f(ctx, a, id, arg) }
}

// getAny adapts a typed store getter to the collection's generic signature.
func getAny[T any](f func(context.Context, *models.Actor, uint) (T, error)) func(context.Context, *models.Actor, uint) (any, error) {
	return func(ctx context.Context, a *models.Actor, id uint) (any, error) { return f(ctx, a, id) }
}

func wrapList[T any](f func(context.Context, *models.Actor, models.Page) ([]T, int64, error)) func(context.Context, *models.Actor, models.Page, uint) (any, int64, error) {
	return func(ctx context.Context, a *models.Actor, p models.Page, networkID uint) (any, int64, error) {
		if networkID != 0 {
			return nil, 0, models.Invalid("network_id", "this collection is not filtered by network")
		}
		return f(ctx, a, p)
	}
}

// owned completes ops of a kind T that belongs to a network (what names it in errors):
// listed, optionally in one network, and read, among the caller's networks.
func owned[T, In any](s *models.Store, what string, ops crud[In]) crud[In] {
	ops.list = func(ctx context.Context, a *models.Actor, p models.Page, networkID uint) (any, int64, error) {
		return models.ListOwned[T](ctx, s, a, p, networkID)
	}
	ops.get = func(ctx context.Context, a *models.Actor, id uint) (any, error) {
		return models.GetOwned[T](ctx, s, a, id, what)
	}
	return ops
}

// byID answers a GET under /:id with what f returns for that id, as JSON.
func byID[T any](f func(context.Context, *models.Actor, uint) (T, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		v, err := f(c.UserContext(), actor(c), id)
		if err != nil {
			return err
		}
		return c.JSON(v)
	}
}

func noOp(f func(context.Context, *models.Actor, uint) error) func(context.Context, *models.Actor, uint) (*models.Created, error) {
	return func(ctx context.Context, a *models.Actor, id uint) (*models.Created, error) {
		return nil, f(ctx, a, id)
	}
}

// resource registers the five routes of a collection.
func resource[In any](r fiber.Router, sp *spec, name string, out any, ops crud[In]) {
	sp.add(name, reflect.TypeOf(new(In)), reflect.TypeOf(out))
	r.Get("/"+name+".json", func(c *fiber.Ctx) error {
		p, err := page(c)
		if err != nil {
			return err
		}
		var nid uint
		if v := c.Query("network_id"); v != "" {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return models.Invalid("network_id", "must be a network id")
			}
			nid = uint(n)
		}
		items, total, err := ops.list(c.UserContext(), actor(c), p, nid)
		if err != nil {
			return err
		}
		return sendList(c, items, total, p)
	})
	r.Post("/"+name+".json", func(c *fiber.Ctx) error {
		in := new(In)
		if err := models.DecodeJSON(c.Body(), in); err != nil {
			return err
		}
		res, err := ops.create(c.UserContext(), actor(c), in)
		if err != nil {
			return err
		}
		return sendCreated(c, name, res, fiber.StatusCreated)
	})
	r.Get("/"+name+"/:id.json", func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		obj, err := ops.get(c.UserContext(), actor(c), id)
		if err != nil {
			return err
		}
		return c.JSON(obj)
	})
	update := func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		// The object's visibility is checked before the body, so another client's object
		// answers 404 whatever is sent.
		if _, err := ops.get(c.UserContext(), actor(c), id); err != nil {
			return err
		}
		in := new(In)
		if err := models.DecodeJSON(c.Body(), in); err != nil {
			return err
		}
		obj, err := ops.update(c.UserContext(), actor(c), id, in)
		if err != nil {
			return err
		}
		if res, ok := obj.(*models.Created); ok {
			return sendCreated(c, name, res, fiber.StatusOK)
		}
		return c.JSON(obj)
	}
	r.Put("/"+name+"/:id.json", update)
	r.Patch("/"+name+"/:id.json", update)
	r.Delete("/"+name+"/:id.json", func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		res, err := ops.del(c.UserContext(), actor(c), id)
		if err != nil {
			return err
		}
		if res != nil && res.Operation != nil {
			return sendCreated(c, name, res, fiber.StatusAccepted)
		}
		return c.SendStatus(fiber.StatusNoContent)
	})
}

func idParam(c *fiber.Ctx) (uint, error) {
	n, err := strconv.ParseUint(c.Params("id"), 10, 32)
	if err != nil || n == 0 {
		return 0, models.NotFound("object")
	}
	return uint(n), nil
}

func page(c *fiber.Ctx) (models.Page, error) {
	var p models.Page
	for _, q := range []struct {
		key string
		dst *int
	}{{"page", &p.Page}, {"per_page", &p.PerPage}} {
		if v := c.Query(q.key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return p, models.Invalid(q.key, "must be a positive whole number")
			}
			*q.dst = n
		}
	}
	p.Q, p.Sort = strings.TrimSpace(c.Query("q")), strings.TrimSpace(c.Query("sort"))
	for _, key := range models.ListFilterKeys {
		if v := c.Query(key); v != "" {
			if p.Filters == nil {
				p.Filters = map[string]string{}
			}
			p.Filters[key] = v
		}
	}
	return p.Normalize(), nil
}

// sendList writes a JSON array with pagination headers (Link, X-Total-Count).
func sendList(c *fiber.Ctx, items any, total int64, p models.Page) error {
	c.Set("X-Total-Count", strconv.FormatInt(total, 10))
	var links []string
	link := func(n int, rel string) {
		q := url.Values{}
		for k, v := range c.Queries() {
			q.Set(k, v)
		}
		q.Set("page", strconv.Itoa(n))
		q.Set("per_page", strconv.Itoa(p.PerPage))
		links = append(links, fmt.Sprintf(`<%s?%s>; rel="%s"`, c.Path(), q.Encode(), rel))
	}
	last := int((total + int64(p.PerPage) - 1) / int64(p.PerPage))
	if last < 1 {
		last = 1
	}
	if p.Page < last {
		link(p.Page+1, "next")
	}
	if p.Page > 1 {
		link(p.Page-1, "prev")
	}
	link(1, "first")
	link(last, "last")
	c.Set(fiber.HeaderLink, strings.Join(links, ", "))
	return c.JSON(items)
}

// OperationView is an operation as the API shows it, with its URL.
type OperationView struct {
	models.Operation
	URL string `json:"url"`
	// Waiting: what a running operation waits for, from Temporal's view (single GET only).
	Waiting *models.OperationWait `json:"waiting,omitempty"`
}

func viewOperation(op *models.Operation) OperationView {
	return OperationView{Operation: *op, URL: fmt.Sprintf("%s/operations/%d.json", Prefix, op.ID)}
}

// sendCreated writes a created or changed object; with long work it is 202 Accepted with
// the operation inline and in Location; a one-time secret (a server's key) is added as "key".
func sendCreated(c *fiber.Ctx, name string, res *models.Created, status int) error {
	b, err := json.Marshal(res.Object)
	if err != nil {
		return err
	}
	body := map[string]any{}
	if err := json.Unmarshal(b, &body); err != nil {
		return err
	}
	if res.Secret != "" {
		body["key"] = res.Secret
	}
	if res.Warning != "" {
		body["warning"] = res.Warning
	}
	if res.Operation != nil {
		v := viewOperation(res.Operation)
		body["operation"] = v
		c.Location(v.URL)
		status = fiber.StatusAccepted
	} else if status == fiber.StatusCreated {
		if id, ok := body["id"]; ok {
			c.Location(fmt.Sprintf("%s/%s/%v.json", Prefix, name, id))
		}
	}
	return c.Status(status).JSON(body)
}
