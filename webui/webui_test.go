package webui

import (
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
