package webui_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/harness/proc"
)

// A minimal W3C WebDriver client over chromedriver's HTTP API: enough to drive Debian's
// Chromium headless through the dashboard, with every wait bounded.

const elementKey = "element-6066-11e4-a52e-4f735466cecf"

// chromedriver is one chromedriver process (its own process group) shared by the test binary.
type chromedriver struct {
	url    string
	cmd    *exec.Cmd
	dir    string
	exited chan struct{} // closed once cmd has been waited for
}

var (
	driverOnce sync.Once
	driverInst *chromedriver
	driverErr  error
)

// startChromedriver starts chromedriver on a free port, trying again on a new port when
// an attempt fails (the port taken by another process between its probe and the bind,
// or a start too slow on a loaded machine); the error carries chromedriver's own log.
func startChromedriver() (*chromedriver, error) {
	var errs []error
	for range 3 {
		d, err := startChromedriverOnce()
		if err == nil {
			return d, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func startChromedriverOnce() (*chromedriver, error) {
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cd-chromedriver-")
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "chromedriver.log")
	cmd := exec.Command("/usr/bin/chromedriver", fmt.Sprintf("--port=%d", port), "--allowed-ips=127.0.0.1", "--log-path="+logPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start chromedriver: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	d := &chromedriver{url: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, dir: dir, exited: exited}
	fail := func(why string) error {
		log, _ := os.ReadFile(logPath)
		d.stop() // waits for the process, so its output is complete
		return fmt.Errorf("chromedriver on %s %s; its output: %s; its log: %s", d.url, why,
			strings.TrimSpace(stderr.String()), lastLines(string(log), 10))
	}
	const wait = 30 * time.Second
	deadline := time.Now().Add(wait)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(d.url + "/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d, nil
			}
		}
		select {
		case <-exited:
			return nil, fail("exited at start")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fail(fmt.Sprintf("did not answer within %v", wait))
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop ends chromedriver and the browsers it started (its process group, which this test made).
func (d *chromedriver) stop() {
	if d == nil || d.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.exited
	os.RemoveAll(d.dir)
}

func sharedDriver(t *testing.T) *chromedriver {
	t.Helper()
	harness.RequirePackages(t, "chromium", "chromium-driver")
	driverOnce.Do(func() { driverInst, driverErr = startChromedriver() })
	if driverErr != nil {
		t.Fatal(driverErr)
	}
	return driverInst
}

// browser is one WebDriver session: a fresh Chromium profile.
type browser struct {
	t       *testing.T
	d       *chromedriver
	session string
	base    string // the panel's URL
	out     string // screenshots
	shot    int
	client  *http.Client
}

func newBrowser(t *testing.T, base, out string) *browser {
	t.Helper()
	d := sharedDriver(t)
	profile := t.TempDir()
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":      "chrome",
		"pageLoadStrategy": "normal",
		"timeouts":         map[string]int{"pageLoad": 30000, "script": 15000, "implicit": 0},
		// The browser's console (CSP violations are logged there) for consoleErrors.
		"goog:loggingPrefs": map[string]string{"browser": "ALL"},
		"goog:chromeOptions": map[string]any{
			"binary": "/usr/bin/chromium",
			"args": []string{
				"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
				"--disable-extensions", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
				"--no-default-browser-check", "--metrics-recording-only", "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
				// Only loopback is reachable from this browser, whatever a page asks for.
				"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
				"--window-size=1280,900", "--user-data-dir=" + profile,
			},
		},
	}}}
	b := &browser{t: t, d: d, base: base, out: out, client: &http.Client{Timeout: 60 * time.Second}}
	var v struct {
		SessionID string `json:"sessionId"`
	}
	// A Chromium that exits while starting (seen once in CI on a loaded machine) is
	// started again, up to three times; the failures are reported if all attempts fail.
	var errs []error
	for attempt := 0; attempt < 3 && v.SessionID == ""; attempt++ {
		err := b.try("POST", d.url+"/session", caps, &v)
		if err == nil {
			break
		}
		errs = append(errs, err)
		if !strings.Contains(err.Error(), "session not created") {
			break
		}
		time.Sleep(time.Second)
	}
	if v.SessionID == "" {
		log, _ := os.ReadFile(filepath.Join(d.dir, "chromedriver.log"))
		t.Fatalf("webdriver POST /session: %v; chromedriver's log: %s", errors.Join(errs...), lastLines(string(log), 20))
	}
	b.session = v.SessionID
	t.Cleanup(func() { b.call("DELETE", b.sess(""), nil, nil) })
	b.width(1280)
	return b
}

func (b *browser) sess(p string) string { return b.d.url + "/session/" + b.session + p }

// call sends a WebDriver command and decodes its "value".
func (b *browser) call(method, url string, body, out any) {
	b.t.Helper()
	if err := b.try(method, url, body, out); err != nil {
		b.t.Fatalf("webdriver %s %s: %v", method, strings.TrimPrefix(url, b.d.url), err)
	}
}

func (b *browser) try(method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		buf, _ := json.Marshal(body)
		rd = bytes.NewReader(buf)
	} else if method == "POST" {
		rd = strings.NewReader("{}")
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("status %d: %s", resp.StatusCode, raw)
	}
	if resp.StatusCode != 200 {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		if json.Unmarshal(env.Value, &e) == nil && e.Error != "" {
			return fmt.Errorf("status %d: %s: %s", resp.StatusCode, e.Error, strings.SplitN(e.Message, "\n", 2)[0])
		}
		return fmt.Errorf("status %d: %s", resp.StatusCode, env.Value)
	}
	if out != nil {
		return json.Unmarshal(env.Value, out)
	}
	return nil
}

