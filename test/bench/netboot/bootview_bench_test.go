package netboot_test

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	bootviewtest "github.com/clusterducks/clusterducks/test/bootview"
	"github.com/clusterducks/clusterducks/test/netboot"
)

// panelSite is a panel with a published strict group and n registered devices, the first
// withDisk of them with their clone on the returned disks.
func panelSite(b *testing.B, n, withDisk int) (*netboot.HostPanel, *boot.FileDisks, []netboot.Device) {
	b.Helper()
	p := netboot.StartHostPanel(b)
	bootviewtest.Serve(b, p, time.Minute)
	disks, err := boot.NewFileDisks(filepath.Join(b.TempDir(), "pool"))
	if err != nil {
		b.Fatal(err)
	}
	g := p.Group(true, false)
	p.Publish(&netboot.HostAgent{Disks: disks}, g, 1)
	return p, disks, bootviewtest.KnownDevices(b, p, disks, g, 1, n, withDisk)
}

// viewSite is panelSite with an agent, in this process, with its view synced to the panel.
func viewSite(b *testing.B, n, withDisk int, cfg func(*boot.Config)) (*netboot.HostPanel, *bootviewtest.Agent, []netboot.Device) {
	b.Helper()
	p, disks, devs := panelSite(b, n, withDisk)
	a := bootviewtest.Start(b, p, bootviewtest.Options{Disks: disks, Config: cfg})
	if err := a.WaitDevices(n, 2*time.Minute); err != nil {
		b.Fatal(err)
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
	p, disks, devs := panelSite(b, registered, n)
	devs = devs[:n]
	dir := b.TempDir()
	for _, c := range []string{"stormclient", "stormagent"} {
		if out, err := exec.Command("go", "build", "-tags", "disable_grpc_modules,release", "-o", filepath.Join(dir, c), "./"+c).CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v: %s", c, err, out)
		}
	}
	agent := startStormAgent(b, filepath.Join(dir, "stormagent"), p, disks, registered, n)
	client := &http.Client{Timeout: time.Minute}
	// Each device once, alone: their targets are exported before the storm, as after a first boot.
	one := make([]time.Duration, 0, n)
	for _, d := range devs {
		t0 := time.Now()
		resp, err := client.Get(agent.url + bootviewtest.BootQuery(d))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		one = append(one, time.Since(t0))
	}
	client.CloseIdleConnections()
	sort.Slice(one, func(i, j int) bool { return one[i] < one[j] })
	fmt.Printf("boot view, one known device at a time (first boot, export included): p50 %v, p99 %v\n",
		one[n/2].Round(10*time.Microsecond), one[n*99/100].Round(10*time.Microsecond))

	var paths strings.Builder
	for _, d := range devs {
		paths.WriteString("/boot.ipxe" + bootviewtest.BootQuery(d) + "\n")
	}
	paths.WriteString("\n")
	before := agent.ask(b, "panel-boots")
	cmd := exec.Command(filepath.Join(dir, "stormclient"), "-addr", strings.TrimSuffix(strings.TrimPrefix(agent.url, "http://"), "/boot.ipxe"),
		"-rounds", strconv.Itoa(storms), "-pause", "0", "-go", "-want", "sanboot iscsi:")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	// Each storm waits until the panel has taken every report of the boots before it
	// (the agent delivers them on its next tick; the panel, with its database on the same
	// two cores here, takes about 1.5 s for a storm's 2,000), then for a quiet half
	// second: the figure is the agent's answer, not the panel's writes.
	quietErr := make(chan error, storms)
	quiet := func(after string) {
		t0 := time.Now()
		for end := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
			w, err := agent.query("waiting")
			if err == nil && w == 0 {
				fmt.Printf("boot reports of %s taken by the panel after %v (the agent delivers on its next tick)\n", after, time.Since(t0).Round(10*time.Millisecond))
				break
			}
			if err != nil || time.Now().After(end) {
				quietErr <- fmt.Errorf("boot reports still waiting for the panel after a minute: %d (%v)", w, err)
				cmd.Process.Kill() //nolint:errcheck
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
		io.WriteString(stdin, "go\n") //nolint:errcheck // a dead client fails the scan below
	}
	go func() {
		io.WriteString(stdin, paths.String()) //nolint:errcheck
		quiet("the single boots")
	}()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var rounds, arrivals []time.Duration
	var arrivedP99 time.Duration
	var cpu0 time.Duration
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		switch {
		case len(f) == 2 && f[0] == "start":
			cpu0 = processCPU(agent.cmd.Process.Pid)
		case len(f) == 2+n && f[0] == "arrived":
			arrivedP99 = sortedLatencies(f[2:])[n*99/100]
			arrivals = append(arrivals, arrivedP99)
		case len(f) == 4+n && f[0] == "round":
			server := processCPU(agent.cmd.Process.Pid) - cpu0
			if f[1] != strconv.Itoa(storms) {
				go quiet("storm " + f[1])
			}
			errs, _ := strconv.Atoi(f[2])
			clientCPU, _ := strconv.ParseInt(f[3], 10, 64)
			if errs != 0 {
				b.Fatalf("storm %s: %d of %d answers were not a sanboot", f[1], errs, n)
			}
			lat := sortedLatencies(f[4:])
			rounds = append(rounds, lat[n*99/100])
			fmt.Printf("boot view storm %s: %d concurrent known devices of %d: p50 %v, p99 %v (arrived: %v), max %v; CPU: agent %v (%v a request), devices %v\n",
				f[1], n, registered, lat[n/2].Round(100*time.Microsecond), lat[n*99/100].Round(100*time.Microsecond), arrivedP99.Round(100*time.Microsecond),
				lat[n-1].Round(time.Millisecond), server.Round(time.Millisecond), (server / n).Round(time.Microsecond), time.Duration(clientCPU).Round(time.Millisecond))
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
	if len(rounds) != storms || len(arrivals) != storms {
		b.Fatalf("%d storms reported, want %d", len(rounds), storms)
	}
	panel := agent.ask(b, "panel-boots") - before
	sort.Slice(rounds, func(i, j int) bool { return rounds[i] < rounds[j] })
	sort.Slice(arrivals, func(i, j int) bool { return arrivals[i] < arrivals[j] })
	b.ReportMetric(float64(rounds[storms/2].Microseconds())/1000, "ms-p99-median-of-5")
	b.ReportMetric(float64(arrivals[storms/2].Microseconds())/1000, "ms-p99-arrived-median-of-5")
	b.ReportMetric(float64(panel), "panel-boot-requests")
	fmt.Printf("boot view storm: p99 median of %d storms %v read, %v arrived (storms %v, arrived %v); boot queries to the panel during the storms: %d\n",
		storms, rounds[storms/2].Round(100*time.Microsecond), arrivals[storms/2].Round(100*time.Microsecond), rounds, arrivals, panel)
	if panel != 0 {
		b.Fatalf("%d boot queries went to the panel for known devices, want 0", panel)
	}
}

// sortedLatencies parses stormclient's latencies (nanoseconds), shortest first.
func sortedLatencies(fields []string) []time.Duration {
	lat := make([]time.Duration, len(fields))
	for i, f := range fields {
		ns, _ := strconv.ParseInt(f, 10, 64)
		lat[i] = time.Duration(ns)
	}
	slices.Sort(lat)
	return lat
}

// stormAgent is a stormagent process: an agent's boot side with its view, on its own.
type stormAgent struct {
	cmd *exec.Cmd
	url string
	mu  sync.Mutex
	in  io.WriteCloser
	out *bufio.Scanner
}

// startStormAgent starts bin as the master's agent over disks, ready once its view
// holds the panel's devices; it ends with the benchmark.
func startStormAgent(b *testing.B, bin string, p *netboot.HostPanel, disks *boot.FileDisks, devices, maxLogins int) *stormAgent {
	b.Helper()
	// BOOT_STORM_ANSWER=constant measures the floor: the same process and HTTP server
	// answering one fixed script (stormagent -answer).
	cmd := exec.Command(bin, "-panel", p.URL, "-server", strconv.FormatUint(uint64(p.Server.ID), 10), "-ip", p.Server.IP,
		"-disks", disks.Root, "-devices", strconv.Itoa(devices), "-max-logins", strconv.Itoa(maxLogins),
		"-answer", cmp.Or(os.Getenv("BOOT_STORM_ANSWER"), "view"))
	cmd.Env = append(os.Environ(), "CD_AGENT_KEY="+p.Key)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	a := &stormAgent{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	b.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }() //nolint:errcheck
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill() //nolint:errcheck
			<-done
		}
	})
	if !a.out.Scan() {
		b.Fatal("stormagent ended before it was ready")
	}
	f := strings.Fields(a.out.Text())
	if len(f) != 2 || f[0] != "ready" {
		b.Fatalf("stormagent said %q, want ready <url>", a.out.Text())
	}
	a.url = f[1]
	return a
}

