package api

import (
	"encoding/json"
	"github.com/gofiber/fiber/v2"
	"reflect"
	"strings"
	"time"
)

// spec collects the collections as they are registered, so the OpenAPI document served at
// /api/v0.9.2/openapi.json is generated from the same types the handlers use.
type spec struct {
	collections []specCollection
	described   map[string]described // "<method> <path>" of an action route
}

// described is an action route's summary and the type of its answer.
type described struct {
	summary string
	status  string
	out     reflect.Type
}

// describe documents an action route (path in OpenAPI form, "/groups/{id}/compliance.json").
func (s *spec) describe(method, path, summary, status string, out any) {
	if s.described == nil {
		s.described = map[string]described{}
	}
	s.described[method+" "+Prefix+path] = described{summary, status, reflect.TypeOf(out)}
}

type specCollection struct {
	name string
	in   reflect.Type
	out  reflect.Type
}

func (s *spec) add(name string, in, out reflect.Type) {
	s.collections = append(s.collections, specCollection{name: name, in: in, out: out})
}

// schema describes a Go type as a JSON schema: inputs by their `field` tags (canonical
// name, aliases in the description), outputs by their `json` tags.
func schema(t reflect.Type, input bool) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeOf(time.Time{}):
		return map[string]any{"type": "string", "format": "date-time"}
	case t == reflect.TypeOf(json.RawMessage{}):
		return map[string]any{"type": "object"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Uint:
		return map[string]any{"type": "integer"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schema(t.Elem(), input)}
	case reflect.Interface:
		return map[string]any{}
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
			if names[0] == "" || names[0] == "-" {
				continue
			}
			s := schema(f.Type, true)
			if len(names) > 1 {
				s["description"] = "also accepted as " + strings.Join(names[1:], ", ") + " (keys match case-insensitively, underscores ignored)"
			}
			if f.Type.Elem().Kind() == reflect.Int || f.Type.Elem().Kind() == reflect.Int64 {
				s["type"] = []string{"integer", "string"}
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

// document builds the OpenAPI 3 document: the collections with their schemas, and every
// other route of the app under Prefix (actions, agent and boot endpoints) by its path.
func (s *spec) document(routes []fiber.Route) []byte {
	errResp := map[string]any{"description": "error", "content": map[string]any{"application/json": map[string]any{"schema": schema(reflect.TypeOf(ErrorBody{}), false)}}}
	errors := map[string]any{"400": errResp, "401": errResp, "403": errResp, "404": errResp, "409": errResp, "422": errResp}
	with := func(ok map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range errors {
			m[k] = v
		}
		for k, v := range ok {
			m[k] = v
		}
		return m
	}
	jsonBody := func(s map[string]any) map[string]any {
		return map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": s}}}
	}
	paths := map[string]any{}
	for _, c := range s.collections {
		in, out := schema(c.in, true), schema(c.out, false)
		ok := func(desc string, s map[string]any) map[string]any {
			r := jsonBody(s)
			r["description"] = desc
			return r
		}
		paths[Prefix+"/"+c.name+".json"] = map[string]any{
			"get": map[string]any{"summary": "List " + c.name, "parameters": []any{
				map[string]any{"name": "page", "in": "query", "schema": map[string]any{"type": "integer"}},
				map[string]any{"name": "per_page", "in": "query", "schema": map[string]any{"type": "integer", "maximum": 500}},
				map[string]any{"name": "network_id", "in": "query", "schema": map[string]any{"type": "integer"}},
			}, "responses": with(map[string]any{"200": ok("a page of "+c.name, map[string]any{"type": "array", "items": out})})},
			"post": map[string]any{"summary": "Create one of " + c.name, "requestBody": jsonBody(in),
				"responses": with(map[string]any{"201": ok("created", out), "202": ok("accepted; long work runs as the inline operation", out)})},
		}
		idParam := []any{map[string]any{"name": "id", "in": "path", "required": true, "schema": map[string]any{"type": "integer"}}}
		item := map[string]any{
			"get":    map[string]any{"parameters": idParam, "responses": with(map[string]any{"200": ok("the object", out)})},
			"put":    map[string]any{"parameters": idParam, "requestBody": jsonBody(in), "responses": with(map[string]any{"200": ok("updated", out), "202": ok("accepted", out)})},
			"patch":  map[string]any{"parameters": idParam, "requestBody": jsonBody(in), "responses": with(map[string]any{"200": ok("updated", out), "202": ok("accepted", out)})},
			"delete": map[string]any{"parameters": idParam, "responses": with(map[string]any{"204": map[string]any{"description": "deleted"}, "202": ok("deletion accepted", out)})},
		}
		paths[Prefix+"/"+c.name+"/{id}.json"] = item
	}
	for _, rt := range routes {
		if !strings.HasPrefix(rt.Path, Prefix+"/") || strings.Contains(rt.Path, "*") || rt.Method == fiber.MethodHead {
			continue
		}
		path := rt.Path
		var params []any
		for _, p := range rt.Params {
			path = strings.Replace(path, ":"+p, "{"+p+"}", 1)
			params = append(params, map[string]any{"name": p, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
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
		op := map[string]any{"responses": with(map[string]any{"200": map[string]any{"description": "see the README"}})}
		if d, ok := s.described[rt.Method+" "+path]; ok {
			r := jsonBody(schema(d.out, false))
			r["description"] = d.summary
			op = map[string]any{"summary": d.summary, "responses": with(map[string]any{d.status: r})}
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		item[method] = op
	}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "clusterducks", "version": "0.9.2"},
		"components": map[string]any{"securitySchemes": map[string]any{"token": map[string]any{
			"type": "apiKey", "in": "header", "name": "Authorization", "description": `Token token="<your API token>"`}}},
		"security": []any{map[string]any{"token": []any{}}},
		"paths":    paths,
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return b
}
