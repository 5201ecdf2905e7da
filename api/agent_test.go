package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// TestAgentEndpoints: an agent registers with its server key (not a user token), gets
// its server id, task queue and Temporal settings and a queued bootstrap; its stats make
// the server "Panel to server OK". A wrong key is 401 and changes nothing.
func TestAgentEndpoints(t *testing.T) {
	ctx := context.Background()
	db, err := models.Open("sqlite:" + filepath.Join(t.TempDir(), "panel.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := models.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	first, err := models.Bootstrap(ctx, db, "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	store := &models.Store{DB: db}
	app := api.NewApp()
	agents := &api.Agents{Store: store, TaskQueue: func(id uint) string { return fmt.Sprintf("server-%d", id) },
		Temporal: api.AgentTemporal{Address: "127.0.0.1:7233", Namespace: "default"}}
	agents.Mount(app, store)
	(&api.Handler{Store: store}).Mount(app)

	call := func(path, auth string, body any) (int, []byte) {
		b, _ := json.Marshal(body)
		req := httptest.NewRequest("POST", path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	user := `Token token="` + first.Token + `"`
	if s, b := call(api.Prefix+"/networks.json", user, map[string]any{"Name": "n", "Client": 1}); s != fiber.StatusCreated {
		t.Fatalf("network: %d %s", s, b)
	}
	s, b := call(api.Prefix+"/servers.json", user, map[string]any{"Name": "masterServer", "network": 1, "IP": "192.168.1.10", "Pool": "tank"})
	if s != fiber.StatusCreated {
		t.Fatalf("server: %d %s", s, b)
	}
	var srv struct {
		ID  uint   `json:"id"`
		Key string `json:"key"`
	}
	json.Unmarshal(b, &srv) //nolint:errcheck

	for _, auth := range []string{"", "Bearer cdk_WRONG", user} {
		if s, b := call(api.Prefix+"/agent/register.json", auth, nil); s != http.StatusUnauthorized {
			t.Errorf("register with %q: %d %s", auth, s, b)
		}
	}
	s, b = call(api.Prefix+"/agent/register.json", "Bearer "+srv.Key, map[string]string{"addr": "10.0.2.15:8081"})
	if s != http.StatusOK {
		t.Fatalf("register: %d %s", s, b)
	}
	var reg api.RegisterResponse
	if err := json.Unmarshal(b, &reg); err != nil {
		t.Fatal(err)
	}
	if reg.ServerID != srv.ID || reg.Pool != "tank" || reg.TaskQueue != "server-1" || reg.Temporal.Address != "127.0.0.1:7233" ||
		reg.Operation == nil || reg.Operation.Kind != models.OpServerBootstrap {
		t.Errorf("registration = %+v", reg)
	}

	if s, b := call(api.Prefix+"/agent/stats.json", `Key key="`+srv.Key+`"`, models.StatsReport{PoolHealth: "ONLINE", PoolSize: 100, PoolFree: 90,
		Detail: json.RawMessage(`{"erator":[{"name":"tank/erator/volume-3-5","kind":"volume","id":3,"unix":5,"used":4096}]}`)}); s != http.StatusNoContent {
		t.Fatalf("stats: %d %s", s, b)
	}
	got, err := store.FindServer(ctx, &models.Actor{User: models.User{Role: models.RoleSuperAdmin}}, "masterServer")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != models.StatusPanelOK || got.PoolHealth != "ONLINE" || got.PoolSize != 100 || got.AgentAddr != "10.0.2.15:8081" {
		t.Errorf("server after stats = %+v", got)
	}
	req := httptest.NewRequest("GET", api.Prefix+"/servers/masterServer/erator.json", nil)
	req.Header.Set("Authorization", user)
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	var items []models.EratorItem
	json.NewDecoder(resp.Body).Decode(&items) //nolint:errcheck
	resp.Body.Close()
	if len(items) != 1 || items[0].Kind != "volume" || items[0].ID != 3 {
		t.Errorf("erator = %+v", items)
	}
}
