// Package chaos proves the production topology of DESIGN §1 through real processes, and
// that it loses nothing under kills: an external Temporal server on PostgreSQL
// (`clusterducks temporal`), panels on one PostgreSQL database, and a storage agent in a
// lab VM (one VM for the package, each test running its own agent in it).
package chaos

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/harness/proc"
	"github.com/clusterducks/clusterducks/test/lab"
	"github.com/clusterducks/clusterducks/workflows"
)

func TestMain(m *testing.M) {
	code := harness.RunWithPostgres(m)
	stopVM()
	os.Exit(code)
}

// panel is one `clusterducks panel` process and its API client.
type panel struct {
	*process
	api *lab.DevPanel // URL and the admin's token: its Call is the API client
}

func startPanel(t *testing.T, name, bin string, env []string) *panel {
	t.Helper()
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := start(t, name, bin, env, "panel", "--listen", addr)
	return &panel{process: p, api: &lab.DevPanel{URL: "http://" + addr}}
}

// restart starts the panel again where it listened (after a kill), same name, same env.
func (p *panel) restart(t *testing.T, bin string, env []string) {
	p.process = start(t, p.name, bin, env, "panel", "--listen", strings.TrimPrefix(p.api.URL, "http://"))
}

// ready waits until the panel answers its health endpoint.
func (p *panel) ready(ctx context.Context) error {
	return eventually(2*time.Minute, 300*time.Millisecond, func() error {
		req, _ := http.NewRequestWithContext(ctx, "GET", p.api.URL+"/login", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /login: %d", resp.StatusCode)
		}
		return nil
	})
}

