package webui

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// rc is one request's context: the caller, the store, and lookups cached for the request.
type rc struct {
	c    *fiber.Ctx
	ctx  context.Context
	a    *models.Actor
	s    *models.Store
	ui   *UI
	nets map[uint]models.Network
	comp map[uint]map[uint]models.Compliance // group id → device id → compliance
}

func (u *UI) rc(c *fiber.Ctx) *rc {
	return &rc{c: c, ctx: c.UserContext(), a: actorOf(c), s: u.store, ui: u}
}

var all = models.Page{Page: 1, PerPage: 500}

// networks are the networks the caller sees (at most 500, which is what a select can show).
func (r *rc) networks() map[uint]models.Network {
	if r.nets == nil {
		r.nets = map[uint]models.Network{}
		ns, _, err := r.s.ListNetworks(r.ctx, r.a, all)
		if err == nil {
			for _, n := range ns {
				r.nets[n.ID] = n
			}
		}
	}
	return r.nets
}

func (r *rc) netName(id uint) string {
	if n, ok := r.networks()[id]; ok {
		return n.Name
	}
	return "#" + utoa(id)
}

func (r *rc) netCell(id uint) cell {
	return cell{Text: r.netName(id), Link: fmt.Sprintf("/networks/%d", id)}
}

func (r *rc) networkOptions() []option {
	ids := make([]int, 0, len(r.networks()))
	for id := range r.networks() {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	opts := []option{}
	for _, id := range ids {
		opts = append(opts, option{Value: itoa(id), Label: r.nets[uint(id)].Name})
	}
	return opts
}

// networkField is the select of the network an object belongs to; fixed once created.
func (r *rc) networkField(current uint, creating bool) field {
	v := utoa(current)
	if creating {
		v = r.c.Query("network_id")
		if v == "" && len(r.networks()) == 1 {
			for id := range r.nets {
				v = utoa(id)
			}
		}
	}
	return field{Name: "network_id", Label: "Network", Type: "select", Value: v, Required: true, Disabled: !creating,
		Options: append([]option{{Value: "", Label: "— choose a network —"}}, r.networkOptions()...)}
}

// cell is one table cell: text, optionally linked, optionally a badge or live progress.
type cell struct {
	Text  string
	Link  string
	Badge string
	Op    *opView
}

// action is a button on a row or an object page: a link (Href) or a POST form (Post).
type action struct {
	Label   string
	Icon    string
	Href    string
	Post    string
	Confirm string
	Hidden  map[string]string
	Class   string
}

type detail struct {
	Label string
	Value string
	Link  string
	Pre   bool
	Badge string
}

// section is an extra table on an object's page (a group's versions, a network's alerts).
type section struct {
	Title   string
	ID      string // the section's anchor, when links point at it
	Note    string
	Error   string // a refused choice (e.g. an unknown chart window), shown as an alert
	Columns []string
	Rows    [][]cell
	Actions []action
	Windows []windowLink  // a time window selector (the charts')
	Charts  []chartFigure // inline SVG charts (charts.go)
}

// meta is what the pages show of a resource and what does not depend on its model.
type meta struct {
	Name     string // path segment and API collection name
	Title    string
	Singular string
	Icon     string
	EditIcon string
	Object   string // operations' object_type
	Submit   string // label of the create button (the guide says "Add" or "Save")
	Filter   bool   // list can be filtered by network
	Help     string
	Bulk     bool // rows can be selected for one action on all of them (devices)
}

// resource describes one list of the guide (Clients, Networks, Servers, ...): its columns,
// its form and the models.Store calls behind list, show, create, update and delete. It is
// a kind with its model's type erased (kind.resource), so the pages below serve them all.
type resource struct {
	meta
	canCreate func(a *models.Actor) bool
	columns   []string
	list      func(r *rc, p models.Page, nid uint) ([]*object, int64, error)
	get       func(r *rc, id uint) (*object, error)
	newFields func(r *rc) []field
	create    func(r *rc, v url.Values, fs []field) (c *models.Created, id uint, err error)
	update    func(r *rc, id uint, v url.Values, fs []field) (*models.Created, error)
	del       func(r *rc, id uint) (*models.Created, error)
}

// object is one object of a resource with its kind's functions bound to it; the optional
// ones are nil when the kind has none.
type object struct {
	id        uint
	label     string
	canChange func(r *rc) bool // hides Edit and Delete the models would refuse anyway
	row       func(r *rc) []cell
	actions   func(r *rc) []action
	fields    func(r *rc) []field
	details   func(r *rc) []detail
	sections  func(r *rc) []section
	forms     func(r *rc) []*formView // small forms on the object's page
}

// kind describes a resource in terms of its model T, so each function takes a *T and
// needs no type assertion.
type kind[T any] struct {
	meta
	canCreate func(a *models.Actor) bool
	columns   []string
	list      func(r *rc, p models.Page, nid uint) ([]T, int64, error)
	get       func(r *rc, id uint) (*T, error)
	create    func(r *rc, v url.Values, fs []field) (*models.Created, error)
	update    func(r *rc, id uint, v url.Values, fs []field) (*models.Created, error)
	del       func(r *rc, id uint) (*models.Created, error)
	id        func(obj *T) uint
	label     func(obj *T) string
	canChange func(r *rc, obj *T) bool
	row       func(r *rc, obj *T) []cell
	actions   func(r *rc, obj *T) []action
	fields    func(r *rc, obj *T) []field // obj is nil for a new one
	details   func(r *rc, obj *T) []detail
	sections  func(r *rc, obj *T) []section
	forms     func(r *rc, obj *T) []*formView
}

// resource erases T: lists and gets return objects with k's functions bound to them.
func (k *kind[T]) resource() *resource {
	res := &resource{meta: k.meta, canCreate: k.canCreate, columns: k.columns, update: k.update, del: k.del,
		list: func(r *rc, p models.Page, nid uint) ([]*object, int64, error) {
			items, total, err := k.list(r, p, nid)
			objs := make([]*object, len(items))
			for i := range items {
				objs[i] = k.bind(&items[i])
			}
			return objs, total, err
		},
		get: func(r *rc, id uint) (*object, error) {
			obj, err := k.get(r, id)
			if err != nil {
				return nil, err
			}
			return k.bind(obj), nil
		},
		newFields: func(r *rc) []field { return k.fields(r, nil) },
	}
	if k.create != nil {
		res.create = func(r *rc, v url.Values, fs []field) (*models.Created, uint, error) {
			c, err := k.create(r, v, fs)
			if err != nil {
				return nil, 0, err
			}
			// models.Created carries any (the API serialises it as it is): its one check.
			obj, ok := c.Object.(*T)
			if !ok {
				return nil, 0, fmt.Errorf("create %s: the store returned a %T", k.Name, c.Object)
			}
			return c, k.id(obj), nil
		}
	}
	return res
}

func (k *kind[T]) bind(obj *T) *object {
	return &object{id: k.id(obj), label: k.label(obj),
		canChange: bound(k.canChange, obj), row: bound(k.row, obj), actions: bound(k.actions, obj), fields: bound(k.fields, obj),
		details: bound(k.details, obj), sections: bound(k.sections, obj), forms: bound(k.forms, obj)}
}

// bound is f with its object given, or nil when the kind has no f.
func bound[T, R any](f func(r *rc, obj *T) R, obj *T) func(r *rc) R {
	if f == nil {
		return nil
	}
	return func(r *rc) R { return f(r, obj) }
}

type listView struct {
	Res       *resource
	Columns   []string
	Headers   []listHeader
	Q         string
	Rows      []listRow
	Total     int64
	Page      int
	Pages     int
	PrevURL   string
	NextURL   string
	Networks  []option
	NetworkID string
	CanCreate bool
	NewURL    string
	Bulk      *bulkBar // the selection's actions, for a list whose resource has them
	// Filters are the list's exact-match filters (devices: group, server, lock, compliance).
	Filters []listFilter
}

// listFilter is one select of a list's filter form; Value is the one chosen ("" all).
type listFilter struct {
	Key, Label, Value string
	Options           []option
}

// listHeader is a column title; a sortable one links to the list sorted by it (again:
// the other way round).
type listHeader struct {
	Title string
	URL   string
	Dir   string // "ascending" or "descending" when the list is sorted by it
}

type listRow struct {
	ID      uint
	Label   string
	Cells   []cell
	Actions []action
}

type showView struct {
	Res      *resource
	ID       uint
	Label    string
	Details  []detail
	Actions  []action
	Sections []section
	Forms    []*formView
	Ops      []opView
	Secret   string
}

func (u *UI) mountResource(r routes, res *resource) {
	base := "/" + res.Name
	page := func(fn func(c *fiber.Ctx, res *resource) error) fiber.Handler {
		return u.h(func(c *fiber.Ctx) error { return fn(c, res) })
	}
	object := func(fn func(c *fiber.Ctx, r *rc, res *resource, id uint) error) fiber.Handler {
		return u.h(u.withID(func(c *fiber.Ctx, r *rc, id uint) error { return fn(c, r, res, id) }))
	}
	r.get(base, page(u.list))
	r.get(base+"/new", page(u.newForm))
	r.post(base, page(u.create))
	r.get(base+"/:id", object(func(c *fiber.Ctx, _ *rc, res *resource, id uint) error {
		return u.show(c, res, id, u.takeSecret(c), nil)
	}))
	r.get(base+"/:id/edit", object(u.editForm))
	r.post(base+"/:id", object(u.update))
	r.post(base+"/:id/delete", object(u.delete))
}

// withID adapts a handler of a path with :id: it gets the request's context and the id
// (one that is not an id is a 404 before fn runs).
func (u *UI) withID(fn func(c *fiber.Ctx, r *rc, id uint) error) func(c *fiber.Ctx) error {
	return func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		return fn(c, u.rc(c), id)
	}
}

