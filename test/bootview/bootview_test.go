package bootviewtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/iscsi/initiator"
	"github.com/clusterducks/clusterducks/test/netboot"
)

func TestMain(m *testing.M) { harness.MainPostgres(m) }

// site is a panel with two groups, each with version 1 published on the agent's disks:
// strict (the network's default) and loose.
type site struct {
	p             *netboot.HostPanel
	disks         *boot.FileDisks
	strict, loose *models.Group
}

func newSite(t *testing.T, lease time.Duration) *site {
	t.Helper()
	p := netboot.StartHostPanel(t)
	Serve(t, p, lease)
	disks, err := boot.NewFileDisks(filepath.Join(t.TempDir(), "pool"))
	if err != nil {
		t.Fatal(err)
	}
	s := &site{p: p, disks: disks, strict: p.Group(true, false)}
	vol := &models.Volume{NetworkID: p.Network.ID, Alias: "lab", SizeGiB: 1, State: models.StateReady}
	if err := p.DB.Create(vol).Error; err != nil {
		t.Fatal(err)
	}
	s.loose = &models.Group{NetworkID: p.Network.ID, Name: "labs", VolumeID: vol.ID, State: models.StateReady}
	if err := p.DB.Create(s.loose).Error; err != nil {
		t.Fatal(err)
	}
	host := &netboot.HostAgent{Disks: disks}
	p.Publish(host, s.strict, 1)
	p.Publish(host, s.loose, 1)
	return s
}

// synced waits until the agent's view holds n devices at the panel's revision.
func synced(t *testing.T, p *netboot.HostPanel, a *Agent, n int) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		rev, _, err := models.BootRevisionOf(context.Background(), p.DB, p.Network.ID)
		if err != nil {
			return err
		}
		if st := a.View.Stats(); st.Devices != n || st.Revision != rev {
			return fmt.Errorf("view: %d devices at revision %d, want %d at %d", st.Devices, st.Revision, n, rev)
		}
		return nil
	})
}

