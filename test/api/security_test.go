package api_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
)

const password = "correct horse battery"

// TestSuperAdminTakeover: an admin of the first client (where super-admins live) can see a
// super-admin but cannot change its password, e-mail or role, nor delete it; the last
// super-admin can never be demoted or deleted, also when two super-admins demote each
// other at once.
func TestSuperAdminTakeover(t *testing.T) {
	for _, driver := range harness.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			p := startPanel(t, driver)
			var root models.User
			p.DB.Where("role = ?", models.RoleSuperAdmin).Take(&root)
			admin := p.must(201, p.Admin, "POST", "/api/v0.9.2/users.json", map[string]any{"email": "ca@example.com", "password": password, "role": "admin"})
			ca := harness.Token(t, p.DB, uint(id(admin)))
			path := fmt.Sprintf("/api/v0.9.2/users/%d.json", root.ID)
			p.must(200, ca, "GET", path, nil)
			for _, body := range []map[string]any{
				{"password": "the attacker's password"}, {"email": "ca+root@example.com"}, {"role": "user"}, {"role": "admin"}, {"name": "x"},
			} {
				for _, verb := range []string{"PATCH", "PUT"} {
					p.must(403, ca, verb, path, body)
				}
			}
			p.must(403, ca, "DELETE", path, nil)
			var after models.User
			p.DB.Take(&after, root.ID)
			if after.PasswordHash != root.PasswordHash || after.Email != root.Email || after.Role != models.RoleSuperAdmin || after.Name != root.Name {
				t.Fatalf("a client admin changed the super-admin: %+v", after)
			}
			// The client admin still manages its client's other users.
			u := p.must(201, ca, "POST", "/api/v0.9.2/users.json", map[string]any{"email": "u@example.com", "password": password})
			p.must(200, ca, "PATCH", fmt.Sprintf("/api/v0.9.2/users/%d.json", id(u)), map[string]any{"role": "admin"})
			p.must(204, ca, "DELETE", fmt.Sprintf("/api/v0.9.2/users/%d.json", id(u)), nil)

			// The last super-admin: a super-admin whose token was authenticated before it was
			// itself demoted still cannot demote or delete the last one.
			ctx := context.Background()
			stale := &models.Actor{User: models.User{ID: 9999, ClientID: root.ClientID, Role: models.RoleSuperAdmin}}
			if _, err := p.Store.UpdateUser(ctx, stale, root.ID, &models.UserInput{Role: models.Strp(models.RoleAdmin)}); err == nil {
				t.Fatal("the last super-admin was demoted")
			}
			if err := p.Store.DeleteUser(ctx, stale, root.ID); err == nil {
				t.Fatal("the last super-admin was deleted")
			}
			// Two super-admins demoting each other at once leave one.
			for round := range 5 {
				second := p.must(201, p.Admin, "POST", "/api/v0.9.2/users.json", map[string]any{
					"email": fmt.Sprintf("root%d@example.com", round), "password": password, "role": "superadmin"})
				sa := harness.Token(t, p.DB, uint(id(second)))
				var wg sync.WaitGroup
				codes := make([]int, 2)
				for i, c := range []struct {
					auth string
					whom int
				}{{p.Admin, id(second)}, {sa, int(root.ID)}} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						codes[i], _, _ = p.do(c.auth, "PATCH", fmt.Sprintf("/api/v0.9.2/users/%d.json", c.whom), map[string]any{"role": "admin"})
					}()
				}
				wg.Wait()
				var supers int64
				p.DB.Model(&models.User{}).Where("role = ?", models.RoleSuperAdmin).Count(&supers)
				if supers < 1 {
					t.Fatalf("round %d: no super-admin left (statuses %v)", round, codes)
				}
				// Put root back as the one super-admin for the next round.
				p.DB.Model(&models.User{}).Where("id = ?", root.ID).Update("role", models.RoleSuperAdmin)
				p.DB.Model(&models.User{}).Where("id = ?", id(second)).Update("role", models.RoleAdmin)
			}
		})
	}
}