func idParam(c *fiber.Ctx) (uint, error) {
	n, err := strconv.ParseUint(c.Params("id"), 10, 32)
	if err != nil || n == 0 {
		return 0, models.NotFound("object")
	}
	return uint(n), nil
}

func (u *UI) rowActions(r *rc, res *resource, obj *object) []action {
	id := obj.id
	acts := []action{}
	if obj.actions != nil {
		acts = append(acts, obj.actions(r)...)
	}
	if obj.canChange != nil && !obj.canChange(r) {
		return acts
	}
	if res.update != nil {
		icon := res.EditIcon
		if icon == "" {
			icon = "edit"
		}
		acts = append(acts, action{Label: "Edit " + obj.label, Icon: icon, Href: fmt.Sprintf("/%s/%d/edit", res.Name, id)})
	}
	if res.del != nil {
		acts = append(acts, action{Label: "Delete " + obj.label, Icon: "trash", Post: fmt.Sprintf("/%s/%d/delete", res.Name, id),
			Confirm: fmt.Sprintf("Delete %s %q?", res.Singular, obj.label), Class: "danger"})
	}
	return acts
}

func (u *UI) list(c *fiber.Ctx, res *resource) error {
	r := u.rc(c)
	p := models.Page{Page: c.QueryInt("page", 1), PerPage: 50, Q: strings.TrimSpace(c.Query("q")), Sort: c.Query("sort")}.Normalize()
	if p.Sort != "" && !models.CanSort(res.Name, p.Sort) {
		p.Sort = "" // a stale or hand-made link: the list in its usual order
	}
	var nid uint
	if res.Filter {
		if n, err := strconv.ParseUint(c.Query("network_id"), 10, 32); err == nil {
			nid = uint(n)
		}
	}
	var filters []listFilter
	if res.Bulk {
		filters = deviceFilters(r, nid)
		for i := range filters {
			if val := strings.TrimSpace(c.Query(filters[i].Key)); val != "" {
				filters[i].Value = val
				if p.Filters == nil {
					p.Filters = map[string]string{}
				}
				p.Filters[filters[i].Key] = val
			}
		}
	}
	items, total, err := res.list(r, p, nid)
	if err != nil {
		return err
	}
	v := &listView{Filters: filters, Res: res, Columns: res.columns, Total: total, Page: p.Page, CanCreate: res.create != nil && (res.canCreate == nil || res.canCreate(r.a)), NewURL: "/" + res.Name + "/new"}
	v.Pages = int((total + int64(p.PerPage) - 1) / int64(p.PerPage))
	q := url.Values{}
	if nid != 0 {
		q.Set("network_id", utoa(nid))
		v.NetworkID = utoa(nid)
		v.NewURL += "?network_id=" + utoa(nid)
	}
	if p.Q != "" {
		q.Set("q", p.Q)
		v.Q = p.Q
	}
	for _, f := range filters {
		if f.Value != "" {
			q.Set(f.Key, f.Value)
		}
	}
	for _, col := range res.columns {
		h := listHeader{Title: col}
		if key := models.SortKey(col); models.CanSort(res.Name, key) {
			hq := url.Values{}
			for k, vs := range q {
				hq[k] = vs
			}
			switch p.Sort {
			case key:
				h.Dir = "ascending"
				hq.Set("sort", "-"+key)
			case "-" + key:
				h.Dir = "descending"
				hq.Set("sort", key)
			default:
				hq.Set("sort", key)
			}
			h.URL = "/" + res.Name + "?" + hq.Encode()
		}
		v.Headers = append(v.Headers, h)
	}
	if p.Sort != "" {
		q.Set("sort", p.Sort)
	}
	if p.Page > 1 {
		q.Set("page", itoa(p.Page-1))
		v.PrevURL = "/" + res.Name + "?" + q.Encode()
	}
	if p.Page < v.Pages {
		q.Set("page", itoa(p.Page+1))
		v.NextURL = "/" + res.Name + "?" + q.Encode()
	}
	if res.Filter {
		v.Networks = r.networkOptions()
	}
	if res.Bulk && len(items) > 0 {
		v.Bulk = newBulkBar(r, nid)
	}
	for _, obj := range items {
		v.Rows = append(v.Rows, listRow{ID: obj.id, Label: obj.label, Cells: obj.row(r), Actions: u.rowActions(r, res, obj)})
	}
	return u.render(c, "list", res.Title, res.Name, v)
}

