package api

import (
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// spec collects the collections as they are registered, so the OpenAPI document served at
// /api/v0.9.2/openapi.json is generated from the same types the handlers use.
type spec struct {
	collections []specCollection
}

type specCollection struct {
	name string
	in   reflect.Type
	out  reflect.Type
}

func (s *spec) add(name string, in, out reflect.Type) {
	s.collections = append(s.collections, specCollection{name: name, in: in, out: out})
}

// created is the body sendCreated writes: the object, with "operation" when long work
// runs, "key" (a one-time secret) and "warning" when there are any.
type created struct{ of any }

// routeDoc documents one route that is not a collection's CRUD: what it does, its body
// and every success status with its answer's Go type (nil: no body).
type routeDoc struct {
	summary string
	in      any
	ok      map[string]any
}

// tokenCreated is the answer to a token create: the secret is in it, once.
type tokenCreated struct {
	ID        uint      `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Token     string    `json:"token"`
}

// keyIssued is the answer to a server key rotation.
type keyIssued struct {
	ID  uint   `json:"id"`
	Key string `json:"key"`
}

// routeDocs, keyed "<METHOD> <path under Prefix, OpenAPI form>", describe every route
// that is not a collection's CRUD; TestOpenAPIDocumentsEveryRoute (test/api) fails when a
// route of the panel is missing here.
var routeDocs = map[string]routeDoc{
	"GET /openapi.json":                             {"This document", nil, map[string]any{"200": map[string]any{}}},
	"GET /servers/{name}/stats.json":                {"A server's last reported stats, by name or id", nil, map[string]any{"200": models.ServerStats{}}},
	"GET /servers/{name}/samples.json":              {"A server's samples over time (pool used and size, iSCSI sessions, the agent's boot requests and replication bytes since it started), oldest first; since: a time, a date or a duration back (default 24h); kept 7 days, thinned to one per 10 minutes after a day", nil, map[string]any{"200": []models.ServerSample{}}},
	"POST /servers/{id}/key.json":                   {"Issue a new server key (install.sh -k); the old one stops working", nil, map[string]any{"200": keyIssued{}}},
	"GET /groups/{id}/versions.json":                {"A group's versions", nil, map[string]any{"200": []models.GroupVersion{}}},
	"GET /networks/{id}/delegations.json":           {"The users a network is delegated to", nil, map[string]any{"200": []models.Delegation{}}},
	"POST /networks/{id}/delegations.json":          {"Delegate a network to a user (a pilot)", models.DelegationInput{}, map[string]any{"201": models.Delegation{}}},
	"DELETE /networks/{id}/delegations/{user}.json": {"End a delegation", nil, map[string]any{"204": nil}},
	"GET /operations.json":                          {"Operations, newest first", nil, map[string]any{"200": []OperationView{}}},
	"GET /operations/{id}.json":                     {"An operation; a running one says what it waits for", nil, map[string]any{"200": OperationView{}}},
	"POST /operations/{id}/cancel.json":             {"Cancel a running operation: its undo runs, then it ends cancelled", nil, map[string]any{"202": OperationView{}}},
	"POST /operations/{id}/retry.json":              {"Run a failed or cancelled operation's work again, as a new operation", nil, map[string]any{"202": OperationView{}}},
	"GET /account.json":                             {"The caller", nil, map[string]any{"200": models.User{}}},
	"POST /account/token.json": {"Issue an API token named \"account\" (shown once)", nil, map[string]any{"201": struct {
		Token string `json:"token"`
	}{}}},
	"GET /account/tokens.json":               {"The caller's named API tokens, with their last use (never their secret)", nil, map[string]any{"200": []TokenView{}}},
	"POST /account/tokens.json":              {"Create a named API token; its secret is in the answer, once", models.TokenInput{}, map[string]any{"201": tokenCreated{}}},
	"DELETE /account/tokens/{id}.json":       {"Revoke a token", nil, map[string]any{"204": nil}},
	"GET /devices/{id}/boots.json":           {"A device's latest boots, newest first: when, from which server, which version, what it was told (outcome) and whether it came up (result: up, failed, unknown; \"\" while its agent watches it; up_ms: boot script to up)", nil, map[string]any{"200": []models.BootHistory{}}},
	"GET /versions/{id}/boots.json":          {"How devices came up on a group version, over each device's latest boot of it at or after since (a time, a date or a duration back; default: ever): counts by result, success rate (up over decided), p50/p95 time to up", nil, map[string]any{"200": models.VersionBoots{}}},
	"GET /audit.json":                        {"The audit log, newest first: who changed what (filters: network_id, user_id, object, object_id, action, since, until)", nil, map[string]any{"200": []models.AuditEntry{}}},
	"GET /alerts.json":                       {"What keeps each network from being operational, with the page that fixes it", nil, map[string]any{"200": []models.Alert{}}},
	"PUT /ctemplates/{id}/rootfs":            {"Upload a ctemplate's next version: the body is a root file system tarball (tar or tar.gz, at most 8 GiB), streamed to the master's agent, which checks its SHA-256 (query sha256) before it takes the version's snapshot; a mismatch is 422 naming sha256 and leaves nothing", nil, map[string]any{"200": models.CTemplate{}}},
	"POST /ctemplates/{id}/rootfs":           {"The same as PUT /ctemplates/{id}/rootfs", nil, map[string]any{"200": models.CTemplate{}}},
	"POST /containers/{id}/start.json":       {"Start a container's machine", nil, map[string]any{"202": created{models.Container{}}}},
	"POST /containers/{id}/stop.json":        {"Stop a container's machine", nil, map[string]any{"202": created{models.Container{}}}},
	"POST /containers/{id}/restart.json":     {"Restart a container's machine", nil, map[string]any{"202": created{models.Container{}}}},
	"POST /containers/{id}/kill.json":        {"Kill every process of a container's machine (SIGKILL)", nil, map[string]any{"202": created{models.Container{}}}},
	"POST /containers/{id}/rebase.json":      {"Move a container onto a newer version of its ctemplate (ctemplate_version; 0 or absent: the newest): a new clone of that version with the same unit and limits replaces its clone, which goes into the erator; the container is started", models.ContainerRebaseInput{}, map[string]any{"202": created{models.Container{}}}},
	"GET /containers/{id}/status.json":       {"A container's systemd unit as its server reports it (state, since, memory, CPU, tasks, limits) with the last lines of its journal (lines, default 20)", nil, map[string]any{"200": wire.ContainerStatus{}}},
	"POST /servers/{id}/promote.json":        {"Make a slave its network's master (the master becomes a slave); 409 naming what it lacks", nil, map[string]any{"202": created{models.Server{}}}},
	"POST /groups/{id}/publish.json":         {"Publish the group's next version (a snapshot on the master, replicated to the slaves); with rollout, to canary devices first (named, or a percentage), then to the whole group once they came up within the thresholds, else rolled back", models.PublishInput{}, map[string]any{"202": created{models.PublishedVersion{}}}},
	"GET /rollouts.json":                     {"Rollouts of group versions in waves, newest first", nil, map[string]any{"200": []models.Rollout{}}},
	"GET /rollouts/{id}.json":                {"A rollout: its canaries, thresholds, state and report (measured figures, or why it rolled back with the failing canaries' boots)", nil, map[string]any{"200": models.Rollout{}}},
	"POST /rollouts/{id}/pause.json":         {"Pause a rollout's canary wave (the bound on its wait stops too)", nil, map[string]any{"202": models.Rollout{}}},
	"POST /rollouts/{id}/resume.json":        {"Resume a paused rollout", nil, map[string]any{"202": models.Rollout{}}},
	"POST /rollouts/{id}/abort.json":         {"Abort a rollout: the group assigns the previous version again, reprovisioned canaries get their previous disks back", nil, map[string]any{"202": models.Rollout{}}},
	"POST /volumes/{id}/restore.json":        {"Bring a deleted volume back from the erator", nil, map[string]any{"202": created{models.Volume{}}}},
	"POST /groups/{id}/restore.json":         {"Bring a deleted group back from the erator", nil, map[string]any{"202": created{models.Group{}}}},
	"GET /servers/{name}/erator.json":        {"A server's erator (trash), as its agent last reported it", nil, map[string]any{"200": []models.EratorItem{}}},
	"POST /servers/{name}/erator/purge.json": {"Destroy what the erator has held longer than older_than (admins only)", models.PurgeInput{}, map[string]any{"202": created{models.Server{}}}},
	"POST /groups/{id}/maintenance.json":     {"Start a group's maintenance: that device boots the group head read-write", models.MaintenanceInput{}, map[string]any{"200": created{models.Group{}}}},
	"DELETE /groups/{id}/maintenance.json":   {"End a group's maintenance (202 with the operation removing its target)", nil, map[string]any{"200": created{models.Group{}}, "202": created{models.Group{}}}},
	"POST /volumes/{id}/maintenance.json":    {"Start a volume's maintenance: that device boots it read-write to install the first OS", models.MaintenanceInput{}, map[string]any{"200": created{models.Volume{}}}},
	"DELETE /volumes/{id}/maintenance.json":  {"End a volume's maintenance (202 with the operation removing its target)", nil, map[string]any{"200": created{models.Volume{}}, "202": created{models.Volume{}}}},
	"POST /groups/{id}/assign.json":          {"Pin the group to version v<N> (0: follow the newest)", models.AssignInput{}, map[string]any{"200": models.Group{}}},
	"GET /groups/{id}/compliance.json":       {"Per version, the servers holding it and those receiving it; per device, assigned, clone and booted version", nil, map[string]any{"200": models.ComplianceView{}}},
	"POST /devices/bulk.json": {"Lock, unlock, move (group_id), restore or delete several devices (by id, name or MAC) as one change: any device not visible or refused changes nothing; 202 when operations run", models.DeviceBulkInput{},
		map[string]any{"200": BulkView{}, "202": BulkView{}}},
	"POST /devices/{id}/restore.json": {"Put a device's replaced disk back from its server's erator (default its newest entry)", models.DeviceRestoreInput{}, map[string]any{"202": created{models.Device{}}}},
	// The agents' endpoints (server key as Bearer), the same contract as activities/storage/wire.
	"POST /agent/register.json":    {"Agent: register with the server key and a CSR; answers the server's id, Temporal and the certificate", wire.RegisterRequest{}, map[string]any{"200": wire.RegisterResponse{}}},
	"POST /agent/certificate.json": {"Agent: renew its certificate", wire.CertificateRequest{}, map[string]any{"200": wire.CertificateResponse{}}},
	"POST /agent/stats.json":       {"Agent: report its pool's health and capacity", wire.StatsReport{}, map[string]any{"204": nil}},
	"POST /agent/boot.json":        {"Agent: what a device (by MAC) boots; registers an unknown MAC", wire.Query{}, map[string]any{"200": wire.Info{}}},
	"POST /agent/booted.json":      {"Agent: the boots it served", []wire.Report{}, map[string]any{"204": nil}},
	"GET /agent/exports.json":      {"Agent: the iSCSI targets its server should export", nil, map[string]any{"200": []wire.Export{}}},
	"POST /agent/clone.json":       {"Agent: a device's new clone", wire.ProvisionRequest{}, map[string]any{"204": nil}},
	"GET /agent/server.json":       {"Agent: its own server (iSCSI IP)", nil, map[string]any{"200": wire.ServerInfo{}}},
	"GET /agent/bootview.json":     {"Agent: its network's boot state changed since a revision (long poll: since, net, wait)", nil, map[string]any{"200": wire.BootDelta{}}},
	"POST /tunnel/register.json":   {"Tunnel: register with the tunnel key", wire.TunnelRegisterRequest{}, map[string]any{"200": wire.TunnelRegisterResponse{}}},
}

// asyncCollections answer a create with 202 and the operation; changing keeps to the
// collections whose update or delete may start long work (resize, lock, the erator).
var (
	asyncCollections    = map[string]bool{"volumes": true, "groups": true, "vdisks": true, "containers": true}
	changingCollections = map[string]bool{"volumes": true, "groups": true, "devices": true, "vdisks": true, "containers": true, "ctemplates": true}
)

// schema describes a Go type as a JSON schema: inputs by their `field` tags (canonical
// name, aliases in the description), outputs by their `json` tags. Outputs that Go may
// write as null (pointers, slices, maps, any) are nullable.
func schema(t reflect.Type, input bool) map[string]any {
	nullable := false
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
		nullable = !input
	}
	s := baseSchema(t, input)
	if nullable || !input && (t.Kind() == reflect.Slice || t.Kind() == reflect.Map) {
		s["nullable"] = true
	}
	return s
}

func baseSchema(t reflect.Type, input bool) map[string]any {
	switch {
	case t == reflect.TypeOf(time.Time{}):
		return map[string]any{"type": "string", "format": "date-time"}
	case t == reflect.TypeOf(json.RawMessage{}):
		return map[string]any{"type": "object"}
	case t == reflect.TypeOf(models.DeviceRef("")):
		return map[string]any{"anyOf": []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}},
			"description": "a device's id, name or MAC"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if input {
			// The guide sends numbers as strings ("vol_size": "42"); both decode.
			return map[string]any{"anyOf": []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}}}
		}
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "format": "byte"}
		}
		return map[string]any{"type": "array", "items": schema(t.Elem(), input)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schema(t.Elem(), input)}
	case reflect.Interface:
		return map[string]any{"nullable": true}
	case reflect.Struct:
		props := map[string]any{}
		addStruct(props, t, input)
		return map[string]any{"type": "object", "properties": props}
	}
	return map[string]any{}
}

func addStruct(props map[string]any, t reflect.Type, input bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if input {
			names := strings.Split(f.Tag.Get("field"), ",")
			if names[0] == "" && f.Tag.Get("field") == "" {
				// A body type of the wire contract: its json tags are its names.
				names = strings.Split(f.Tag.Get("json"), ",")[:1]
			}
			if names[0] == "" || names[0] == "-" {
				continue
			}
			s := schema(f.Type, true)
			if len(names) > 1 {
				s["description"] = "also accepted as " + strings.Join(names[1:], ", ") + " (keys match case-insensitively, underscores ignored)"
			}
			props[names[0]] = s
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			addStruct(props, f.Type, false)
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		props[name] = schema(f.Type, false)
	}
}

// answerSchema is the schema of an answer's Go value: a created wrapper adds what
// sendCreated adds to the object.
func answerSchema(v any) map[string]any {
	c, ok := v.(created)
	if !ok {
		return schema(reflect.TypeOf(v), false)
	}
	s := schema(reflect.TypeOf(c.of), false)
	props, _ := s["properties"].(map[string]any)
	if props == nil {
		return s
	}
	op := schema(reflect.TypeOf(OperationView{}), false)
	op["description"] = "the long work this started; Location names it too"
	props["operation"] = op
	props["key"] = map[string]any{"type": "string", "description": "a one-time secret (a server's key): shown once"}
	props["warning"] = map[string]any{"type": "string", "description": "the change is accepted but queued (e.g. a lock behind a provisioning)"}
	return s
}

var statusText = map[string]string{"200": "OK", "201": "created; Location names it", "202": "accepted: long work runs as the operation in the body (Location names it)", "204": "done, no body"}

// document builds the OpenAPI 3 document: the collections with their schemas, and every
// other route of the app under Prefix (actions, agent and boot endpoints) from routeDocs.
func (s *spec) document(routes []fiber.Route) []byte {
	errResp := map[string]any{"description": "error: the message and, when one is to blame, the field", "content": map[string]any{"application/json": map[string]any{"schema": schema(reflect.TypeOf(ErrorBody{}), false)}}}
	errs := map[string]string{
		"400": "malformed request", "401": "missing or invalid credentials", "403": "not allowed on a visible object",
		"404": "absent, or not visible to the caller", "409": "conflicts with the state (a limit, a duplicate, no master, an agent that never reported)",
		"422": "an invalid value or an unknown field (named in field)", "429": "too many attempts (Retry-After)", "503": "the workflow engine cannot take the work now",
	}
	responses := func(ok map[string]any) map[string]any {
		m := map[string]any{}
		for code, desc := range errs {
			r := maps.Clone(errResp)
			r["description"] = desc
			m[code] = r
		}
		for code, v := range ok {
			r := map[string]any{"description": statusText[code]}
			if v != nil {
				r["content"] = map[string]any{"application/json": map[string]any{"schema": answerSchema(v)}}
			}
			m[code] = r
		}
		return m
	}
	jsonBody := func(s map[string]any) map[string]any {
		return map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": s}}}
	}
	idParam := []any{map[string]any{"name": "id", "in": "path", "required": true, "schema": map[string]any{"type": "integer"}}}
	paths := map[string]any{}
	for _, c := range s.collections {
		in, out := schema(c.in, true), reflect.New(c.out).Elem().Interface()
		createOK := map[string]any{"201": created{out}}
		if asyncCollections[c.name] {
			createOK = map[string]any{"202": created{out}}
		}
		changeOK, deleteOK := map[string]any{"200": created{out}}, map[string]any{"204": nil}
		if changingCollections[c.name] {
			changeOK["202"] = created{out}
			deleteOK["202"] = created{out}
		}
		list := reflect.New(reflect.SliceOf(c.out)).Elem().Interface()
		paths[Prefix+"/"+c.name+".json"] = map[string]any{
			"get": map[string]any{"summary": "List " + c.name, "parameters": append([]any{
				map[string]any{"name": "page", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 1}},
				map[string]any{"name": "per_page", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 1, "maximum": 500}},
				map[string]any{"name": "network_id", "in": "query", "schema": map[string]any{"type": "integer"}},
				map[string]any{"name": "q", "in": "query", "description": "text search (case-insensitive substring of the names, addresses…)", "schema": map[string]any{"type": "string"}},
				map[string]any{"name": "sort", "in": "query", "description": "a column to sort by (e.g. name, network, state), -column descending; an unknown one is 422", "schema": map[string]any{"type": "string"}},
			}, listFilters(nil, c.name)...), "responses": responses(map[string]any{"200": list})},
			"post": map[string]any{"summary": "Create one of " + c.name, "requestBody": jsonBody(in), "responses": responses(createOK)},
		}
		paths[Prefix+"/"+c.name+"/{id}.json"] = map[string]any{
			"get":    map[string]any{"summary": "One of " + c.name, "parameters": idParam, "responses": responses(map[string]any{"200": out})},
			"put":    map[string]any{"summary": "Change one of " + c.name + " (the fields sent)", "parameters": idParam, "requestBody": jsonBody(in), "responses": responses(changeOK)},
			"patch":  map[string]any{"summary": "Change one of " + c.name + " (the fields sent)", "parameters": idParam, "requestBody": jsonBody(in), "responses": responses(changeOK)},
			"delete": map[string]any{"summary": "Delete one of " + c.name, "parameters": idParam, "responses": responses(deleteOK)},
		}
	}
	for _, rt := range routes {
		if !strings.HasPrefix(rt.Path, Prefix+"/") || strings.Contains(rt.Path, "*") || rt.Method == fiber.MethodHead {
			continue
		}
		path := rt.Path
		var params []any
		for _, p := range rt.Params {
			path = strings.Replace(path, ":"+p, "{"+p+"}", 1)
			t := "string"
			if p == "id" || p == "user" {
				t = "integer"
			}
			params = append(params, map[string]any{"name": p, "in": "path", "required": true, "schema": map[string]any{"type": t}})
		}
		item, _ := paths[path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[path] = item
		}
		method := strings.ToLower(rt.Method)
		if _, ok := item[method]; ok {
			continue
		}
		d, ok := routeDocs[rt.Method+" "+strings.TrimPrefix(path, Prefix)]
		if !ok {
			// A route added without its description: listed, so it is not hidden, and
			// flagged so the test that reads this document names it.
			d = routeDoc{summary: "undocumented", ok: map[string]any{"200": map[string]any{}}}
		}
		op := map[string]any{"summary": d.summary, "responses": responses(d.ok)}
		if d.in != nil {
			body := jsonBody(schema(reflect.TypeOf(d.in), true))
			if optionalBody[rt.Method+" "+strings.TrimPrefix(path, Prefix)] {
				body["required"] = false
			}
			op["requestBody"] = body
		}
		params = append(params, queryParams[rt.Method+" "+strings.TrimPrefix(path, Prefix)]...)
		if len(params) > 0 {
			op["parameters"] = params
		}
		if strings.Contains(path, "/agent/") || strings.Contains(path, "/tunnel/") {
			op["security"] = []any{map[string]any{"key": []any{}}}
		}
		if path == Prefix+"/openapi.json" {
			op["security"] = []any{}
		}
		item[method] = op
	}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "clusterducks", "version": "0.9.2",
			"description": "The panel's REST API. Request keys match case-insensitively with underscores ignored (the guide's spellings work); answers use lower snake_case."},
		"components": map[string]any{"securitySchemes": map[string]any{
			"token": map[string]any{"type": "apiKey", "in": "header", "name": "Authorization", "description": `Token token="<your API token>" (or Bearer <token>); the dashboard's session cookie with X-CSRF-Token works too`},
			"key":   map[string]any{"type": "http", "scheme": "bearer", "description": "an agent's server key or a tunnel's tunnel key"},
		}},
		"security": []any{map[string]any{"token": []any{}}},
		"paths":    paths,
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return b
}