// network creates a network with a tunnel and a master server (through the API) and returns its id.
func (p *panelT) network(auth string) int {
	p.t.Helper()
	n := id(p.must(201, auth, "POST", "/api/v0.9.2/networks.json", map[string]any{"Name": "N", "Client": 1}))
	p.must(201, auth, "POST", "/api/v0.9.2/tunnels.json", map[string]any{"Alias": "t", "network": n, "IP": "4.2.2.1"})
	p.reported(p.must(201, auth, "POST", "/api/v0.9.2/servers.json", map[string]any{"Name": "m", "network": n, "IP": "192.168.1.10", "Pool": "tank"}))
	return n
}

// volume creates a 1 GiB volume in a network, marks it ready and returns its id.
func (p *panelT) volume(auth string, network int) int {
	p.t.Helper()
	return p.ready(p.must(202, auth, "POST", "/api/v0.9.2/volumes.json", map[string]any{"network": network, "Alias": "v", "vol_size": 1}), &models.Volume{})
}

// TestRepeatedKeys: a key given twice, in any spelling, is a 422 naming the field, and
// nothing is written (a map decode kept the last value: {"vol_size": 1048577, "vol_size": 5}
// was a 202 for 5 GiB).
func TestRepeatedKeys(t *testing.T) {
	for _, driver := range harness.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			p := startPanel(t, driver)
			a := p.Admin
			n := p.network(a)
			vol := p.volume(a, n)
			var ops0 int64
			p.DB.Model(&models.Operation{}).Count(&ops0)
			for _, c := range []struct {
				method, path, body, field string
			}{
				{"POST", "/api/v0.9.2/clients.json", `{"Name": "a", "Name": "b"}`, "name"},
				{"POST", "/api/v0.9.2/volumes.json", fmt.Sprintf(`{"network": %d, "Alias": "w", "vol_size": 1048577, "vol_size": 5}`, n), "vol_size"},
				{"POST", "/api/v0.9.2/volumes.json", fmt.Sprintf(`{"network": %d, "Alias": "w", "vol_size": 5, "VOL_SIZE": 6}`, n), "vol_size"},
				{"POST", "/api/v0.9.2/volumes.json", fmt.Sprintf(`{"network": %d, "network_id": %d, "Alias": "w", "vol_size": 5}`, n, n), "network_id"},
				{"PATCH", fmt.Sprintf("/api/v0.9.2/volumes/%d.json", vol), `{"vol_size": 2, "vol_size": 3}`, "vol_size"},
				{"POST", "/api/v0.9.2/menus.json", fmt.Sprintf(`{"network": %d, "name": "m", "items": [{"type": "local", "label": "a", "Label": "b"}]}`, n), "items"},
				{"POST", "/api/v0.9.2/users.json", `{"email": "x@example.com", "password": "correct horse battery", "role": "user", "Role": "admin"}`, "role"},
			} {
				code, v, _ := p.do(a, c.method, c.path, c.body)
				if m, _ := v.(map[string]any); code != 422 || m["field"] != c.field {
					t.Errorf("%s %s %s: %d %v, want 422 naming %s", c.method, c.path, c.body, code, v, c.field)
				}
			}
			var clients, volumes, menus, users, ops int64
			p.DB.Model(&models.Client{}).Count(&clients)
			p.DB.Model(&models.Volume{}).Count(&volumes)
			p.DB.Model(&models.Menu{}).Count(&menus)
			p.DB.Model(&models.User{}).Count(&users)
			p.DB.Model(&models.Operation{}).Count(&ops)
			if clients != 1 || volumes != 1 || menus != 0 || users != 1 || ops != ops0 {
				t.Fatalf("refused requests wrote rows: %d clients, %d volumes, %d menus, %d users, %d operations (was %d)", clients, volumes, menus, users, ops, ops0)
			}
		})
	}
}

