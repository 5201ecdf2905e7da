package webui

import (
	"cmp"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/clusterducks/clusterducks/api"
	"github.com/gofiber/fiber/v2"
)

// The API reference page renders the panel's own OpenAPI document on the server: no
// external viewer or script, so it works offline and under the dashboard's CSP.

type apiDocsData struct {
	Prefix   string
	Sections []apiSection
}

type apiSection struct {
	Name string
	Ops  []apiOp
}

type apiOp struct {
	Method, Path, Summary, Anchor string
	Key                           bool // authenticated with a server or tunnel key
	Body                          []schemaRow
	BodyOptional                  bool
	Answers                       []apiAnswer
	Errors                        string
}

type apiAnswer struct {
	Code, Description string
	Rows              []schemaRow
}

type schemaRow struct {
	Name, Type, Note string
	Depth            int
}

// oaSchema is the part of an OpenAPI schema the page shows.
type oaSchema struct {
	Type        any                  `json:"type"`
	Format      string               `json:"format"`
	Description string               `json:"description"`
	Nullable    bool                 `json:"nullable"`
	Properties  map[string]*oaSchema `json:"properties"`
	Items       *oaSchema            `json:"items"`
	AnyOf       []*oaSchema          `json:"anyOf"`
}

type oaContent struct {
	Schema *oaSchema `json:"schema"`
}

type oaOp struct {
	Summary     string `json:"summary"`
	RequestBody *struct {
		Required bool                 `json:"required"`
		Content  map[string]oaContent `json:"content"`
	} `json:"requestBody"`
	Responses map[string]struct {
		Description string               `json:"description"`
		Content     map[string]oaContent `json:"content"`
	} `json:"responses"`
	Security []map[string]any `json:"security"`
}

func (u *UI) apiDocs(c *fiber.Ctx) error {
	if u.opts.APIDocument == nil {
		return fiber.NewError(fiber.StatusNotFound, "this panel serves no API reference")
	}
	d, err := parseAPIDocs(u.opts.APIDocument())
	if err != nil {
		return err
	}
	return u.render(c, "apidocs", "API reference", "apidocs", d)
}

func parseAPIDocs(raw []byte) (*apiDocsData, error) {
	var doc struct {
		Paths map[string]map[string]oaOp `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	sections := map[string]*apiSection{}
	for path, item := range doc.Paths {
		rel := strings.TrimPrefix(path, api.Prefix)
		name, _, _ := strings.Cut(strings.TrimPrefix(rel, "/"), "/")
		name = strings.TrimSuffix(name, ".json")
		s := sections[name]
		if s == nil {
			s = &apiSection{Name: name}
			sections[name] = s
		}
		for method, o := range item {
			op := apiOp{Method: strings.ToUpper(method), Path: rel, Summary: o.Summary, Key: len(o.Security) > 0 && o.Security[0]["key"] != nil,
				Anchor: strings.ToLower(method) + strings.NewReplacer("/", "-", "{", "", "}", "", ".", "-").Replace(rel)}
			if o.RequestBody != nil {
				op.Body = rows(o.RequestBody.Content["application/json"].Schema, "", 0)
				op.BodyOptional = !o.RequestBody.Required
			}
			var errs []string
			for code, r := range o.Responses {
				if code[0] != '2' {
					errs = append(errs, code)
					continue
				}
				op.Answers = append(op.Answers, apiAnswer{Code: code, Description: r.Description, Rows: rows(r.Content["application/json"].Schema, "", 0)})
			}
			slices.Sort(errs)
			op.Errors = strings.Join(errs, ", ")
			slices.SortFunc(op.Answers, func(a, b apiAnswer) int { return cmp.Compare(a.Code, b.Code) })
			s.Ops = append(s.Ops, op)
		}
	}
	order := map[string]int{"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}
	d := &apiDocsData{Prefix: api.Prefix}
	for _, s := range sections {
		slices.SortFunc(s.Ops, func(a, b apiOp) int {
			return cmp.Or(cmp.Compare(len(a.Path), len(b.Path)), cmp.Compare(a.Path, b.Path), cmp.Compare(order[a.Method], order[b.Method]))
		})
		d.Sections = append(d.Sections, *s)
	}
	slices.SortFunc(d.Sections, func(a, b apiSection) int { return cmp.Compare(a.Name, b.Name) })
	return d, nil
}

// rows flattens a schema into one row per property, nested objects indented (two levels:
// deeper ones are named by their type only, the page stays readable).
func rows(s *oaSchema, name string, depth int) []schemaRow {
	if s == nil {
		return nil
	}
	var out []schemaRow
	if name != "" {
		out = append(out, schemaRow{Name: name, Type: typeName(s), Note: s.Description, Depth: depth})
		depth++
	}
	props := s.Properties
	if s.Items != nil && s.Items.Properties != nil {
		props = s.Items.Properties
	}
	if depth > 2 {
		return out
	}
	for _, k := range slices.Sorted(maps.Keys(props)) {
		out = append(out, rows(props[k], k, depth)...)
	}
	return out
}

func typeName(s *oaSchema) string {
	var t string
	switch {
	case len(s.AnyOf) > 0:
		var ts []string
		for _, a := range s.AnyOf {
			ts = append(ts, typeName(a))
		}
		t = strings.Join(ts, " or ")
	case s.Items != nil:
		t = "array of " + typeName(s.Items)
	default:
		t, _ = s.Type.(string)
		if t == "" {
			t = "any"
		}
		if s.Format != "" {
			t += " (" + s.Format + ")"
		}
	}
	if s.Nullable {
		t += ", may be null"
	}
	return t
}
