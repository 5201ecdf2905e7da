// Package webui_test drives the dashboard in Debian's Chromium (headless, through
// chromedriver) against a panel served on a loopback port, on PostgreSQL and SQLite.
// Screenshots of every step go to test/webui/out/<test>/ (git-ignored).
package webui_test

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/webui"
	"github.com/clusterducks/clusterducks/workers/panel"
	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"
)

func TestMain(m *testing.M) {
	code := harness.RunWithPostgres(m)
	harness.StopTemporal()
	if driverInst != nil {
		driverInst.stop()
	}
	os.Exit(code)
}

const adminPassword = "correct horse battery"

type panelT struct {
	t     *testing.T
	URL   string
	DB    *gorm.DB
	Store *models.Store
	Admin *models.Actor
	App   *fiber.App
}

// startPanel serves panel.NewApp (API and dashboard) on a loopback port.
func startPanel(t *testing.T, driver string, o webui.Options) *panelT {
	t.Helper()
	db := harness.NewDB(t, driver)
	store := &models.Store{DB: db}
	admin := harness.Admin(t, db)
	setPassword(t, db, admin.ID, adminPassword)
	app := panel.NewApp(panel.Options{Store: store, WebUI: o})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln) //nolint:errcheck
	t.Cleanup(func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	return &panelT{t: t, URL: "http://" + ln.Addr().String(), DB: db, Store: store, Admin: admin, App: app}
}

func setPassword(t *testing.T, db *gorm.DB, userID uint, pw string) {
	t.Helper()
	h, err := models.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Model(&models.User{}).Where("id = ?", userID).Update("password_hash", h).Error; err != nil {
		t.Fatal(err)
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// outDir is test/webui/out/<test name>, emptied first.
func outDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("out", unsafeName.ReplaceAllString(t.Name(), "_"))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (b *browser) login(email, password string) {
	b.t.Helper()
	b.open("/login")
	b.fill("#f-email", email)
	b.fill("#f-password", password)
	b.click("#submit")
	b.waitFor("the dashboard after login", 30*time.Second, func() bool {
		return b.jsString(`return document.querySelector('.topbar') ? 'in' : ''`) == "in"
	})
}

func (b *browser) logout() {
	b.t.Helper()
	b.click(".topbar form[action='/logout'] button")
	b.waitFor("the login page", 10*time.Second, func() bool { return strings.HasPrefix(b.path(), "/login") })
}

// submit clicks a form's submit button and waits for the next page.
func (b *browser) submit() {
	b.t.Helper()
	b.js(`document.body.setAttribute('data-stale', '1')`)
	b.click("#submit")
	b.waitFor("the page after submit", 30*time.Second, func() bool {
		return b.jsString(`return document.readyState === 'complete' && !document.body.hasAttribute('data-stale') ? 'y' : ''`) == "y"
	})
}

// post clicks a POST button (confirmations accepted) and waits for the next page.
func (b *browser) post(css string) {
	b.t.Helper()
	b.js(`window.confirm = function () { return true }; document.body.setAttribute('data-stale', '1')`)
	b.click(css)
	b.waitFor("the page after "+css, 30*time.Second, func() bool {
		return b.jsString(`return document.readyState === 'complete' && !document.body.hasAttribute('data-stale') ? 'y' : ''`) == "y"
	})
}

// alerts are the codes of the alerts on the dashboard, sorted.
func (b *browser) alerts() []string {
	b.t.Helper()
	b.open("/")
	b.find("#alerts-h")
	raw := b.js(`return Array.from(document.querySelectorAll('[data-alert]')).map(function (e) { return e.getAttribute('data-alert') })`)
	var codes []string
	for _, c := range raw.([]any) {
		codes = append(codes, c.(string))
	}
	sort.Strings(codes)
	return codes
}

// expectAlerts checks the dashboard's alerts and that the store (which the API serves) agrees.
func (p *panelT) expectAlerts(b *browser, a *models.Actor, want ...string) {
	p.t.Helper()
	sort.Strings(want)
	got := b.alerts()
	if !slices.Equal(got, want) {
		b.screenshot("alerts-mismatch")
		p.t.Fatalf("dashboard alerts = %v, want %v", got, want)
	}
	// The API serves the same list: GET /api/v0.9.2/alerts.json with the user's token.
	req, _ := http.NewRequest("GET", p.URL+"/api/v0.9.2/alerts.json", nil)
	req.Header.Set("Authorization", harness.Token(p.t, p.DB, a.ID))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []models.Alert
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != 200 {
		p.t.Fatalf("alerts.json: %d %v", resp.StatusCode, err)
	}
	api := []string{}
	for _, al := range list {
		api = append(api, al.Code)
	}
	sort.Strings(api)
	if !slices.Equal(api, want) {
		p.t.Fatalf("alerts.json codes = %v, want %v", api, want)
	}
}

// unlabelled lists the form controls of the current page that have no label.
func (b *browser) unlabelled() []any {
	b.t.Helper()
	v := b.js(`return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea')).filter(function (e) {
		return !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')
	}).map(function (e) { return e.name || e.id })`)
	return v.([]any)
}

func (b *browser) checkLabels(page string) {
	b.t.Helper()
	if ul := b.unlabelled(); len(ul) > 0 {
		b.t.Errorf("%s: form fields without a label: %v", page, ul)
	}
}

// actionsInView checks, at the current window width, that every action button and link
// in the page's tables lies inside the viewport (reachable without scrolling sideways),
// measured from the elements' positions, and that the page itself does not scroll sideways.
func (b *browser) actionsInView(page string) {
	b.t.Helper()
	out := b.js(`var w = window.innerWidth, bad = [];
		document.querySelectorAll('td.row-actions .btn, td.row-actions button, td[data-label="Fix"] a').forEach(function (e) {
			var r = e.getBoundingClientRect();
			if (r.width === 0 || r.left < 0 || r.right > w) bad.push((e.getAttribute('aria-label') || e.textContent.trim()) + ' at ' + Math.round(r.left) + '..' + Math.round(r.right));
		});
		return {width: w, scroll: document.documentElement.scrollWidth, bad: bad, count: document.querySelectorAll('td.row-actions .btn').length}`).(map[string]any)
	if bad, _ := out["bad"].([]any); len(bad) > 0 {
		b.screenshot(page + "-actions-hidden")
		b.t.Errorf("%s at %v px: action buttons outside the viewport: %v", page, out["width"], bad)
	}
	if out["scroll"].(float64) > out["width"].(float64)+2 {
		b.t.Errorf("%s at %v px: the page scrolls sideways (%v px wide)", page, out["width"], out["scroll"])
	}
}
