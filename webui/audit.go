package webui

import (
	"net/url"
	"strconv"

	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// auditData is the audit log page: its filter (a GET form, so a filtered view is a link
// to share) and one page of events.
type auditData struct {
	Filter   *formView
	Rows     []auditRow
	Total    int64
	PrevURL  string
	NextURL  string
	FilterOn bool
}

type auditRow struct {
	When, User, Action, Detail, IP string
	Object                         cell
	Network                        cell
}

// auditObjects are the object kinds the models record (the filter's choices).
var auditObjects = []string{"client", "user", "network", "tunnel", "server", "volume", "group", "version", "device", "menu", "operation", "token", "settings", "delegation"}

func (u *UI) audit(c *fiber.Ctx) error {
	r := u.rc(c)
	p := models.Page{Page: c.QueryInt("page", 1), PerPage: 50}.Normalize()
	filter := &formView{ID: "audit-", Action: "/audit", Submit: "Filter", Cancel: "/audit", Fields: []field{
		{Name: "network_id", Label: "Network", Type: "select", Value: c.Query("network_id"), Options: append([]option{{Value: "", Label: "All networks"}}, r.networkOptions()...)},
		{Name: "object", Label: "Object", Type: "select", Value: c.Query("object"), Options: objectOptions()},
		{Name: "object_id", Label: "Object id", Type: "number", Value: c.Query("object_id"), Inputmode: "numeric"},
		{Name: "action", Label: "Action", Type: "text", Value: c.Query("action"), Placeholder: "create, update, delete…"},
		{Name: "since", Label: "Since", Type: "date", Value: c.Query("since")},
		{Name: "until", Label: "Before", Type: "date", Value: c.Query("until")},
	}}
	d := &auditData{Filter: filter}
	f, err := models.AuditFilterFrom(func(k string) string { return c.Query(k) })
	if err != nil {
		return u.refuse(c, filter, nil, err, "audit", "Audit log", "audit", d)
	}
	events, total, err := u.store.ListAudit(r.ctx, r.a, p, f)
	if err != nil {
		return err
	}
	d.Total = total
	names := map[string]cell{} // "device 3" → its name and page, each looked up once
	for _, e := range events {
		row := auditRow{When: e.CreatedAt.UTC().Format("2006-01-02 15:04:05"), User: orDash(e.UserEmail), Action: e.Action, Detail: e.Detail, IP: e.IP,
			Object: cell{Text: e.Object + " " + strconv.FormatUint(uint64(e.ObjectID), 10)}}
		if e.ObjectID != 0 && objectPage[e.Object] {
			key := row.Object.Text
			if _, ok := names[key]; !ok {
				id := e.ObjectID
				n := r.objName(e.Object+"s", &id)
				if n.Text != "" && n.Text != "#"+utoa(id) {
					n.Text = e.Object + " " + n.Text
				} else {
					n.Text = key // gone since, or not a network's object: its id
				}
				n.Link = "/" + e.Object + "s/" + utoa(id)
				names[key] = n
			}
			row.Object = names[key]
		}
		if e.NetworkID != nil {
			row.Network = r.netCell(*e.NetworkID)
		} else {
			row.Network = cell{Text: "—"}
		}
		d.Rows = append(d.Rows, row)
	}
	q := url.Values{}
	for _, k := range []string{"network_id", "object", "object_id", "action", "since", "until"} {
		if v := c.Query(k); v != "" {
			q.Set(k, v)
			d.FilterOn = true
		}
	}
	if p.Page > 1 {
		q.Set("page", itoa(p.Page-1))
		d.PrevURL = "/audit?" + q.Encode()
	}
	if int64(p.Page*p.PerPage) < total {
		q.Set("page", itoa(p.Page+1))
		d.NextURL = "/audit?" + q.Encode()
	}
	return u.render(c, "audit", "Audit log", "audit", d)
}

// objectPage are the audited objects that have a page of their own.
var objectPage = map[string]bool{"client": true, "user": true, "network": true, "tunnel": true, "server": true, "volume": true, "group": true, "device": true, "menu": true, "operation": true}

func objectOptions() []option {
	opts := []option{{Value: "", Label: "Any object"}}
	for _, o := range auditObjects {
		opts = append(opts, option{Value: o, Label: o})
	}
	return opts
}
