package api_test

import (
	"io"
	"net"
	"net/http"

	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workers/panel"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"github.com/gofiber/fiber/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestGuideCurl runs the guide's curl examples verbatim (but for the panel's address)
// against a panel on each database.
func TestGuideCurl(t *testing.T) {
	for _, driver := range []string{"postgres", "sqlite"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			// The agent endpoints, as `clusterducks panel` mounts them: the guide's agent reports.
			p := startPanel(t, driver, func(app *fiber.App, store *models.Store) {
				panel.NewAgents(store, temporalclient.Config{}).Mount(app, store)
			})
			tok := strings.TrimSuffix(strings.TrimPrefix(p.Admin, `Token token="`), `"`)
			cmd := exec.Command("bash", "testdata/guide.sh")
			cmd.Env = append(os.Environ(), "PANEL="+p.URL, "API_TOKEN="+tok)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("guide's curl sequence failed: %v\n%s", err, out)
			}
			for _, want := range []string{`"name":"New Client"`, `"name":"New Network"`, `"alias":"New Tunnel Service"`,
				`"name":"masterServer"`, `"vol_size":42`, `"volume_id":1`, `"pool_health":"ONLINE"`} {
				if !strings.Contains(string(out), want) {
					t.Errorf("output lacks %s:\n%s", want, out)
				}
			}
			net := p.must(200, p.Admin, "GET", "/api/v0.9.2/networks/1.json", nil)
			if net["tunnel_id"] != float64(1) || net["master_server_id"] != float64(1) || net["client_id"] != float64(2) {
				t.Errorf("network after the guide: %v", net)
			}
		})
	}
}

// TestOpenAPI: the panel serves an OpenAPI document generated from the handlers' types.
func TestOpenAPI(t *testing.T) {
	p := startPanel(t, "sqlite")
	doc := p.must(200, "", "GET", "/api/v0.9.2/openapi.json", nil)
	paths, _ := doc["paths"].(map[string]any)
	for _, c := range []string{"clients", "users", "networks", "tunnels", "servers", "volumes", "groups", "devices", "menus"} {
		if paths["/api/v0.9.2/"+c+".json"] == nil || paths["/api/v0.9.2/"+c+"/{id}.json"] == nil {
			t.Errorf("openapi.json lacks %s", c)
		}
	}
	vol := paths["/api/v0.9.2/volumes.json"].(map[string]any)["post"].(map[string]any)
	props := vol["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)["properties"].(map[string]any)
	if props["vol_size"] == nil || props["network_id"] == nil || props["alias"] == nil {
		t.Errorf("volume create schema: %v", props)
	}
	for _, action := range []string{"/api/v0.9.2/servers/{name}/stats.json", "/api/v0.9.2/operations/{id}.json", "/api/v0.9.2/alerts.json", "/api/v0.9.2/groups/{id}/publish.json", "/api/v0.9.2/volumes/{id}/maintenance.json"} {
		if paths[action] == nil {
			t.Errorf("openapi.json lacks %s", action)
		}
	}
}

// TestTrustedProxy: behind a trusted load balancer the client address comes from
// X-Forwarded-For; from anyone else the header is ignored.
func TestTrustedProxy(t *testing.T) {
	for _, c := range []struct {
		trusted []string
		want    string
	}{{[]string{"127.0.0.1"}, "203.0.113.7"}, {nil, "127.0.0.1"}, {[]string{"10.9.9.9"}, "127.0.0.1"}} {
		app := api.NewApp(c.trusted...)
		app.Get("/ip", func(ctx *fiber.Ctx) error { return ctx.SendString(ctx.IP()) })
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go app.Listener(ln) //nolint:errcheck
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/ip", nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		app.Shutdown() //nolint:errcheck
		if string(body) != c.want {
			t.Errorf("trusted %v: client address %q, want %q", c.trusted, body, c.want)
		}
	}
}
