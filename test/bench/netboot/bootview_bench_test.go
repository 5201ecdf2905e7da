package netboot_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	bootviewtest "github.com/clusterducks/clusterducks/test/bootview"
	"github.com/clusterducks/clusterducks/test/netboot"
)

// viewSite is a panel with a published strict group and n registered devices, the first
// withDisk of them with their clone on the agent's disks, and an agent with its view
// synced to the panel.
func viewSite(b *testing.B, n, withDisk int, cfg func(*boot.Config)) (*netboot.HostPanel, *bootviewtest.Agent, []netboot.Device) {
	b.Helper()
	p := netboot.StartHostPanel(b)
	bootviewtest.Serve(b, p, time.Minute)
	disks, err := boot.NewFileDisks(filepath.Join(b.TempDir(), "pool"))
	if err != nil {
		b.Fatal(err)
	}
	g := p.Group(true, false)
	p.Publish(&netboot.HostAgent{Disks: disks}, g, 1)
	devs := bootviewtest.KnownDevices(b, p, disks, g, 1, n, withDisk)
	a := bootviewtest.Start(b, p, bootviewtest.Options{Disks: disks, Config: cfg})
	end := time.Now().Add(2 * time.Minute)
	for a.View.Stats().Devices != n {
		if time.Now().After(end) {
			b.Fatalf("the view holds %d devices after 2 min, want %d", a.View.Stats().Devices, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p, a, devs
}

// BenchmarkBootViewStorm: 5,000 registered devices, 1,000 concurrent boot-script requests
// for known ones (their clones exist), answered from the agent's view. Reports p50, p99
// and the requests that went to the panel's boot endpoint (the target: none). The login
// bound is raised to the storm's size: admission control is measured on its own below.
//
// The devices are a process of their own (stormclient/: one HTTP/1.1 connection per
// device, opened before the storms as iPXE's chain request opens it, every request
// written at once, the answers read by one epoll loop): in one process with the server,
// a thousand client goroutines would be scheduled ahead of the server's and their cost
// and queueing counted as the server's. Five storms, each once the panel has taken
// every report of the boots before it (the agent delivers them on its next tick; the
// panel and its database share this machine's two cores here, and on a site they do not
// share the agent's); the figure is the median of the five p99s. The first storm is the
// first request on each connection (fresh goroutines and buffers) and is the slowest.
func BenchmarkBootViewStorm(b *testing.B) {
	const registered, n, storms = 5000, 1000, 5
	_, a, devs := viewSite(b, registered, n, func(c *boot.Config) { c.MaxLogins = n })
	devs = devs[:n]
	client := &http.Client{Timeout: time.Minute}
	// Each device once, alone: their targets are exported before the storm, as after a first boot.
	one := make([]time.Duration, 0, n)
	for _, d := range devs {
		t0 := time.Now()
		if _, err := a.Get(client, d); err != nil {
			b.Fatal(err)
		}
		one = append(one, time.Since(t0))
	}
	client.CloseIdleConnections()
	sort.Slice(one, func(i, j int) bool { return one[i] < one[j] })
	fmt.Printf("boot view, one known device at a time (first boot, export included): p50 %v, p99 %v\n",
		one[n/2].Round(10*time.Microsecond), one[n*99/100].Round(10*time.Microsecond))

	bin := filepath.Join(b.TempDir(), "stormclient")
	if out, err := exec.Command("go", "build", "-o", bin, "./stormclient").CombinedOutput(); err != nil {
		b.Fatalf("build stormclient: %v: %s", err, out)
	}
	var paths strings.Builder
	for _, d := range devs {
		paths.WriteString("/boot.ipxe?mac=" + strings.ReplaceAll(d.MAC, ":", "-") + "&uuid=" + d.UUID + "\n")
	}
	before := a.Panel.Count(wire.PathBoot)
	paths.WriteString("\n")
	cmd := exec.Command(bin, "-addr", strings.TrimSuffix(strings.TrimPrefix(a.URL, "http://"), "/boot.ipxe"),
		"-rounds", strconv.Itoa(storms), "-pause", "0", "-go", "-want", "sanboot iscsi:")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	// Each storm waits until the panel has taken every report of the boots before it
	// (the agent delivers them on its next tick; the panel, in this process with its
	// database on the same two cores, takes about 1.5 s for a storm's 2,000), then for a
	// quiet half second: the figure is the agent's answer, not the panel's writes.
	quietErr := make(chan error, 3)
	quiet := func() {
		for end := time.Now().Add(time.Minute); a.Svc.ReportsWaiting() > 0; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				quietErr <- fmt.Errorf("%d boot reports still waiting for the panel after a minute", a.Svc.ReportsWaiting())
				cmd.Process.Kill() //nolint:errcheck
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
		io.WriteString(stdin, "go\n") //nolint:errcheck // a dead client fails the scan below
	}
	go func() {
		io.WriteString(stdin, paths.String()) //nolint:errcheck
		quiet()
	}()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// CD_BENCH_CPUPROFILE=prefix: the server's CPU profile of each storm alone, sampled at
	// 1 kHz (a storm lasts tens of ms), in prefix-N.prof; pprof merges them.
	profile := os.Getenv("CD_BENCH_CPUPROFILE")
	var profOut *os.File
	stopProfile := func() {
		if profOut != nil {
			pprof.StopCPUProfile()
			profOut.Close()
			profOut = nil
		}
	}
	defer stopProfile()
	var rounds []time.Duration
	var cpu0 time.Duration
	var ms0 runtime.MemStats
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		switch {
		case len(f) == 2 && f[0] == "start":
			if profile != "" {
				if profOut, err = os.Create(profile + "-" + f[1] + ".prof"); err != nil {
					b.Fatal(err)
				}
				runtime.SetCPUProfileRate(1000)
				pprof.StartCPUProfile(profOut) //nolint:errcheck // says the rate is set already
			}
			cpu0 = cpuTime()
			runtime.ReadMemStats(&ms0)
		case len(f) == 4+n && f[0] == "round":
			server := cpuTime() - cpu0
			stopProfile()
			if f[1] != strconv.Itoa(storms) {
				go quiet()
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			errs, _ := strconv.Atoi(f[2])
			clientCPU, _ := strconv.ParseInt(f[3], 10, 64)
			lat := make([]time.Duration, n)
			for i := range lat {
				ns, _ := strconv.ParseInt(f[4+i], 10, 64)
				lat[i] = time.Duration(ns)
			}
			if errs != 0 {
				b.Fatalf("storm %s: %d of %d answers were not a sanboot", f[1], errs, n)
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			rounds = append(rounds, lat[n*99/100])
			fmt.Printf("boot view storm round %s: %d concurrent known devices of %d: p50 %v, p99 %v, max %v; CPU: server %v (%v a request, the panel in the same process), devices %v; GC cycles %d, heap %d MiB\n",
				f[1], n, registered, lat[n/2].Round(100*time.Microsecond), lat[n*99/100].Round(100*time.Microsecond), lat[n-1].Round(time.Millisecond),
				server.Round(time.Millisecond), (server / n).Round(time.Microsecond), time.Duration(clientCPU).Round(time.Millisecond),
				ms.NumGC-ms0.NumGC, ms.HeapAlloc>>20)
		default:
			b.Fatalf("stormclient said %.200q", lines.Text())
		}
	}
	select {
	case err := <-quietErr:
		b.Fatal(err)
	default:
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("stormclient: %v", err)
	}
	b.StopTimer()
	if len(rounds) != storms {
		b.Fatalf("%d storms reported, want %d", len(rounds), storms)
	}
	panel := a.Panel.Count(wire.PathBoot) - before
	sort.Slice(rounds, func(i, j int) bool { return rounds[i] < rounds[j] })
	b.ReportMetric(float64(rounds[storms/2].Microseconds())/1000, "ms-p99-median-of-5")
	b.ReportMetric(float64(panel), "panel-boot-requests")
	fmt.Printf("boot view storm: p99 median of %d storms %v (storms %v); boot queries to the panel during the storms: %d\n",
		storms, rounds[storms/2].Round(100*time.Microsecond), rounds, panel)
	if panel != 0 {
		b.Fatalf("%d boot queries went to the panel for known devices, want 0", panel)
	}
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}

// BenchmarkBootViewAdmission: 1,000 concurrent known devices against the default
// admission bounds: every one is answered (sanboot or a retry), none waits for a timeout.
func BenchmarkBootViewAdmission(b *testing.B) {
	const n = 1000
	_, a, devs := viewSite(b, n, n, nil)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}, Timeout: time.Minute}
	lat := make([]time.Duration, n)
	kinds := make([]string, n)
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Go(func() {
			t0 := time.Now()
			body, err := a.Get(client, d)
			lat[i] = time.Since(t0)
			if err != nil {
				kinds[i] = "error: " + err.Error()
				return
			}
			kinds[i] = boot.ScriptKind(body)
		})
	}
	wg.Wait()
	b.StopTimer()
	count := map[string]int{}
	for _, k := range kinds {
		count[k]++
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	adm := a.Svc.Admission()
	fmt.Printf("admission, %d concurrent known devices, bounds %d logins: answers %v; p50 %v, p99 %v, max %v\n",
		n, adm.MaxLogins, count, lat[n/2].Round(100*time.Microsecond), lat[n*99/100].Round(100*time.Microsecond), lat[n-1].Round(time.Millisecond))
	if count["sanboot"]+count["retry"] != n {
		b.Fatalf("answers %v: want only sanboot and retry", count)
	}
}

// BenchmarkBootViewChange measures how long a change made in the panel (a device's lock
// through the API) takes to reach the agent's view; reports the median of 21.
func BenchmarkBootViewChange(b *testing.B) {
	p, a, devs := viewSite(b, 100, 0, nil)
	id := p.Device(devs[0].MAC).ID
	var lat []time.Duration
	b.ResetTimer()
	for i := range 21 {
		locked := i%2 == 0
		t0 := time.Now()
		p.API("PATCH", fmt.Sprintf("/devices/%d.json", id), map[string]any{"locked": locked})
		for {
			if info, _, ok := a.View.Lookup(devs[0].MAC, 0); ok && info.Device.Locked == locked {
				break
			}
			if time.Since(t0) > time.Minute {
				b.Fatal("the change did not reach the view within a minute")
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[10].Microseconds())/1000, "ms-median")
	fmt.Printf("a panel change reaches the agent's view: median %v, p90 %v, max %v (21 changes)\n",
		lat[10].Round(time.Millisecond), lat[18].Round(time.Millisecond), lat[20].Round(time.Millisecond))
}

// BenchmarkBootScriptKnown is the agent's cost of one known device's boot script from its
// view, HTTP left out: what each request of a storm pays on top of the endpoint's own.
func BenchmarkBootScriptKnown(b *testing.B) {
	const n = 1000
	_, a, devs := viewSite(b, n, n, func(c *boot.Config) { c.MaxLogins = n })
	ctx := context.Background()
	for _, d := range devs {
		a.Svc.Script(ctx, d.MAC, d.UUID, 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := devs[i%n]
		if s := a.Svc.Script(ctx, d.MAC, d.UUID, 0); !strings.Contains(s, "sanboot iscsi:") {
			b.Fatal(s)
		}
	}
}