// TestPasswordChange: through the API as on the dashboard, users changing their own
// password give the current one, and the change ends their other dashboard sessions
// (the one that made it stays); an admin's reset ends all of them.
func TestPasswordChange(t *testing.T) {
	for _, driver := range harness.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			p := startPanel(t, driver)
			ctx := context.Background()
			u := p.must(201, p.Admin, "POST", "/api/v0.9.2/users.json", map[string]any{"email": "u@example.com", "password": password})
			uid := uint(id(u))
			ut := harness.Token(t, p.DB, uid)
			path := fmt.Sprintf("/api/v0.9.2/users/%d.json", uid)
			sessions := func() []string {
				t.Helper()
				var out []string
				for range 2 {
					secret, _, err := models.CreateSession(ctx, p.DB, uid, "192.0.2.1")
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, secret)
				}
				return out
			}
			alive := func(secret string) bool {
				_, _, err := models.AuthenticateSession(ctx, p.DB, secret)
				return err == nil
			}
			hashOf := func() string {
				var row models.User
				p.DB.Take(&row, uid)
				return row.PasswordHash
			}
			before := hashOf()
			ss := sessions()
			for _, body := range []map[string]any{
				{"password": "a new password 1"},
				{"password": "a new password 1", "current_password": "not the password"},
			} {
				code, v, _ := p.do(ut, "PATCH", path, body)
				if m, _ := v.(map[string]any); code != 422 || m["field"] != "current_password" {
					t.Fatalf("PATCH %v: %d %v, want 422 naming current_password", body, code, v)
				}
			}
			if hashOf() != before || !alive(ss[0]) || !alive(ss[1]) {
				t.Fatal("a refused password change changed the password or ended sessions")
			}
			// With a token: the current password, and every session ends.
			p.must(200, ut, "PATCH", path, map[string]any{"password": "a new password 1", "current_password": password})
			if alive(ss[0]) || alive(ss[1]) {
				t.Fatal("a password change through the API kept the other sessions")
			}
			if _, err := models.Login(ctx, p.DB, "u@example.com", "a new password 1", "192.0.2.9"); err != nil {
				t.Fatalf("login with the new password: %v", err)
			}
			// With a session cookie (and its CSRF header): that session stays, the other ends.
			ss = sessions()
			_, s, err := models.AuthenticateSession(ctx, p.DB, ss[0])
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest("PATCH", p.URL+path, strings.NewReader(`{"password": "a new password 2", "current_password": "a new password 1"}`))
			req.AddCookie(&http.Cookie{Name: "cd_session", Value: ss[0]})
			req.Header.Set("X-CSRF-Token", s.CSRF)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || !alive(ss[0]) || alive(ss[1]) {
				t.Fatalf("change with a session: %d, that session alive %v, the other alive %v", resp.StatusCode, alive(ss[0]), alive(ss[1]))
			}
			// An admin resets without the current password and ends every session of the user.
			ss = sessions()
			p.must(200, p.Admin, "PATCH", path, map[string]any{"password": "reset by the admin"})
			if alive(ss[0]) || alive(ss[1]) {
				t.Fatal("an admin's reset kept the user's sessions")
			}
		})
	}
}

