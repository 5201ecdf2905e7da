package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workers/panel"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/gofiber/fiber/v2"
)

// openAPIPanel is a panel as `clusterducks panel` mounts it (the agents' endpoints too),
// with its OpenAPI document loaded and validated by kin-openapi.
func openAPIPanel(t *testing.T) (*panelT, *openapi3.T) {
	t.Helper()
	p := startPanel(t, "sqlite", func(app *fiber.App, store *models.Store) {
		panel.NewAgents(store, temporalclient.Config{}).Mount(app, store)
	})
	resp, err := http.Get(p.URL + "/api/v0.9.2/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	return p, doc
}

// operations lists the document's "<METHOD> <path under the prefix>", sorted.
func operations(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+strings.TrimPrefix(path, api.Prefix))
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIDocumentsEveryRoute: every route of the panel under the API's prefix is in
// the document with a summary, and README's endpoint table lists each one.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	p, doc := openAPIPanel(t)
	_ = p
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(readme), "\n")
	for _, o := range operations(doc) {
		method, path, _ := strings.Cut(o, " ")
		op := doc.Paths.Find(api.Prefix + path).GetOperation(method)
		if op.Summary == "" || op.Summary == "undocumented" {
			t.Errorf("%s has no description in api/openapi.go's routeDocs", o)
		}
		listed := false
		for _, l := range lines {
			if strings.HasPrefix(l, "|") && strings.Contains(l, "`"+path+"`") && strings.Contains(l, method) {
				listed = true
				break
			}
		}
		if !listed {
			t.Errorf("README's endpoint table lacks %s (a row with `%s` and %s)", o, path, method)
		}
	}
	if publish := doc.Paths.Find(api.Prefix + "/groups/{id}/publish.json").Post; publish.Responses.Status(202) == nil || publish.RequestBody == nil {
		t.Errorf("publish is documented without its 202 or its body")
	}
}

// TestOpenAPIValidatesLiveAnswers: the answers a panel gives through a walk over the API
// (creates, long work, actions, tokens, the agents' endpoints and the errors) all match
// the document, statuses included.
func TestOpenAPIValidatesLiveAnswers(t *testing.T) {
	p, doc := openAPIPanel(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	p.check = func(req *http.Request, status int, header http.Header, body []byte) {
		t.Helper()
		var route *routers.Route
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s %s is not in the document: %v", req.Method, req.URL.Path, err)
			return
		}
		seen[req.Method+" "+strings.TrimPrefix(route.Path, api.Prefix)] = true
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header,
			Body: io.NopCloser(bytes.NewReader(body)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("%s %s answered %d, not as documented: %v\n%s", req.Method, req.URL.Path, status, err, body)
		}
	}
	a := p.Admin
	u := func(f string, args ...any) string { return "/api/v0.9.2" + fmt.Sprintf(f, args...) }

	client := id(p.must(201, a, "POST", u("/clients.json"), map[string]any{"Name": "C"}))
	p.must(200, a, "GET", u("/clients.json"), nil)
	p.must(200, a, "PATCH", u("/clients/%d.json", client), map[string]any{"name": "C2"})
	n := id(p.must(201, a, "POST", u("/networks.json"), map[string]any{"Name": "N", "Client": client}))
	tun := p.must(201, a, "POST", u("/tunnels.json"), map[string]any{"Alias": "T", "network": n, "IP": "4.2.2.1"})
	srvAns := p.must(201, a, "POST", u("/servers.json"), map[string]any{"Name": "m", "network": n, "IP": "10.0.0.2", "Pool": "tank"})
	srv := id(p.reported(srvAns))
	p.must(200, a, "GET", u("/servers/m/stats.json"), nil)
	key, _ := p.must(200, a, "POST", u("/servers/%d/key.json", srv), nil)["key"].(string)
	p.must(200, a, "GET", u("/servers/%d.json", srv), nil)
	p.must(200, a, "GET", u("/tunnels/%d.json", id(tun)), nil)
	vol := p.ready(p.must(202, a, "POST", u("/volumes.json"), map[string]any{"network": n, "Alias": "v", "vol_size": "1"}), &models.Volume{})
	grp := p.ready(p.must(202, a, "POST", u("/groups.json"), map[string]any{"network": n, "Name": "g", "VolumeID": vol}), &models.Group{})
	p.must(200, a, "GET", u("/volumes.json?network_id=%d", n), nil)
	p.must(200, a, "GET", u("/groups/%d.json", grp), nil)
	p.must(202, a, "POST", u("/groups/%d/publish.json", grp), map[string]any{"note": "first"})
	p.must(200, a, "GET", u("/groups/%d/versions.json", grp), nil)
	p.must(200, a, "GET", u("/groups/%d/compliance.json", grp), nil)
	p.must(200, a, "POST", u("/groups/%d/assign.json", grp), map[string]any{"version": 0})
	dev := id(p.must(201, a, "POST", u("/devices.json"), map[string]any{"network": n, "mac": "52:54:00:00:0a:01", "uuid": "4C4C4544-0042-3510-8052-B4C04F4E3332"}))
	p.must(200, a, "GET", u("/devices.json"), nil)
	p.must(200, a, "GET", u("/devices/%d/boots.json", dev), nil)
	p.must(200, a, "POST", u("/volumes/%d/maintenance.json", vol), map[string]any{"device_id": dev})
	p.must(202, a, "DELETE", u("/volumes/%d/maintenance.json", vol), nil)
	p.must(201, a, "POST", u("/menus.json"), map[string]any{"network": n, "name": "M", "items": []any{map[string]any{"type": "local", "label": "disk"}}})
	p.must(200, a, "GET", u("/menus.json"), nil)
	p.must(200, a, "GET", u("/operations.json"), nil)
	p.must(200, a, "GET", u("/operations/1.json"), nil)
	p.must(200, a, "GET", u("/alerts.json"), nil)
	p.must(200, a, "GET", u("/audit.json?object=device"), nil)
	p.must(422, a, "GET", u("/audit.json?since=never"), nil)
	p.must(200, a, "GET", u("/account.json"), nil)
	tok := id(p.must(201, a, "POST", u("/account/tokens.json"), map[string]any{"name": "ci"}))
	p.must(200, a, "GET", u("/account/tokens.json"), nil)
	p.must(204, a, "DELETE", u("/account/tokens/%d.json", tok), nil)
	p.must(200, a, "GET", u("/networks/%d/delegations.json", n), nil)
	p.must(200, a, "GET", u("/servers/m/erator.json"), nil)
	p.must(200, a, "POST", u("/devices/bulk.json"), map[string]any{"action": "lock", "devices": []any{dev, "52:54:00:00:0a:01"}})
	p.must(422, a, "POST", u("/devices/bulk.json"), map[string]any{"action": "explode", "devices": []any{dev}})
	p.must(202, a, "DELETE", u("/groups/%d.json", grp), nil)
	// The agent's side, with the server key.
	agent := "Bearer " + key
	p.must(204, agent, "POST", u("/agent/stats.json"), map[string]any{"pool_health": "ONLINE", "pool_size": 100 << 30, "pool_free": 90 << 30})
	// A newer agent adds what it served (kept as samples for the server's charts).
	p.must(204, agent, "POST", u("/agent/stats.json"), map[string]any{"pool_health": "ONLINE", "pool_size": 100 << 30, "pool_free": 80 << 30,
		"iscsi_sessions": 2, "boot_requests": 7, "replication_bytes": 1 << 20})
	if bad := p.must(422, agent, "POST", u("/agent/stats.json"), map[string]any{"pool_health": "ONLINE", "boot_requests": -1}); bad["field"] != "boot_requests" {
		t.Errorf("a negative counter: %v, want 422 naming boot_requests", bad)
	}
	p.must(200, a, "GET", u("/servers/m/samples.json"), nil)
	p.must(200, a, "GET", u("/servers/%d/samples.json?since=168h", srv), nil)
	p.must(422, a, "GET", u("/servers/m/samples.json?since=never"), nil)
	p.must(200, agent, "GET", u("/agent/server.json"), nil)
	p.must(200, agent, "GET", u("/agent/exports.json"), nil)
	// Errors: each with its documented status and body.
	p.must(401, "", "GET", u("/clients.json"), nil)
	p.must(404, a, "GET", u("/volumes/99999.json"), nil)
	p.must(422, a, "POST", u("/devices.json"), map[string]any{"network": n, "mac": "52:54:00:00:0a:02", "colour": "red"})
	p.must(409, a, "POST", u("/servers.json"), map[string]any{"Name": "m", "network": n, "IP": "10.0.0.3", "Pool": "tank"})
	p.must(400, a, "POST", u("/clients.json"), "{not json")
	if len(seen) < 35 {
		t.Errorf("the walk reached %d documented operations; it should reach most of them", len(seen))
	}
}

