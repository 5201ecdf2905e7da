package webui

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// opView is an operation as the pages show it: with its object's page and, when the
// Temporal Web UI is configured, its workflow there.
type opView struct {
	models.Operation
	ObjectURL   string
	WorkflowURL string
	Network     string
	Object      string // "volume New Volume 1"
	Done        bool
}

func (u *UI) workflowURL(op *models.Operation) string {
	if u.opts.TemporalUI == "" || op.WorkflowID == "" {
		return ""
	}
	p := fmt.Sprintf("%s/namespaces/%s/workflows/%s", trimSlash(u.opts.TemporalUI), url.PathEscape(u.opts.TemporalNamespace), url.PathEscape(op.WorkflowID))
	if op.RunID != "" {
		p += "/" + url.PathEscape(op.RunID) + "/history"
	}
	return p
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

func (u *UI) opView(r *rc, op *models.Operation) opView {
	oid := op.ObjectID
	v := opView{Operation: *op, WorkflowURL: u.workflowURL(op), ObjectURL: fmt.Sprintf("/%ss/%d", op.ObjectType, op.ObjectID), Done: op.Finished(),
		Object: op.ObjectType + " " + r.objName(op.ObjectType+"s", &oid).Text}
	if op.NetworkID != nil {
		v.Network = r.netName(*op.NetworkID)
	}
	return v
}

type dashboardData struct {
	Alerts   []models.Alert
	Networks int
	Ops      []opView
}

func (u *UI) dashboard(c *fiber.Ctx) error {
	r := u.rc(c)
	alerts, err := u.store.Alerts(r.ctx, r.a)
	if err != nil {
		return err
	}
	d := &dashboardData{Alerts: alerts, Networks: len(r.networks())}
	ops, _, err := u.store.ListOperations(r.ctx, r.a, models.Page{Page: 1, PerPage: 5})
	if err != nil {
		return err
	}
	for i := range ops {
		d.Ops = append(d.Ops, u.opView(r, &ops[i]))
	}
	return u.render(c, "dashboard", "Dashboard", "dashboard", d)
}

type opsData struct {
	Ops     []opView
	Page    int
	PrevURL string
	NextURL string
	// One operation's page: what it waits for (Temporal's view) and what may be done.
	Wait      *models.OperationWait
	CanCancel bool
	CanRetry  bool
	// A bulk action's outcome per device (models.Operation.Result).
	Result []models.BulkOutcome
	// Rollout is a rollout operation's rollout, steered by its own buttons (pause, resume, abort).
	Rollout *models.Rollout
}

func (u *UI) operations(c *fiber.Ctx) error {
	r := u.rc(c)
	p := models.Page{Page: c.QueryInt("page", 1), PerPage: 50}.Normalize()
	ops, total, err := u.store.ListOperations(r.ctx, r.a, p)
	if err != nil {
		return err
	}
	d := &opsData{Page: p.Page}
	for i := range ops {
		d.Ops = append(d.Ops, u.opView(r, &ops[i]))
	}
	if p.Page > 1 {
		d.PrevURL = "/operations?page=" + itoa(p.Page-1)
	}
	if int64(p.Page*p.PerPage) < total {
		d.NextURL = "/operations?page=" + itoa(p.Page+1)
	}
	return u.render(c, "operations", "Operations", "operations", d)
}

func (u *UI) operation(c *fiber.Ctx, r *rc, id uint) error {
	op, wait, err := u.store.OperationStatus(r.ctx, r.a, id)
	if err != nil {
		return err
	}
	d := &opsData{Ops: []opView{u.opView(r, op)}, Wait: wait, Result: op.Result,
		CanCancel: !op.Finished() && (op.ObjectType != "device" || models.IsBulk(op.Kind)), CanRetry: op.State == models.OpFailed || op.State == models.OpCancelled}
	if op.Kind == models.OpGroupRollout {
		if d.Rollout, err = u.store.OperationRollout(r.ctx, r.a, op.ID); err != nil {
			return err
		}
		d.CanCancel = false // abort says what it does
	}
	return u.render(c, "operations", fmt.Sprintf("Operation %d", id), "operations", d)
}

// controlRollout pauses, resumes or aborts a rollout (POST, then its operation's page).
func (u *UI) controlRollout(signal string) func(c *fiber.Ctx, r *rc, id uint) error {
	return func(c *fiber.Ctx, r *rc, id uint) error {
		ro, err := u.store.ControlRollout(r.ctx, r.a, id, signal)
		if err != nil {
			return err
		}
		return c.Redirect(fmt.Sprintf("/operations/%d?notice=rollout-%s", ro.OperationID, signal), fiber.StatusSeeOther)
	}
}

// controlOperation cancels or retries an operation (POST, then the operation's page:
// Post/Redirect/Get, so a reload never sends it twice).
func (u *UI) controlOperation(retry bool) func(c *fiber.Ctx, r *rc, id uint) error {
	return func(c *fiber.Ctx, r *rc, id uint) error {
		if retry {
			op, err := u.store.RetryOperation(r.ctx, r.a, id)
			if err != nil {
				return err
			}
			return c.Redirect(fmt.Sprintf("/operations/%d?notice=queued", op.ID), fiber.StatusSeeOther)
		}
		if _, err := u.store.CancelOperation(r.ctx, r.a, id); err != nil {
			return err
		}
		return c.Redirect(fmt.Sprintf("/operations/%d?notice=cancelling", id), fiber.StatusSeeOther)
	}
}

func settingsForm(st *models.Settings) *formView {
	tls := []option{}
	for _, m := range models.SMTPTLSModes {
		tls = append(tls, option{Value: m, Label: m})
	}
	pwHelp := "Not set."
	if st.SMTPPassword != "" {
		pwHelp = "Set; leave empty to keep it."
	}
	return &formView{Heading: "Panel Settings", Action: "/settings", Submit: "Save", Fields: []field{
		{Name: "panel_hostname", Label: "Panel host name", Type: "text", Value: st.PanelHostname, Help: "The name devices, agents and install.sh use to reach the panel."},
		{Name: "smtp_host", Label: "SMTP host", Type: "text", Value: st.SMTPHost, Placeholder: "mail.example.com"},
		{Name: "smtp_port", Label: "SMTP port", Type: "number", Value: itoa(st.SMTPPort), Inputmode: "numeric"},
		{Name: "smtp_tls", Label: "SMTP security", Type: "select", Value: st.SMTPTLS, Options: tls},
		{Name: "smtp_user", Label: "SMTP user", Type: "text", Value: st.SMTPUser, Autocomplete: "off"},
		{Name: "smtp_password", Label: "SMTP password", Type: "password", OmitEmpty: true, Autocomplete: "new-password", Help: pwHelp},
		{Name: "smtp_from", Label: "Sender address", Type: "email", Value: st.SMTPFrom, Placeholder: "panel@example.com", Help: "Mail is sent when this and the host are set."},
	}}
}

func (u *UI) settings(c *fiber.Ctx) error {
	r := u.rc(c)
	st, err := u.store.GetSettings(r.ctx, r.a)
	if err != nil {
		return err
	}
	return u.render(c, "settings", "Panel Settings", "settings", settingsForm(st))
}

func (u *UI) saveSettings(c *fiber.Ctx) error {
	r := u.rc(c)
	st, err := u.store.GetSettings(r.ctx, r.a)
	if err != nil {
		return err
	}
	f := settingsForm(st)
	v := formValues(c)
	in, err := decode[models.SettingsInput](v, f.Fields)
	if err == nil {
		_, err = u.store.UpdateSettings(r.ctx, r.a, in)
	}
	if err != nil {
		return u.refuse(c, f, v, err, "settings", "Panel Settings", "settings", f)
	}
	return c.Redirect("/settings?notice=saved", fiber.StatusSeeOther)
}

type delegationsData struct {
	Network models.Network
	Rows    []delegationRow
	Form    *formView
}

type delegationRow struct {
	UserID uint
	Label  string
}

func (u *UI) delegationsData(r *rc, id uint) (*delegationsData, error) {
	n, err := u.store.GetNetwork(r.ctx, r.a, id)
	if err != nil {
		return nil, err
	}
	ds, err := u.store.ListDelegations(r.ctx, r.a, id)
	if err != nil {
		return nil, err
	}
	d := &delegationsData{Network: *n}
	for _, dl := range ds {
		label := "user #" + utoa(dl.UserID)
		if usr, err := u.store.GetUser(r.ctx, r.a, dl.UserID); err == nil {
			label = usr.Email
		}
		d.Rows = append(d.Rows, delegationRow{UserID: dl.UserID, Label: label})
	}
	userField := field{Name: "user_id", Label: "User id", Type: "number", Required: true, Inputmode: "numeric", Help: "The id of a non-superadmin user of another client (they tell you theirs from their account page)."}
	if r.a.SuperAdmin() {
		opts := []option{{Value: "", Label: "— choose a user —"}}
		users, _, err := u.store.ListUsers(r.ctx, r.a, all)
		if err == nil {
			for _, usr := range users {
				if usr.ClientID != n.ClientID && !usr.SuperAdmin() {
					opts = append(opts, option{Value: utoa(usr.ID), Label: usr.Email})
				}
			}
		}
		userField = field{Name: "user_id", Label: "User", Type: "select", Required: true, Options: opts}
	}
	d.Form = &formView{Action: fmt.Sprintf("/networks/%d/delegations", id), Submit: "Delegate", Fields: []field{userField}}
	return d, nil
}

func (u *UI) delegations(c *fiber.Ctx, r *rc, id uint) error {
	d, err := u.delegationsData(r, id)
	if err != nil {
		return err
	}
	return u.render(c, "delegations", "Delegations of "+d.Network.Name, "networks", d)
}

func (u *UI) delegate(c *fiber.Ctx, r *rc, id uint) error {
	d, err := u.delegationsData(r, id)
	if err != nil {
		return err
	}
	v := formValues(c)
	in, err := decode[models.DelegationInput](v, nil)
	if err == nil {
		_, err = u.store.Delegate(r.ctx, r.a, id, in)
	}
	if err != nil {
		return u.refuse(c, d.Form, v, err, "delegations", "Delegations of "+d.Network.Name, "networks", d)
	}
	return c.Redirect(fmt.Sprintf("/networks/%d/delegations?notice=delegated", id), fiber.StatusSeeOther)
}

func (u *UI) undelegate(c *fiber.Ctx, r *rc, id uint) error {
	uid, err := strconv.ParseUint(c.Params("user"), 10, 32)
	if err != nil {
		return models.NotFound("delegation")
	}
	if err := u.store.Undelegate(r.ctx, r.a, id, uint(uid)); err != nil {
		return err
	}
	return c.Redirect(fmt.Sprintf("/networks/%d/delegations?notice=undelegated", id), fiber.StatusSeeOther)
}

func (u *UI) lockDevice(lock bool) func(c *fiber.Ctx, r *rc, id uint) error {
	return func(c *fiber.Ctx, r *rc, id uint) error {
		res, err := u.store.UpdateDevice(r.ctx, r.a, id, &models.DeviceInput{Locked: &lock})
		if err != nil {
			return err
		}
		notice := "unlocked"
		switch {
		case res.Warning != "":
			notice = "lockqueued"
		case lock:
			notice = "locked"
		}
		// Back to the list when the button was on the list, else to the device's page.
		back := fmt.Sprintf("/devices/%d", id)
		if ref, err := url.Parse(c.Get(fiber.HeaderReferer)); err == nil && ref.Path == "/devices" {
			back = "/devices"
		}
		return c.Redirect(back+"?notice="+notice, fiber.StatusSeeOther)
	}
}

// containerAction queues start, stop, restart or kill of a container and shows its page,
// where the operation's progress streams.
func (u *UI) containerAction(action string) func(c *fiber.Ctx, r *rc, id uint) error {
	return func(c *fiber.Ctx, r *rc, id uint) error {
		if _, err := u.store.ContainerAction(r.ctx, r.a, id, action); err != nil {
			return err
		}
		return c.Redirect(fmt.Sprintf("/containers/%d?notice=queued", id), fiber.StatusSeeOther)
	}
}

// containerRebase queues the move of a container onto its template's newest version and
// shows its page.
func (u *UI) containerRebase(c *fiber.Ctx, r *rc, id uint) error {
	if _, err := u.store.RebaseContainer(r.ctx, r.a, id, &models.ContainerRebaseInput{}); err != nil {
		return err
	}
	return c.Redirect(fmt.Sprintf("/containers/%d?notice=queued", id), fiber.StatusSeeOther)
}

func (u *UI) rotateKey(c *fiber.Ctx, r *rc, id uint) error {
	key, err := u.store.RotateServerKey(r.ctx, r.a, id)
	if err != nil {
		return err
	}
	return u.redirectWithSecret(c, fmt.Sprintf("/servers/%d", id), "", key)
}

func resourceNamed(name string) *resource {
	for _, res := range resources() {
		if res.Name == name {
			return res
		}
	}
	panic("no resource " + name)
}

// groupForm handles one of a group page's small forms (publish, assign, maintenance): the
// models call gets the decoded form; a refusal shows the form again with its error.
func (u *UI) groupForm(formID string, do func(r *rc, id uint, v url.Values) error) func(c *fiber.Ctx) error {
	return u.objectForm("groups", formID, do)
}

// volumeForm handles a volume page's maintenance form, as groupForm does a group's.
func (u *UI) volumeForm(formID string, do func(r *rc, id uint, v url.Values) error) func(c *fiber.Ctx) error {
	return u.objectForm("volumes", formID, do)
}

// objectForm handles one small form on the page of an object of resource res.
func (u *UI) objectForm(res, formID string, do func(r *rc, id uint, v url.Values) error) func(c *fiber.Ctx) error {
	return u.withID(func(c *fiber.Ctx, r *rc, id uint) error {
		v := formValues(c)
		if err := do(r, id, v); err != nil {
			return u.show(c, resourceNamed(res), id, "", &formErr{ID: formID, Values: v, Err: err})
		}
		return c.Redirect(fmt.Sprintf("/%s/%d?notice=%s", res, id, strings.TrimSuffix(formID, "-")), fiber.StatusSeeOther)
	})
}

// publish queues the group's next version (models.Store.PublishGroup); its progress shows on the group's page.
func (u *UI) publish(r *rc, id uint, v url.Values) error {
	in, err := decode[models.PublishInput](v, []field{{Name: "note", OmitEmpty: true}})
	if err == nil {
		_, err = u.store.PublishGroup(r.ctx, r.a, id, in)
	}
	return err
}

// promote makes a slave its network's master (models.Store.PromoteServer); a refusal
// names what the server lacks.
func (u *UI) promote(r *rc, id uint, _ url.Values) error {
	_, err := u.store.PromoteServer(r.ctx, r.a, id)
	return err
}

// assign pins the version the group's devices boot (models.Store.AssignVersion; 0 follows the newest).
func (u *UI) assign(r *rc, id uint, v url.Values) error {
	in, err := decode[models.AssignInput](v, nil)
	if err == nil {
		_, err = u.store.AssignVersion(r.ctx, r.a, id, in)
	}
	return err
}

// maintenance turns a group's or a volume's maintenance on for a device, or off, through
// the store's set (models.Store.SetMaintenance, SetVolumeMaintenance).
func maintenance(set func(context.Context, *models.Actor, uint, bool, *models.MaintenanceInput) (*models.Created, error), on bool) func(r *rc, id uint, v url.Values) error {
	return func(r *rc, id uint, v url.Values) error {
		in, err := decode[models.MaintenanceInput](v, nil)
		if err == nil {
			_, err = set(r.ctx, r.a, id, on, in)
		}
		return err
	}
}
