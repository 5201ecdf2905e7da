package webui_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/webui"
)

// TestReplicationPages: the group page shows its compliance (which server holds each
// version and since when, which does not yet; each device's versions and server), a
// slave's page offers to make it the master, and the forms carry the bandwidth limit and
// the "assign only when every server holds it" setting.
func TestReplicationPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := startPanel(t, "postgres", webui.Options{})
	s, a := p.Store, p.Admin
	net, err := s.CreateNetwork(ctx, a, &models.NetworkInput{Name: models.Strp("N"), ClientID: models.Uintp(a.ClientID)})
	if err != nil {
		t.Fatal(err)
	}
	nid := net.Object.(*models.Network).ID
	var ids []uint
	for i, name := range []string{"hq", "branch"} {
		srv, err := s.CreateServer(ctx, a, &models.ServerInput{NetworkID: &nid, Name: models.Strp(name), IP: models.Strp(fmt.Sprintf("10.0.0.%d", i+1)), Pool: models.Strp("tank")})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, srv.Object.(*models.Server).ID)
	}
	vol := &models.Volume{NetworkID: nid, Alias: "base", SizeGiB: 1, State: models.StateReady}
	p.DB.Create(vol)
	g := &models.Group{NetworkID: nid, Name: "desktops", VolumeID: vol.ID, StrictVersioning: true, State: models.StateReady}
	p.DB.Create(g)
	v1 := &models.GroupVersion{GroupID: g.ID, Number: 1, GUID: "11", State: models.StateReady}
	v2 := &models.GroupVersion{GroupID: g.ID, Number: 2, GUID: "22", State: models.StateReady}
	p.DB.Create(v1)
	p.DB.Create(v2)
	if err := models.RecordVersionCopy(ctx, p.DB, models.VersionCopyInput{ServerID: ids[1], VersionID: v1.ID, GUID: "11"}); err != nil {
		t.Fatal(err)
	}
	dev := &models.Device{NetworkID: nid, Name: "pc1", MAC: "52:54:00:aa:00:01", GroupID: &g.ID, CloneVersionID: &v1.ID, BootedVersionID: &v1.ID, ServerID: &ids[1]}
	if err := p.DB.Create(dev).Error; err != nil {
		t.Fatal(err)
	}

	sess := sessionCookie(t, p, p.Admin.Email, adminPassword)
	get := func(path string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", p.URL+path, nil)
		req.Header.Set("Accept", "text/html")
		req.AddCookie(&http.Cookie{Name: "cd_session", Value: sess})
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return html.UnescapeString(string(b))
	}
	page := get(fmt.Sprintf("/groups/%d", g.ID))
	for _, want := range []string{"Compliance: versions on servers", "v2 (assigned)", "hq (master, ", "branch (slave, ", "Compliance: devices", "pc1", "out of date"} {
		if !strings.Contains(page, want) {
			t.Errorf("group page lacks %q", want)
		}
	}
	// v2 is on the master only: its row names the slave as not holding it yet.
	if i := strings.Index(page, "v2 (assigned)"); i < 0 || !strings.Contains(page[i:min(len(page), i+600)], "branch") {
		t.Errorf("v2's row does not name the slave lacking it")
	}
	if slave := get(fmt.Sprintf("/servers/%d", ids[1])); !strings.Contains(slave, "Make this server the master") || !strings.Contains(slave, "Replication bandwidth limit") {
		t.Errorf("slave page lacks the promote button or the bandwidth limit")
	}
	if master := get(fmt.Sprintf("/servers/%d", ids[0])); strings.Contains(master, "Make this server the master") {
		t.Errorf("the master's page offers to make it the master")
	}
	if form := get(fmt.Sprintf("/servers/%d/edit", ids[1])); !strings.Contains(form, `name="bandwidth_limit"`) {
		t.Errorf("server form lacks bandwidth_limit")
	}
	if form := get(fmt.Sprintf("/groups/%d/edit", g.ID)); !strings.Contains(form, `name="assign_when_replicated"`) {
		t.Errorf("group form lacks assign_when_replicated")
	}
}
