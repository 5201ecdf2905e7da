package webui_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/webui"
)

// world is three clients: A with networks A1 and A2, B with B1, and C with no network,
// whose user gets A1 delegated. Every network holds one object of each kind, named after it.
type world struct {
	users   map[string]*models.Actor // "a" (admin of A), "b" (admin of B), "c" (user of C)
	objects map[string]map[string]uint
}

const userPassword = "a password of ten+"

func buildWorld(t *testing.T, p *panelT) *world {
	t.Helper()
	ctx := context.Background()
	s, admin := p.Store, p.Admin
	w := &world{users: map[string]*models.Actor{}, objects: map[string]map[string]uint{}}
	must := func(c *models.Created, err error) *models.Created {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	clients := map[string]uint{}
	for _, c := range []string{"A", "B", "C"} {
		cr := must(s.CreateClient(ctx, admin, &models.ClientInput{Name: models.Strp("Client " + c)}))
		clients[c] = cr.Object.(*models.Client).ID
	}
	for _, u := range []struct{ key, client, role string }{{"a", "A", models.RoleAdmin}, {"b", "B", models.RoleAdmin}, {"c", "C", models.RoleUser}} {
		role := u.role
		cr := must(s.CreateUser(ctx, admin, &models.UserInput{Email: models.Strp("user-" + u.key + "@example.com"), Password: models.Strp(userPassword),
			Role: &role, ClientID: models.Uintp(clients[u.client])}))
		w.users[u.key] = &models.Actor{User: *cr.Object.(*models.User)}
	}
	for i, n := range []struct{ name, client string }{{"A1", "A"}, {"A2", "A"}, {"B1", "B"}} {
		o := map[string]uint{}
		net := must(s.CreateNetwork(ctx, admin, &models.NetworkInput{Name: models.Strp("net" + n.name), ClientID: models.Uintp(clients[n.client])})).Object.(*models.Network)
		nid := models.Uintp(net.ID)
		o["net"] = net.ID
		o["tun"] = must(s.CreateTunnel(ctx, admin, &models.TunnelInput{NetworkID: nid, Alias: models.Strp("tun" + n.name), IP: models.Strp(fmt.Sprintf("192.0.2.%d", i+1))})).Object.(*models.Tunnel).ID
		o["srv"] = must(s.CreateServer(ctx, admin, &models.ServerInput{NetworkID: nid, Name: models.Strp("srv" + n.name), IP: models.Strp(fmt.Sprintf("198.51.100.%d", i+1)), Pool: models.Strp("tank")})).Object.(*models.Server).ID
		if err := models.RecordServerStats(ctx, s.DB, o["srv"], &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 100 << 30, PoolFree: 90 << 30}); err != nil {
			t.Fatal(err)
		}
		size := int64(10)
		o["vol"] = must(s.CreateVolume(ctx, admin, &models.VolumeInput{NetworkID: nid, Alias: models.Strp("vol" + n.name), SizeGiB: &size})).Object.(*models.Volume).ID
		o["grp"] = must(s.CreateGroup(ctx, admin, &models.GroupInput{NetworkID: nid, Name: models.Strp("grp" + n.name), VolumeID: models.Uintp(o["vol"])})).Object.(*models.Group).ID
		o["dev"] = must(s.CreateDevice(ctx, admin, &models.DeviceInput{NetworkID: nid, Name: models.Strp("dev" + n.name), MAC: models.Strp(fmt.Sprintf("52:54:00:00:00:%02x", i+1))})).Object.(*models.Device).ID
		vsize := int64(1)
		o["vd"] = must(s.CreateVDisk(ctx, admin, &models.VDiskInput{NetworkID: nid, Name: models.Strp("vd" + n.name), SizeGiB: &vsize, DeviceID: models.Uintp(o["dev"])})).Object.(*models.VDisk).ID
		o["ct"] = must(s.CreateCTemplate(ctx, admin, &models.CTemplateInput{NetworkID: nid, Name: models.Strp("ct" + n.name)})).Object.(*models.CTemplate).ID
		// As a checked upload leaves it (the storage lab tests the upload itself).
		if err := s.DB.Model(&models.CTemplate{}).Where("id = ?", o["ct"]).Updates(map[string]any{"state": models.StateReady, "version": 1}).Error; err != nil {
			t.Fatal(err)
		}
		o["ctr"] = must(s.CreateContainer(ctx, admin, &models.ContainerInput{NetworkID: nid, Name: models.Strp("ctr" + n.name), CTemplateID: models.Uintp(o["ct"])})).Object.(*models.Container).ID
		o["menu"] = must(s.CreateMenu(ctx, admin, &models.MenuInput{NetworkID: nid, Name: models.Strp("menu" + n.name)})).Object.(*models.MenuView).ID
		w.objects[n.name] = o
	}
	return w
}

var kinds = []struct{ key, path string }{{"net", "networks"}, {"tun", "tunnels"}, {"srv", "servers"}, {"vol", "volumes"}, {"grp", "groups"}, {"dev", "devices"}, {"menu", "menus"}, {"vd", "vdisks"}, {"ct", "ctemplates"}, {"ctr", "containers"}}

