package webui

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// field is one labelled form control. Names are the API's canonical field names, so the
// models decode a form exactly as they decode the API's JSON.
type field struct {
	Name         string
	Label        string
	Type         string // text, number, password, email, select, checkbox, textarea
	Value        string
	Options      []option
	Required     bool
	Disabled     bool
	OmitEmpty    bool // an empty value is left out of the request (keep the current value)
	Help         string
	Error        string
	Placeholder  string
	Inputmode    string
	Autocomplete string
	Rows         []itemRow // a menu's items (Type "menuitems"), edited as rows
}

type option struct {
	Value string
	Label string
}

// Checked reports whether a checkbox is on.
func (f field) Checked() bool { return f.Value == "true" }

// formView is a form with its fields and, after a refused submit, the error.
type formView struct {
	ID      string // prefix of the element ids, for a second form on a page ("" for the main one)
	Heading string
	Action  string
	Submit  string
	Cancel  string
	Fields  []field
	Error   string
	Errors  []string // every field error at once, each with its field's label
	Secret  string   // shown once after a create (a key)
}

// setError shows an error from the models on the form: on the field it names, or above.
func (f *formView) setError(body api.ErrorBody) {
	for i := range f.Fields {
		if body.Field != "" && f.Fields[i].Name == body.Field {
			f.Fields[i].Error = body.Error
			f.Error = f.Fields[i].Label + ": " + body.Error
			return
		}
	}
	f.Error = body.Error
}

// precheck finds every error the form's own fields can tell before the models run (a
// required field left empty, a number that is not one, a choice the form did not offer, a
// malformed MAC or UUID), so a refused form names them all at once instead of one per
// submit. The models still check everything: this only gathers what is plain.
func precheck(fields []field, v url.Values) []api.ErrorBody {
	var errs []api.ErrorBody
	for _, f := range fields {
		if f.Disabled || f.Type == "checkbox" || f.Type == "menuitems" {
			continue
		}
		val := strings.TrimSpace(v.Get(f.Name))
		bad := func(msg string) { errs = append(errs, api.ErrorBody{Field: f.Name, Error: f.Name + " " + msg}) }
		switch {
		case val == "":
			if f.Required && !(f.Type == "password" && f.OmitEmpty) {
				bad("is required")
			}
		case f.Type == "number":
			if _, err := strconv.ParseInt(val, 10, 64); err != nil {
				bad("must be a whole number")
			}
		case f.Type == "select" && len(f.Options) > 0:
			if !slices.ContainsFunc(f.Options, func(o option) bool { return o.Value == val }) {
				bad("is not one of the choices offered")
			}
		case f.Name == "mac":
			if _, err := wire.NormalizeMAC(val); err != nil {
				bad(err.Error())
			}
		case f.Name == "uuid":
			if wire.NormalizeUUID(val) == "" {
				bad("must be an SMBIOS UUID such as 4c4c4544-0042-3510-8052-b4c04f4e3332")
			}
		}
	}
	return errs
}

// setErrors shows several errors: each on its field, and all of them above the form by
// the labels the form shows.
func (f *formView) setErrors(errs []api.ErrorBody) {
	if len(errs) == 1 {
		f.setError(errs[0])
		return
	}
	for _, e := range errs {
		shown := false
		for i := range f.Fields {
			if e.Field != "" && f.Fields[i].Name == e.Field {
				f.Fields[i].Error = strings.TrimPrefix(e.Error, e.Field+" ")
				f.Errors = append(f.Errors, f.Fields[i].Label+": "+f.Fields[i].Error)
				shown = true
			}
		}
		if !shown {
			f.Errors = append(f.Errors, e.Error)
		}
	}
	f.Error = fmt.Sprintf("This form has %d errors:", len(f.Errors))
}

// fill puts submitted values back into the fields, so a refused form keeps what was typed
// (except passwords).
func (f *formView) fill(v url.Values) {
	for i := range f.Fields {
		fl := &f.Fields[i]
		if fl.Type == "password" || fl.Disabled {
			continue
		}
		if fl.Type == "menuitems" {
			var items []models.MenuItem
			for _, r := range postedItemRows(v) {
				g, _ := strconv.ParseUint(r.GroupID, 10, 32)
				items = append(items, models.MenuItem{Type: r.Type, Label: r.Label, GroupID: uint(g), URL: r.URL})
			}
			fl.Rows = menuItemRows(items)
			continue
		}
		if vs, ok := v[fl.Name]; ok && len(vs) > 0 {
			fl.Value = vs[len(vs)-1]
		} else if fl.Type == "checkbox" {
			fl.Value = "false"
		}
	}
}

// formValues reads a urlencoded POST body.
func formValues(c *fiber.Ctx) url.Values {
	v := url.Values{}
	c.Request().PostArgs().VisitAll(func(k, val []byte) {
		v.Add(string(k), string(val))
	})
	return v
}

// decode fills an input struct of the models from a form, with the models' own decoder
// (same names, types and errors as the API's JSON). Fields marked OmitEmpty are dropped
// when empty, so "leave blank to keep" works.
func decode[In any](v url.Values, fields []field) (*In, error) {
	vals := url.Values{}
	for k, vs := range v {
		vals[k] = vs
	}
	for _, f := range fields {
		if f.OmitEmpty && strings.TrimSpace(vals.Get(f.Name)) == "" {
			delete(vals, f.Name)
		}
	}
	in := new(In)
	if err := models.DecodeForm(vals, in, csrfField); err != nil {
		return nil, err
	}
	return in, nil
}

func itoa(n int) string     { return strconv.Itoa(n) }
func utoa(n uint) string    { return strconv.FormatUint(uint64(n), 10) }
func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
func i64toa(n int64) string { return strconv.FormatInt(n, 10) }
func btoa(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func ptrString(p *uint) string {
	if p == nil {
		return ""
	}
	return utoa(*p)
}
