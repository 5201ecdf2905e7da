package netboot

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/lab"
)

// TestHostRedirect proves the boot path's redirects and reboot loops between two servers
// of one network through real iPXE boots: A is the master (10.0.2.2), B a second server
// (127.0.0.2); both agents serve the one boot port, as in production, so a redirect is
// the other server's IP.
func TestHostRedirect(t *testing.T) {
	harness.RequirePackages(t, Packages...)
	p, a := startHost(t)
	b := StartServerAgent(t, p, p.AddServer("b"), nil, "")
	g := publishedGroup(p, a)
	p.Copy(b, g, 1)
	dev1, dev2, dev3 := DeviceN(1), DeviceN(2), DeviceN(3)

	// B holds v1: a new device booting from B gets its clone there, without a redirect.
	r := bootMarker(t, b, dev1, Marker(g.ID, 1))
	seen(t, r, []string{fromServer(g, 1, b)}, []string{a.BootURL})
	if d := p.Device(dev1.MAC); d.ServerID == nil || *d.ServerID != b.ServerID {
		t.Fatalf("device 1's clone is not recorded on B: %+v", d)
	}

	// v2 is published on the master only. Strict, no lazy locks: the device needs v2,
	// B does not hold it and sends the device to A, which reprovisions it there.
	p.Publish(a, g, 2)
	r = bootMarker(t, b, dev1, Marker(g.ID, 2))
	seen(t, r, []string{"this server does not hold the assigned v2: another server does", a.BootURL, fromServer(g, 2, a)}, nil)
	d1 := p.Device(dev1.MAC)
	if v2 := version(t, p, g, 2); d1.ServerID == nil || *d1.ServerID != a.ServerID || d1.CloneVersionID == nil || *d1.CloneVersionID != v2 {
		t.Fatalf("device 1's clone is not v2 (version %d) on A (server %d): %+v", v2, a.ServerID, d1)
	}

	// Lazy locks on, v3 on both servers. Device 1 keeps its v2 clone, which is on A:
	// booting from B it is sent to its clone, though B holds the assigned v3.
	p.API("PUT", fmt.Sprintf("/groups/%d.json", g.ID), map[string]any{"lazy_locks": true})
	p.Publish(a, g, 3)
	p.Copy(b, g, 3)
	r = bootMarker(t, b, dev1, Marker(g.ID, 2))
	seen(t, r, []string{"lazy locks: unlocked device keeps its clone", "the clone is on another server", a.BootURL, fromServer(g, 2, a)}, nil)

	// A new device on B gets v3 there; booting from A it is sent to its clone on B.
	r = bootMarker(t, b, dev2, Marker(g.ID, 3))
	seen(t, r, []string{fromServer(g, 3, b)}, []string{a.BootURL})
	r = bootMarker(t, a, dev2, Marker(g.ID, 3))
	seen(t, r, []string{"the clone is on another server", b.BootURL, fromServer(g, 3, b)}, nil)

	// v4 is ready in the panel (the master holds every ready version) but its image is on
	// no server's disk: B sends a new device to A, and A, which cannot find it either and
	// knows no other holder, answers the reboot loop.
	if err := p.DB.Create(&models.GroupVersion{GroupID: g.ID, Number: 4, State: models.StateReady}).Error; err != nil {
		t.Fatal(err)
	}
	r = bootWait(t, b, dev3)
	seen(t, r, []string{"this server does not hold the assigned v4: another server does", a.BootURL,
		"no server holds the assigned v4 yet", "rebooting in"}, nil)

	// The group is pinned to v4, which is then being deleted: nothing is assigned, and B
	// answers the reboot loop itself.
	p.API("POST", fmt.Sprintf("/groups/%d/assign.json", g.ID), map[string]any{"version": 4})
	if err := p.DB.Model(&models.GroupVersion{}).Where("group_id = ? AND number = 4", g.ID).Update("state", models.StateDeleting).Error; err != nil {
		t.Fatal(err)
	}
	r = bootWait(t, b, dev3)
	seen(t, r, []string{"the group has no assigned version yet", "rebooting in"}, []string{a.BootURL})
}

