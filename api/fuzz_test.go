package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"
)

var collections = []string{"clients", "users", "networks", "tunnels", "servers", "volumes", "groups", "devices", "menus", "vdisks", "ctemplates", "containers"}

// fuzzPanel is a real panel on SQLite with two clients besides the bootstrap one: a victim
// with a network and objects in it, and an attacker whose admin the fuzzer acts as.
type fuzzPanel struct {
	db             *gorm.DB
	app            *fiber.App
	admin, client  string // Authorization headers: the super-admin, the attacker's client admin
	attackerClient uint
}

func newFuzzPanel(f *testing.F) *fuzzPanel {
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
	p := &fuzzPanel{db: db, app: api.NewApp(), admin: `Token token="` + first.Token + `"`}
	(&api.Handler{Store: &models.Store{DB: db}}).Mount(p.app)
	mk := func(coll string, body map[string]any) uint {
		b, _ := json.Marshal(body)
		status, out := p.do("POST", api.Prefix+"/"+coll+".json", b, p.admin)
		var obj struct {
			ID uint `json:"id"`
		}
		if status/100 != 2 || json.Unmarshal(out, &obj) != nil || obj.ID == 0 {
			f.Fatalf("fixture %s %v: %d %s", coll, body, status, out)
		}
		return obj.ID
	}
	victim := mk("clients", map[string]any{"name": "Victim"})
	vnet := mk("networks", map[string]any{"name": "Victim network", "client": victim})
	mk("tunnels", map[string]any{"alias": "Victim tunnel", "network": vnet, "ip": "192.0.2.1"})
	mk("servers", map[string]any{"name": "victim-master", "network": vnet, "ip": "192.0.2.10", "pool": "tank"})
	mk("users", map[string]any{"email": "victim@example.com", "password": "victim-password-1", "role": "admin", "client": victim})
	mk("menus", map[string]any{"network": vnet, "name": "Victim menu", "items": []any{}})
	mk("devices", map[string]any{"network": vnet, "mac": "52:54:00:00:00:01"})
	p.attackerClient = mk("clients", map[string]any{"name": "Attacker"})
	mk("networks", map[string]any{"name": "Attacker network", "client": p.attackerClient})
	attacker := mk("users", map[string]any{"email": "attacker@example.com", "password": "attacker-password-1", "role": "admin", "client": p.attackerClient})
	tok, err := models.IssueToken(ctx, db, attacker, "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	p.client = `Token token="` + tok + `"`
	return p
}

func (p *fuzzPanel) do(method, path string, body []byte, auth string) (int, []byte) {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.app.Test(req, -1)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// outside is a digest of every row that does not belong to the attacker's client: the
// clients, users and networks of others and every row of their networks. Audit records,
// sessions and tokens are the caller's own trail and are left out.
func (p *fuzzPanel) outside(t *testing.T) string {
	t.Helper()
	var nets []uint
	if err := p.db.Model(&models.Network{}).Where("client_id <> ?", p.attackerClient).Order("id").Pluck("id", &nets).Error; err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	tables, err := p.db.Migrator().GetTables()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(tables)
	for _, table := range tables {
		var where string
		var args []any
		cols, _ := p.db.Migrator().ColumnTypes(table)
		has := map[string]bool{}
		for _, c := range cols {
			has[c.Name()] = true
		}
		switch {
		case table == "clients":
			where, args = "id <> ?", []any{p.attackerClient}
		case table == "users" || table == "networks":
			where, args = "client_id IS NULL OR client_id <> ?", []any{p.attackerClient}
		case has["network_id"] && len(nets) > 0:
			where, args = "network_id IN ?", []any{nets}
		default:
			continue
		}
		var rows []map[string]any
		if err := p.db.Table(table).Where(where, args...).Find(&rows).Error; err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		lines := make([]string, len(rows))
		for i, r := range rows {
			delete(r, "updated_at")
			b, _ := json.Marshal(r)
			lines[i] = string(b)
		}
		sort.Strings(lines)
		fmt.Fprintf(h, "%s:%s\n", table, strings.Join(lines, "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// repeatedKey reports whether a JSON object (at any depth) names a key twice, whatever its
// case: such a body must never be accepted.
func repeatedKey(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	var walk func() (bool, error)
	walk = func() (bool, error) {
		tok, err := dec.Token()
		if err != nil {
			return false, err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			dup := false
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return false, err
				}
				key := strings.ToLower(fmt.Sprint(k))
				dup = dup || seen[key]
				seen[key] = true
				d, err := walk()
				if err != nil {
					return false, err
				}
				dup = dup || d
			}
			_, err := dec.Token()
			return dup, err
		case json.Delim('['):
			dup := false
			for dec.More() {
				d, err := walk()
				if err != nil {
					return false, err
				}
				dup = dup || d
			}
			_, err := dec.Token()
			return dup, err
		}
		return false, nil
	}
	dup, err := walk()
	return err == nil && dup
}

// FuzzCreate sends arbitrary bodies to every create endpoint, and to update and delete of
// existing objects, of a real panel on SQLite, as the super-admin and as another client's
// admin. The oracle: never a panic, never a 5xx; a body that repeats a key is never
// accepted; and a client admin's request never changes anything outside its own client
// (whatever it answers), nor gets a 2xx on another client's object.
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
		`{"vol_size": 1048577, "vol_size": 5}`, `{"Name": "x", "name": "y"}`, `{"role": "super_admin"}`,
		`{"network": 1, "name": "data", "size": "4", "device": 1}`, `{"size": 0}`, `{"device_id": null}`, `{"size": 1e400, "device": 2}`,
		`{"network": 1, "name": "c", "ctemplate": 1, "memory_mb": 64, "autostart": true, "command": "echo hi"}`, `{"memory_mb": -1}`,
		`{"cpu_quota_percent": 1e400}`, `{"command": "a\nb"}`, `{"autostart": "yes"}`, `{"ctemplate_version": -1, "server": 2}`,
		`{"network": 1, "name": "deb", "debootstrap": "bookworm"}`, `{"suite": "../etc"}`, `{"debootstrap": 7}`, `{"ctemplate_version": 2}`,
		`{"client": 1}`, `{"client_id": 2, "name": "mine now"}`, `{"network": 1, "name": "moved"}`, `{"password": "new-password-123"}`,
	}
	for i, s := range seeds {
		for _, mode := range []uint8{0, 1, 2} {
			f.Add(uint8(i), []byte(s), mode, false)
			f.Add(uint8(i+3), []byte(s), mode, true)
		}
	}
	p := newFuzzPanel(f)
	f.Fuzz(func(t *testing.T, which uint8, body []byte, mode uint8, asClient bool) {
		coll := collections[int(which)%len(collections)]
		id := 1 + int(which/uint8(len(collections)))%4 // objects 1–4: the bootstrap's, the victim's, the attacker's
		method, path := "POST", api.Prefix+"/"+coll+".json"
		switch mode % 3 {
		case 1:
			method, path = "PATCH", fmt.Sprintf("%s/%s/%d.json", api.Prefix, coll, id)
		case 2:
			method, path = "DELETE", fmt.Sprintf("%s/%s/%d.json", api.Prefix, coll, id)
		}
		auth := p.admin
		var before string
		var owned bool
		if asClient {
			auth, before, owned = p.client, p.outside(t), p.owns(coll, id)
		}
		status, out := p.do(method, path, body, auth)
		if status >= 500 || status == 0 {
			t.Fatalf("%s %s %q: status %d %s", method, path, body, status, out)
		}
		if method != "DELETE" && status/100 == 2 && repeatedKey(body) {
			t.Fatalf("%s %s %q: a repeated key was accepted (%d)", method, path, body, status)
		}
		if !asClient {
			return
		}
		if after := p.outside(t); after != before {
			t.Fatalf("%s %s %q as another client's admin (%d %s) changed rows outside its client", method, path, body, status, out)
		}
		if method != "POST" && status/100 == 2 && !owned {
			t.Fatalf("%s %s as another client's admin: %d on an object it does not own", method, path, status)
		}
	})
}

// owns reports whether object id of collection exists and belongs to the attacker's
// client (asked before the request: a delete removes the evidence).
func (p *fuzzPanel) owns(coll string, id int) bool {
	switch coll {
	case "clients":
		return uint(id) == p.attackerClient
	case "users", "networks":
		var n int64
		p.db.Table(coll).Where("id = ? AND client_id = ?", id, p.attackerClient).Count(&n)
		return n > 0
	}
	var n int64
	p.db.Table(coll).Where("id = ? AND network_id IN (?)", id,
		p.db.Model(&models.Network{}).Select("id").Where("client_id = ?", p.attackerClient)).Count(&n)
	return n > 0
}