// TestResizeOneAtATime: a resize while another resize or the delete of the volume is
// queued is a 409 naming vol_size, so "cannot shrink" is always checked against the size
// the last resize left; concurrent resizes queue one operation, and none beside a delete.
func TestResizeOneAtATime(t *testing.T) {
	for _, driver := range harness.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			p := startPanel(t, driver)
			a := p.Admin
			n := p.network(a)
			vol := p.volume(a, n)
			path := fmt.Sprintf("/api/v0.9.2/volumes/%d.json", vol)
			finish := func(opID int, size int64) {
				t.Helper()
				if err := models.FinishOperation(context.Background(), p.DB, models.Outcome{WorkflowProgress: models.WorkflowProgress{OperationID: uint(opID)}, VolumeSizeGiB: size}); err != nil {
					t.Fatal(err)
				}
			}
			conflict := func(body map[string]any) {
				t.Helper()
				code, v, _ := p.do(a, "PATCH", path, body)
				if m, _ := v.(map[string]any); code != 409 || m["field"] != "vol_size" {
					t.Fatalf("PATCH %v: %d %v, want 409 naming vol_size", body, code, v)
				}
			}
			grow := p.must(202, a, "PATCH", path, map[string]any{"vol_size": 5})
			conflict(map[string]any{"vol_size": 3}) // a shrink from the 5 GiB under way
			conflict(map[string]any{"vol_size": 8})
			p.must(200, a, "PATCH", path, map[string]any{"alias": "renamed"}) // a rename is not a resize
			finish(id(grow["operation"].(map[string]any)), 5)
			p.must(422, a, "PATCH", path, map[string]any{"vol_size": 3})
			finish(id(p.must(202, a, "PATCH", path, map[string]any{"vol_size": 6})["operation"].(map[string]any)), 6)

			unfinished := func(kind string) []models.Operation {
				var ops []models.Operation
				p.DB.Where("object_type = 'volume' AND object_id = ? AND kind = ? AND state IN ?", vol, kind, []string{models.OpQueued, models.OpRunning}).Find(&ops)
				return ops
			}
			// Ten concurrent resizes, and a delete among them.
			var wg sync.WaitGroup
			codes := make([]int, 11)
			for i := range codes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if i == 5 {
						codes[i], _, _ = p.do(a, "DELETE", path, nil)
						return
					}
					codes[i], _, _ = p.do(a, "PATCH", path, map[string]any{"vol_size": 10 + i})
				}()
			}
			wg.Wait()
			resizes, deletes := unfinished(models.OpVolumeResize), unfinished(models.OpVolumeDelete)
			if len(resizes) > 1 || len(deletes) != 1 {
				t.Fatalf("concurrent resizes and a delete: %d resizes and %d deletes queued (statuses %v)", len(resizes), len(deletes), codes)
			}
			if len(resizes) == 1 && resizes[0].ID > deletes[0].ID {
				t.Fatalf("a resize was queued after the delete (statuses %v)", codes)
			}
			for i, c := range codes {
				if i != 5 && c != 202 && c != 409 {
					t.Errorf("concurrent resize %d: status %d", i, c)
				}
			}
			// After the delete, a resize is refused too.
			conflict(map[string]any{"vol_size": 40})
		})
	}
}

