package netboot

import (
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
)

// TestHostMenu boots real iPXE menus: the network's default menu for a device without a
// group (its first entry, a group, is taken at the timeout: the device joins the group and
// boots its version), and a device's own menu whose first entry chains a URL.
func TestHostMenu(t *testing.T) {
	harness.RequirePackages(t, Packages...)
	p, a := startHost(t)
	g := publishedGroup(p, a)
	// No default group: only the default menu.
	if err := p.DB.Model(&models.Network{}).Where("id = ?", p.Network.ID).Update("default_group_id", nil).Error; err != nil {
		t.Fatal(err)
	}

	// A URL a menu entry chains to: a script that prints its own marker.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "#!ipxe\necho <<<CLUSTERDUCKS-MARKER:menu-chain>>>\nsleep 1\nreboot\n")
	})}
	go hs.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { hs.Close() })
	chainURL := fmt.Sprintf("http://10.0.2.2:%d/chained.ipxe", ln.Addr().(*net.TCPAddr).Port)

	menu := p.API("POST", "/menus.json", map[string]any{"network": p.Network.ID, "name": "Lab", "items": []map[string]any{
		{"type": "group", "label": "Desktops", "group_id": g.ID},
		{"type": "local", "label": "Local disk"},
		{"type": "chain", "label": "Elsewhere", "url": chainURL},
	}})
	p.API("PUT", fmt.Sprintf("/networks/%d.json", p.Network.ID), map[string]any{"default_menu_id": menu["id"]})

	dev := DeviceN(70)
	expect(t, bootVM(t, a, dev), Marker(g.ID, 1), "a new device through the default menu's first entry")
	if d := p.Device(dev.MAC); d.GroupID == nil || *d.GroupID != g.ID || d.CloneVersionID == nil {
		t.Fatalf("device after choosing the group: %+v", d)
	}

	own := p.API("POST", "/menus.json", map[string]any{"network": p.Network.ID, "name": "Own", "items": []map[string]any{
		{"type": "chain", "label": "Elsewhere", "url": chainURL},
		{"type": "group", "label": "Desktops", "group_id": g.ID},
	}})
	dev2 := DeviceN(71)
	p.API("POST", "/devices.json", map[string]any{"network": p.Network.ID, "mac": dev2.MAC, "menu_id": own["id"]})
	expect(t, bootVM(t, a, dev2), "menu-chain", "a device's own menu chaining a URL")
}
