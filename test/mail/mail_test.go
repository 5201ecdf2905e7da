// Package mail_test checks the panel's e-mail: account-access notifications through the
// Notify workflow on a real Temporal server, go-mail and an SMTP server on loopback.
package mail_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/workers/panel"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
)

func TestMain(m *testing.M) { harness.MainPostgresTemporal(m) }

// TestAccessMail: with SMTP set, the first use of an API token from an address mails the
// account holder once; without SMTP nothing is sent.
func TestAccessMail(t *testing.T) {
	ctx := context.Background()
	db := harness.NewDB(t, "postgres")
	store := &models.Store{DB: db}
	tmp, err := panel.StartTemporal(ctx, harness.TemporalClient(t), store, temporalclient.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tmp.Worker.Stop() })
	app := panel.NewApp(panel.Options{Store: store, OnAccess: tmp.OnAccess(store)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)                  //nolint:errcheck
	t.Cleanup(func() { app.Shutdown() }) //nolint:errcheck
	sink := harness.StartSMTPSink(t)
	admin := harness.Admin(t, db)
	get := func(auth string) {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/api/v0.9.2/networks.json", nil)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET networks: %v %v", resp, err)
		}
		resp.Body.Close()
	}

	// No SMTP yet: a new token's first use sends nothing.
	get(harness.Token(t, db, admin.ID))
	if sink.Wait(3 * time.Second) {
		t.Fatalf("mail sent without SMTP settings: %+v", sink.Mail())
	}

	host, port, _ := net.SplitHostPort(sink.Addr)
	p, _ := strconv.Atoi(port)
	if _, err := store.UpdateSettings(ctx, admin, &models.SettingsInput{SMTPHost: &host, SMTPPort: &p,
		SMTPFrom: models.Strp("panel@example.com"), SMTPTLS: models.Strp("none"), PanelHostname: models.Strp("panel.example.com")}); err != nil {
		t.Fatal(err)
	}
	auth := harness.Token(t, db, admin.ID)
	get(auth)
	if !sink.Wait(60 * time.Second) {
		t.Fatal("no access mail within 60 s")
	}
	m := sink.Mail()[0]
	if len(m.To) != 1 || m.To[0] != admin.Email || m.From != "panel@example.com" {
		t.Errorf("envelope: %+v", m)
	}
	for _, want := range []string{"Subject: clusterducks: your account was accessed", "API token", "127.0.0.1", "panel.example.com"} {
		if !strings.Contains(m.Data, want) {
			t.Errorf("mail lacks %q:\n%s", want, m.Data)
		}
	}
	// The same token from the same address again: no second mail.
	get(auth)
	if sink.Wait(3 * time.Second) {
		t.Errorf("second mail for the same address: %d mails", len(sink.Mail()))
	}
}