func (u *UI) formFor(r *rc, res *resource, obj *object) *formView {
	if obj == nil {
		f := &formView{Fields: res.newFields(r)}
		f.Heading, f.Action, f.Submit, f.Cancel = "New "+res.Singular, "/"+res.Name, res.Submit, "/"+res.Name
		return f
	}
	f := &formView{Fields: obj.fields(r), Heading: "Edit " + res.Singular + " " + obj.label}
	f.Action, f.Submit, f.Cancel = fmt.Sprintf("/%s/%d", res.Name, obj.id), "Save", fmt.Sprintf("/%s/%d", res.Name, obj.id)
	return f
}

func (u *UI) newForm(c *fiber.Ctx, res *resource) error {
	r := u.rc(c)
	return u.render(c, "form", "New "+res.Singular, res.Name, u.formFor(r, res, nil))
}

func (u *UI) editForm(c *fiber.Ctx, r *rc, res *resource, id uint) error {
	obj, err := res.get(r, id)
	if err != nil {
		return err
	}
	return u.render(c, "form", "Edit "+res.Singular, res.Name, u.formFor(r, res, obj))
}

// refused shows a resource's form again with what was typed and the models' error.
func (u *UI) refused(c *fiber.Ctx, res *resource, f *formView, v url.Values, err error) error {
	return u.refuse(c, f, v, err, "form", f.Heading, res.Name, f)
}

