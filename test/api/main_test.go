// Package api_test drives the REST API v0.9.2 over HTTP against PostgreSQL and SQLite.
package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/workers/panel"
	"gorm.io/gorm"
)

func TestMain(m *testing.M) { harness.MainPostgres(m) }

// panelT is a panel served on a loopback port for one test.
type panelT struct {
	t     *testing.T
	URL   string
	DB    *gorm.DB
	Store *models.Store
	Admin string // Authorization header of the super-admin
	// check, when set, sees every exchange do makes (the OpenAPI test validates them).
	check func(req *http.Request, status int, header http.Header, body []byte)
}

func startPanel(t *testing.T, driver string, early ...panel.Mount) *panelT {
	t.Helper()
	db := harness.NewDB(t, driver)
	store := &models.Store{DB: db}
	app := panel.NewApp(panel.Options{Store: store, Early: early})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)                  //nolint:errcheck
	t.Cleanup(func() { app.Shutdown() }) //nolint:errcheck
	return &panelT{t: t, URL: "http://" + ln.Addr().String(), DB: db, Store: store, Admin: harness.Token(t, db, harness.Admin(t, db).ID)}
}

// do sends a request with an Authorization header and returns the status and decoded body.
func (p *panelT) do(auth, method, path string, body any) (int, any, http.Header) {
	p.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, p.URL+path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if p.check != nil {
		p.check(req, resp.StatusCode, resp.Header, raw)
	}
	var v any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &v); err != nil {
			p.t.Fatalf("%s %s: body is not JSON (%d): %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, v, resp.Header
}

// must sends a request and fails the test unless the status is want.
func (p *panelT) must(want int, auth, method, path string, body any) map[string]any {
	p.t.Helper()
	code, v, _ := p.do(auth, method, path, body)
	if code != want {
		p.t.Fatalf("%s %s: status %d, want %d: %v", method, path, code, want, v)
	}
	m, _ := v.(map[string]any)
	return m
}

func id(m map[string]any) int { f, _ := m["id"].(float64); return int(f) }

// ready marks the object a create answered (a volume or a group; the API-only panel has
// no workflow engine to finish it) ready, and returns its id.
func (p *panelT) ready(m map[string]any, model any) int {
	p.t.Helper()
	if err := p.DB.Model(model).Where("id = ?", id(m)).Update("state", models.StateReady).Error; err != nil {
		p.t.Fatal(err)
	}
	return id(m)
}

// onEachDriver runs f in a parallel subtest per database, each on a panel of its own.
func onEachDriver(t *testing.T, f func(t *testing.T, p *panelT)) {
	for _, driver := range harness.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			f(t, startPanel(t, driver))
		})
	}
}

// networkWithMaster creates network "N" of client 1 and its master server "m"
// (10.0.0.2, pool tank), as the admin, and returns their ids.
func (p *panelT) networkWithMaster() (n, srv int) {
	p.t.Helper()
	n = id(p.must(201, p.Admin, "POST", "/api/v0.9.2/networks.json", map[string]any{"Name": "N", "Client": 1}))
	srv = id(p.reported(p.must(201, p.Admin, "POST", "/api/v0.9.2/servers.json", map[string]any{"Name": "m", "network": n, "IP": "10.0.0.2", "Pool": "tank"})))
	return n, srv
}

// reported records healthy stats for the server a create answered, as its agent does
// every 15 s once it runs (creates on a master that never reported are refused), and
// returns the answer.
func (p *panelT) reported(srv map[string]any) map[string]any {
	p.t.Helper()
	err := models.RecordServerStats(context.Background(), p.DB, uint(id(srv)), &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 100 << 30, PoolFree: 90 << 30})
	if err != nil {
		p.t.Fatal(err)
	}
	return srv
}

// readyVolume creates a 1 GiB volume in network n and marks it ready; readyGroup does the
// same for a group of volume vol.
func (p *panelT) readyVolume(n int, alias string) int {
	p.t.Helper()
	return p.ready(p.must(202, p.Admin, "POST", "/api/v0.9.2/volumes.json", map[string]any{"network": n, "Alias": alias, "vol_size": 1}), &models.Volume{})
}

func (p *panelT) readyGroup(n int, name string, vol int) int {
	p.t.Helper()
	return p.ready(p.must(202, p.Admin, "POST", "/api/v0.9.2/groups.json", map[string]any{"network": n, "Name": name, "VolumeID": vol}), &models.Group{})
}

// endMaintenance ends the maintenance at path (a group's or a volume's maintenance.json):
// 202 with the operation that removes the target, which the agent of this agent-less
// panel is taken to have done (the operation succeeds). It returns the answer.
func (p *panelT) endMaintenance(path string) map[string]any {
	p.t.Helper()
	m := p.must(202, p.Admin, "DELETE", path, nil)
	op, _ := m["operation"].(map[string]any)
	if op == nil {
		p.t.Fatalf("end of maintenance without an operation: %v", m)
	}
	if err := p.DB.Model(&models.Operation{}).Where("id = ?", id(op)).Update("state", models.OpSucceeded).Error; err != nil {
		p.t.Fatal(err)
	}
	return m
}
