package webui_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/webui"
)

// TestSessionAndCSRF: the session cookie is HttpOnly and SameSite; a form post without
// the CSRF token is refused (in the browser and by hand); logout ends the session.
func TestSessionAndCSRF(t *testing.T) {
	p := startPanel(t, "sqlite", webui.Options{})
	b := newBrowser(t, p.URL, outDir(t))
	b.login(p.Admin.Email, adminPassword)

	var sess cookie
	for _, c := range b.cookies() {
		if c.Name == "cd_session" {
			sess = c
		}
	}
	if sess.Value == "" || !sess.HTTPOnly || sess.SameSite != "Lax" || sess.Secure {
		t.Fatalf("session cookie over plain http: %+v (want HttpOnly, SameSite=Lax, not Secure)", sess)
	}
	if v := b.js(`return document.cookie.indexOf('cd_session') >= 0`); v != false {
		t.Fatal("the session cookie is readable from JavaScript")
	}

	// A form whose CSRF token was removed is refused, and nothing is created.
	b.open("/clients/new")
	b.fill("#f-name", "Forged Client")
	b.js(`document.querySelector('#main-form input[name=csrf]').remove()`)
	b.submit()
	if h := b.text("main h1"); h != "Refused" || !strings.Contains(b.text("#form-error"), "CSRF") {
		t.Fatalf("post without CSRF: %q / %q", h, b.text("#form-error"))
	}
	b.both("csrf-refused")
	var n int64
	p.DB.Model(&models.Client{}).Where("name = ?", "Forged Client").Count(&n)
	if n != 0 {
		t.Fatal("a post without CSRF token created a client")
	}
	// By hand: no token, a wrong token, and the session's own token.
	for _, c := range []struct {
		form string
		want int
	}{{"name=Forged", 403}, {"name=Forged&csrf=wrong", 403}} {
		if code := httpDo(t, p, "POST", "/clients", sess.Value, c.form); code != c.want {
			t.Fatalf("POST /clients %q = %d, want %d", c.form, code, c.want)
		}
	}
	b.open("/clients/new")
	token := b.jsString(`return document.querySelector('#main-form input[name=csrf]').value`)
	if code := httpDo(t, p, "POST", "/clients", sess.Value, "name=Real&csrf="+url.QueryEscape(token)); code != http.StatusSeeOther {
		t.Fatalf("POST /clients with the token = %d, want 303", code)
	}
	// The API takes the cookie only with the CSRF header.
	if code := httpDo(t, p, "POST", "/api/v0.9.2/clients.json", sess.Value, `{"Name": "x"}`); code != http.StatusForbidden {
		t.Fatalf("API POST with cookie, no header = %d, want 403", code)
	}

	// Logout needs the token too, and ends the session for good.
	if code := httpDo(t, p, "POST", "/logout", sess.Value, ""); code != http.StatusForbidden {
		t.Fatalf("logout without token = %d", code)
	}
	b.logout()
	if code := httpDo(t, p, "GET", "/", sess.Value, ""); code != http.StatusSeeOther {
		t.Fatalf("GET / with the old cookie after logout = %d, want a redirect to login", code)
	}
	b.screenshot("logged-out")
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// loginHTTP logs in with a plain HTTP client (the login form's double-submit token
// included) and returns the response.
func loginHTTP(t *testing.T, p *panelT, email, password string, header http.Header) *http.Response {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(p.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfInput.FindSubmatch(body)
	if m == nil {
		t.Fatalf("login page without a CSRF field: %s", body)
	}
	form := url.Values{"email": {email}, "password": {password}, "csrf": {string(m[1])}}
	req, _ := http.NewRequest("POST", p.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestLoginLimits: the login form has its own CSRF token, cookies are Secure behind a TLS
// proxy, and repeated failures are rate limited (even the right password waits).
func TestLoginLimits(t *testing.T) {
	p := startPanel(t, "sqlite", webui.Options{})

	// Without the login form's token: refused before the password is even looked at.
	resp, err := http.PostForm(p.URL+"/login", url.Values{"email": {p.Admin.Email}, "password": {adminPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login without token = %d, want 403", resp.StatusCode)
	}

	// Behind a proxy that terminates TLS, the session cookie is Secure.
	resp = loginHTTP(t, p, p.Admin.Email, adminPassword, http.Header{"X-Forwarded-Proto": {"https"}})
	setCookie := strings.Join(resp.Header.Values("Set-Cookie"), "\n")
	if resp.StatusCode != http.StatusSeeOther || !regexp.MustCompile(`cd_session=[^;]+;.*HttpOnly; secure; SameSite=Lax`).MatchString(setCookie) {
		t.Fatalf("login behind TLS proxy: %d %q", resp.StatusCode, setCookie)
	}

	for i := 0; i < models.LoginMaxFailuresPerIP; i++ {
		if resp := loginHTTP(t, p, p.Admin.Email, "not the password", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d", i+1, resp.StatusCode)
		}
	}
	resp = loginHTTP(t, p, p.Admin.Email, adminPassword, nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("login after %d failures = %d (Retry-After %q), want 429", models.LoginMaxFailuresPerIP, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