// TestDeviceUUIDPreRegistration: POST devices.json may set the machine's SMBIOS UUID (its
// installer's initiator name admits it to a maintenance target before its first boot);
// a malformed one is 422 naming uuid with nothing written; a set UUID never changes.
func TestDeviceUUIDPreRegistration(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		a := p.Admin
		n, _ := p.networkWithMaster()
		code, v, _ := p.do(a, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": n, "mac": "52:54:00:00:0b:01", "uuid": "not-a-uuid"})
		if m, _ := v.(map[string]any); code != 422 || m["field"] != "uuid" {
			t.Fatalf("malformed UUID: %d %v, want 422 naming uuid", code, v)
		}
		var count int64
		p.DB.Model(&models.Device{}).Count(&count)
		if count != 0 {
			t.Fatalf("a refused device was written (%d rows)", count)
		}
		d := p.must(201, a, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": n, "mac": "52:54:00:00:0b:01", "UUID": " 4C4C4544-0042-3510-8052-B4C04F4E3332 "})
		if d["uuid"] != "4c4c4544-0042-3510-8052-b4c04f4e3332" {
			t.Errorf("pre-registered UUID: %v", d["uuid"])
		}
		path := fmt.Sprintf("/api/v0.9.2/devices/%d.json", id(d))
		p.must(200, a, "PATCH", path, map[string]any{"uuid": "4c4c4544-0042-3510-8052-b4c04f4e3332"}) // the same: no change
		if code, v, _ := p.do(a, "PATCH", path, map[string]any{"uuid": "00000000-0000-0000-0000-000000000001"}); code != 422 {
			t.Errorf("changing a set UUID: %d %v, want 422", code, v)
		}
		late := p.must(201, a, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": n, "mac": "52:54:00:00:0b:02"})
		got := p.must(200, a, "PATCH", fmt.Sprintf("/api/v0.9.2/devices/%d.json", id(late)), map[string]any{"uuid": "00000000-0000-0000-0000-000000000002"})
		if got["uuid"] != "00000000-0000-0000-0000-000000000002" {
			t.Errorf("a device without a UUID takes one: %v", got)
		}
	})
}
