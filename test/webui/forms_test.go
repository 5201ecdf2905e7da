package webui_test

import (
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/webui"
)

// TestGroupPropertiesForm: the group form carries the guide's full warnings beside the
// Strict Versioning and Lazy Locks checkboxes (the reboot loop, the data loss), and Lazy
// Locks can be checked only while Strict Versioning is.
func TestGroupPropertiesForm(t *testing.T) {
	p := startPanel(t, "sqlite", webui.Options{})
	b := newBrowser(t, p.URL, outDir(t))
	b.login("admin@example.com", adminPassword)
	b.open("/groups/new")
	if help := b.text("#help-strict_versioning"); !strings.Contains(help, `"reboot loop"`) || !strings.Contains(help, "will not boot") {
		t.Errorf("Strict Versioning's help: %q", help)
	}
	if help := b.text("#help-lazy_locks"); !strings.Contains(help, "lose data stored in unlocked devices") {
		t.Errorf("Lazy Locks' help: %q", help)
	}
	state := func() string {
		return b.jsString(`var s = document.getElementById('f-strict_versioning'), l = document.getElementById('f-lazy_locks');
			return (s.checked ? 'strict' : 'loose') + '/' + (l.disabled ? 'lazy-disabled' : 'lazy-enabled')`)
	}
	if got := state(); got != "loose/lazy-disabled" {
		t.Fatalf("a new group's form: %s", got)
	}
	b.click("#f-strict_versioning")
	if got := state(); got != "strict/lazy-enabled" {
		t.Fatalf("with Strict Versioning checked: %s", got)
	}
	b.click("#f-lazy_locks")
	b.both("group-properties")
	b.click("#f-strict_versioning")
	if got := state() + b.jsString(`return document.getElementById('f-lazy_locks').checked ? '/lazy-checked' : ''`); got != "loose/lazy-disabled" {
		t.Fatalf("Strict Versioning unchecked again: %s", got)
	}
}
