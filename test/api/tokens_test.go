package api_test

import (
	"fmt"
	"testing"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
)

// TestNamedTokens: on both databases, a user holds several named API tokens, each shown
// once at its create; revoking one leaves the others working; a duplicate name is a 409,
// a missing one a 422 naming the field, another user's token a 404; the list shows the
// last use and never a secret.
func TestNamedTokens(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		bearer := func(tok string) string { return `Token token="` + tok + `"` }
		a := p.must(201, p.Admin, "POST", "/api/v0.9.2/account/tokens.json", map[string]any{"name": "backup"})
		b := p.must(201, p.Admin, "POST", "/api/v0.9.2/account/tokens.json", map[string]any{"Name": "monitoring"})
		ta, tb := a["token"].(string), b["token"].(string)
		if ta == "" || tb == "" || ta == tb || a["name"] != "backup" {
			t.Fatalf("created %v and %v", a, b)
		}
		p.must(200, bearer(ta), "GET", "/api/v0.9.2/account.json", nil)
		p.must(200, bearer(tb), "GET", "/api/v0.9.2/account.json", nil)
		if code, body, _ := p.do(p.Admin, "POST", "/api/v0.9.2/account/tokens.json", map[string]any{"name": "backup"}); code != 409 || fmt.Sprint(body.(map[string]any)["field"]) != "name" {
			t.Errorf("duplicate name: %d %v", code, body)
		}
		if code, body, _ := p.do(p.Admin, "POST", "/api/v0.9.2/account/tokens.json", map[string]any{}); code != 422 || fmt.Sprint(body.(map[string]any)["field"]) != "name" {
			t.Errorf("no name: %d %v", code, body)
		}
		code, list, _ := p.do(p.Admin, "GET", "/api/v0.9.2/account/tokens.json", nil)
		items, _ := list.([]any)
		used := false
		for _, it := range items {
			m := it.(map[string]any)
			if _, leaked := m["token"]; leaked {
				t.Errorf("the list shows a secret: %v", m)
			}
			if m["name"] == "backup" && m["last_used_at"] != nil {
				used = true
			}
		}
		if code != 200 || len(items) < 3 || !used {
			t.Errorf("list: %d %v", code, list)
		}
		// Another user cannot see or revoke the admin's token.
		u := p.must(201, p.Admin, "POST", "/api/v0.9.2/users.json", map[string]any{"email": "tokens@example.com", "password": "a password of ten+"})
		ut := harness.Token(t, p.DB, uint(id(u)))
		p.must(404, ut, "DELETE", fmt.Sprintf("/api/v0.9.2/account/tokens/%d.json", id(b)), nil)
		p.must(204, p.Admin, "DELETE", fmt.Sprintf("/api/v0.9.2/account/tokens/%d.json", id(a)), nil)
		if code, _, _ := p.do(bearer(ta), "GET", "/api/v0.9.2/account.json", nil); code != 401 {
			t.Errorf("revoked token answers %d", code)
		}
		p.must(200, bearer(tb), "GET", "/api/v0.9.2/account.json", nil)
		p.must(404, bearer(tb), "DELETE", fmt.Sprintf("/api/v0.9.2/account/tokens/%d.json", id(a)), nil)
		var n int64
		p.DB.Model(&models.AuditEvent{}).Where("object = ? AND action IN ?", "token", []string{"create", "revoke"}).Count(&n)
		if n != 3 {
			t.Errorf("%d token audit events, want 3", n)
		}
	})
}