// queryParams are the query parameters of the routes that take some (beyond pagination).
var queryParams = map[string][]any{
	"GET /servers/{name}/samples.json": {map[string]any{"name": "since", "in": "query",
		"description": "samples taken at or after: a time (2026-11-30T12:00:00Z), a date (2026-11-30) or a duration back from now (1h, 24h, 168h); default 24h; anything else is 422",
		"schema":      map[string]any{"type": "string"}}},
	"PUT /ctemplates/{id}/rootfs":      {sha256Param},
	"POST /ctemplates/{id}/rootfs":     {sha256Param},
	"GET /containers/{id}/status.json": {map[string]any{"name": "lines", "in": "query", "description": "the journal's last lines (0 to 1000, default 20)", "schema": map[string]any{"type": "integer"}}},
}

var sha256Param = map[string]any{"name": "sha256", "in": "query", "required": true,
	"description": "the tarball's SHA-256, 64 hex digits (or the header X-Content-SHA256)", "schema": map[string]any{"type": "string"}}

// optionalBody are the routes whose body may be left out (their defaults apply).
var optionalBody = map[string]bool{
	"POST /groups/{id}/publish.json": true, "POST /servers/{name}/erator/purge.json": true,
	"POST /groups/{id}/maintenance.json": true, "POST /volumes/{id}/maintenance.json": true, "POST /devices/{id}/restore.json": true,
}

// listFilters adds the exact-match filters a collection declares (devices: group_id,
// server_id, version_id, locked, compliant) to its list's parameters.
func listFilters(params []any, name string) []any {
	if name != "devices" {
		return params
	}
	for _, f := range []struct{ key, desc, typ string }{
		{"group_id", "only the devices of this group (0 or none: without a group)", "string"},
		{"server_id", "only the devices whose disk is on this server (0 or none: without a disk)", "string"},
		{"version_id", "only the devices whose disk is a clone of this group version (0 or none: without one)", "string"},
		{"locked", "only locked (true) or unlocked (false) devices", "boolean"},
		{"compliant", "only the devices on (true) or off (false) their strict group's assigned version (as groups/{id}/compliance.json judges them)", "boolean"},
	} {
		params = append(params, map[string]any{"name": f.key, "in": "query", "description": f.desc, "schema": map[string]any{"type": f.typ}})
	}
	return params
}