func eventually(t *testing.T, within time.Duration, f func() error) {
	t.Helper()
	end := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(end) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func httpClient() *http.Client { return &http.Client{Timeout: time.Minute} }

func bootScript(t *testing.T, a *Agent, d netboot.Device) string {
	t.Helper()
	s, err := a.Get(httpClient(), d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func expectKind(t *testing.T, script, kind, contains string) {
	t.Helper()
	if boot.ScriptKind(script) != kind || !strings.Contains(script, contains) {
		t.Fatalf("want a %s script saying %q, got:\n%s", kind, contains, script)
	}
}

// TestViewAnswersLikeThePanel compares the view's answer for devices in every state the
// boot path knows (clones, locks, menus, no group, group and volume maintenance) with
// the panel's own (models.BootLookup, api.BootInfo), then boots the known devices with no
// request to the panel's boot endpoint, and sees a change made in the panel reach them.
func TestViewAnswersLikeThePanel(t *testing.T) {
	s := newSite(t, time.Minute)
	p, db := s.p, s.p.DB
	devs := KnownDevices(t, p, s.disks, s.strict, 100, 3, 3)
	devs = append(devs, KnownDevices(t, p, s.disks, s.loose, 200, 2, 2)...)
	menu := &models.Menu{NetworkID: p.Network.ID, Name: "choose", Items: fmt.Sprintf(`[{"type":"group","label":"Labs","group_id":%d},{"type":"local","label":"Local disk"}]`, s.loose.ID)}
	if err := db.Create(menu).Error; err != nil {
		t.Fatal(err)
	}
	extra := map[string]*models.Device{
		"locked":      {Locked: true, GroupID: &s.strict.ID},
		"menu":        {MenuID: &menu.ID, GroupID: &s.strict.ID},
		"groupless":   {},
		"maintenance": {GroupID: &s.strict.ID},
		"volume":      {},
		"no-uuid":     {GroupID: &s.strict.ID},
	}
	i := 300
	byName := map[string]netboot.Device{}
	for name, row := range extra {
		d := netboot.DeviceN(i)
		i++
		row.NetworkID, row.MAC, row.UUID = p.Network.ID, d.MAC, d.UUID
		if name == "no-uuid" {
			row.UUID = ""
		}
		if err := db.Create(row).Error; err != nil {
			t.Fatal(err)
		}
		byName[name] = d
		devs = append(devs, d)
	}
	if err := db.Model(&models.Group{}).Where("id = ?", s.loose.ID).
		Updates(map[string]any{"maintenance": true, "maintenance_device_id": extra["maintenance"].ID}).Error; err != nil {
		t.Fatal(err)
	}
	vol := &models.Volume{NetworkID: p.Network.ID, Alias: "install", SizeGiB: 1, State: models.StateReady, Maintenance: true, MaintenanceDeviceID: &extra["volume"].ID}
	if err := db.Create(vol).Error; err != nil {
		t.Fatal(err)
	}

	a := Start(t, p, Options{Disks: s.disks})
	synced(t, p, a, len(devs))
	eventually(t, 30*time.Second, func() error {
		if _, _, ok := a.View.Lookup(byName["volume"].MAC, 0); !ok {
			return fmt.Errorf("the view has no network part yet")
		}
		return nil
	})
	ctx := context.Background()
	for _, d := range devs {
		for _, choice := range []uint{0, s.strict.ID} {
			got, fresh, ok := a.View.Lookup(d.MAC, choice)
			var row models.Device
			if err := db.Where("mac = ?", d.MAC).Take(&row).Error; err != nil {
				t.Fatal(err)
			}
			if row.UUID == "" || (choice != 0 && (row.GroupID == nil || *row.GroupID != choice)) {
				if ok {
					t.Fatalf("device %s (choice %d): the view answered what only the panel can: %+v", d.MAC, choice, got)
				}
				continue
			}
			if !ok || !fresh {
				t.Fatalf("device %s (choice %d): no fresh answer from the view (ok %v, fresh %v)", d.MAC, choice, ok, fresh)
			}
			st, err := models.BootLookup(ctx, db, p.Server.ID, nil, d.MAC, d.UUID, choice)
			if err != nil {
				t.Fatal(err)
			}
			info := api.BootInfo(st)
			// The device's boot revision, as the panel's boot endpoint adds it.
			if info.Device.Revision, err = models.DeviceBootRevision(ctx, db, row.NetworkID, row.ID); err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(info)
			have, _ := json.Marshal(got)
			if string(want) != string(have) {
				t.Fatalf("device %s (choice %d):\nview  %s\npanel %s", d.MAC, choice, have, want)
			}
		}
	}
	if _, _, ok := a.View.Lookup(netboot.DeviceN(999).MAC, 0); ok {
		t.Fatal("the view answered for an unknown MAC (a registration is the panel's)")
	}

	// Known devices boot from the view alone: not one request to the panel's boot endpoint.
	for _, d := range devs[:5] {
		expectKind(t, bootScript(t, a, d), "sanboot", "sanboot iscsi:")
	}
	if n := a.Panel.Count(wire.PathBoot); n != 0 {
		t.Fatalf("%d boot queries went to the panel for known devices, want 0", n)
	}

	// A lock set in the panel reaches the view.
	row := p.Device(devs[0].MAC)
	p.API("PATCH", fmt.Sprintf("/devices/%d.json", row.ID), map[string]any{"locked": true})
	eventually(t, 30*time.Second, func() error {
		if info, _, ok := a.View.Lookup(devs[0].MAC, 0); !ok || !info.Device.Locked {
			return fmt.Errorf("the lock has not reached the view")
		}
		return nil
	})
	// A device deleted in the panel leaves the view.
	p.API("DELETE", fmt.Sprintf("/devices/%d.json", p.Device(devs[4].MAC).ID), nil)
	eventually(t, 30*time.Second, func() error {
		if _, _, ok := a.View.Lookup(devs[4].MAC, 0); ok {
			return fmt.Errorf("the deleted device is still in the view")
		}
		return nil
	})
	if st := a.View.Stats(); st.FullLoads != 1 {
		t.Fatalf("full loads %d, want 1 (the first): changes must come as deltas", st.FullLoads)
	}
}

// leasedSite is a site whose panel has the given lease, n known devices of each group
// with their disks, and an agent whose view holds them.
func leasedSite(t *testing.T, lease time.Duration, n int) (s *site, a *Agent, strict, loose []netboot.Device) {
	t.Helper()
	s = newSite(t, lease)
	strict = KnownDevices(t, s.p, s.disks, s.strict, 100, n, n)
	loose = KnownDevices(t, s.p, s.disks, s.loose, 200, n, n)
	a = Start(t, s.p, Options{Disks: s.disks})
	synced(t, s.p, a, 2*n)
	return s, a, strict, loose
}

// TestPanelStopped stops the panel: known devices of the loose group keep booting from
// the view; those of the strict group boot until the lease ends, then get the reboot
// loop that says why.
func TestPanelStopped(t *testing.T) {
	const lease = 10 * time.Second
	s, a, strict, loose := leasedSite(t, lease, 2)
	for _, d := range append(append([]netboot.Device{}, strict...), loose...) {
		expectKind(t, bootScript(t, a, d), "sanboot", "sanboot iscsi:")
	}
	Stop(s.p)
	if st := a.View.Stats(); st.Age < lease/2 {
		// Still within the lease: strict devices boot.
		expectKind(t, bootScript(t, a, strict[0]), "sanboot", "sanboot iscsi:")
	}
	eventually(t, lease+60*time.Second, func() error {
		if got := bootScript(t, a, strict[1]); boot.ScriptKind(got) != "reboot" {
			return fmt.Errorf("strict device after the lease (view %+v, panel requests %d): %s", a.View.Stats(), a.Panel.Count(wire.PathBootView), got)
		}
		return nil
	})
	expectKind(t, bootScript(t, a, strict[0]), "reboot", "has not confirmed this server's view within its lease")
	for _, d := range loose {
		expectKind(t, bootScript(t, a, d), "sanboot", "sanboot iscsi:")
	}
	if n := a.Panel.Count(wire.PathBoot); n != 0 {
		t.Fatalf("%d boot queries went to the panel for known devices, want 0", n)
	}
	// The panel back: the view is confirmed again and strict devices boot.
	Serve(t, s.p, lease)
	eventually(t, 60*time.Second, func() error {
		if got := bootScript(t, a, strict[1]); boot.ScriptKind(got) != "sanboot" {
			return fmt.Errorf("strict device with the panel back: %s", got)
		}
		return nil
	})
}

// TestViewResumes restarts the agent and the panel: the view is answered from its file
// at once and resumes from its revision (no full reload); when the panel's log no longer
// reaches back to the agent's revision, the agent reloads it whole.
func TestViewResumes(t *testing.T) {
	s := newSite(t, time.Minute)
	p := s.p
	devs := KnownDevices(t, p, s.disks, s.loose, 100, 3, 3)
	state := filepath.Join(t.TempDir(), "bootview.json")
	a := Start(t, p, Options{Disks: s.disks, State: state})
	synced(t, p, a, 3)
	if st := a.View.Stats(); st.FullLoads != 1 {
		t.Fatalf("first start: %d full loads, want 1", st.FullLoads)
	}
	a.Stop()

	// Agent restart, with a change made meanwhile.
	p.API("PATCH", fmt.Sprintf("/devices/%d.json", p.Device(devs[0].MAC).ID), map[string]any{"locked": true})
	Stop(p) // the restarted agent answers before it has spoken to the panel
	a = Start(t, p, Options{Disks: s.disks, State: state})
	expectKind(t, bootScript(t, a, devs[1]), "sanboot", "sanboot iscsi:")
	Serve(t, p, time.Minute)
	synced(t, p, a, 3)
	if info, _, _ := a.View.Lookup(devs[0].MAC, 0); !info.Device.Locked {
		t.Fatal("the lock made while the agent was down did not reach its view")
	}
	if st := a.View.Stats(); st.FullLoads != 0 || st.Deltas == 0 {
		t.Fatalf("after an agent restart: %d full loads, %d deltas; want 0 and some", st.FullLoads, st.Deltas)
	}

	// Panel restart: the watch comes back to the new panel and resumes.
	Serve(t, p, time.Minute)
	p.API("PATCH", fmt.Sprintf("/devices/%d.json", p.Device(devs[1].MAC).ID), map[string]any{"locked": true})
	synced(t, p, a, 3)
	eventually(t, 30*time.Second, func() error {
		if info, _, _ := a.View.Lookup(devs[1].MAC, 0); !info.Device.Locked {
			return fmt.Errorf("the lock made after the panel's restart has not reached the view")
		}
		return nil
	})
	if st := a.View.Stats(); st.FullLoads != 0 {
		t.Fatalf("after a panel restart: %d full loads, want 0", st.FullLoads)
	}
	a.Stop()

	// The log pruned past the agent's revision: a full reload.
	p.API("PATCH", fmt.Sprintf("/devices/%d.json", p.Device(devs[2].MAC).ID), map[string]any{"locked": true})
	if err := models.PruneBootChanges(context.Background(), p.DB, -time.Minute); err != nil {
		t.Fatal(err)
	}
	a = Start(t, p, Options{Disks: s.disks, State: state})
	synced(t, p, a, 3)
	if info, _, _ := a.View.Lookup(devs[2].MAC, 0); !info.Device.Locked {
		t.Fatal("the full reload missed the lock")
	}
	if st := a.View.Stats(); st.FullLoads != 1 {
		t.Fatalf("after the log was pruned: %d full loads, want 1", st.FullLoads)
	}
}

// TestAdmissionRetry bounds the devices in their iSCSI login phase to 1: a second device
// is told to retry (at once, not left to time out) until the first one has logged in to
// its target (a real iSCSI login to our target); a device that never logs in holds its
// slot only for the login window.
func TestAdmissionRetry(t *testing.T) {
	s := newSite(t, time.Minute)
	devs := KnownDevices(t, s.p, s.disks, s.loose, 100, 3, 3)
	window := time.Hour
	a := Start(t, s.p, Options{Disks: s.disks, Config: func(c *boot.Config) {
		c.MaxLogins, c.LoginWindow = 1, window
	}})
	synced(t, s.p, a, 3)
	expectKind(t, bootScript(t, a, devs[0]), "sanboot", "sanboot iscsi:")
	// The same device asking again keeps its slot.
	expectKind(t, bootScript(t, a, devs[0]), "sanboot", "sanboot iscsi:")
	t0 := time.Now()
	expectKind(t, bootScript(t, a, devs[1]), "retry", "logging in to this server already")
	t.Logf("the retry answer took %v", time.Since(t0))
	if adm := a.Svc.Admission(); adm.Logins != 1 || adm.MaxLogins != 1 || adm.Refused != 1 {
		t.Fatalf("admission %+v, want 1 login of 1, 1 refused", adm)
	}
	// The first device logs in, as iPXE's sanboot does: its slot is free at once.
	first := s.p.Device(devs[0].MAC)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := initiator.Dial(ctx, a.ISCSI, initiator.Options{InitiatorName: boot.InitiatorName(devs[0].UUID),
		TargetName: wire.DeviceIQN(first.NetworkID, first.ID)})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	expectKind(t, bootScript(t, a, devs[1]), "sanboot", "sanboot iscsi:")
	// The second device never logs in: with a short window its slot ends by itself.
	a.Stop()
	b := Start(t, s.p, Options{Disks: s.disks, Config: func(c *boot.Config) {
		c.MaxLogins, c.LoginWindow = 1, 3*time.Second
	}})
	synced(t, s.p, b, 3)
	expectKind(t, bootScript(t, b, devs[1]), "sanboot", "sanboot iscsi:")
	expectKind(t, bootScript(t, b, devs[2]), "retry", "logging in to this server already")
	eventually(t, 60*time.Second, func() error {
		if got := bootScript(t, b, devs[2]); boot.ScriptKind(got) != "sanboot" {
			return fmt.Errorf("third device: %s", got)
		}
		return nil
	})
}

// TestWatchBadInput: the watch names the field it cannot read (422) and refuses a
// request without the server key (401).
func TestWatchBadInput(t *testing.T) {
	s := newSite(t, time.Minute)
	for _, c := range []struct {
		query, key string
		status     int
		field      string
	}{
		{"since=abc&wait=0", s.p.Key, http.StatusUnprocessableEntity, "since"},
		{"since=1&wait=-3", s.p.Key, http.StatusUnprocessableEntity, "wait"},
		{"since=0&wait=0", "", http.StatusUnauthorized, ""},
		{"since=0&wait=0", s.p.Key, http.StatusOK, ""},
	} {
		req, _ := http.NewRequest("GET", s.p.URL+wire.Prefix+wire.PathBootView+"?"+c.query, nil)
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		resp, err := httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body wire.ErrorBody
		json.NewDecoder(resp.Body).Decode(&body) //nolint:errcheck
		resp.Body.Close()
		if resp.StatusCode != c.status || body.Field != c.field {
			t.Errorf("%s: %d %+v, want %d naming %q", c.query, resp.StatusCode, body, c.status, c.field)
		}
	}
}