// checkSees logs in as a user and checks that every page shows the objects of exactly the
// given networks, and that the objects of the others answer 404 (page, edit form, post).
func checkSees(t *testing.T, p *panelT, b *browser, w *world, who, client string, visible ...string) {
	t.Helper()
	b.login("user-"+who+"@example.com", userPassword)
	vis := map[string]bool{}
	for _, n := range visible {
		vis[n] = true
	}
	pages := []string{"/", "/clients", "/users", "/networks", "/tunnels", "/servers", "/volumes", "/groups", "/devices", "/menus", "/vdisks", "/ctemplates", "/containers", "/operations"}
	for _, page := range pages {
		b.open(page)
		b.find("main h1")
		text := b.jsString(`return document.body.innerText`)
		for _, n := range []string{"A1", "A2", "B1"} {
			for _, k := range kinds {
				if page != "/"+k.path {
					continue
				}
				name := k.key + n
				if has := strings.Contains(text, name); has != vis[n] {
					b.screenshot("ownership-" + who + "-" + k.path)
					t.Fatalf("user %s on %s: shows %s = %v, want %v", who, page, name, has, vis[n])
				}
			}
			// No page names another network at all (operations, alerts, selects).
			if !vis[n] && strings.Contains(text, "net"+n) {
				t.Fatalf("user %s on %s: names net%s", who, page, n)
			}
		}
		for _, c := range []string{"A", "B", "C"} {
			if has := strings.Contains(text, "Client "+c); has && c != client && page == "/clients" {
				t.Fatalf("user %s sees Client %s", who, c)
			}
		}
		for _, u := range []string{"a", "b", "c"} {
			if page == "/users" && u != who && strings.Contains(text, "user-"+u+"@") {
				t.Fatalf("user %s sees user-%s", who, u)
			}
		}
	}
	b.open("/networks")
	b.find("main h1")
	b.both("ownership-" + who + "-networks")
	// Objects of invisible networks are 404, by page, edit form and form post alike.
	var sess string
	for _, c := range b.cookies() {
		if c.Name == "cd_session" {
			sess = c.Value
		}
	}
	b.open("/networks")
	csrf := b.jsString(`return document.querySelector('input[name=csrf]').value`)
	for _, n := range []string{"A1", "A2", "B1"} {
		if vis[n] {
			continue
		}
		for _, k := range kinds {
			id := w.objects[n][k.key]
			reqs := []struct{ method, path string }{
				{"GET", fmt.Sprintf("/%s/%d", k.path, id)},
				{"GET", fmt.Sprintf("/%s/%d/edit", k.path, id)},
				{"POST", fmt.Sprintf("/%s/%d", k.path, id)},
				{"POST", fmt.Sprintf("/%s/%d/delete", k.path, id)},
			}
			if k.path == "containers" {
				reqs = append(reqs, struct{ method, path string }{"POST", fmt.Sprintf("/containers/%d/rebase", id)})
			}
			for _, req := range reqs {
				if code := httpDo(t, p, req.method, req.path, sess, "csrf="+csrf+"&name=stolen"); code != http.StatusNotFound {
					t.Fatalf("user %s: %s %s = %d, want 404", who, req.method, req.path, code)
				}
			}
		}
	}
	b.open(fmt.Sprintf("/servers/%d", w.objects["B1"]["srv"]))
	if !vis["B1"] {
		if h := b.text("main h1"); h != "Not found" {
			t.Fatalf("user %s: another client's server page: %q", who, h)
		}
	}
	b.logout()
}

func httpDo(t *testing.T, p *panelT, method, path, session, form string) int {
	t.Helper()
	req, err := http.NewRequest(method, p.URL+path, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "cd_session", Value: session})
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestOwnership: a user of client A sees none of client B's objects on any page; a
// delegated ("pilot") user sees exactly the delegated network. On SQLite (the guide runs
// on PostgreSQL).
func TestOwnership(t *testing.T) {
	p := startPanel(t, "sqlite", webui.Options{})
	w := buildWorld(t, p)
	b := newBrowser(t, p.URL, outDir(t))

	// The admin of A delegates A1 to C's user with the pilot icon.
	b.login("user-a@example.com", userPassword)
	b.open("/networks")
	b.click(fmt.Sprintf("a[href='/networks/%d/delegations']:has(use[href='#i-pilot'])", w.objects["A1"]["net"]))
	b.checkLabels("delegations")
	b.fill("#f-user_id", fmt.Sprint(w.users["c"].ID))
	b.submit()
	if !strings.Contains(b.text("main"), fmt.Sprintf("user #%d", w.users["c"].ID)) {
		t.Fatalf("delegation not listed: %q", b.text("main"))
	}
	b.both("delegated")
	b.logout()

	checkSees(t, p, b, w, "a", "A", "A1", "A2")
	checkSees(t, p, b, w, "b", "B", "B1")
	checkSees(t, p, b, w, "c", "C", "A1")
}
