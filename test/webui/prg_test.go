package webui_test

import (
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/webui"
)

// reload reloads the current page as the browser's reload button does (a page that
// answered a POST would send the POST again) and waits for it.
func (b *browser) reload() {
	b.t.Helper()
	b.js(`document.body.setAttribute('data-stale', '1')`)
	b.call("POST", b.sess("/refresh"), map[string]any{}, nil)
	b.waitFor("the reloaded page", 30*time.Second, func() bool {
		return b.jsString(`return document.readyState === 'complete' && !document.body.hasAttribute('data-stale') ? 'y' : ''`) == "y"
	})
}

// TestFormsPostRedirectGet: every create answers with a redirect to a page (a reload after
// it sends nothing again: one client, one token), and a refused form names all its errors
// at once, each by the label the form shows.
func TestFormsPostRedirectGet(t *testing.T) {
	p := startPanel(t, "sqlite", webui.Options{})
	b := newBrowser(t, p.URL, outDir(t))
	b.login(p.Admin.Email, adminPassword)

	b.open("/clients/new")
	b.fill("#f-name", "Reload Client")
	b.submit()
	if !strings.HasPrefix(b.path(), "/clients/") {
		t.Fatalf("after a create the browser is at %s, want the client's page", b.path())
	}
	b.reload()
	b.reload()
	var n int64
	p.DB.Model(&models.Client{}).Where("name = ?", "Reload Client").Count(&n)
	if n != 1 {
		t.Fatalf("after a create and two reloads there are %d clients", n)
	}

	b.open("/account")
	b.fill("#token-f-name", "reloaded")
	b.click("#token-submit")
	b.waitFor("the new token", 20*time.Second, func() bool { return b.jsString(`return document.getElementById('api-token') ? 'y' : ''`) == "y" })
	b.reload()
	if b.jsString(`return document.getElementById('api-token') ? 'shown again' : ''`) != "" {
		t.Error("a reload shows the token again")
	}
	p.DB.Model(&models.APIToken{}).Where("label = ?", "reloaded").Count(&n)
	if n != 1 {
		t.Fatalf("after a token create and a reload there are %d tokens", n)
	}

	// A device form with three mistakes (the browser's own checks off, as a script or an
	// old browser would send it): all three come back, by their labels.
	p.must201Network(t, "Net A")
	b.open("/devices/new")
	b.js(`document.getElementById('main-form').noValidate = true; document.getElementById('f-network_id').value = ''`)
	b.fill("#f-mac", "not a mac")
	b.fill("#f-uuid", "not-a-uuid")
	b.submit()
	msg := b.text("#form-error")
	for _, want := range []string{"3 errors", "Network: is required", "MAC address:", "SMBIOS UUID: must be an SMBIOS UUID"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the refused form's errors lack %q: %q", want, msg)
		}
	}
	if got := b.js(`return document.querySelectorAll('.field.has-error').length`); got != float64(3) {
		t.Errorf("%v fields marked in error, want 3", got)
	}
	if b.js(`return document.getElementById('f-mac').value`) != "not a mac" {
		t.Error("the refused form lost what was typed")
	}
	b.both("device-form-errors")
	p.DB.Model(&models.Device{}).Count(&n)
	if n != 0 {
		t.Fatalf("a refused device form wrote %d devices", n)
	}
}

// must201Network creates a network of client 1 through the store, as the admin.
func (p *panelT) must201Network(t *testing.T, name string) uint {
	t.Helper()
	cid := uint(1)
	res, err := p.Store.CreateNetwork(t.Context(), p.Admin, &models.NetworkInput{Name: &name, ClientID: &cid})
	if err != nil {
		t.Fatal(err)
	}
	return res.Object.(*models.Network).ID
}