// query asks the agent one of its figures ("waiting", "panel-boots").
func (a *stormAgent) query(what string) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := io.WriteString(a.in, what+"\n"); err != nil {
		return 0, err
	}
	if !a.out.Scan() {
		return 0, fmt.Errorf("stormagent ended")
	}
	f := strings.Fields(a.out.Text())
	if len(f) != 2 || f[0] != what {
		return 0, fmt.Errorf("stormagent answered %q to %q", a.out.Text(), what)
	}
	return strconv.Atoi(f[1])
}

func (a *stormAgent) ask(b *testing.B, what string) int {
	b.Helper()
	v, err := a.query(what)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// processCPU is the CPU time process pid has used so far, from its threads' schedstat
// (nanoseconds, unlike /proc/<pid>/stat's clock ticks).
func processCPU(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += ns
		}
	}
	return time.Duration(sum)
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

// BenchmarkBootViewChange measures how long a change made in the panel takes to reach the
// agent's view: a device's lock and its group's lazy locks, each through the API; reports
// the median of 21 of each.
func BenchmarkBootViewChange(b *testing.B) {
	p, a, devs := viewSite(b, 100, 0, nil)
	id := p.Device(devs[0].MAC).ID
	info, _, ok := a.View.Lookup(devs[0].MAC, 0)
	if !ok || info.Group == nil {
		b.Fatal("the first device has no group in the agent's view")
	}
	gid := info.Group.ID
	// reach times 21 changes, each until seen reports it in the view.
	reach := func(what string, change func(on bool), seen func(*wire.Info, bool) bool) time.Duration {
		var lat []time.Duration
		for i := range 21 {
			on := i%2 == 0
			t0 := time.Now()
			change(on)
			for {
				if info, _, ok := a.View.Lookup(devs[0].MAC, 0); ok && seen(info, on) {
					break
				}
				if time.Since(t0) > time.Minute {
					b.Fatalf("%s: the change did not reach the view within a minute", what)
				}
				time.Sleep(time.Millisecond)
			}
			lat = append(lat, time.Since(t0))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		fmt.Printf("a panel change (%s) reaches the agent's view: median %v, p90 %v, max %v (21 changes)\n",
			what, lat[10].Round(time.Millisecond), lat[18].Round(time.Millisecond), lat[20].Round(time.Millisecond))
		return lat[10]
	}
	b.ResetTimer()
	device := reach("a device's lock", func(on bool) {
		p.API("PATCH", fmt.Sprintf("/devices/%d.json", id), map[string]any{"locked": on})
	}, func(info *wire.Info, on bool) bool { return info.Device.Locked == on })
	group := reach("its group's lazy locks", func(on bool) {
		p.API("PATCH", fmt.Sprintf("/groups/%d.json", gid), map[string]any{"lazy_locks": on})
	}, func(info *wire.Info, on bool) bool { return info.Group != nil && info.Group.Lazy == on })
	b.StopTimer()
	b.ReportMetric(float64(device.Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(group.Microseconds())/1000, "ms-median-group")
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