// TestTwoPanelsExternalTemporal: two panels share one PostgreSQL database and an external
// Temporal server that keeps its own state in PostgreSQL and serves TLS (the agent in its
// VM gets the CA and the server name from the panel at registration). A dashboard session made on
// panel A works on panel B; an operation started through panel A ends while panel A is
// dead, its progress streaming from panel B (B's worker picks up the workflow and its
// database activities).
func TestTwoPanelsExternalTemporal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	pg := harness.SharedPostgres(t)
	bin, err := lab.BuildBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The external Temporal server: its schema is created in an empty database at start;
	// its frontend speaks TLS only, and panels and agents verify its certificate.
	tdb := "temporal_" + strconv.Itoa(os.Getpid())
	certs := writeTLS(t)
	temporal := start(t, "temporal", bin, nil, "temporal", "--db", pg.URL(tdb), "--port", "-1", "--ui-port", "-1",
		"--tls-cert", certs.cert, "--tls-key", certs.key, "--tls-ca", certs.ca, "--tls-server-name", temporalName)
	m, err := temporal.await(ctx, regexp.MustCompile(`temporal: frontend (\S+), namespace (\S+)`), 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	frontend := strings.TrimSuffix(m[1], ",")
	t.Logf("external temporal at %s (state in PostgreSQL database %s)", frontend, tdb)

	dsn := pg.NewDatabase(t)
	env := []string{"DATABASE_URL=" + dsn, "TEMPORAL_ADDRESS=" + frontend, "TEMPORAL_NAMESPACE=default", "CLUSTERDUCKS_ALLOW_LOOPBACK=1",
		"TEMPORAL_TLS_CA=" + certs.ca, "TEMPORAL_TLS_SERVER_NAME=" + temporalName, "HEALTH_EVERY=5s"}
	a := startPanel(t, "panel A", bin, env)
	tok, err := a.await(ctx, regexp.MustCompile(`API token: (\S+)`), 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := a.await(ctx, regexp.MustCompile(`E-mail:\s+(\S+)\s+Password:\s+(\S+)`), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a.api.Token = tok[1]
	if err := a.ready(ctx); err != nil {
		t.Fatal(err)
	}
	b := startPanel(t, "panel B", bin, env)
	b.api.Token = a.api.Token
	if err := b.ready(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.out.String(), "First start") {
		t.Fatal("panel B created a second first admin on a database panel A had set up")
	}

	// A dashboard session made on A is a session on B (sessions live in the database).
	cookie := login(ctx, t, a.api.URL, creds[1], creds[2])
	if code := dashboard(ctx, t, b.api.URL, cookie); code != http.StatusOK {
		t.Fatalf("panel B with panel A's session cookie: %d, want 200", code)
	}

	// A storage server whose agent registers with panel A.
	network, err := a.api.CreateNetwork(ctx, "Topology")
	if err != nil {
		t.Fatal(err)
	}
	srv := sharedVM(t)
	pool := newPool(t, srv)
	serverID, key, err := a.api.CreateServer(ctx, network, "s1", lab.GuestIP, pool)
	if err != nil {
		t.Fatal(err)
	}
	ag := startAgent(t, srv, a.api.URL, pool, key)
	if op := waitOp(ctx, t, b.api, "server-bootstrap", serverID, 10*time.Minute); op.State != "succeeded" {
		t.Fatalf("bootstrap: %+v\nagent:\n%s", op, ag.log())
	}

	// The guide's volume create through panel A, then panel A dies at once.
	var vol struct {
		ID        uint `json:"id"`
		Operation struct {
			ID uint `json:"id"`
		} `json:"operation"`
	}
	if err := a.api.Call(ctx, "POST", "volumes.json", map[string]any{"network": network, "Alias": "New Volume 1", "vol_size": "1"}, &vol); err != nil {
		t.Fatal(err)
	}
	a.kill()
	t.Logf("panel A killed right after accepting volume %d (operation %d)", vol.ID, vol.Operation.ID)

	// Its progress streams from panel B, to the end.
	events := streamOperation(ctx, t, b.api.URL, cookie, vol.Operation.ID, 10*time.Minute)
	if op := waitOp(ctx, t, b.api, "volume-create", vol.ID, 5*time.Minute); op.State != "succeeded" {
		t.Fatalf("volume create after panel A died: %+v\nevents:\n%s", op, strings.Join(events, "\n"))
	}
	t.Logf("progress streamed by panel B: %d events, last %s", len(events), events[len(events)-1])
	ds := fmt.Sprintf("%s/iscsi/volumes/%d", ag.pool, vol.ID)
	if out, err := srv.Exec(ctx, "zfs", "get", "-Hp", "-o", "value", "type", ds); err != nil || strings.TrimSpace(out) != "volume" {
		t.Errorf("%s on the server: %q %v", ds, out, err)
	}

	// The schedules every panel creates at start exist once, and each of their runs was
	// started once (one action per scheduled time), however many panels run.
	if err := eventually(2*time.Minute, 2*time.Second, func() error {
		sch, err := schedules(ctx, frontend, certs.ca, temporalName)
		if err != nil {
			return err
		}
		for _, id := range []string{workflows.HealthScheduleID, workflows.ReconcileScheduleID} {
			if _, ok := sch[id+"#count"]; !ok {
				return fmt.Errorf("no schedule %s: %v", id, sch)
			}
		}
		runs := sch[workflows.HealthScheduleID]
		if len(runs) < 2 {
			return fmt.Errorf("the health check ran %d times so far", len(runs))
		}
		for i := 1; i < len(runs); i++ {
			if runs[i].Equal(runs[i-1]) {
				return fmt.Errorf("the health check ran twice for %s", runs[i])
			}
		}
		t.Logf("schedules with two panels: %d, health check runs at distinct times %v", len(sch)/2, runs)
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Panel A comes back on the same database and serves the finished operation.
	a2 := startPanel(t, "panel A again", bin, env)
	a2.api.Token = a.api.Token
	if err := a2.ready(ctx); err != nil {
		t.Fatal(err)
	}
	if op := waitOp(ctx, t, a2.api, "volume-create", vol.ID, time.Minute); op.State != "succeeded" {
		t.Fatalf("volume create seen from the restarted panel A: %+v", op)
	}
}

type operationView struct {
	ID       uint   `json:"id"`
	Kind     string `json:"kind"`
	State    string `json:"state"`
	Error    string `json:"error"`
	Message  string `json:"message"`
	ObjectID uint   `json:"object_id"`
}

// waitOp polls a panel until the newest operation of kind on object has finished.
func waitOp(ctx context.Context, t *testing.T, p *lab.DevPanel, kind string, object uint, within time.Duration) operationView {
	t.Helper()
	var last operationView
	err := eventually(within, time.Second, func() error {
		var ops []operationView
		if err := p.Call(ctx, "GET", "operations.json?per_page=100", nil, &ops); err != nil {
			return err
		}
		for _, op := range ops {
			if op.Kind == kind && op.ObjectID == object {
				last = op
			}
		}
		if last.State == "succeeded" || last.State == "failed" || last.State == "cancelled" {
			return nil
		}
		return fmt.Errorf("%s of %d: %+v", kind, object, last)
	})
	if err != nil {
		t.Fatal(err)
	}
	return last
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// login logs in through the dashboard's form on base and returns the session cookie.
func login(ctx context.Context, t *testing.T, base, email, password string) *http.Cookie {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/login", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		page.WriteString(sc.Text())
	}
	resp.Body.Close()
	m := csrfInput.FindStringSubmatch(page.String())
	if m == nil {
		t.Fatalf("login page has no csrf field")
	}
	form := url.Values{"email": {email}, "password": {password}, "csrf": {m[1]}}
	req, _ = http.NewRequestWithContext(ctx, "POST", base+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == api.SessionCookie && ck.Value != "" {
			return ck
		}
	}
	t.Fatal("login set no session cookie")
	return nil
}

// dashboard GETs the dashboard's home on base with the session cookie: 200 when the
// session is known there, a redirect to the login page otherwise.
func dashboard(ctx context.Context, t *testing.T, base string, cookie *http.Cookie) int {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/", nil)
	req.Header.Set("Accept", "text/html")
	req.AddCookie(cookie)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// streamOperation reads the dashboard's live progress stream of operation id from base
// until its "end" event and returns the data lines it received.
func streamOperation(ctx context.Context, t *testing.T, base string, cookie *http.Cookie, id uint, within time.Duration) []string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var got []string
	for sctx.Err() == nil {
		req, _ := http.NewRequestWithContext(sctx, "GET", fmt.Sprintf("%s/events/operations?id=%d", base, id), nil)
		req.Header.Set("Accept", "text/event-stream")
		req.AddCookie(cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("progress stream: %v", err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			t.Fatalf("progress stream: %d", resp.StatusCode)
		}
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				got = append(got, event+" "+strings.TrimPrefix(line, "data: "))
				if event == "end" {
					resp.Body.Close()
					return got
				}
			}
		}
		resp.Body.Close()
	}
	t.Fatalf("progress stream of operation %d did not end in %s: %v", id, within, got)
	return nil
}
