package webui_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/webui"
	"github.com/clusterducks/clusterducks/workers/panel"
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

var nextInput = regexp.MustCompile(`name="next" value="([^"]*)"`)

// TestLoginRedirect: after login the panel redirects only to its own paths as a browser
// reads them (WHATWG URL: tabs and newlines dropped, a backslash is a slash), from the
// query, from the login form's hidden field and for a visitor already logged in.
func TestLoginRedirect(t *testing.T) {
	p := startPanel(t, "sqlite", webui.Options{})
	evil := []string{"/\t/evil.example", "/\n/evil.example", "/\\evil.example", "\\/evil.example", "//evil.example", "/\r\n//evil.example",
		" //evil.example", "https://evil.example", "/%2F%2Fevil.example"}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, next := range append(evil, "/servers?network_id=1") {
		want := "/"
		if !strings.Contains(next, "evil") {
			want = next
		}
		// The form posted as the page has it, and with its hidden field forged.
		for _, forged := range []bool{false, true} {
			c.Jar, _ = cookiejar.New(nil)
			resp, err := c.Get(p.URL + "/login?next=" + url.QueryEscape(next))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m, tok := nextInput.FindSubmatch(body), csrfInput.FindSubmatch(body)
			if resp.StatusCode != 200 || m == nil || tok == nil {
				t.Fatalf("login page for next=%q: %d", next, resp.StatusCode)
			}
			if strings.Contains(string(m[1]), "evil") {
				t.Errorf("next=%q: the login form carries next %q", next, m[1])
			}
			posted := html.UnescapeString(string(m[1]))
			if forged {
				posted = next
			}
			resp, err = c.PostForm(p.URL+"/login", url.Values{"email": {p.Admin.Email}, "password": {adminPassword}, "csrf": {string(tok[1])}, "next": {posted}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != want {
				t.Errorf("login with next=%q: %d Location %q, want %q", posted, resp.StatusCode, loc, want)
			}
		}
	}
	// Already logged in: /login redirects straight to next.
	sess := sessionCookie(t, p, p.Admin.Email, adminPassword)
	for _, next := range evil {
		req, _ := http.NewRequest("GET", p.URL+"/login?next="+url.QueryEscape(next), nil)
		req.AddCookie(&http.Cookie{Name: "cd_session", Value: sess})
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/" {
			t.Errorf("logged in, next=%q: %d Location %q, want /", next, resp.StatusCode, loc)
		}
	}
}

// TestSuperAdminDashboard: a client admin of the first client sees no Edit or Delete on a
// super-admin and is refused when it posts the forms by hand.
func TestSuperAdminDashboard(t *testing.T) {
	p := startPanel(t, "postgres", webui.Options{})
	ctx := context.Background()
	created, err := p.Store.CreateUser(ctx, p.Admin, &models.UserInput{Email: models.Strp("ca@example.com"), Password: models.Strp(adminPassword), Role: models.Strp(models.RoleAdmin)})
	if err != nil {
		t.Fatal(err)
	}
	ca := created.Object.(*models.User)
	sess := sessionCookie(t, p, ca.Email, adminPassword)
	var s models.Session
	if err := p.DB.Where("id = ?", models.HashSecret(sess)).Take(&s).Error; err != nil {
		t.Fatal(err)
	}
	csrf := "&csrf=" + url.QueryEscape(s.CSRF)
	root := p.Admin.ID
	for _, c := range []struct{ path, form string }{
		{fmt.Sprintf("/users/%d", root), "email=ca%2Broot%40example.com&password=the+attacker%27s+password" + csrf},
		{fmt.Sprintf("/users/%d", root), "role=admin" + csrf},
		{fmt.Sprintf("/users/%d/delete", root), strings.TrimPrefix(csrf, "&")},
	} {
		if code := httpDo(t, p, "POST", c.path, sess, c.form); code != http.StatusForbidden {
			t.Errorf("client admin POST %s: %d, want 403", c.path, code)
		}
	}
	var after models.User
	p.DB.Take(&after, root)
	if !models.CheckPassword(after.PasswordHash, adminPassword) || after.Email != p.Admin.Email || after.Role != models.RoleSuperAdmin {
		t.Fatalf("the dashboard let a client admin change the super-admin: %+v", after)
	}
	b := newBrowser(t, p.URL, outDir(t))
	b.login(ca.Email, adminPassword)
	b.open("/users")
	if strings.Contains(b.source(), fmt.Sprintf(`/users/%d/edit`, root)) || strings.Contains(b.source(), fmt.Sprintf(`/users/%d/delete`, root)) {
		t.Fatal("the users page offers a client admin Edit or Delete on the super-admin")
	}
	if !strings.Contains(b.source(), fmt.Sprintf(`/users/%d/edit`, ca.ID)) {
		t.Fatal("the users page offers the client admin no Edit on itself")
	}
	b.both("users-as-client-admin")
}

// TestLoginLockout: behind a trusted proxy, failed logins to an account from many
// addresses do not lock its holder out: from the address it logged in from it logs in at
// once, from a new one after a second's backoff; the failure that starts the backoff
// tells the panel to mail the holder.
func TestLoginLockout(t *testing.T) {
	db := harness.NewDB(t, "sqlite")
	store := &models.Store{DB: db}
	admin := harness.Admin(t, db)
	setPassword(t, db, admin.ID, adminPassword)
	told := make(chan string, 10)
	app := panel.NewApp(panel.Options{Store: store, TrustedProxies: []string{"127.0.0.1"}, OnAccess: func(a *models.Actor, how, ip string) {
		told <- fmt.Sprintf("%s %s %s", a.Email, how, ip)
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln) //nolint:errcheck
	t.Cleanup(func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	p := &panelT{t: t, URL: "http://" + ln.Addr().String(), DB: db, Store: store, Admin: admin, App: app}
	from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }

	if resp := loginHTTP(t, p, admin.Email, adminPassword, from("203.0.113.1")); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first login: %d", resp.StatusCode)
	}
	<-told // the dashboard login
	for i := 1; i <= models.LoginMaxFailuresPerUser; i++ {
		if resp := loginHTTP(t, p, admin.Email, "not the password", from(fmt.Sprintf("198.51.100.%d", i))); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, resp.StatusCode)
		}
	}
	if resp := loginHTTP(t, p, admin.Email, adminPassword, from("203.0.113.1")); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the holder from its own address after %d failures elsewhere: %d", models.LoginMaxFailuresPerUser, resp.StatusCode)
	}
	select {
	case m := <-told:
		if m != admin.Email+" "+models.AccessFailedLogins+" 198.51.100.20" {
			t.Fatalf("told %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the holder was not told of the failed logins")
	}
	resp := loginHTTP(t, p, admin.Email, adminPassword, from("192.0.2.50"))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("a new address right after: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	time.Sleep(1100 * time.Millisecond)
	if resp := loginHTTP(t, p, admin.Email, adminPassword, from("192.0.2.50")); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a new address a second later: %d (locked out)", resp.StatusCode)
	}
}
