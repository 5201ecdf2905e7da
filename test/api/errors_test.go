package api_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
)

// TestErrors checks every error class: the status, the JSON body naming the field, and
// that nothing was written.
func TestErrors(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		a := p.Admin
		p.must(201, a, "POST", "/api/v0.9.2/networks.json", map[string]any{"Name": "N", "Client": 1})
		cases := []struct {
			name, method, path string
			auth               string
			body               any
			status             int
			field              string
		}{
			{"no token", "GET", "/api/v0.9.2/networks.json", "", nil, 401, ""},
			{"bad token", "GET", "/api/v0.9.2/networks.json", `Token token="nope"`, nil, 401, ""},
			{"malformed json", "POST", "/api/v0.9.2/clients.json", a, "{\"Name\": ", 400, ""},
			{"not an object", "POST", "/api/v0.9.2/clients.json", a, "[1,2]", 400, ""},
			{"empty body", "POST", "/api/v0.9.2/clients.json", a, "", 400, ""},
			{"unknown field", "POST", "/api/v0.9.2/clients.json", a, map[string]any{"Name": "x", "Colour": "red"}, 422, "Colour"},
			{"missing name", "POST", "/api/v0.9.2/clients.json", a, map[string]any{}, 422, "name"},
			{"wrong type", "POST", "/api/v0.9.2/clients.json", a, map[string]any{"Name": 5}, 422, "name"},
			{"vol_size not a number", "POST", "/api/v0.9.2/volumes.json", a, map[string]any{"network": 1, "Alias": "v", "vol_size": "forty"}, 422, "vol_size"},
			{"vol_size zero", "POST", "/api/v0.9.2/volumes.json", a, map[string]any{"network": 1, "Alias": "v", "vol_size": 0}, 422, "vol_size"},
			{"bad ip", "POST", "/api/v0.9.2/tunnels.json", a, map[string]any{"Alias": "t", "network": 1, "IP": "4.2.2"}, 422, "ip"},
			{"bad pool", "POST", "/api/v0.9.2/servers.json", a, map[string]any{"Name": "s", "network": 1, "IP": "10.0.0.1", "Pool": "ta nk"}, 422, "pool"},
			{"missing network", "POST", "/api/v0.9.2/servers.json", a, map[string]any{"Name": "s", "IP": "10.0.0.1", "Pool": "tank"}, 422, "network_id"},
			{"absent network", "POST", "/api/v0.9.2/servers.json", a, map[string]any{"Name": "s", "network": 99, "IP": "10.0.0.1", "Pool": "tank"}, 404, "network_id"},
			{"volume without master", "POST", "/api/v0.9.2/volumes.json", a, map[string]any{"network": 1, "Alias": "v", "vol_size": "42"}, 409, "network_id"},
			{"bad mac", "POST", "/api/v0.9.2/devices.json", a, map[string]any{"network": 1, "mac": "52:54:00"}, 422, "mac"},
			{"group of another volume", "POST", "/api/v0.9.2/groups.json", a, map[string]any{"network": 1, "Name": "g", "VolumeID": 7}, 422, "volume_id"},
			{"absent object", "GET", "/api/v0.9.2/volumes/12345.json", a, nil, 404, ""},
			{"non-numeric id", "GET", "/api/v0.9.2/volumes/abc.json", a, nil, 404, ""},
			{"unknown endpoint", "GET", "/api/v0.9.2/nothing.json", a, nil, 404, ""},
			{"bad page", "GET", "/api/v0.9.2/networks.json?per_page=x", a, nil, 422, "per_page"},
		}
		for _, c := range cases {
			code, v, _ := p.do(c.auth, c.method, c.path, c.body)
			m, _ := v.(map[string]any)
			if code != c.status || m == nil || m["error"] == nil || m["error"] == "" {
				t.Errorf("%s: %d %v, want %d with an error message", c.name, code, v, c.status)
				continue
			}
			if c.field != "" && m["field"] != c.field {
				t.Errorf("%s: field %v, want %q", c.name, m["field"], c.field)
			}
		}
		// Nothing was written by any of the failed requests.
		for _, model := range []any{&models.Tunnel{}, &models.Server{}, &models.Volume{}, &models.Group{}, &models.Device{}, &models.Operation{}} {
			var n int64
			p.DB.Model(model).Count(&n)
			if n != 0 {
				t.Errorf("%T: %d rows left behind by failed requests", model, n)
			}
		}
		var clients int64
		p.DB.Model(&models.Client{}).Count(&clients)
		if clients != 1 {
			t.Errorf("clients: %d, want only the first one", clients)
		}
		// A plain user may not create clients: 403 for an action, not 404.
		u := p.must(201, a, "POST", "/api/v0.9.2/users.json", map[string]any{"email": "u@example.com", "password": "correct horse battery"})
		ua := harness.Token(t, p.DB, uint(id(u)))
		p.must(403, ua, "POST", "/api/v0.9.2/clients.json", map[string]any{"Name": "x"})
		p.must(403, ua, "DELETE", "/api/v0.9.2/networks/1.json", nil)
		p.must(409, a, "POST", "/api/v0.9.2/users.json", map[string]any{"email": "u@example.com", "password": "correct horse battery"})
		p.must(409, a, "DELETE", "/api/v0.9.2/clients/1.json", nil)
	})
}

// TestLimits: network limits are enforced in the inserting transaction, also under
// concurrent creates.
func TestLimits(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		a := p.Admin
		n := id(p.must(201, a, "POST", "/api/v0.9.2/networks.json", map[string]any{"Name": "N", "max_devices": 3, "MaxServers": 1}))
		p.must(201, a, "POST", "/api/v0.9.2/servers.json", map[string]any{"Name": "s1", "network": n, "IP": "10.0.0.1", "Pool": "tank"})
		p.must(409, a, "POST", "/api/v0.9.2/servers.json", map[string]any{"Name": "s2", "network": n, "IP": "10.0.0.2", "Pool": "tank"})
		var wg sync.WaitGroup
		codes := make([]int, 12)
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], _, _ = p.do(a, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": n, "mac": fmt.Sprintf("52:54:00:00:01:%02x", i)})
			}()
		}
		wg.Wait()
		var devices int64
		p.DB.Model(&models.Device{}).Where("network_id = ?", n).Count(&devices)
		created := 0
		for _, c := range codes {
			if c == 201 {
				created++
			} else if c != 409 {
				t.Errorf("concurrent create: status %d, want 201 or 409", c)
			}
		}
		if devices != 3 || created != 3 {
			t.Fatalf("max_devices 3: %d rows, %d created (codes %v)", devices, created, codes)
		}
	})
}
