package api_test

import (
	"fmt"
	"testing"

	"github.com/clusterducks/clusterducks/models"
)

// TestOperationCancelRetry: the operation endpoints on a panel without a workflow engine
// (the operation stays queued): a cancel ends a queued operation cancelled at once, a
// second cancel is a 409, a retry records a new operation of the same work (202, the
// volume pending again), a retry of an operation still queued is a 409, an absent
// operation a 404. Without stats the master refuses the create (409, nothing written).
func TestOperationCancelRetry(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		n := id(p.must(201, p.Admin, "POST", "/api/v0.9.2/networks.json", map[string]any{"Name": "N", "Client": 1}))
		srv := p.must(201, p.Admin, "POST", "/api/v0.9.2/servers.json", map[string]any{"Name": "m", "network": n, "IP": "10.0.0.2", "Pool": "tank"})
		if code, body, _ := p.do(p.Admin, "POST", "/api/v0.9.2/volumes.json", map[string]any{"network": n, "Alias": "v", "vol_size": 1}); code != 409 ||
			fmt.Sprint(body.(map[string]any)["field"]) != "network_id" {
			t.Fatalf("create on a master that never reported: %d %v", code, body)
		}
		p.reported(srv)
		vol := p.must(202, p.Admin, "POST", "/api/v0.9.2/volumes.json", map[string]any{"network": n, "Alias": "v", "vol_size": 1})
		op := id(vol["operation"].(map[string]any))
		cancelled := p.must(202, p.Admin, "POST", fmt.Sprintf("/api/v0.9.2/operations/%d/cancel.json", op), nil)
		if cancelled["state"] != models.OpCancelled {
			t.Fatalf("cancel of a queued operation: %v", cancelled)
		}
		p.must(409, p.Admin, "POST", fmt.Sprintf("/api/v0.9.2/operations/%d/cancel.json", op), nil)
		again := p.must(202, p.Admin, "POST", fmt.Sprintf("/api/v0.9.2/operations/%d/retry.json", op), nil)
		if id(again) == op || again["kind"] != models.OpVolumeCreate || again["state"] != models.OpQueued {
			t.Fatalf("retry: %v", again)
		}
		p.must(409, p.Admin, "POST", fmt.Sprintf("/api/v0.9.2/operations/%d/retry.json", id(again)), nil)
		p.must(404, p.Admin, "POST", "/api/v0.9.2/operations/999/cancel.json", nil)
		var v models.Volume
		p.DB.Take(&v, id(vol))
		if v.State != models.StatePending {
			t.Fatalf("volume after the retry: %s", v.State)
		}
	})
}

// TestDuplicateClientNames: a client name already taken (in any case) is refused with
// 409 naming the field, on create and on rename, like a duplicate server name.
func TestDuplicateClientNames(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		a := p.must(201, p.Admin, "POST", "/api/v0.9.2/clients.json", map[string]any{"Name": "Acme"})
		if code, body, _ := p.do(p.Admin, "POST", "/api/v0.9.2/clients.json", map[string]any{"Name": "ACME"}); code != 409 ||
			fmt.Sprint(body.(map[string]any)["field"]) != "name" {
			t.Errorf("duplicate client: %d %v", code, body)
		}
		b := p.must(201, p.Admin, "POST", "/api/v0.9.2/clients.json", map[string]any{"Name": "Other"})
		p.must(409, p.Admin, "PATCH", fmt.Sprintf("/api/v0.9.2/clients/%d.json", id(b)), map[string]any{"Name": "acme"})
		p.must(200, p.Admin, "PATCH", fmt.Sprintf("/api/v0.9.2/clients/%d.json", id(a)), map[string]any{"Name": "Acme"})
	})
}