// refuse renders a page again (template tmpl with data) whose form f was refused: with
// what was typed and the models' error on its field; a server error is returned as is.
func (u *UI) refuse(c *fiber.Ctx, f *formView, v url.Values, err error, tmpl, title, nav string, data any) error {
	code, body := api.Status(err)
	if code >= 500 {
		return err
	}
	f.fill(v)
	errs := []api.ErrorBody{body}
	if code == fiber.StatusUnprocessableEntity {
		// The models stop at the first invalid value; the others the form can tell
		// are added, so the operator fixes them all in one go. Only a 422 gathers them:
		// a refusal for a reason other than values (403, 404, 409) is shown as it is.
		for _, e := range precheck(f.Fields, v) {
			if e.Field != body.Field {
				errs = append(errs, e)
			}
		}
	}
	f.setErrors(errs)
	return u.render(c.Status(code), tmpl, title, nav, data)
}

func (u *UI) create(c *fiber.Ctx, res *resource) error {
	r := u.rc(c)
	f := u.formFor(r, res, nil)
	v := formValues(c)
	created, id, err := res.create(r, v, f.Fields)
	if err != nil {
		return u.refused(c, res, f, v, err)
	}
	if created.Secret != "" {
		// The key exists nowhere else in clear: the object's page shows it, once.
		return u.redirectWithSecret(c, fmt.Sprintf("/%s/%d", res.Name, id), "?notice=created", created.Secret)
	}
	notice := "created"
	if created.Operation != nil {
		notice = "queued"
	}
	return c.Redirect(fmt.Sprintf("/%s/%d?notice=%s", res.Name, id, notice), fiber.StatusSeeOther)
}

