// Package api_bench measures the REST API on PostgreSQL: requests per second and p99
// latency of authenticated GET /networks.json and POST /volumes.json.
package api_bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/workers/panel"
)

func TestMain(m *testing.M) { harness.MainPostgres(m) }

const (
	requests    = 4000 // per pattern and run: bounded, whatever b.N is
	concurrency = 16
	maxDuration = 60 * time.Second
)

func load(b *testing.B, name string, send func(client *http.Client, i int) (int, error), want int) {
	lat := make([]time.Duration, requests)
	var next, failed atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}
	deadline := time.Now().Add(maxDuration)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= requests || time.Now().After(deadline) {
					return
				}
				t0 := time.Now()
				code, err := send(client, i)
				lat[i] = time.Since(t0)
				if err != nil || code != want {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	done := min(int(next.Load()), requests)
	lat = lat[:done]
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	rps := float64(done) / elapsed.Seconds()
	fmt.Printf("%-28s %6d req  %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  failed %d\n", name, done, rps, ms(p(0.5)), ms(p(0.99)), failed.Load())
	b.ReportMetric(rps, "req/s")
	b.ReportMetric(ms(p(0.99)), "p99-ms")
	if failed.Load() > 0 {
		b.Errorf("%s: %d requests failed", name, failed.Load())
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func BenchmarkAPI(b *testing.B) {
	db := harness.NewDB(b, "postgres")
	app := panel.NewApp(panel.Options{Store: &models.Store{DB: db}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go app.Listener(ln)                  //nolint:errcheck
	b.Cleanup(func() { app.Shutdown() }) //nolint:errcheck
	base := "http://" + ln.Addr().String() + "/api/v0.9.2"
	auth := harness.Token(b, db, harness.Admin(b, db).ID)
	do := func(client *http.Client, method, path, body string) (int, error) {
		req, _ := http.NewRequest(method, base+path, bytes.NewBufferString(body))
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	client := http.DefaultClient
	for i := 0; i < 20; i++ {
		do(client, "POST", "/networks.json", fmt.Sprintf(`{"Name": "Network %d", "Client": 1}`, i)) //nolint:errcheck
	}
	do(client, "POST", "/servers.json", `{"Name": "masterServer", "network": 1, "IP": "192.168.1.10", "Pool": "tank"}`) //nolint:errcheck
	// Its agent reports (creates on a master that never reported are refused with 409).
	var master models.Server
	if err := db.Where("name = ?", "masterServer").Take(&master).Error; err != nil {
		b.Fatal(err)
	}
	if err := models.RecordServerStats(context.Background(), db, master.ID, &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 1 << 50, PoolFree: 1 << 50}); err != nil {
		b.Fatal(err)
	}
	for n := 0; n < b.N; n++ {
		load(b, "GET networks.json", func(c *http.Client, i int) (int, error) { return do(c, "GET", "/networks.json", "") }, 200)
		load(b, "POST volumes.json", func(c *http.Client, i int) (int, error) {
			return do(c, "POST", "/volumes.json", fmt.Sprintf(`{"network": 1, "Alias": "Volume %d", "vol_size": "42"}`, i))
		}, 202)
	}
}
