// Package devices_bench measures the devices list at fleet size on PostgreSQL: 5,000
// devices in one network, GET devices.json listed, filtered (group, server, version,
// locked, compliance), searched, sorted and paged; p50 and p99 per query over several runs (the
// target is under 200 ms each).
package devices_bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/workers/panel"
)

func TestMain(m *testing.M) { harness.MainPostgres(m) }

const (
	fleet = 5000
	runs  = 5  // per query
	reps  = 20 // requests per query and run
)

func BenchmarkDeviceList(b *testing.B) {
	ctx := context.Background()
	db := harness.NewDB(b, "postgres")
	store := &models.Store{DB: db}
	admin := harness.Admin(b, db)
	nc, err := store.CreateNetwork(ctx, admin, &models.NetworkInput{Name: models.Strp("fleet"), ClientID: models.Uintp(admin.ClientID)})
	if err != nil {
		b.Fatal(err)
	}
	nid := nc.Object.(*models.Network).ID
	var servers []uint
	for i := range 4 {
		s, err := store.CreateServer(ctx, admin, &models.ServerInput{NetworkID: &nid, Name: models.Strp(fmt.Sprintf("s%d", i)),
			IP: models.Strp(fmt.Sprintf("10.0.0.%d", i+1)), Pool: models.Strp("tank")})
		if err != nil {
			b.Fatal(err)
		}
		servers = append(servers, s.Object.(*models.Server).ID)
	}
	vol := &models.Volume{NetworkID: nid, Alias: "base", SizeGiB: 1, State: models.StateReady}
	if err := db.Create(vol).Error; err != nil {
		b.Fatal(err)
	}
	var groups, versions []uint
	for i := range 5 {
		// Two of the five groups are strict, so the compliance filter has assignments to match.
		g := &models.Group{NetworkID: nid, Name: fmt.Sprintf("g%d", i), VolumeID: vol.ID, State: models.StateReady, StrictVersioning: i < 2}
		if err := db.Create(g).Error; err != nil {
			b.Fatal(err)
		}
		groups = append(groups, g.ID)
		for v := 1; v <= 3; v++ {
			gv := &models.GroupVersion{GroupID: g.ID, Number: v, State: models.StateReady}
			if err := db.Create(gv).Error; err != nil {
				b.Fatal(err)
			}
			versions = append(versions, gv.ID)
		}
	}
	// The fleet, inserted directly (as registrations would leave it), in batches.
	t0 := time.Now()
	devs := make([]models.Device, fleet)
	for i := range devs {
		g, v, s := groups[i%len(groups)], versions[i%len(versions)], servers[i%len(servers)]
		devs[i] = models.Device{NetworkID: nid, MAC: fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", i>>24&255, i>>16&255, i>>8&255, i&255),
			Name: fmt.Sprintf("pc-%05d", i), GroupID: &g, CloneVersionID: &v, ServerID: &s, Locked: i%7 == 0}
	}
	if err := db.CreateInBatches(devs, 1000).Error; err != nil {
		b.Fatal(err)
	}
	if err := db.Exec("ANALYZE devices").Error; err != nil {
		b.Fatal(err)
	}
	fmt.Printf("inserted %d devices in %s\n", fleet, time.Since(t0).Round(time.Millisecond))

	app := panel.NewApp(panel.Options{Store: store})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go app.Listener(ln)                  //nolint:errcheck
	b.Cleanup(func() { app.Shutdown() }) //nolint:errcheck
	base := "http://" + ln.Addr().String() + "/api/v0.9.2/devices.json?"
	auth := harness.Token(b, db, admin.ID)
	get := func(q string) (int, error) {
		req, _ := http.NewRequest("GET", base+q, nil)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	queries := []struct{ name, q string }{
		{"list (page 1)", fmt.Sprintf("network_id=%d", nid)},
		{"list (page 100)", fmt.Sprintf("network_id=%d&page=100", nid)},
		{"list 500 per page", fmt.Sprintf("network_id=%d&per_page=500", nid)},
		{"filter group", fmt.Sprintf("network_id=%d&group_id=%d", nid, groups[2])},
		{"filter server", fmt.Sprintf("network_id=%d&server_id=%d", nid, servers[1])},
		{"filter version", fmt.Sprintf("network_id=%d&version_id=%d", nid, versions[7])},
		{"filter locked", fmt.Sprintf("network_id=%d&locked=true", nid)},
		{"filter compliant", fmt.Sprintf("network_id=%d&compliant=true", nid)},
		{"filter not compliant, page 20", fmt.Sprintf("network_id=%d&compliant=false&page=20", nid)},
		{"filter group+locked", fmt.Sprintf("network_id=%d&group_id=%d&locked=false", nid, groups[1])},
		{"search name", fmt.Sprintf("network_id=%d&q=pc-04", nid)},
		{"sort name desc", fmt.Sprintf("network_id=%d&sort=-name", nid)},
		{"sort last boot, page 50", fmt.Sprintf("network_id=%d&sort=last_boot&page=50", nid)},
		{"filter+sort+page", fmt.Sprintf("network_id=%d&server_id=%d&sort=-name&page=5", nid, servers[3])},
	}
	for n := 0; n < b.N; n++ {
		worst := time.Duration(0)
		for _, q := range queries {
			var lat []time.Duration
			for range runs {
				for range reps {
					t := time.Now()
					code, err := get(q.q)
					lat = append(lat, time.Since(t))
					if err != nil || code != 200 {
						b.Fatalf("%s: %d %v", q.name, code, err)
					}
				}
			}
			slices.Sort(lat)
			p50, p99 := lat[len(lat)/2], lat[(len(lat)-1)*99/100]
			worst = max(worst, p99)
			fmt.Printf("%-26s p50 %7.2f ms  p99 %7.2f ms  (%d requests)\n", q.name, ms(p50), ms(p99), len(lat))
		}
		b.ReportMetric(ms(worst), "worst-p99-ms")
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