func (u *UI) update(c *fiber.Ctx, r *rc, res *resource, id uint) error {
	obj, err := res.get(r, id) // visibility first: another client's object is a 404 whatever is sent
	if err != nil {
		return err
	}
	f := u.formFor(r, res, obj)
	v := formValues(c)
	updated, err := res.update(r, id, v, f.Fields)
	if err != nil {
		return u.refused(c, res, f, v, err)
	}
	notice := "saved"
	switch {
	case updated != nil && updated.Operation != nil:
		notice = "queued"
	case updated != nil && updated.Warning != "" && res.Name == "devices":
		notice = "lockqueued"
	}
	return c.Redirect(fmt.Sprintf("/%s/%d?notice=%s", res.Name, id, notice), fiber.StatusSeeOther)
}

func (u *UI) delete(c *fiber.Ctx, r *rc, res *resource, id uint) error {
	deleted, err := res.del(r, id)
	if err != nil {
		return err
	}
	if deleted != nil && deleted.Operation != nil {
		return c.Redirect(fmt.Sprintf("/operations/%d?notice=queued", deleted.Operation.ID), fiber.StatusSeeOther)
	}
	return c.Redirect("/"+res.Name+"?notice=deleted", fiber.StatusSeeOther)
}

// formErr is a refused submit of one of an object page's small forms.
type formErr struct {
	ID     string
	Values url.Values
	Err    error
}

// show renders an object's page: secret is a key shown once; fe puts a refused small
// form's error (and what was typed) back on the page.
func (u *UI) show(c *fiber.Ctx, res *resource, id uint, secret string, fe *formErr) error {
	r := u.rc(c)
	obj, err := res.get(r, id)
	if err != nil {
		return err
	}
	v := &showView{Res: res, ID: id, Label: obj.label, Secret: secret, Actions: u.rowActions(r, res, obj)}
	if obj.details != nil {
		v.Details = obj.details(r)
	}
	if obj.sections != nil {
		v.Sections = obj.sections(r)
	}
	if obj.forms != nil {
		v.Forms = obj.forms(r)
	}
	if fe != nil {
		code, body := api.Status(fe.Err)
		if code >= 500 {
			return fe.Err
		}
		shown := false
		for _, f := range v.Forms {
			if f.ID == fe.ID {
				f.fill(fe.Values)
				f.setError(body)
				shown = true
			}
		}
		if !shown {
			return fe.Err
		}
		c.Status(code)
	}
	if res.Object != "" {
		ops, err := r.s.ObjectOperations(r.ctx, r.a, res.Object, id, 10)
		if err != nil {
			return err
		}
		for i := range ops {
			v.Ops = append(v.Ops, u.opView(r, &ops[i]))
		}
	}
	return u.render(c, "show", res.Singular+" "+v.Label, res.Name, v)
}

