package webui

import (
	"bytes"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/models"
)

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "/",
		"/servers/3":            "/servers/3",
		"/volumes?network_id=1": "/volumes?network_id=1",
		"//evil.example/x":      "/",
		"/\\evil.example":       "/",
		"https://evil.example":  "/",
		"/login?next=/x":        "/",
		// Browsers drop tabs and newlines and read a backslash as a slash (WHATWG URL).
		"/\t/evil.example":    "/",
		"/\n/evil.example":    "/",
		"/\r\n/evil.example":  "/",
		"\t//evil.example":    "/",
		" //evil.example":     "/",
		"/\x00/evil.example":  "/",
		"/\x7f/evil.example":  "/",
		"\\/evil.example":     "/",
		"/x\\y":               "/",
		"/%2F%2Fevil.example": "/",
		"/a b":                "/",
		"/é":                  "/",
		"javascript:alert(1)": "/",
		"/servers?next=//x":   "/servers?next=//x",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWorkflowURL(t *testing.T) {
	op := &models.Operation{WorkflowID: "volume-create-7", RunID: "r/1"}
	for _, c := range []struct {
		base, ns string
		op       *models.Operation
		want     string
	}{
		{"", "default", op, ""},
		{"http://127.0.0.1:8233/", "default", op, "http://127.0.0.1:8233/namespaces/default/workflows/volume-create-7/r%2F1/history"},
		{"http://ui", "prod ns", &models.Operation{WorkflowID: "w"}, "http://ui/namespaces/prod%20ns/workflows/w"},
		{"http://ui", "default", &models.Operation{}, ""},
	} {
		u := &UI{opts: Options{TemporalUI: c.base, TemporalNamespace: c.ns}}
		if got := u.workflowURL(c.op); got != c.want {
			t.Errorf("workflowURL(%q, %q) = %q, want %q", c.base, c.ns, got, c.want)
		}
	}
}

// TestTemplates renders every page template with empty data, so a template error shows
// here and not on a page.
func TestTemplates(t *testing.T) {
	pages := parsePages()
	for _, name := range []string{"login", "dashboard", "list", "form", "show", "operations", "account", "settings", "delegations", "error"} {
		if _, ok := pages[name]; !ok {
			t.Errorf("no template %q", name)
		}
	}
}

// TestRolloutButtons: a rollout operation's page offers Pause (or Resume when paused) and
// Abort while the rollout runs, posting to /rollouts/<id>/<signal> with the CSRF token,
// and none once it ended.
func TestRolloutButtons(t *testing.T) {
	tpl := parsePages()["operations"]
	render := func(r *models.Rollout) string {
		t.Helper()
		var buf bytes.Buffer
		p := page{Title: "Operation 9", CSRF: "tok", Actor: &models.Actor{}, Data: &opsData{Rollout: r}}
		if err := tpl.ExecuteTemplate(&buf, "layout", p); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	r := &models.Rollout{ID: 4, Number: 2, Previous: 1, State: models.RolloutCanary, CanaryIDs: []uint{3, 5}}
	for _, c := range []struct {
		paused    bool
		want, not string
	}{{false, `action="/rollouts/4/pause"`, `action="/rollouts/4/resume"`}, {true, `action="/rollouts/4/resume"`, `action="/rollouts/4/pause"`}} {
		r.Paused = c.paused
		html := render(r)
		if !strings.Contains(html, c.want) || strings.Contains(html, c.not) || !strings.Contains(html, `action="/rollouts/4/abort"`) ||
			!strings.Contains(html, `value="tok"`) {
			t.Errorf("paused %v: the page lacks its buttons:\n%s", c.paused, html)
		}
	}
	r.State, r.Report = models.RolloutRolledBack, "1 of 2 canaries did not come up"
	if html := render(r); strings.Contains(html, "/rollouts/4/") || !strings.Contains(html, "did not come up") {
		t.Errorf("an ended rollout's page:\n%s", html)
	}
}
