package webui_test

import (
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/webui"
)

// TestAPIReferencePage: the panel renders its own OpenAPI document as a page (served from
// the binary, under the dashboard's CSP: no external script or style), with every
// endpoint, the bodies and the statuses; the navigation links to it.
func TestAPIReferencePage(t *testing.T) {
	p := startPanel(t, "sqlite", webui.Options{})
	b := newBrowser(t, p.URL, outDir(t))
	b.login("admin@example.com", adminPassword)
	b.click(`.sidenav a[href="/api-docs"]`)
	b.waitFor("the API reference", 20*time.Second, func() bool { return b.path() == "/api-docs" })
	for _, want := range []string{"POST /groups/{id}/publish.json", "POST /operations/{id}/cancel.json", "GET /servers/{name}/erator.json", "POST /devices.json"} {
		method, path, _ := strings.Cut(want, " ")
		got := b.jsString(`var m = arguments[0], p = arguments[1], out = ''; document.querySelectorAll('.api-op h3').forEach(function (h) {
			if (h.querySelector('.method').textContent === m && h.querySelector('code').textContent === p) out = h.parentElement.id });
			return out`, method, path)
		if got == "" {
			t.Errorf("the page lacks %s", want)
		}
	}
	publish := b.text("#post-groups-id-publish-json")
	if !strings.Contains(publish, "202") || !strings.Contains(publish, "Request body") {
		t.Errorf("publish's entry: %q", publish)
	}
	b.js(`document.querySelectorAll('#post-devices-json details').forEach(function (d) { d.open = true })`)
	if body := b.text("#post-devices-json"); !strings.Contains(body, "uuid") || !strings.Contains(body, "mac") {
		t.Errorf("device create's body: %q", body)
	}
	// Nothing from elsewhere: every script, style and image is the panel's own.
	if ext := b.js(`return Array.from(document.querySelectorAll('script[src], link[href], img[src]')).map(function (e) { return e.src || e.href }).filter(function (u) { return u.indexOf(location.origin) !== 0 })`).([]any); len(ext) > 0 {
		t.Errorf("external assets: %v", ext)
	}
	b.both("api-reference")
}