// raw sends bytes as one HTTP request and returns the whole answer.
func (p *panelT) raw(req string) string {
	p.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		p.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	if _, err := c.Write([]byte(req)); err != nil {
		p.t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// TestValidationGaps: each value the adversarial pass got stored, or answered wrongly,
// is now refused with a JSON error naming the field, and nothing is written.
func TestValidationGaps(t *testing.T) {
	for _, driver := range harness.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			p := startPanel(t, driver)
			a := p.Admin
			n := p.network(a)
			var before [4]int64
			count := func() [4]int64 {
				var c [4]int64
				for i, m := range []any{&models.Device{}, &models.Server{}, &models.Tunnel{}, &models.Menu{}} {
					p.DB.Model(m).Count(&c[i])
				}
				return c
			}
			before = count()
			long := "http://boot.example/" + strings.Repeat("a", 4096)
			cases := []struct {
				method, path string
				body         any
				field        string
			}{}
			add := func(method, path string, body any, field string) {
				cases = append(cases, struct {
					method, path string
					body         any
					field        string
				}{method, path, body, field})
			}
			for _, mac := range []string{"5:2:5:4:0:0:1:2:3:4:5:6", "52:54-00:12:34:56", "5254:0012:3456", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "00:00:00:00:00:00", "33-33-00-00-00-01"} {
				add("POST", "/api/v0.9.2/devices.json", map[string]any{"network": n, "mac": mac}, "mac")
			}
			for _, ip := range []string{"::1", "127.0.0.1", "127.0.0.2", "0.0.0.0", "::", "255.255.255.255", "224.0.0.1", "ff02::1", "::ffff:127.0.0.1"} {
				add("POST", "/api/v0.9.2/servers.json", map[string]any{"Name": "s2", "network": n, "IP": ip, "Pool": "tank"}, "ip")
				add("POST", "/api/v0.9.2/servers.json", map[string]any{"Name": "s2", "network": n, "IP": "192.168.1.11", "replication_ip": ip, "Pool": "tank"}, "replication_ip")
				add("PATCH", "/api/v0.9.2/servers/1.json", map[string]any{"IP": ip}, "ip")
				add("POST", "/api/v0.9.2/tunnels.json", map[string]any{"Alias": "t2", "network": n, "IP": ip}, "ip")
				add("PATCH", "/api/v0.9.2/tunnels/1.json", map[string]any{"IP": ip}, "ip")
			}
			for _, name := range []string{"a\u0085b", "a\u009bb", "\u202egnp.exe", "a\u2067b", "\u200b\u200b", "\u3164", "\u00a0\u3000\u2800"} {
				add("POST", "/api/v0.9.2/devices.json", map[string]any{"network": n, "mac": "52:54:00:12:34:56", "name": name}, "name")
				add("PATCH", fmt.Sprintf("/api/v0.9.2/networks/%d.json", n), map[string]any{"name": name}, "name")
				add("POST", "/api/v0.9.2/menus.json", map[string]any{"network": n, "name": "m", "items": []map[string]any{{"type": "local", "label": name}}}, "items")
			}
			add("POST", "/api/v0.9.2/menus.json", map[string]any{"network": n, "name": "m", "items": []map[string]any{{"type": "local", "label": "Local", "colour": "red"}}}, "items")
			add("POST", "/api/v0.9.2/menus.json", map[string]any{"network": n, "name": "m", "items": []map[string]any{{"type": "chain", "label": "x", "url": long}}}, "items")
			add("POST", "/api/v0.9.2/menus.json", map[string]any{"network": n, "name": "m", "items": []map[string]any{{"type": "chain", "label": "x", "url": "http://a\x0bb/"}}}, "items")
			for _, c := range cases {
				code, v, _ := p.do(a, c.method, c.path, c.body)
				if m, _ := v.(map[string]any); code != 422 || m["field"] != c.field {
					t.Errorf("%s %s %q: %d %v, want 422 naming %s", c.method, c.path, c.body, code, v, c.field)
				}
			}
			if after := count(); after != before {
				t.Errorf("refused requests wrote rows: devices, servers, tunnels, menus %v, were %v", after, before)
			}
			var srv models.Server
			if p.DB.Take(&srv, 1); srv.IP != "192.168.1.10" || srv.ReplicationIP != "" {
				t.Errorf("the server's addresses changed: %+v", srv)
			}
			// The canonical MAC forms still work.
			for i, mac := range []string{"52:54:00:12:34:5A", "52-54-00-12-34-5b", "525400.12345c", "5254.0012.345d", "52540012345e"} {
				want := 201
				if i == 2 {
					want = 422
				}
				p.must(want, a, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": n, "mac": mac})
			}

			// A page far past the last is empty (its offset overflowed into page 1).
			for _, q := range []string{"page=9223372036854775807", "page=9223372036854775807&per_page=500", "page=4611686018427387904&per_page=2", "page=2"} {
				code, v, _ := p.do(a, "GET", "/api/v0.9.2/networks.json?"+q, nil)
				if l, ok := v.([]any); code != 200 || !ok || len(l) != 0 {
					t.Errorf("networks.json?%s: %d %v, want an empty page", q, code, v)
				}
			}
			p.must(422, a, "GET", "/api/v0.9.2/networks.json?page=9223372036854775808", nil)

			// An unknown HTTP method is a JSON 501; a request fasthttp cannot parse a JSON 400
			// that does not quote the request (and its token).
			tok := strings.TrimSuffix(strings.TrimPrefix(a, `Token token="`), `"`)
			for _, c := range []struct{ req, status string }{
				{"FOO /api/v0.9.2/networks.json HTTP/1.1\r\nHost: x\r\nAuthorization: " + a + "\r\n\r\n", "501"},
				{"GET /api/v0.9.2/networks.json HTTP/1.1\r\nHost: x\r\nAuthorization: " + a + "\r\nContent-Length: abc\r\n\r\n", "400"},
				{"GET /api/v0.9.2/networks.json HTTP/1.1\r\nHost: x\r\n Authorization: " + a + "\r\n\r\n", "400"},
			} {
				resp := p.raw(c.req)
				head, body, _ := strings.Cut(resp, "\r\n\r\n")
				if !strings.HasPrefix(head, "HTTP/1.1 "+c.status) || !strings.Contains(head, "application/json") || !strings.HasPrefix(body, `{"error":`) || strings.Contains(resp, tok) {
					t.Errorf("%q: answered %q", c.req, resp)
				}
			}

			// The dashboard refuses a form value that is not UTF-8 instead of storing it.
			secret, csrf, err := models.CreateSession(context.Background(), p.DB, 1, "192.0.2.1")
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest("POST", p.URL+"/clients", strings.NewReader("name=Bad%FFName&csrf="+csrf))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: "cd_session", Value: secret})
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			var clients int64
			p.DB.Model(&models.Client{}).Count(&clients)
			if resp.StatusCode != 422 || clients != 1 {
				t.Errorf("a form name that is not UTF-8: %d, %d clients", resp.StatusCode, clients)
			}
		})
	}
}

