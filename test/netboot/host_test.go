package netboot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
)

func TestMain(m *testing.M) { harness.MainPostgresTemporal(m) }

// bootVM boots a device VM and returns the marker it printed.
func bootVM(t *testing.T, a *HostAgent, d Device) string {
	t.Helper()
	res, err := Boot(context.Background(), a.BootURL, d, 3*time.Minute)
	if err != nil {
		t.Fatalf("device %s: %v", d.MAC, err)
	}
	t.Logf("device %s booted %q in %s", d.MAC, res.Marker, res.Took.Round(time.Millisecond))
	return res.Marker
}

// startHost starts a panel and its master's agent (file disks, no boot cache); each setup
// runs on the panel before the agent starts.
func startHost(t *testing.T, setup ...func(*HostPanel)) (*HostPanel, *HostAgent) {
	t.Helper()
	p := StartHostPanel(t)
	for _, f := range setup {
		f(p)
	}
	return p, StartHostAgent(t, p, nil, "")
}

// publishedGroup is a new group with Strict Versioning whose v1 agent a has published.
func publishedGroup(p *HostPanel, a *HostAgent) *models.Group {
	g := p.Group(true, false)
	p.Publish(a, g, 1)
	return g
}

// bootAll boots devs at once through bootURL and fails unless device i printed want[i].
func bootAll(t *testing.T, bootURL string, devs []Device, want []string, timeout time.Duration) {
	t.Helper()
	got := make([]string, len(devs))
	errs := make([]error, len(devs))
	var wg sync.WaitGroup
	for i := range devs {
		wg.Go(func() {
			res, err := Boot(context.Background(), bootURL, devs[i], timeout)
			if err == nil {
				got[i] = res.Marker
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range devs {
		if errs[i] != nil || got[i] != want[i] {
			t.Fatalf("concurrent boot of %s: %q, want %q: %v", devs[i].MAC, got[i], want[i], errs[i])
		}
	}
}

func expect(t *testing.T, got, want, why string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: booted %q, want %q", why, got, want)
	}
}

// TestHostNetboot runs the boot path on the host through every real part but ZFS and
// Temporal: the panel (API, agent endpoints, PostgreSQL), the boot endpoint, our iSCSI
// target, and real iPXE boots under qemu. Disks are files and provisioning is direct.
func TestHostNetboot(t *testing.T) {
	harness.RequirePackages(t, Packages...)
	p := StartHostPanel(t)
	cacheFile := filepath.Join(t.TempDir(), "boot-cache.json")
	a := StartHostAgent(t, p, nil, cacheFile)
	g := publishedGroup(p, a)

	devA, devB, devC := DeviceN(1), DeviceN(2), DeviceN(3)

	// New devices register into the default group and boot a clone of the assigned v1.
	expect(t, bootVM(t, a, devA), Marker(g.ID, 1), "new device A")
	dA := p.Device(devA.MAC)
	if dA.GroupID == nil || *dA.GroupID != g.ID || dA.CloneVersionID == nil || dA.UUID != devA.UUID {
		t.Fatalf("device A registered as %+v", dA)
	}
	expect(t, bootVM(t, a, devB), Marker(g.ID, 1), "new device B")
	dB := p.Device(devB.MAC)
	p.API("PUT", fmt.Sprintf("/devices/%d.json", dB.ID), map[string]any{"locked": true})
	expect(t, bootVM(t, a, devC), Marker(g.ID, 1), "new device C")

	// Publish v2, strict versioning on, lazy locks off.
	p.Publish(a, g, 2)
	expect(t, bootVM(t, a, devA), Marker(g.ID, 2), "unlocked device A after v2 (strict, no lazy locks)")
	trash, err := a.Disks.Trash()
	if err != nil || len(trash) != 1 || !strings.HasPrefix(trash[0], fmt.Sprintf("device-%d-", dA.ID)) {
		t.Fatalf("A's old clone is not in the erator: %v %v", trash, err)
	}
	expect(t, bootVM(t, a, devB), Marker(g.ID, 1), "locked device B after v2")
	comp := complianceOf(t, p, g.ID)
	if comp[dB.ID] || !comp[dA.ID] {
		t.Fatalf("compliance: %v (B must be non-compliant, A compliant)", comp)
	}

	// Lazy locks on: the unlocked device C keeps its v1 clone.
	p.API("PUT", fmt.Sprintf("/groups/%d.json", g.ID), map[string]any{"lazy_locks": true})
	expect(t, bootVM(t, a, devC), Marker(g.ID, 1), "unlocked device C with lazy locks")

	// Non-strict: unlocked devices boot the newest local version, locked ones keep theirs.
	p.Publish(a, g, 3)
	p.API("POST", fmt.Sprintf("/groups/%d/assign.json", g.ID), map[string]any{"version": 2})
	p.API("PUT", fmt.Sprintf("/groups/%d.json", g.ID), map[string]any{"strict_versioning": false, "lazy_locks": false})
	expect(t, bootVM(t, a, devC), Marker(g.ID, 3), "unlocked device C, non-strict: newest local v3")
	expect(t, bootVM(t, a, devB), Marker(g.ID, 1), "locked device B, non-strict")

	// Four devices at once (three known, one new) all reach their markers.
	devs := []Device{devA, devB, devC, DeviceN(4)}
	want := []string{Marker(g.ID, 3), Marker(g.ID, 1), Marker(g.ID, 3), Marker(g.ID, 3)}
	bootAll(t, a.BootURL, devs, want, 3*time.Minute)

	// The agent restarts while the panel is down: it exports again what its cache lists,
	// and non-strict devices still boot.
	a.Stop()
	p.App.Shutdown() //nolint:errcheck
	b := StartHostAgent(t, p, a.Disks, cacheFile)
	if n, err := b.Svc.Restore(context.Background()); n != 4 {
		t.Fatalf("restore from the cache exported %d targets, want 4: %v", n, err)
	}
	expect(t, bootVM(t, b, devA), Marker(g.ID, 3), "device A with the panel down")
	res, err := Boot(context.Background(), b.BootURL, DeviceN(5), 2*time.Minute)
	if err == nil || !strings.Contains(res.Output, "panel is unreachable") {
		t.Fatalf("a new device with the panel down: %v", err)
	}
}

func complianceOf(t *testing.T, p *HostPanel, groupID uint) map[uint]bool {
	t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v0.9.2/groups/%d/compliance.json", p.URL, groupID), nil)
	req.Header.Set("Authorization", p.Auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var view models.ComplianceView
	if err := json.NewDecoder(resp.Body).Decode(&view); err != nil {
		t.Fatal(err)
	}
	out := map[uint]bool{}
	for _, r := range view.Devices {
		out[r.DeviceID] = r.Compliant
	}
	return out
}
