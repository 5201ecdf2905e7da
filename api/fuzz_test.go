package api_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
)

var collections = []string{"clients", "users", "networks", "tunnels", "servers", "volumes", "groups", "devices", "menus"}

// FuzzCreate posts arbitrary bodies to every create endpoint (and update, on an existing
// object) of a real panel on SQLite: never a panic, never a 500.
func FuzzCreate(f *testing.F) {
	seeds := []string{
		`{"Name": "New Client"}`,
		`{"Name": "New Network", "Client": 2}`,
		`{"Alias": "New Tunnel Service", "network": 1, "IP": "4.2.2.1"}`,
		`{"Name": "masterServer", "network": 1, "IP": "192.168.1.10", "Pool": "tank"}`,
		`{"network": 1, "Alias": "New Volume 1", "vol_size": "42"}`,
		`{"network": 1, "Name": "New Volume 1", "VolumeID": 1}`,
		`{"network": 1, "mac": "52:54:00:12:34:56", "locked": "true"}`,
		`{"network": 1, "name": "m", "items": [{"type": "chain", "label": "x", "url": "http://a"}]}`,
		`{"email": "a@b.c", "password": "0123456789", "role": "admin", "client": 1}`,
		`{"vol_size": 1e400}`, `{"vol_size": -1}`, `{"network": "1"}`, `{"items": {}}`, `null`, `[]`, `"x"`, `{"a":1,"A":2}`,
		`{"network": 18446744073709551616}`, `{"name": "\u0000"}`, `{"locked": null}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s), false)
		f.Add(uint8(i+3), []byte(s), true)
	}
	db, err := models.Open("sqlite:" + filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	if err := models.Migrate(ctx, db); err != nil {
		f.Fatal(err)
	}
	first, err := models.Bootstrap(ctx, db, "admin@example.com")
	if err != nil {
		f.Fatal(err)
	}
	app := api.NewApp()
	(&api.Handler{Store: &models.Store{DB: db}}).Mount(app)
	auth := `Token token="` + first.Token + `"`
	f.Fuzz(func(t *testing.T, which uint8, body []byte, update bool) {
		coll := collections[int(which)%len(collections)]
		method, path := "POST", api.Prefix+"/"+coll+".json"
		if update {
			method, path = "PATCH", api.Prefix+"/"+coll+"/1.json"
		}
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json")
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s %q: status %d", method, path, body, resp.StatusCode)
		}
	})
}