// bootMarker boots d through agent x's endpoint; it must print want.
func bootMarker(t *testing.T, x *HostAgent, d Device, want string) *Result {
	t.Helper()
	res, err := Boot(context.Background(), x.BootURL, d, 3*time.Minute)
	if err != nil {
		t.Fatalf("device %s via server %d: %v", d.MAC, x.ServerID, err)
	}
	t.Logf("device %s via server %d booted %q in %s", d.MAC, x.ServerID, res.Marker, res.Took.Round(time.Millisecond))
	if res.Marker != want {
		t.Fatalf("device %s via server %d booted %q, want %q; output:\n%s", d.MAC, x.ServerID, res.Marker, want, tail(res.Output))
	}
	return res
}

// bootWait boots d through agent x's endpoint; it must end without booting anything.
func bootWait(t *testing.T, x *HostAgent, d Device) *Result {
	t.Helper()
	res, err := Boot(context.Background(), x.BootURL, d, 2*time.Minute)
	if err == nil {
		t.Fatalf("device %s via server %d booted %q, want the reboot loop", d.MAC, x.ServerID, res.Marker)
	}
	t.Logf("device %s via server %d rebooted after %s", d.MAC, x.ServerID, res.Took.Round(time.Millisecond))
	return res
}

// bootLoop boots d through agent x's endpoint while the server x sends it to does not
// answer: the device must not boot, and must come back to x at least twice, as a device
// stays in this loop until that server answers again. Then it is stopped: the loop has
// no end to wait for.
func bootLoop(t *testing.T, x *HostAgent, d Device) *Result {
	t.Helper()
	const unanswered, rounds = "the boot server did not answer; asking again", 2
	vm, err := DeviceVM(x.BootURL, d).Start(t)
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if n := strings.Count(consoleLine(vm.Output()), unanswered); n >= rounds {
			break
		}
		if code, exited := vm.Exited(); exited || time.Now().After(end) {
			t.Fatalf("device %s via server %d: not in the loop (exited %v, status %d); output:\n%s", d.MAC, x.ServerID, exited, code, tail(vm.Output()))
		}
	}
	vm.Stop()
	res := &Result{Took: time.Since(vm.Start), Output: vm.Output()}
	if m := lab.MarkerLine.FindStringSubmatch(res.Output); m != nil {
		t.Fatalf("device %s via server %d booted %q, want the loop", d.MAC, x.ServerID, m[1])
	}
	t.Logf("device %s via server %d went round the loop %d times in %s", d.MAC, x.ServerID, rounds, res.Took.Round(time.Millisecond))
	return res
}

// consoleLine is a device's console as one line of text: escape sequences and line ends
// dropped (iPXE wraps its lines at 80 columns).
func consoleLine(output string) string {
	return strings.NewReplacer("\r", "", "\n", "").Replace(lab.ConsoleText(output))
}

// seen checks the device's console: every want is there, no not is (in consoleLine).
func seen(t *testing.T, r *Result, want, not []string) {
	t.Helper()
	out := consoleLine(r.Output)
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("console lacks %q:\n%s", w, tail(r.Output))
		}
	}
	for _, n := range not {
		if strings.Contains(out, n) {
			t.Fatalf("console has %q:\n%s", n, tail(r.Output))
		}
	}
}

// fromServer is the banner of the script that sanboots version n of g from x.
func fromServer(g *models.Group, n int, x *HostAgent) string {
	return fmt.Sprintf("boots group %d v%d from server %d", g.ID, n, x.ServerID)
}

func version(t *testing.T, p *HostPanel, g *models.Group, n int) uint {
	t.Helper()
	var v models.GroupVersion
	if err := p.DB.Where("group_id = ? AND number = ?", g.ID, n).Take(&v).Error; err != nil {
		t.Fatal(err)
	}
	return v.ID
}
