package api_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
)

// uploaded marks ctemplate ct as holding version 1, as a checked upload through its
// agent leaves it (the storage lab tests the upload itself).
func (p *panelT) uploaded(ct int) {
	p.t.Helper()
	if err := p.DB.Model(&models.CTemplate{}).Where("id = ?", ct).Updates(map[string]any{"state": models.StateReady, "version": 1}).Error; err != nil {
		p.t.Fatal(err)
	}
}

// TestContainers: the ctemplates and containers API's rules on each database: bad input is
// a 4xx naming the field and leaves no row; a container needs an uploaded ctemplate of its
// network and a version it has; max_containers holds; limits are fixed once made; one
// change at a time; a ctemplate with containers is not deleted; a body over the limit is
// 413 on a JSON route while an upload's is streamed.
func TestContainers(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		a := p.Admin
		n, srv := p.networkWithMaster()
		p.must(200, a, "PATCH", fmt.Sprintf("/api/v0.9.2/networks/%d.json", n), map[string]any{"max_containers": 1})
		other := id(p.must(201, a, "POST", "/api/v0.9.2/networks.json", map[string]any{"Name": "O", "Client": 1}))
		otherSrv := id(p.reported(p.must(201, a, "POST", "/api/v0.9.2/servers.json", map[string]any{"Name": "o", "network": other, "IP": "10.0.0.3", "Pool": "tank"})))
		p.must(200, a, "PATCH", fmt.Sprintf("/api/v0.9.2/networks/%d.json", other), map[string]any{"master_server_id": otherSrv})
		foreign := id(p.must(201, a, "POST", "/api/v0.9.2/ctemplates.json", map[string]any{"network": other, "name": "f"}))
		p.uploaded(foreign)
		second := id(p.reported(p.must(201, a, "POST", "/api/v0.9.2/servers.json", map[string]any{"Name": "s2", "network": n, "IP": "10.0.0.4", "Pool": "tank"})))

		for _, c := range []struct {
			name   string
			body   any
			status int
			field  string
		}{
			{"no network", map[string]any{"name": "t"}, 422, "network_id"},
			{"absent network", map[string]any{"network": 9999, "name": "t"}, 404, "network_id"},
			{"no name", map[string]any{"network": n}, 422, "name"},
			{"unknown key", map[string]any{"network": n, "name": "t", "size": 3}, 422, "size"},
		} {
			code, v, _ := p.do(a, "POST", "/api/v0.9.2/ctemplates.json", c.body)
			if m, _ := v.(map[string]any); code != c.status || m["field"] != c.field {
				t.Errorf("ctemplate %s: %d %v, want %d naming %q", c.name, code, v, c.status, c.field)
			}
		}
		// Built on the server: the suite is checked, the build queued, and no upload goes
		// in while it runs.
		for _, suite := range []any{"", "Bookworm", "../x", "a b", 12, strings.Repeat("b", 41)} {
			code, v, _ := p.do(a, "POST", "/api/v0.9.2/ctemplates.json", map[string]any{"network": n, "name": "deb", "debootstrap": suite})
			if m, _ := v.(map[string]any); code != 422 || m["field"] != "debootstrap" {
				t.Errorf("ctemplate debootstrap %v: %d %v, want 422 naming debootstrap", suite, code, v)
			}
		}
		built := p.must(202, a, "POST", "/api/v0.9.2/ctemplates.json", map[string]any{"network": n, "name": "deb", "suite": "bookworm"})
		if op := built["operation"].(map[string]any); op["kind"] != models.OpCTemplateBuild || built["debootstrap"] != "bookworm" || built["state"] != "pending" {
			t.Fatalf("built ctemplate: %v", built)
		}
		builtPath := fmt.Sprintf("/api/v0.9.2/ctemplates/%d", id(built))
		if code, v, _ := p.do(a, "PUT", builtPath+"/rootfs?sha256="+strings.Repeat("a", 64), "x"); code != 409 {
			t.Errorf("an upload while the build runs: %d %v, want 409", code, v)
		}
		if code, v, _ := p.do(a, "PATCH", builtPath+".json", map[string]any{"debootstrap": "trixie"}); code != 422 {
			t.Errorf("a ctemplate's suite changed: %d %v, want 422", code, v)
		}
		p.finish(built)
		if got := p.must(200, a, "GET", builtPath+".json", nil); got["version"] != float64(1) || got["state"] != "ready" {
			t.Errorf("after the build: %v, want version 1, ready", got)
		}
		p.must(202, a, "DELETE", builtPath+".json", nil)

		ct := p.must(201, a, "POST", "/api/v0.9.2/ctemplates.json", map[string]any{"Network": n, "Name": "debian"})
		if ct["state"] != "pending" || ct["version"] != float64(0) || ct["server_id"] != float64(srv) {
			t.Fatalf("created ctemplate: %v", ct)
		}
		ctPath := fmt.Sprintf("/api/v0.9.2/ctemplates/%d", id(ct))
		// Uploads: the checksum and a body are required; a bad request never reaches an agent.
		for _, c := range []struct {
			name, query, body string
			field             string
		}{
			{"no checksum", "", "x", "sha256"},
			{"short checksum", "?sha256=abc", "x", "sha256"},
			{"not hex", "?sha256=" + strings.Repeat("z", 64), "x", "sha256"},
			{"empty body", "?sha256=" + strings.Repeat("a", 64), "", "rootfs"},
		} {
			code, v, _ := p.do(a, "PUT", ctPath+"/rootfs"+c.query, c.body)
			if m, _ := v.(map[string]any); code != 422 || m["field"] != c.field {
				t.Errorf("upload %s: %d %v, want 422 naming %q", c.name, code, v, c.field)
			}
		}
		// Not uploaded yet: no container from it.
		code, v, _ := p.do(a, "POST", "/api/v0.9.2/containers.json", map[string]any{"network": n, "name": "c", "ctemplate": id(ct)})
		if m, _ := v.(map[string]any); code != 409 || m["field"] != "ctemplate_id" {
			t.Errorf("container of a ctemplate without a version: %d %v, want 409 naming ctemplate_id", code, v)
		}
		p.uploaded(id(ct))

		long := strings.Repeat("x", 1001)
		for _, c := range []struct {
			name   string
			body   map[string]any
			status int
			field  string
		}{
			{"no ctemplate", map[string]any{"network": n, "name": "c"}, 422, "ctemplate_id"},
			{"foreign ctemplate", map[string]any{"network": n, "name": "c", "ctemplate": foreign}, 422, "ctemplate_id"},
			{"absent ctemplate", map[string]any{"network": n, "name": "c", "ctemplate_id": 9999}, 422, "ctemplate_id"},
			{"version too new", map[string]any{"network": n, "name": "c", "ctemplate": id(ct), "version": 2}, 422, "ctemplate_version"},
			{"version negative", map[string]any{"network": n, "name": "c", "ctemplate": id(ct), "version": -1}, 422, "ctemplate_version"},
			{"memory negative", map[string]any{"network": n, "name": "c", "ctemplate": id(ct), "memory_mb": -1}, 422, "memory_mb"},
			{"memory not a number", map[string]any{"network": n, "name": "c", "ctemplate": id(ct), "memory_mb": "lots"}, 422, "memory_mb"},
			{"cpu too much", map[string]any{"network": n, "name": "c", "ctemplate": id(ct), "cpu_quota_percent": models.MaxContainerCPU + 1}, 422, "cpu_quota_percent"},
			{"tasks negative", map[string]any{"network": n, "name": "c", "ctemplate": id(ct), "tasks_max": -5}, 422, "tasks_max"},
			{"disk too big", map[string]any{"network": n, "name": "c", "ctemplate": id(ct), "disk_quota_gib": models.MaxVolumeGiB + 1}, 422, "disk_quota_gib"},
			{"command of two lines", map[string]any{"network": n, "name": "c", "ctemplate": id(ct), "command": "a\nb"}, 422, "command"},
			{"command too long", map[string]any{"network": n, "name": "c", "ctemplate": id(ct), "command": long}, 422, "command"},
			{"autostart not a bool", map[string]any{"network": n, "name": "c", "ctemplate": id(ct), "autostart": "often"}, 422, "autostart"},
			{"foreign server", map[string]any{"network": n, "name": "c", "ctemplate": id(ct), "server": otherSrv}, 422, "server_id"},
			{"server without the ctemplate's copy yet", map[string]any{"network": n, "name": "c", "ctemplate": id(ct), "server": second}, 409, "server_id"},
			{"unknown key", map[string]any{"network": n, "name": "c", "ctemplate": id(ct), "image": "x"}, 422, "image"},
		} {
			code, v, _ := p.do(a, "POST", "/api/v0.9.2/containers.json", c.body)
			if m, _ := v.(map[string]any); code != c.status || m["field"] != c.field {
				t.Errorf("container %s: %d %v, want %d naming %q", c.name, code, v, c.status, c.field)
			}
		}
		var rows int64
		p.DB.Model(&models.Container{}).Count(&rows)
		if rows != 0 {
			t.Fatalf("refused creates left %d container rows", rows)
		}

		c1 := p.must(202, a, "POST", "/api/v0.9.2/containers.json", map[string]any{"network": n, "name": "web", "ctemplate": id(ct),
			"memory_mb": 64, "cpu_quota_percent": 50, "tasks_max": 32, "disk_quota_gib": 2, "autostart": true, "command": "echo hi"})
		if c1["state"] != "pending" || c1["server_id"] != float64(srv) || c1["ctemplate_version"] != float64(1) || c1["memory_mb"] != float64(64) || c1["autostart"] != true {
			t.Fatalf("created container: %v", c1)
		}
		if op := c1["operation"].(map[string]any); op["kind"] != models.OpContainerCreate {
			t.Fatalf("operation: %v", op)
		}
		path := fmt.Sprintf("/api/v0.9.2/containers/%d", id(c1))
		code, v, _ = p.do(a, "POST", "/api/v0.9.2/containers.json", map[string]any{"network": n, "name": "more", "ctemplate": id(ct)})
		if m, _ := v.(map[string]any); code != 409 || m["field"] != "max_containers" {
			t.Errorf("a second container over max_containers 1: %d %v, want 409 naming max_containers", code, v)
		}
		// Pending: no action yet.
		if code, v, _ := p.do(a, "POST", path+"/stop.json", nil); code != 409 {
			t.Errorf("stop of a pending container: %d %v, want 409", code, v)
		}
		p.finish(c1)
		stop := p.must(202, a, "POST", path+"/stop.json", nil)
		if op := stop["operation"].(map[string]any); op["kind"] != models.OpContainerAction {
			t.Fatalf("stop's operation: %v", op)
		}
		if code, v, _ := p.do(a, "POST", path+"/start.json", nil); code != 409 {
			t.Errorf("start while the stop is under way: %d %v, want 409", code, v)
		}
		p.finish(stop)
		if got := p.must(200, a, "GET", path+".json", nil); got["stopped"] != true {
			t.Errorf("after a stop: %v, want stopped", got)
		}
		// Rebase: onto a newer version only; it runs the container again and records the
		// version once its workflow has succeeded.
		for _, c := range []struct {
			name string
			body any
		}{
			{"no newer version", nil},
			{"the same version", map[string]any{"ctemplate_version": 1}},
			{"a version the ctemplate lacks", map[string]any{"version": 7}},
			{"not a number", map[string]any{"ctemplate_version": "newest"}},
		} {
			code, v, _ := p.do(a, "POST", path+"/rebase.json", c.body)
			if m, _ := v.(map[string]any); code != 422 || m["field"] != "ctemplate_version" {
				t.Errorf("rebase %s: %d %v, want 422 naming ctemplate_version", c.name, code, v)
			}
		}
		if err := p.DB.Model(&models.CTemplate{}).Where("id = ?", id(ct)).Update("version", 2).Error; err != nil {
			t.Fatal(err)
		}
		rb := p.must(202, a, "POST", path+"/rebase.json", nil)
		if op := rb["operation"].(map[string]any); op["kind"] != models.OpContainerRebase || rb["stopped"] != false || rb["ctemplate_version"] != float64(1) {
			t.Fatalf("rebase: %v", rb)
		}
		if code, v, _ := p.do(a, "POST", path+"/rebase.json", nil); code != 409 {
			t.Errorf("a second rebase while the first is under way: %d %v, want 409", code, v)
		}
		p.finish(rb)
		if got := p.must(200, a, "GET", path+".json", nil); got["ctemplate_version"] != float64(2) {
			t.Errorf("after the rebase: %v, want ctemplate_version 2", got)
		}
		if code, v, _ := p.do(a, "POST", path+"/explode.json", nil); code != 404 {
			t.Errorf("an unknown action: %d %v, want 404", code, v)
		}
		for field, value := range map[string]any{"memory_mb": 128, "autostart": false, "command": "true", "ctemplate_version": 1} {
			code, v, _ := p.do(a, "PATCH", path+".json", map[string]any{field: value})
			if m, _ := v.(map[string]any); code != 422 || m["field"] != field {
				t.Errorf("change %s: %d %v, want 422 naming it", field, code, v)
			}
		}
		if got := p.must(200, a, "PATCH", path+".json", map[string]any{"name": "www", "memory_mb": 64}); got["name"] != "www" {
			t.Errorf("rename: %v", got)
		}
		// A ctemplate with a container stays.
		if code, v, _ := p.do(a, "DELETE", ctPath+".json", nil); code != 409 {
			t.Errorf("delete of a ctemplate with a container: %d %v, want 409", code, v)
		}
		del := p.must(202, a, "DELETE", path+".json", nil)
		if op := del["operation"].(map[string]any); op["kind"] != models.OpContainerDelete || del["state"] != "deleting" {
			t.Fatalf("delete: %v", del)
		}
		p.finish(del)
		if got := p.must(200, a, "GET", path+".json", nil); got["state"] != "deleted" {
			t.Errorf("after the delete: %v", got)
		}
		tdel := p.must(202, a, "DELETE", ctPath+".json", nil)
		if op := tdel["operation"].(map[string]any); op["kind"] != models.OpCTemplateDelete {
			t.Fatalf("ctemplate delete: %v", tdel)
		}

		// The body limit holds on JSON routes although bodies are streamed.
		big := `{"name":"` + strings.Repeat("x", 2<<20) + `"}`
		if code, status := postRaw(t, p.URL, a, "/api/v0.9.2/ctemplates.json", big); code != 413 {
			t.Errorf("a 2 MiB JSON body: %d %s, want 413", code, status)
		}
	})
}

// postRaw sends a POST over its own connection and reads the answer even when the server
// answered before reading the whole body and closed (an oversized body): Go's client then
// often reports the failed write ("connection reset") instead of the answer.
func postRaw(t *testing.T, base, auth, path, body string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute)) //nolint:errcheck
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		path, strings.TrimPrefix(base, "http://"), auth, len(body))
	go func() { fmt.Fprint(conn, head+body) }() //nolint:errcheck // the server may stop reading: its answer is what counts
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Status
}
