package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
)

// world is two clients, each with an admin and a full network, built through the API.
type world struct {
	p       *panelT
	userA   string // Authorization of client A's admin
	userB   string
	objects map[string]int // client B's objects by collection
	netA    int
}

func buildWorld(t *testing.T, driver string) *world {
	p := startPanel(t, driver)
	w := &world{p: p, objects: map[string]int{}}
	for _, c := range []string{"A", "B"} {
		client := p.must(201, p.Admin, "POST", "/api/v0.9.2/clients.json", map[string]any{"Name": "Client " + c})
		user := p.must(201, p.Admin, "POST", "/api/v0.9.2/users.json", map[string]any{
			"email": strings.ToLower(c) + "@example.com", "password": "correct horse battery", "client_id": id(client), "role": "admin"})
		auth := harness.Token(t, p.DB, uint(id(user)))
		net := p.must(201, auth, "POST", "/api/v0.9.2/networks.json", map[string]any{"Name": "Net " + c, "Client": id(client)})
		n := id(net)
		tun := p.must(201, auth, "POST", "/api/v0.9.2/tunnels.json", map[string]any{"Alias": "t", "network": n, "IP": "10.0.0.1"})
		srv := p.reported(p.must(201, auth, "POST", "/api/v0.9.2/servers.json", map[string]any{"Name": "srv" + c, "network": n, "IP": "10.0.0.2", "Pool": "tank"}))
		vol := p.must(202, auth, "POST", "/api/v0.9.2/volumes.json", map[string]any{"network": n, "Alias": "v", "vol_size": "1"})
		grp := p.must(202, auth, "POST", "/api/v0.9.2/groups.json", map[string]any{"network": n, "Name": "g", "VolumeID": id(vol)})
		dev := p.must(201, auth, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": n, "mac": "52:54:00:00:00:0" + map[string]string{"A": "1", "B": "2"}[c]})
		vdisk := p.must(202, auth, "POST", "/api/v0.9.2/vdisks.json", map[string]any{"network": n, "name": "d", "size": 1, "device": id(dev)})
		ct := p.must(201, auth, "POST", "/api/v0.9.2/ctemplates.json", map[string]any{"network": n, "name": "rootfs"})
		p.uploaded(id(ct))
		ctr := p.must(202, auth, "POST", "/api/v0.9.2/containers.json", map[string]any{"network": n, "name": "c", "ctemplate": id(ct)})
		menu := p.must(201, auth, "POST", "/api/v0.9.2/menus.json", map[string]any{"network": n, "name": "m", "items": []map[string]any{{"type": "local", "label": "Local disk"}}})
		op := vol["operation"].(map[string]any)
		if c == "A" {
			w.userA, w.netA = auth, n
			continue
		}
		w.userB = auth
		// A rollout of B's group (its workflow is not the point here: the row is).
		ro := &models.Rollout{NetworkID: uint(n), GroupID: uint(id(grp)), VersionID: 1, Number: 2, PreviousID: 1, Previous: 1, State: models.RolloutCanary, OperationID: uint(id(op))}
		if err := p.DB.Create(ro).Error; err != nil {
			t.Fatal(err)
		}
		w.objects = map[string]int{"clients": id(client), "users": id(user), "networks": n, "tunnels": id(tun), "servers": id(srv),
			"volumes": id(vol), "groups": id(grp), "devices": id(dev), "menus": id(menu), "operations": id(op), "vdisks": id(vdisk), "rollouts": int(ro.ID),
			"ctemplates": id(ct), "containers": id(ctr)}
	}
	return w
}

// TestOwnershipMatrix proves that a user of client A gets 404 — not 403, not data — for
// every object of client B on every endpoint and verb, and never sees them in a list.
func TestOwnershipMatrix(t *testing.T) {
	for _, driver := range harness.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			w := buildWorld(t, driver)
			p := w.p
			bodies := map[string]map[string]any{
				"clients": {"name": "x"}, "users": {"name": "x"}, "networks": {"name": "x"}, "tunnels": {"alias": "x"},
				"servers": {"name": "x"}, "volumes": {"alias": "x"}, "groups": {"name": "x"}, "devices": {"name": "x"}, "menus": {"name": "x"}, "vdisks": {"name": "x"},
				"ctemplates": {"name": "x"}, "containers": {"name": "x"},
			}
			for coll, oid := range w.objects {
				path := fmt.Sprintf("/api/v0.9.2/%s/%d.json", coll, oid)
				verbs := []string{"GET", "PUT", "PATCH", "DELETE"}
				if coll == "operations" || coll == "rollouts" {
					verbs = []string{"GET"}
				}
				for _, verb := range verbs {
					var body any
					if verb == "PUT" || verb == "PATCH" {
						body = bodies[coll]
					}
					code, v, _ := p.do(w.userA, verb, path, body)
					if code != 404 {
						t.Errorf("A %s %s: status %d, want 404: %v", verb, path, code, v)
					}
					// A malformed body must not reveal the object either.
					if verb == "PUT" {
						if code, v, _ := p.do(w.userA, verb, path, "{not json"); code != 404 {
							t.Errorf("A %s %s with a bad body: status %d, want 404: %v", verb, path, code, v)
						}
					}
				}
				// Lists never include B's objects.
				_, list, _ := p.do(w.userA, "GET", "/api/v0.9.2/"+coll+".json?per_page=500", nil)
				for _, item := range list.([]any) {
					if m := item.(map[string]any); id(m) == oid && (coll == "clients" || coll == "users" || coll == "operations" || coll == "rollouts" || m["network_id"] != float64(w.netA)) {
						if coll == "networks" && id(m) == w.netA {
							continue
						}
						t.Errorf("A's list of %s shows B's object %d", coll, oid)
					}
				}
				// B itself sees its object.
				if code, v, _ := p.do(w.userB, "GET", path, nil); code != 200 {
					t.Errorf("B GET %s: %d %v", path, code, v)
				}
			}
			nb, sb, gb := w.objects["networks"], w.objects["servers"], w.objects["groups"]
			extra := []struct {
				verb, path string
				body       any
			}{
				{"GET", "/api/v0.9.2/servers/srvB/stats.json", nil},
				{"GET", fmt.Sprintf("/api/v0.9.2/servers/%d/stats.json", sb), nil},
				{"POST", fmt.Sprintf("/api/v0.9.2/servers/%d/key.json", sb), nil},
				{"GET", fmt.Sprintf("/api/v0.9.2/groups/%d/versions.json", gb), nil},
				{"GET", fmt.Sprintf("/api/v0.9.2/networks/%d/delegations.json", nb), nil},
				{"POST", fmt.Sprintf("/api/v0.9.2/networks/%d/delegations.json", nb), map[string]any{"user_id": 1}},
				{"DELETE", fmt.Sprintf("/api/v0.9.2/networks/%d/delegations/1.json", nb), nil},
				{"GET", fmt.Sprintf("/api/v0.9.2/tunnels.json?network_id=%d", nb), nil},
				{"POST", fmt.Sprintf("/api/v0.9.2/groups/%d/maintenance.json", gb), map[string]any{"device_id": w.objects["devices"]}},
				{"DELETE", fmt.Sprintf("/api/v0.9.2/groups/%d/maintenance.json", gb), nil},
				{"POST", fmt.Sprintf("/api/v0.9.2/volumes/%d/maintenance.json", w.objects["volumes"]), map[string]any{"device_id": w.objects["devices"]}},
				{"DELETE", fmt.Sprintf("/api/v0.9.2/volumes/%d/maintenance.json", w.objects["volumes"]), nil},
				{"POST", fmt.Sprintf("/api/v0.9.2/rollouts/%d/pause.json", w.objects["rollouts"]), nil},
				{"POST", fmt.Sprintf("/api/v0.9.2/rollouts/%d/resume.json", w.objects["rollouts"]), nil},
				{"POST", fmt.Sprintf("/api/v0.9.2/rollouts/%d/abort.json", w.objects["rollouts"]), nil},
				{"GET", fmt.Sprintf("/api/v0.9.2/containers/%d/status.json", w.objects["containers"]), nil},
				{"POST", fmt.Sprintf("/api/v0.9.2/containers/%d/rebase.json", w.objects["containers"]), map[string]any{"ctemplate_version": 1}},
			}
			for _, action := range models.ContainerActions {
				extra = append(extra, struct {
					verb, path string
					body       any
				}{"POST", fmt.Sprintf("/api/v0.9.2/containers/%d/%s.json", w.objects["containers"], action), nil})
			}
			for _, coll := range []string{"tunnels", "servers", "volumes", "groups", "devices", "menus", "vdisks", "ctemplates", "containers"} {
				body := map[string]any{"network": nb, "name": "x", "alias": "x", "ip": "10.0.0.9", "pool": "tank", "vol_size": 1, "volume_id": w.objects["volumes"], "mac": "52:54:00:00:00:99"}
				switch coll {
				case "tunnels":
					body = map[string]any{"network": nb, "alias": "x", "ip": "10.0.0.9"}
				case "servers":
					body = map[string]any{"network": nb, "name": "x", "ip": "10.0.0.9", "pool": "tank"}
				case "volumes":
					body = map[string]any{"network": nb, "alias": "x", "vol_size": 1}
				case "groups":
					body = map[string]any{"network": nb, "name": "x", "volume_id": w.objects["volumes"]}
				case "devices":
					body = map[string]any{"network": nb, "mac": "52:54:00:00:00:99"}
				case "menus":
					body = map[string]any{"network": nb, "name": "x"}
				case "vdisks":
					body = map[string]any{"network": nb, "name": "x", "size": 1}
				case "ctemplates":
					body = map[string]any{"network": nb, "name": "x"}
				case "containers":
					body = map[string]any{"network": nb, "name": "x", "ctemplate": w.objects["ctemplates"]}
				}
				extra = append(extra, struct {
					verb, path string
					body       any
				}{"POST", "/api/v0.9.2/" + coll + ".json", body})
			}
			for _, e := range extra {
				code, v, _ := p.do(w.userA, e.verb, e.path, e.body)
				if strings.Contains(e.path, "network_id=") {
					if code != 200 || len(v.([]any)) != 0 {
						t.Errorf("A %s %s: %d %v, want an empty list", e.verb, e.path, code, v)
					}
					continue
				}
				if code != 404 {
					t.Errorf("A %s %s: status %d, want 404: %v", e.verb, e.path, code, v)
				}
			}
		})
	}
}

