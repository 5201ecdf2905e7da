package tunnel_test

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/workers/panel"
)

// TestHealthMail: with SMTP on loopback and the health check every second (3 failed
// checks make a server unreachable, 3 good ones recovered): one dropped check mails
// nobody; a stopped, then killed, then restarted agent gives exactly one "unreachable"
// and one "recovered" mail to each user who can see the network and none to others; a
// killed tunnel gives one tunnel mail (and its recovery), no server mail.
func TestHealthMail(t *testing.T) {
	e := startEnv(t, &panel.HealthConfig{Every: time.Second,
		Rules:         models.HealthRules{Failures: 3, FlapChanges: 100, Grace: healthGrace},
		TunnelTimeout: 2 * time.Second, AgentTimeout: time.Second})
	sink := harness.StartSMTPSink(t)
	host, port, _ := net.SplitHostPort(sink.Addr)
	p, _ := strconv.Atoi(port)
	if _, err := e.Store.UpdateSettings(e.ctx, e.Admin, &models.SettingsInput{SMTPHost: &host, SMTPPort: &p,
		SMTPFrom: models.Strp("panel@example.com"), SMTPTLS: models.Strp("none"), PanelHostname: models.Strp("panel.example.com")}); err != nil {
		t.Fatal(err)
	}
	client := func(name string) uint {
		c, err := e.Store.CreateClient(e.ctx, e.Admin, &models.ClientInput{Name: &name})
		return objectID(t, c, err)
	}
	cid, did := client("C"), client("D")
	user := func(email string, client uint) {
		c, err := e.Store.CreateUser(e.ctx, e.Admin, &models.UserInput{Email: models.Strp(email), Password: models.Strp("a long enough password 1"),
			Role: models.Strp(models.RoleUser), ClientID: &client})
		objectID(t, c, err)
	}
	user("c@example.com", cid)
	user("d@example.com", did) // another client's: sees nothing of network N
	watchers := []string{e.Admin.Email, "c@example.com"}
	slices.Sort(watchers)

	n := e.network("N", cid)
	tid, tkey := e.tunnel(n, "t1")
	s1, k1, _ := e.server(n, "s1")
	tun, _ := e.startTunnel(tkey)
	agent := e.startAgent(k1, t.TempDir())
	eventually(t, 90*time.Second, "tunnel up past its grace, server up", func() error {
		if st := e.healthState(models.HealthServer, s1); st.State != models.HealthUp {
			return fmt.Errorf("server: %+v", st)
		}
		if st := e.healthState(models.HealthTunnel, tid); st.State != models.HealthUp || st.ChangedAt == nil || time.Since(*st.ChangedAt) < healthGrace+time.Second {
			return fmt.Errorf("tunnel: %+v", st)
		}
		return nil
	})

	// One dropped check: the agent stopped for 2 s, longer than a check waits for it (1 s)
	// but shorter than 3 rounds of checks (the third would find it running again). On a
	// loaded machine a round may miss the stop: try again, up to 3 times.
	for try := 0; try < 3 && e.healthState(models.HealthServer, s1).LastError == ""; try++ {
		agent.signal(syscall.SIGSTOP)
		time.Sleep(2 * time.Second)
		agent.signal(syscall.SIGCONT)
		time.Sleep(4 * time.Second)
	}
	eventually(t, 20*time.Second, "a check failed and the next ones passed", func() error {
		if st := e.healthState(models.HealthServer, s1); st.LastError == "" || st.Oks < 3 || st.State != models.HealthUp {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	if m := sink.Mail(); len(m) != 0 {
		t.Fatalf("a dropped check mailed: %+v", m)
	}

	// Stopped for good, killed, restarted.
	agent.signal(syscall.SIGSTOP)
	waitMails(t, sink, "s1 unreachable", watchers)
	if !hasAlert(t, e, models.AlertMasterUnreachable) {
		t.Error("no master_unreachable alert while s1 is unreachable")
	}
	agent.signal(syscall.SIGKILL)
	<-agent.done
	agent.restart()
	waitMails(t, sink, "s1 recovered", watchers)

	// The tunnel killed: one tunnel mail, none for its server; then its recovery.
	tun.signal(syscall.SIGKILL)
	<-tun.done
	waitMails(t, sink, "t1 tunnel down", watchers)
	if !hasAlert(t, e, models.AlertTunnelDown) {
		t.Error("no tunnel_down alert while the tunnel is down")
	}
	tun.restart()
	waitMails(t, sink, "t1 recovered", watchers)
	// Its agent reconnects within the grace: no server mail follows.
	eventually(t, 60*time.Second, "s1 checked again through the restarted tunnel", func() error {
		var srv models.Server
		e.DB.Take(&srv, s1)
		if st := e.healthState(models.HealthServer, s1); st.State != models.HealthUp || st.Oks < 3 || !strings.HasPrefix(srv.Status, models.StatusPanelOK) {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	var subjects []string
	for _, m := range sink.Mail() {
		subjects = append(subjects, subject(m.Data)+" -> "+strings.Join(m.To, ","))
	}
	if len(subjects) != 4*len(watchers) {
		t.Errorf("mails: want %d, got %d:\n%s", 4*len(watchers), len(subjects), strings.Join(subjects, "\n"))
	}
	var events []models.AlertEvent
	e.DB.Order("id").Find(&events)
	for _, ev := range events {
		t.Logf("event %s %s %s mailed=%v", ev.Key, ev.Kind, ev.CreatedAt.Format("15:04:05.000"), ev.Mailed)
	}
}

// healthGrace is how long after a tunnel came up its servers' failed checks do not count.
// It must exceed an agent's way back to a restarted tunnel: its dialer's backoff is at
// most 8 s, with jitter up to 12 s, plus a handshake (workers/storage/tunnel.go). The
// production default is 30 s.
const healthGrace = 16 * time.Second

func subject(data string) string {
	for _, l := range strings.Split(data, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "Subject: "); ok {
			return s
		}
	}
	return ""
}

// waitMails waits until the sink holds exactly one mail whose subject contains what for
// each of the watchers, and none for anyone else.
func waitMails(t *testing.T, sink *harness.SMTPSink, what string, watchers []string) {
	t.Helper()
	var to []string
	start := time.Now()
	eventually(t, 90*time.Second, "mail "+what, func() error {
		to = nil
		for _, m := range sink.Mail() {
			if strings.Contains(subject(m.Data), what) {
				to = append(to, m.To...)
			}
		}
		slices.Sort(to)
		if len(to) < len(watchers) {
			return fmt.Errorf("to %v", to)
		}
		return nil
	})
	time.Sleep(2 * time.Second) // a second mail of the same change would come now
	to = nil
	for _, m := range sink.Mail() {
		if strings.Contains(subject(m.Data), what) {
			to = append(to, m.To...)
		}
	}
	slices.Sort(to)
	if !slices.Equal(to, watchers) {
		t.Fatalf("%q mailed to %v, want once to each of %v", what, to, watchers)
	}
	t.Logf("%q mailed to %v after %v", what, to, time.Since(start).Round(time.Millisecond))
}

func hasAlert(t *testing.T, e *env, code string) bool {
	t.Helper()
	alerts, err := e.Store.Alerts(e.ctx, e.Admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if a.Code == code {
			return true
		}
	}
	return false
}
