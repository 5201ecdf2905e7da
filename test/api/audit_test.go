package api_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/harness"
)

// TestAuditLog: GET audit.json lists who changed what, newest first, filterable by
// network, user, object, action and time; a client's user sees its own client's events
// only; a filter that does not parse is a 422 naming it.
func TestAuditLog(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		users := map[string]string{}
		nets := map[string]int{}
		for _, c := range []string{"a", "b"} {
			client := id(p.must(201, p.Admin, "POST", "/api/v0.9.2/clients.json", map[string]any{"Name": "Client " + c}))
			user := p.must(201, p.Admin, "POST", "/api/v0.9.2/users.json", map[string]any{
				"email": c + "@example.com", "password": "correct horse battery", "client_id": client, "role": "admin"})
			users[c] = harness.Token(t, p.DB, uint(id(user)))
			nets[c] = id(p.must(201, users[c], "POST", "/api/v0.9.2/networks.json", map[string]any{"Name": "Net " + c, "Client": client}))
			p.must(201, users[c], "POST", "/api/v0.9.2/devices.json", map[string]any{"network": nets[c], "mac": "52:54:00:00:0c:0" + map[string]string{"a": "1", "b": "2"}[c]})
		}
		list := func(auth, query string) []map[string]any {
			t.Helper()
			code, v, _ := p.do(auth, "GET", "/api/v0.9.2/audit.json"+query, nil)
			if code != 200 {
				t.Fatalf("audit.json%s: %d %v", query, code, v)
			}
			var out []map[string]any
			for _, e := range v.([]any) {
				out = append(out, e.(map[string]any))
			}
			return out
		}
		all := list(p.Admin, "")
		if len(all) < 6 || all[0]["object"] != "device" || all[0]["action"] != "create" || all[0]["user_email"] != "b@example.com" {
			t.Fatalf("the admin's audit log, newest first: %v", all)
		}
		for _, e := range list(users["a"], "") {
			if e["user_email"] == "b@example.com" || e["network_id"] == float64(nets["b"]) {
				t.Errorf("client a's user sees client b's event: %v", e)
			}
		}
		if got := list(users["a"], fmt.Sprintf("?network_id=%d", nets["b"])); len(got) != 0 {
			t.Errorf("client a's user filtering on client b's network: %v", got)
		}
		devs := list(p.Admin, fmt.Sprintf("?object=device&action=create&network_id=%d", nets["a"]))
		if len(devs) != 1 || devs[0]["user_email"] != "a@example.com" {
			t.Errorf("filtered on network a's device creates: %v", devs)
		}
		tomorrow := time.Now().Add(24 * time.Hour).UTC().Format("2006-01-02")
		if got := list(p.Admin, "?since="+tomorrow); len(got) != 0 {
			t.Errorf("events since tomorrow: %v", got)
		}
		if len(list(p.Admin, "?until="+tomorrow)) != len(all) {
			t.Error("events until tomorrow are not all of them")
		}
		for _, q := range []struct{ query, field string }{{"?since=yesterday", "since"}, {"?network_id=x", "network_id"}, {"?per_page=0", "per_page"}} {
			code, v, _ := p.do(p.Admin, "GET", "/api/v0.9.2/audit.json"+q.query, nil)
			if m, _ := v.(map[string]any); code != 422 || m["field"] != q.field {
				t.Errorf("audit.json%s: %d %v, want 422 naming %s", q.query, code, v, q.field)
			}
		}
	})
}