// width sets the viewport width (device metrics, so 390 px is really 390 CSS px). It is
// not a mobile emulation: a phone browser would widen its layout to fit an overflowing
// page, and hide the very overflow the checks look for.
func (b *browser) width(w int) {
	h := 900
	if w < 600 {
		h = 844
	}
	b.call("POST", b.sess("/goog/cdp/execute"), map[string]any{"cmd": "Emulation.setDeviceMetricsOverride",
		"params": map[string]any{"width": w, "height": h, "deviceScaleFactor": 1, "mobile": false}}, nil)
}

func (b *browser) open(path string) {
	b.t.Helper()
	b.call("POST", b.sess("/url"), map[string]string{"url": b.base + path}, nil)
}

func (b *browser) js(script string, args ...any) any {
	b.t.Helper()
	if args == nil {
		args = []any{}
	}
	var v any
	b.call("POST", b.sess("/execute/sync"), map[string]any{"script": script, "args": args}, &v)
	return v
}

func (b *browser) jsString(script string, args ...any) string {
	b.t.Helper()
	s, _ := b.js(script, args...).(string)
	return s
}

// find returns the element matching css, waiting up to 10 s for it.
func (b *browser) find(css string) string {
	b.t.Helper()
	var id string
	var last error
	defer func() {
		if id == "" && last != nil {
			b.t.Logf("find %s: %v", css, last)
		}
	}()
	b.waitFor("element "+css, 20*time.Second, func() bool {
		var v map[string]string
		if err := b.try("POST", b.sess("/element"), map[string]string{"using": "css selector", "value": css}, &v); err != nil {
			last = err
			return false
		}
		id = v[elementKey]
		if id == "" {
			last = fmt.Errorf("no element id in %v", v)
		}
		return id != ""
	})
	return id
}

func (b *browser) click(css string) {
	b.t.Helper()
	b.call("POST", b.sess("/element/"+b.find(css)+"/click"), nil, nil)
}

// fill types into an input after clearing it.
func (b *browser) fill(css, text string) {
	b.t.Helper()
	el := b.find(css)
	b.call("POST", b.sess("/element/"+el+"/clear"), nil, nil)
	if text != "" {
		b.call("POST", b.sess("/element/"+el+"/value"), map[string]string{"text": text}, nil)
	}
}

// choose selects the option of a select whose text contains label.
func (b *browser) choose(css, label string) {
	b.t.Helper()
	b.find(css)
	ok := b.js(`var s=document.querySelector(arguments[0]); for (var o of s.options) { if (o.text.indexOf(arguments[1]) >= 0) { s.value=o.value; s.dispatchEvent(new Event('change')); return true } } return false`, css, label)
	if ok != true {
		b.t.Fatalf("select %s has no option %q", css, label)
	}
}