// TestDelegation: a delegated ("pilot") user sees exactly the delegated networks.
func TestDelegation(t *testing.T) {
	w := buildWorld(t, "postgres")
	p := w.p
	user := p.must(201, w.userA, "POST", "/api/v0.9.2/users.json", map[string]any{"email": "pilot@example.com", "password": "correct horse battery"})
	pilot := harness.Token(t, p.DB, uint(id(user)))
	nb := w.objects["networks"]
	// Only B's admin can delegate B's network; A's admin gets 404 (it cannot see it).
	p.must(404, w.userA, "POST", fmt.Sprintf("/api/v0.9.2/networks/%d/delegations.json", nb), map[string]any{"user_id": id(user)})
	p.must(201, w.userB, "POST", fmt.Sprintf("/api/v0.9.2/networks/%d/delegations.json", nb), map[string]any{"user_id": id(user)})
	_, list, _ := p.do(pilot, "GET", "/api/v0.9.2/networks.json", nil)
	got := map[int]bool{}
	for _, it := range list.([]any) {
		got[id(it.(map[string]any))] = true
	}
	if len(got) != 2 || !got[nb] || !got[w.netA] {
		t.Fatalf("pilot sees networks %v, want exactly {%d (own client), %d (delegated)}", got, w.netA, nb)
	}
	p.must(200, pilot, "GET", fmt.Sprintf("/api/v0.9.2/servers/%d.json", w.objects["servers"]), nil)
	// The pilot cannot see B's client or users, and cannot change B's limits.
	p.must(404, pilot, "GET", fmt.Sprintf("/api/v0.9.2/clients/%d.json", w.objects["clients"]), nil)
	p.must(404, pilot, "GET", fmt.Sprintf("/api/v0.9.2/users/%d.json", w.objects["users"]), nil)
	p.must(403, pilot, "PATCH", fmt.Sprintf("/api/v0.9.2/networks/%d.json", nb), map[string]any{"max_servers": 1})
	p.must(204, w.userB, "DELETE", fmt.Sprintf("/api/v0.9.2/networks/%d/delegations/%d.json", nb, id(user)), nil)
	p.must(404, pilot, "GET", fmt.Sprintf("/api/v0.9.2/servers/%d.json", w.objects["servers"]), nil)
}
