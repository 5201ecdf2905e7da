package webui

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"

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
	Note    string
	Columns []string
	Rows    [][]cell
	Actions []action
}

// resource describes one list of the guide (Clients, Networks, Servers, ...): its columns,
// its form and the models.Store calls behind list, show, create, update and delete.
type resource struct {
	Name     string // path segment and API collection name
	Title    string
	Singular string
	Icon     string
	EditIcon string
	Object   string // operations' object_type
	Submit   string // label of the create button (the guide says "Add" or "Save")
	Filter   bool   // list can be filtered by network
	Help     string

	canCreate func(a *models.Actor) bool
	canChange func(r *rc, obj any) bool // hides Edit and Delete the models would refuse anyway
	columns   []string
	list      func(r *rc, p models.Page, nid uint) ([]any, int64, error)
	get       func(r *rc, id uint) (any, error)
	id        func(obj any) uint
	label     func(obj any) string
	row       func(r *rc, obj any) []cell
	actions   func(r *rc, obj any) []action
	fields    func(r *rc, obj any) []field // obj is nil for a new one
	create    func(r *rc, v url.Values, fs []field) (*models.Created, error)
	update    func(r *rc, id uint, v url.Values, fs []field) (*models.Created, error)
	del       func(r *rc, id uint) (*models.Created, error)
	details   func(r *rc, obj any) []detail
	sections  func(r *rc, obj any) []section
	forms     func(r *rc, obj any) []*formView // small forms on the object's page
}

type listView struct {
	Res       *resource
	Columns   []string
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
	r.get(base, u.h(func(c *fiber.Ctx) error { return u.list(c, res) }))
	r.get(base+"/new", u.h(func(c *fiber.Ctx) error { return u.newForm(c, res) }))
	r.post(base, u.h(func(c *fiber.Ctx) error { return u.create(c, res) }))
	r.get(base+"/:id", u.h(func(c *fiber.Ctx) error { return u.show(c, res, 0, "", nil) }))
	r.get(base+"/:id/edit", u.h(func(c *fiber.Ctx) error { return u.editForm(c, res) }))
	r.post(base+"/:id", u.h(func(c *fiber.Ctx) error { return u.update(c, res) }))
	r.post(base+"/:id/delete", u.h(func(c *fiber.Ctx) error { return u.delete(c, res) }))
}

func idParam(c *fiber.Ctx) (uint, error) {
	n, err := strconv.ParseUint(c.Params("id"), 10, 32)
	if err != nil || n == 0 {
		return 0, models.NotFound("object")
	}
	return uint(n), nil
}

func (u *UI) rowActions(r *rc, res *resource, obj any) []action {
	id := res.id(obj)
	acts := []action{}
	if res.actions != nil {
		acts = append(acts, res.actions(r, obj)...)
	}
	if res.canChange != nil && !res.canChange(r, obj) {
		return acts
	}
	if res.update != nil {
		icon := res.EditIcon
		if icon == "" {
			icon = "edit"
		}
		acts = append(acts, action{Label: "Edit " + res.label(obj), Icon: icon, Href: fmt.Sprintf("/%s/%d/edit", res.Name, id)})
	}
	if res.del != nil {
		acts = append(acts, action{Label: "Delete " + res.label(obj), Icon: "trash", Post: fmt.Sprintf("/%s/%d/delete", res.Name, id),
			Confirm: fmt.Sprintf("Delete %s %q?", res.Singular, res.label(obj)), Class: "danger"})
	}
	return acts
}

