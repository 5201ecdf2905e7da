package webui_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/webui"
)

// TestNotFound: an unknown path is a dashboard page for a browser (with its
// navigation when logged in, a link to log in otherwise) and JSON for the API
// and for clients that do not ask for HTML.
func TestNotFound(t *testing.T) {
	t.Parallel()
	p := startPanel(t, "sqlite", webui.Options{})
	sess := sessionCookie(t, p, p.Admin.Email, adminPassword)
	get := func(path, accept, session string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", p.URL+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if session != "" {
			req.AddCookie(&http.Cookie{Name: "cd_session", Value: session})
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	const browser = "text/html,application/xhtml+xml,*/*;q=0.8"
	for _, c := range []struct {
		name, path, accept, session string
		html                        bool
		want                        []string
	}{
		{"logged in", "/no/such/page", browser, sess, true, []string{"Not found", "There is no page at /no/such/page.", `href="/"`, "/logout"}},
		{"logged out", "/no/such/page", browser, "", true, []string{"Not found", `href="/login"`}},
		{"API", "/api/v0.9.2/nothing.json", browser, sess, false, []string{`"error"`, "/api/v0.9.2/nothing.json"}},
		{"not a browser", "/no/such/page", "", "", false, []string{`"error"`, "no such page"}},
	} {
		code, ctype, body := get(c.path, c.accept, c.session)
		if code != http.StatusNotFound {
			t.Errorf("%s: %s = %d, want 404", c.name, c.path, code)
		}
		if isHTML := strings.HasPrefix(ctype, "text/html"); isHTML != c.html {
			t.Errorf("%s: content type %q", c.name, ctype)
		}
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: body lacks %q:\n%s", c.name, w, body)
			}
		}
	}
}
