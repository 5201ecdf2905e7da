package webui_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/webui"
)

// TestListSearchAndSort: every list has a text search, and its columns sort (the database
// does both, so they work past the first page); the headers say which way.
func TestListSearchAndSort(t *testing.T) {
	p := startPanel(t, "postgres", webui.Options{})
	ctx := context.Background()
	nid := p.must201Network(t, "Sort Net")
	for i, name := range []string{"bravo", "alpha", "charlie", "Alpha-2"} {
		mac := fmt.Sprintf("52:54:00:00:0f:%02x", i+1)
		if _, err := p.Store.CreateDevice(ctx, p.Admin, &models.DeviceInput{NetworkID: &nid, MAC: &mac, Name: &name}); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t, p.URL, outDir(t))
	b.login(p.Admin.Email, adminPassword)
	names := func() string {
		return b.jsString(`return Array.from(document.querySelectorAll('#list tbody tr td[data-label="Name"]')).map(function (td) { return td.textContent.trim() }).join(',')`)
	}
	for _, list := range []string{"clients", "users", "networks", "tunnels", "servers", "volumes", "groups", "devices", "menus"} {
		b.open("/" + list)
		b.find("#filter-q")
	}
	b.open("/devices")
	b.fill("#filter-q", "ALPHA")
	b.post("#filter-submit")
	if got := names(); got != "alpha,Alpha-2" {
		t.Errorf("search ALPHA: %s", got)
	}
	b.open("/devices")
	b.post(`th a.sort[data-sort="Name"]`)
	if got := names(); got != "Alpha-2,alpha,bravo,charlie" && got != "alpha,Alpha-2,bravo,charlie" {
		t.Errorf("sorted by name: %s", got)
	}
	if b.jsString(`return document.querySelector('th[aria-sort]').getAttribute('aria-sort')`) != "ascending" {
		t.Error("the sorted column does not say so")
	}
	b.post(`th a.sort[data-sort="Name"]`)
	if got := names(); !strings.HasPrefix(got, "charlie,bravo") {
		t.Errorf("sorted by name, descending: %s", got)
	}
	b.both("devices-sorted")
	b.open("/devices?q=nothing-like-this")
	if !strings.Contains(b.text("#list"), "Nothing matches") {
		t.Errorf("an empty search: %q", b.text("#list"))
	}
}