func (u *UI) list(c *fiber.Ctx, res *resource) error {
	r := u.rc(c)
	p := models.Page{Page: c.QueryInt("page", 1), PerPage: 50}.Normalize()
	var nid uint
	if res.Filter {
		if n, err := strconv.ParseUint(c.Query("network_id"), 10, 32); err == nil {
			nid = uint(n)
		}
	}
	items, total, err := res.list(r, p, nid)
	if err != nil {
		return err
	}
	v := &listView{Res: res, Columns: res.columns, Total: total, Page: p.Page, CanCreate: res.create != nil && (res.canCreate == nil || res.canCreate(r.a)), NewURL: "/" + res.Name + "/new"}
	v.Pages = int((total + int64(p.PerPage) - 1) / int64(p.PerPage))
	q := url.Values{}
	if nid != 0 {
		q.Set("network_id", utoa(nid))
		v.NetworkID = utoa(nid)
		v.NewURL += "?network_id=" + utoa(nid)
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
	for _, obj := range items {
		v.Rows = append(v.Rows, listRow{ID: res.id(obj), Label: res.label(obj), Cells: res.row(r, obj), Actions: u.rowActions(r, res, obj)})
	}
	return u.render(c, "list", res.Title, res.Name, v)
}

func (u *UI) formFor(r *rc, res *resource, obj any) *formView {
	f := &formView{Fields: res.fields(r, obj)}
	if obj == nil {
		f.Heading, f.Action, f.Submit, f.Cancel = "New "+res.Singular, "/"+res.Name, res.Submit, "/"+res.Name
	} else {
		id := res.id(obj)
		f.Heading = "Edit " + res.Singular + " " + res.label(obj)
		f.Action, f.Submit, f.Cancel = fmt.Sprintf("/%s/%d", res.Name, id), "Save", fmt.Sprintf("/%s/%d", res.Name, id)
	}
	return f
}

func (u *UI) newForm(c *fiber.Ctx, res *resource) error {
	r := u.rc(c)
	return u.render(c, "form", "New "+res.Singular, res.Name, u.formFor(r, res, nil))
}

func (u *UI) editForm(c *fiber.Ctx, res *resource) error {
	r := u.rc(c)
	id, err := idParam(c)
	if err != nil {
		return err
	}
	obj, err := res.get(r, id)
	if err != nil {
		return err
	}
	return u.render(c, "form", "Edit "+res.Singular, res.Name, u.formFor(r, res, obj))
}

// refused shows the form again with what was typed and the models' error on its field.
func (u *UI) refused(c *fiber.Ctx, res *resource, f *formView, v url.Values, err error) error {
	code, body := api.Status(err)
	if code >= 500 {
		return err
	}
	f.fill(v)
	f.setError(body)
	return u.render(c.Status(code), "form", f.Heading, res.Name, f)
}

func (u *UI) create(c *fiber.Ctx, res *resource) error {
	r := u.rc(c)
	f := u.formFor(r, res, nil)
	v := formValues(c)
	created, err := res.create(r, v, f.Fields)
	if err != nil {
		return u.refused(c, res, f, v, err)
	}
	id := res.id(created.Object)
	if created.Secret != "" {
		// The key exists nowhere else in clear: show the object's page with it, once.
		return u.show(c.Status(fiber.StatusCreated), res, id, created.Secret, nil)
	}
	notice := "created"
	if created.Operation != nil {
		notice = "queued"
	}
	return c.Redirect(fmt.Sprintf("/%s/%d?notice=%s", res.Name, id, notice), fiber.StatusSeeOther)
}

func (u *UI) update(c *fiber.Ctx, res *resource) error {
	r := u.rc(c)
	id, err := idParam(c)
	if err != nil {
		return err
	}
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

func (u *UI) delete(c *fiber.Ctx, res *resource) error {
	r := u.rc(c)
	id, err := idParam(c)
	if err != nil {
		return err
	}
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

// show renders an object's page: id 0 reads it from the path; secret is a key shown once;
// fe puts a refused small form's error (and what was typed) back on the page.
func (u *UI) show(c *fiber.Ctx, res *resource, id uint, secret string, fe *formErr) error {
	r := u.rc(c)
	if id == 0 {
		var err error
		if id, err = idParam(c); err != nil {
			return err
		}
	}
	obj, err := res.get(r, id)
	if err != nil {
		return err
	}
	v := &showView{Res: res, ID: id, Label: res.label(obj), Secret: secret, Actions: u.rowActions(r, res, obj)}
	if res.details != nil {
		v.Details = res.details(r, obj)
	}
	if res.sections != nil {
		v.Sections = res.sections(r, obj)
	}
	if res.forms != nil {
		v.Forms = res.forms(r, obj)
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

// anys turns a list of values into pointers behind any, for the generic tables.
func anys[T any](xs []T, total int64, err error) ([]any, int64, error) {
	out := make([]any, len(xs))
	for i := range xs {
		out[i] = &xs[i]
	}
	return out, total, err
}

func owned[T any](what string) (func(r *rc, p models.Page, nid uint) ([]any, int64, error), func(r *rc, id uint) (any, error)) {
	return func(r *rc, p models.Page, nid uint) ([]any, int64, error) {
			return anys(models.ListOwned[T](r.ctx, r.s, r.a, p, nid))
		}, func(r *rc, id uint) (any, error) {
			return models.GetOwned[T](r.ctx, r.s, r.a, id, what)
		}
}

func created(obj any, err error) (*models.Created, error) {
	if err != nil {
		return nil, err
	}
	return &models.Created{Object: obj}, nil
}

func deleted(err error) (*models.Created, error) { return nil, err }