// The store calls behind a resource are given as method expressions
// ((*models.Store).CreateClient): these bind them to the request and decode the form into
// their input, the same way for every resource.

func storeList[T any](f func(*models.Store, context.Context, *models.Actor, models.Page) ([]T, int64, error)) func(r *rc, p models.Page, nid uint) ([]T, int64, error) {
	return func(r *rc, p models.Page, _ uint) ([]T, int64, error) { return f(r.s, r.ctx, r.a, p) }
}

func storeGet[T any](f func(*models.Store, context.Context, *models.Actor, uint) (*T, error)) func(r *rc, id uint) (*T, error) {
	return func(r *rc, id uint) (*T, error) { return f(r.s, r.ctx, r.a, id) }
}

// owned lists and gets the objects that belong to a network (what names them in errors).
func owned[T any](what string) (func(r *rc, p models.Page, nid uint) ([]T, int64, error), func(r *rc, id uint) (*T, error)) {
	return func(r *rc, p models.Page, nid uint) ([]T, int64, error) {
			return models.ListOwned[T](r.ctx, r.s, r.a, p, nid)
		}, func(r *rc, id uint) (*T, error) {
			return models.GetOwned[T](r.ctx, r.s, r.a, id, what)
		}
}

func storeCreate[I any](f func(*models.Store, context.Context, *models.Actor, *I) (*models.Created, error)) func(r *rc, v url.Values, fs []field) (*models.Created, error) {
	return func(r *rc, v url.Values, fs []field) (*models.Created, error) {
		in, err := decode[I](v, fs)
		if err != nil {
			return nil, err
		}
		return f(r.s, r.ctx, r.a, in)
	}
}

// storeUpdate is for the updates that may queue an operation (they return a Created).
func storeUpdate[I any](f func(*models.Store, context.Context, *models.Actor, uint, *I) (*models.Created, error)) func(r *rc, id uint, v url.Values, fs []field) (*models.Created, error) {
	return func(r *rc, id uint, v url.Values, fs []field) (*models.Created, error) {
		in, err := decode[I](v, fs)
		if err != nil {
			return nil, err
		}
		return f(r.s, r.ctx, r.a, id, in)
	}
}

// storeSave is for the updates that return the object only.
func storeSave[I, O any](f func(*models.Store, context.Context, *models.Actor, uint, *I) (O, error)) func(r *rc, id uint, v url.Values, fs []field) (*models.Created, error) {
	return storeUpdate(func(s *models.Store, ctx context.Context, a *models.Actor, id uint, in *I) (*models.Created, error) {
		obj, err := f(s, ctx, a, id, in)
		if err != nil {
			return nil, err
		}
		return &models.Created{Object: obj}, nil
	})
}

// storeDelete is for the deletes that may queue an operation (they return a Created).
func storeDelete(f func(*models.Store, context.Context, *models.Actor, uint) (*models.Created, error)) func(r *rc, id uint) (*models.Created, error) {
	return func(r *rc, id uint) (*models.Created, error) { return f(r.s, r.ctx, r.a, id) }
}

// storeRemove is for the deletes that return an error only.
func storeRemove(f func(*models.Store, context.Context, *models.Actor, uint) error) func(r *rc, id uint) (*models.Created, error) {
	return func(r *rc, id uint) (*models.Created, error) { return nil, f(r.s, r.ctx, r.a, id) }
}