// text returns the text of the element matching css. A live page may replace the element
// between the find and the read (a stale element): it is found again, a few times.
func (b *browser) text(css string) string {
	b.t.Helper()
	var s string
	var err error
	for range 5 {
		if err = b.try("GET", b.sess("/element/"+b.find(css)+"/text"), nil, &s); err == nil {
			return s
		}
		if !strings.Contains(err.Error(), "stale element") {
			break
		}
	}
	b.t.Fatalf("webdriver text of %s: %v", css, err)
	return ""
}

func (b *browser) source() string {
	b.t.Helper()
	var s string
	b.call("GET", b.sess("/source"), nil, &s)
	return s
}

func (b *browser) path() string {
	b.t.Helper()
	var s string
	b.call("GET", b.sess("/url"), nil, &s)
	return strings.TrimPrefix(s, b.base)
}

// waitFor polls cond until it holds or the bound passes (then the test fails with a screenshot).
func (b *browser) waitFor(what string, bound time.Duration, cond func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			b.screenshot("timeout")
			b.t.Fatalf("waited %s for %s", bound, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves the viewport (full page height) as out/NN-name.png.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	// Grow the viewport to the page's height so the whole page is in the picture.
	w := int(b.js(`return window.innerWidth`).(float64))
	h := int(b.js(`return Math.min(Math.max(document.documentElement.scrollHeight, 600), 4000)`).(float64))
	b.call("POST", b.sess("/goog/cdp/execute"), map[string]any{"cmd": "Emulation.setDeviceMetricsOverride",
		"params": map[string]any{"width": w, "height": h, "deviceScaleFactor": 1, "mobile": false}}, nil)
	var s string
	b.call("GET", b.sess("/screenshot"), nil, &s)
	b.width(w)
	png, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b.t.Fatal(err)
	}
	b.shot++
	file := filepath.Join(b.out, fmt.Sprintf("%02d-%s.png", b.shot, name))
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return file
}

// both takes a screenshot at 1280 px and at 390 px, and checks that at 390 px the page
// itself does not scroll sideways (wide tables scroll inside their own box).
func (b *browser) both(name string) {
	b.t.Helper()
	b.screenshot(name + "-1280")
	b.width(390)
	b.waitFor("layout at 390 px", 5*time.Second, func() bool {
		return b.js(`return window.innerWidth`) == float64(390)
	})
	if sw := b.js(`return document.documentElement.scrollWidth`).(float64); sw > 392 {
		b.screenshot(name + "-390-overflow")
		wide := b.js(`return Array.from(document.querySelectorAll('body *')).filter(function (e) {
			var r = e.getBoundingClientRect(); return r.right > 392 && !(e.closest('.table-wrap') && e.closest('.table-wrap') !== e) && !e.closest('.sidenav ul')
		}).slice(0, 8).map(function (e) { return e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right) })`)
		b.t.Errorf("%s: at 390 px the page is %v px wide; too wide: %v", name, sw, wide)
	}
	b.screenshot(name + "-390")
	b.width(1280)
}

// logEntry is one line of the browser's console log.
type logEntry struct {
	Level   string `json:"level"`
	Message string `json:"message"`
}

// consoleErrors returns the console's errors since the last call (chromedriver hands each
// entry out once): a Content-Security-Policy violation is one.
func (b *browser) consoleErrors() []string {
	b.t.Helper()
	var entries []logEntry
	b.call("POST", b.sess("/se/log"), map[string]string{"type": "browser"}, &entries)
	var out []string
	for _, e := range entries {
		if e.Level == "SEVERE" || strings.Contains(e.Message, "Content Security Policy") {
			out = append(out, e.Message)
		}
	}
	return out
}

type cookie struct {
	Name     string `json:"name"`
	Value    string `json:"value"`
	HTTPOnly bool   `json:"httpOnly"`
	Secure   bool   `json:"secure"`
	SameSite string `json:"sameSite"`
}

func (b *browser) cookies() []cookie {
	b.t.Helper()
	var cs []cookie
	b.call("GET", b.sess("/cookie"), nil, &cs)
	return cs
}
