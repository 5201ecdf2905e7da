package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// AgentCaller reaches a server's agent through its network's tunnel (agentclient.Client).
type AgentCaller interface {
	Get(ctx context.Context, t *models.Tunnel, port int, path string, out any) error
	Stream(ctx context.Context, t *models.Tunnel, port int, method, path string, body io.Reader, size int64, out any) error
}

// rootFSSuffix ends the upload route; the body limit spares it (its body is streamed).
const rootFSSuffix = "/rootfs"

// containerRoutes are the ctemplates' uploads and the containers' actions and status:
//
//	PUT|POST /ctemplates/<id>/rootfs?sha256=<hex>  body: a root file system tarball (tar or tar.gz)
//	         -> 200, the ctemplate with its new version (streamed to the master's agent)
//	POST /containers/<id>/{start,stop,restart,kill}.json -> 202 with its operation
//	POST /containers/<id>/rebase.json {"ctemplate_version": N (0: newest)} -> 202: a new
//	     clone of that version replaces the container's, the old one into the erator
//	GET  /containers/<id>/status.json?lines=N -> its unit's state and last journal lines
func (h *Handler) containerRoutes(r fiber.Router) {
	upload := func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		a := actor(c)
		// Visibility first (another client's ctemplate is 404 whatever is sent), then the
		// request, then the way to the agent.
		if _, err := models.GetOwned[models.CTemplate](c.UserContext(), h.Store, a, id, "ctemplate"); err != nil {
			return err
		}
		sum, err := models.CheckSHA256(c.Query("sha256", c.Get("X-Content-SHA256")))
		if err != nil {
			return err
		}
		size := int64(c.Request().Header.ContentLength())
		switch {
		case size == 0:
			return models.Invalid("rootfs", "the request's body is the root file system tarball: it is empty")
		case size > models.MaxCTemplateBytes:
			return models.Invalid("rootfs", "the tarball is larger than %d bytes", models.MaxCTemplateBytes)
		case size < 0:
			size = -1 // chunked: the agent enforces the limit as it reads
		}
		up, err := h.Store.BeginCTemplateUpload(c.UserContext(), a, id)
		if err != nil {
			return err
		}
		if h.Agents == nil {
			return models.Conflict("", "this panel reaches no agents")
		}
		var body io.Reader = c.Context().RequestBodyStream()
		if body == nil {
			body = bytes.NewReader(c.Body())
		}
		q := url.Values{"id": {strconv.FormatUint(uint64(id), 10)}, "version": {strconv.Itoa(up.Version)},
			"sha256": {sum}, "limit": {strconv.FormatInt(models.MaxCTemplateBytes, 10)}}
		var res wire.RootFSResult
		err = h.Agents.Stream(c.UserContext(), &up.Tunnel, up.Server.TunnelPort, http.MethodPut, wire.AgentPathCTemplateRootFS+"?"+q.Encode(), body, size, &res)
		if err != nil {
			return agentFailure(err, up.Server.Name)
		}
		if err := h.Store.FinishCTemplateUpload(c.UserContext(), a, id, up.Version, res.SHA256); err != nil {
			return err
		}
		t, err := models.GetOwned[models.CTemplate](c.UserContext(), h.Store, a, id, "ctemplate")
		if err != nil {
			return err
		}
		return c.JSON(t)
	}
	r.Put("/ctemplates/:id"+rootFSSuffix, upload)
	r.Post("/ctemplates/:id"+rootFSSuffix, upload)

	for _, action := range models.ContainerActions {
		r.Post("/containers/:id/"+action+".json", func(c *fiber.Ctx) error {
			id, err := idParam(c)
			if err != nil {
				return err
			}
			res, err := h.Store.ContainerAction(c.UserContext(), actor(c), id, action)
			if err != nil {
				return err
			}
			return sendCreated(c, "containers", res, fiber.StatusAccepted)
		})
	}
	r.Post("/containers/:id/rebase.json", func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		var in models.ContainerRebaseInput
		if len(c.Body()) > 0 {
			if err := models.DecodeJSON(c.Body(), &in); err != nil {
				return err
			}
		}
		res, err := h.Store.RebaseContainer(c.UserContext(), actor(c), id, &in)
		if err != nil {
			return err
		}
		return sendCreated(c, "containers", res, fiber.StatusAccepted)
	})
	r.Get("/containers/:id/status.json", func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		lines := c.QueryInt("lines", 20)
		if lines < 0 || lines > 1000 {
			return models.Invalid("lines", "must be between 0 and 1000")
		}
		p, err := h.Store.PlaceContainer(c.UserContext(), actor(c), id)
		if err != nil {
			return err
		}
		if h.Agents == nil {
			return models.Conflict("", "this panel reaches no agents")
		}
		var st wire.ContainerStatus
		q := url.Values{"id": {strconv.FormatUint(uint64(id), 10)}, "lines": {strconv.Itoa(lines)}}
		if err := h.Agents.Get(c.UserContext(), &p.Tunnel, p.Server.TunnelPort, wire.AgentPathContainerStatus+"?"+q.Encode(), &st); err != nil {
			return agentFailure(err, p.Server.Name)
		}
		return c.JSON(st)
	})
}

// agentFailure maps an agent's refusal to the client's error (naming the field the agent
// blamed) and anything else to 503: the server is out of reach.
func agentFailure(err error, server string) error {
	var ae *wire.AgentError
	if errors.As(err, &ae) {
		switch {
		case ae.Status == http.StatusConflict:
			return models.Conflict(ae.Body.Field, "server %q: %s", server, ae.Body.Error)
		case ae.Status >= 400 && ae.Status < 500 && ae.Body.Field != "":
			return models.Invalid(ae.Body.Field, "refused by server %q: %s", server, ae.Body.Error)
		}
	}
	return models.Unavailable("", err, "server %q did not answer through its tunnel; check its stats", server)
}