// TestEnumeration: a client admin cannot tell a super-admin's id from an absent one by
// delegating to it, and "e-mail already taken" answers (which tell that an address has an
// account somewhere) are bounded per caller.
func TestEnumeration(t *testing.T) {
	for _, driver := range harness.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			p := startPanel(t, driver)
			client := p.must(201, p.Admin, "POST", "/api/v0.9.2/clients.json", map[string]any{"Name": "B"})
			admin := p.must(201, p.Admin, "POST", "/api/v0.9.2/users.json", map[string]any{"email": "b@example.com", "password": password, "client_id": id(client), "role": "admin"})
			b := harness.Token(t, p.DB, uint(id(admin)))
			n := id(p.must(201, b, "POST", "/api/v0.9.2/networks.json", map[string]any{"Name": "NB", "Client": id(client)}))
			path := fmt.Sprintf("/api/v0.9.2/networks/%d/delegations.json", n)
			var root models.User
			p.DB.Where("role = ?", models.RoleSuperAdmin).Take(&root)
			code1, super, _ := p.do(b, "POST", path, map[string]any{"user_id": root.ID})
			code2, absent, _ := p.do(b, "POST", path, map[string]any{"user_id": 4242})
			if code1 != 404 || code2 != 404 || fmt.Sprint(super) != fmt.Sprint(absent) {
				t.Fatalf("delegating to the super-admin: %d %v; to an absent user: %d %v; want the same 404", code1, super, code2, absent)
			}
			// A super-admin delegating to a super-admin learns nothing new: it sees every user.
			p.must(409, p.Admin, "POST", path, map[string]any{"user_id": root.ID})

			// "E-mail already taken" is answered EmailConflictsPerWindow times, then 429.
			for i := range models.EmailConflictsPerWindow {
				body := map[string]any{"email": root.Email, "password": password}
				if i%2 == 1 {
					body["email"] = strings.ToUpper(root.Email)
				}
				p.must(409, b, "POST", "/api/v0.9.2/users.json", body)
			}
			code, v, h := p.do(b, "POST", "/api/v0.9.2/users.json", map[string]any{"email": "another@example.com", "password": password})
			if code != 429 || h.Get("Retry-After") == "" {
				t.Fatalf("after %d taken e-mails: %d %v (Retry-After %q), want 429", models.EmailConflictsPerWindow, code, v, h.Get("Retry-After"))
			}
			// Changing one's own e-mail is bounded alike; the super-admin is not.
			u := p.must(201, p.Admin, "POST", "/api/v0.9.2/users.json", map[string]any{"email": "c@example.com", "password": password, "client_id": id(client)})
			ut := harness.Token(t, p.DB, uint(id(u)))
			upath := fmt.Sprintf("/api/v0.9.2/users/%d.json", id(u))
			for range models.EmailConflictsPerWindow {
				p.must(409, ut, "PATCH", upath, map[string]any{"email": root.Email})
			}
			p.must(429, ut, "PATCH", upath, map[string]any{"email": "free@example.com"})
			for range models.EmailConflictsPerWindow + 1 {
				p.must(409, p.Admin, "POST", "/api/v0.9.2/users.json", map[string]any{"email": "b@example.com", "password": password})
			}
			var users int64
			p.DB.Model(&models.User{}).Count(&users)
			if users != 3 {
				t.Fatalf("%d users, want 3", users)
			}
		})
	}
}