// TestDeviceBootHistory: each boot an agent reports (booted.json, with its server key) is
// kept in the device's history — time, server, version, outcome — newest first; a report
// about a device of another network is not recorded.
func TestDeviceBootHistory(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		a := p.Admin
		n, srv := p.networkWithMaster()
		key, _ := p.must(200, a, "POST", fmt.Sprintf("/api/v0.9.2/servers/%d/key.json", srv), nil)["key"].(string)
		vol := p.readyVolume(n, "v")
		grp := p.readyGroup(n, "g", vol)
		p.must(202, a, "POST", fmt.Sprintf("/api/v0.9.2/groups/%d/publish.json", grp), nil)
		dev := id(p.must(201, a, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": n, "mac": "52:54:00:00:0d:01"}))
		other := id(p.must(201, a, "POST", "/api/v0.9.2/networks.json", map[string]any{"Name": "O", "Client": 1}))
		foreign := id(p.must(201, a, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": other, "mac": "52:54:00:00:0d:02"}))
		agent := "Bearer " + key
		p.must(204, agent, "POST", "/api/v0.9.2/agent/booted.json", []map[string]any{
			{"server_id": srv, "device_id": dev, "group_id": grp, "version": 1, "action": "provision"},
			{"server_id": srv, "device_id": foreign, "group_id": grp, "version": 1, "action": "boot-clone"},
		})
		p.must(204, agent, "POST", "/api/v0.9.2/agent/booted.json", []map[string]any{
			{"server_id": srv, "device_id": dev, "group_id": grp, "action": "wait", "reason": "no server holds v2 yet"},
		})
		code, v, _ := p.do(a, "GET", fmt.Sprintf("/api/v0.9.2/devices/%d/boots.json", dev), nil)
		boots, _ := v.([]any)
		if code != 200 || len(boots) != 2 {
			t.Fatalf("boot history: %d %v, want two boots", code, v)
		}
		last, first := boots[0].(map[string]any), boots[1].(map[string]any)
		if last["outcome"] != "not booted" || last["reason"] != "no server holds v2 yet" || first["outcome"] != "booted" ||
			first["version"] != float64(1) || first["server_id"] != float64(srv) {
			t.Errorf("boot history, newest first: %v", boots)
		}
		code, v, _ = p.do(a, "GET", fmt.Sprintf("/api/v0.9.2/devices/%d/boots.json", foreign), nil)
		if code != 200 || len(v.([]any)) != 0 {
			t.Errorf("a device of another network got a boot from this server: %d %v", code, v)
		}
		p.must(404, a, "GET", "/api/v0.9.2/devices/99999/boots.json", nil)

		// A watched boot: its report, then its result under the same boot id, update one
		// row; the version's stats count it.
		p.must(204, agent, "POST", "/api/v0.9.2/agent/booted.json", []map[string]any{
			{"server_id": srv, "device_id": dev, "group_id": grp, "version": 1, "action": "boot-clone", "boot_id": "k1", "at": time.Now()},
		})
		p.must(204, agent, "POST", "/api/v0.9.2/agent/booted.json", []map[string]any{
			{"server_id": srv, "device_id": dev, "group_id": grp, "version": 1, "action": "boot-clone", "boot_id": "k1",
				"result": "up", "up_ms": 30500, "why": "its iSCSI session stayed up past 30s with reads continuing"},
		})
		_, v, _ = p.do(a, "GET", fmt.Sprintf("/api/v0.9.2/devices/%d/boots.json", dev), nil)
		boots, _ = v.([]any)
		if len(boots) != 3 || boots[0].(map[string]any)["result"] != "up" || boots[0].(map[string]any)["up_ms"] != float64(30500) {
			t.Fatalf("boot history after a result: %v", boots)
		}
		_, v, _ = p.do(a, "GET", fmt.Sprintf("/api/v0.9.2/groups/%d/versions.json", grp), nil)
		version := id(v.([]any)[0].(map[string]any))
		vb := p.must(200, a, "GET", fmt.Sprintf("/api/v0.9.2/versions/%d/boots.json", version), nil)
		if vb["boots"] != float64(1) || vb["up"] != float64(1) || vb["success_rate"] != float64(1) || vb["p95_ms"] != float64(30500) {
			t.Errorf("version boots: %v", vb)
		}
		vb = p.must(200, a, "GET", fmt.Sprintf("/api/v0.9.2/versions/%d/boots.json?since=2h", version), nil)
		if vb["boots"] != float64(1) || vb["since"] == nil {
			t.Errorf("version boots since 2h: %v", vb)
		}
		code, v, _ = p.do(a, "GET", fmt.Sprintf("/api/v0.9.2/versions/%d/boots.json?since=someday", version), nil)
		if m, _ := v.(map[string]any); code != 422 || m["field"] != "since" {
			t.Errorf("versions boots with a bad since: %d %v", code, v)
		}
		p.must(404, a, "GET", "/api/v0.9.2/versions/99999/boots.json", nil)
	})
}

// TestListSearchAndSort: ?q= searches a list's names and addresses case-insensitively and
// ?sort= orders it (a leading - descending), in the database with the usual pagination;
// an unknown sort key is a 422 naming sort.
func TestListSearchAndSort(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		n, _ := p.networkWithMaster()
		for i, name := range []string{"bravo", "alpha", "charlie", "Alpha-2", "50%_off"} {
			p.must(201, p.Admin, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": n, "mac": fmt.Sprintf("52:54:00:00:10:%02x", i+1), "name": name})
		}
		names := func(query string) string {
			t.Helper()
			code, v, h := p.do(p.Admin, "GET", "/api/v0.9.2/devices.json"+query, nil)
			if code != 200 {
				t.Fatalf("devices.json%s: %d %v", query, code, v)
			}
			var out []string
			for _, d := range v.([]any) {
				out = append(out, d.(map[string]any)["name"].(string))
			}
			return h.Get("X-Total-Count") + ":" + strings.Join(out, ",")
		}
		if got := names("?q=ALPHA&sort=-name"); got != "2:alpha,Alpha-2" && got != "2:Alpha-2,alpha" {
			t.Errorf("?q=ALPHA: %s", got)
		}
		if got := names("?q=52:54:00:00:10:03"); got != "1:charlie" {
			t.Errorf("search by MAC: %s", got)
		}
		if got := names("?q=%25_"); got != "1:50%_off" {
			t.Errorf("a search for %%_ matches them literally: %s", got)
		}
		if got := names("?sort=-name&per_page=2&page=1"); got != "5:charlie,bravo" {
			t.Errorf("sorted descending, first page: %s", got)
		}
		for _, q := range []string{"?sort=colour", "?sort=-"} {
			code, v, _ := p.do(p.Admin, "GET", "/api/v0.9.2/devices.json"+q, nil)
			if m, _ := v.(map[string]any); code != 422 || m["field"] != "sort" {
				t.Errorf("devices.json%s: %d %v, want 422 naming sort", q, code, v)
			}
		}
	})
}
