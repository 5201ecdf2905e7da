package api_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

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
