// Package netboot_test measures the boot path: a boot storm of device VMs through the
// agent's boot endpoint and our iSCSI target against the same VMs booting the same files
// from Debian's tgtd, the boot endpoint's latency under 500 concurrent requests, and the
// memory of the boot side with 200 exported targets. Run with
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 30m ./test/bench/netboot/
package netboot_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/netboot"
)

func TestMain(m *testing.M) { harness.MainPostgres(m) }

// knownDevices registers n devices of group g with clones of v1 on the host agent, as
// devices that booted before.
func knownDevices(b *testing.B, p *netboot.HostPanel, a *netboot.HostAgent, g *models.Group, first, n int) []netboot.Device {
	b.Helper()
	v, err := models.VersionByNumber(context.Background(), p.DB, g.ID, 1)
	if err != nil {
		b.Fatal(err)
	}
	devs := make([]netboot.Device, n)
	for i := range devs {
		d := netboot.DeviceN(first + i)
		row := &models.Device{NetworkID: p.Network.ID, MAC: d.MAC, UUID: d.UUID, GroupID: &g.ID, CloneVersionID: &v.ID, ServerID: &p.Server.ID}
		if err := p.DB.Create(row).Error; err != nil {
			b.Fatal(err)
		}
		if _, err := a.Disks.Clone(g.ID, 1, row.ID); err != nil {
			b.Fatal(err)
		}
		devs[i] = d
	}
	return devs
}

// storm boots every device at once and returns the time from the start to the last marker.
func storm(b *testing.B, url string, devs []netboot.Device, want string) time.Duration {
	b.Helper()
	start := time.Now()
	errs := make([]error, len(devs))
	var wg sync.WaitGroup
	for i := range devs {
		wg.Go(func() {
			res, err := netboot.Boot(context.Background(), url, devs[i], 5*time.Minute)
			if err == nil && res.Marker != want {
				err = fmt.Errorf("booted %q, want %q", res.Marker, want)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	took := time.Since(start)
	for i, err := range errs {
		if err != nil {
			b.Fatalf("device %s: %v", devs[i].MAC, err)
		}
	}
	return took
}

// tgtd is a private tgtd instance serving each device's clone file as LUN 1 of its own
// target, admitting only that device's initiator.
type tgtd struct {
	n    int
	port int
	cmd  *exec.Cmd
}

func startTgtd(b *testing.B, files []string, devs []netboot.Device) *tgtd {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	t := &tgtd{n: 20000 + os.Getpid()%10000, port: port}
	t.cmd = exec.Command("tgtd", "-f", "-C", strconv.Itoa(t.n), "--iscsi", fmt.Sprintf("portal=127.0.0.1:%d", port))
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t.cmd.Stdout, t.cmd.Stderr = io.Discard, io.Discard
	if err := t.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(t.stop)
	adm := func(args ...string) {
		var out []byte
		var err error
		for range 50 { // tgtd takes a moment to open its control socket
			out, err = exec.Command("tgtadm", append([]string{"-C", strconv.Itoa(t.n), "--lld", "iscsi"}, args...)...).CombinedOutput()
			if err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.Fatalf("tgtadm %v: %v: %s", args, err, out)
	}
	for i, f := range files {
		tid := strconv.Itoa(i + 1)
		adm("--op", "new", "--mode", "target", "--tid", tid, "-T", t.iqn(i))
		adm("--op", "new", "--mode", "logicalunit", "--tid", tid, "--lun", "1", "-b", f)
		adm("--op", "bind", "--mode", "target", "--tid", tid, "-Q", boot.InitiatorName(devs[i].UUID))
	}
	return t
}

func (t *tgtd) iqn(i int) string { return fmt.Sprintf("iqn.2026-11.dev.clusterducks.bench:tgtd%d", i) }

// stop SIGKILLs our tgtd (it ignores SIGTERM and refuses to stop with targets) and removes
// its control socket files.
func (t *tgtd) stop() {
	if t.cmd.Process != nil {
		t.cmd.Process.Kill() //nolint:errcheck
		t.cmd.Wait()         //nolint:errcheck
	}
	os.Remove(fmt.Sprintf("/var/run/tgtd/socket.%d", t.n))
	os.Remove(fmt.Sprintf("/var/run/tgtd/socket.%d.lock", t.n))
}

// BenchmarkBootStorm boots 16 device VMs at once through the agent's boot endpoint and
// our target over 16 clone files, then the same 16 VMs from tgtd over the same files, and
// reports the time to the last marker of each and their ratio (two rounds, alternating).
func BenchmarkBootStorm(b *testing.B) {
	harness.RequirePackages(b, append(netboot.Packages, "tgt")...)
	const n = 16
	p := netboot.StartHostPanel(b)
	a := netboot.StartHostAgent(b, p, nil, "")
	g := p.Group(true, false)
	p.Publish(a, g, 1)
	devs := knownDevices(b, p, a, g, 1000, n)
	files := make([]string, n)
	for i, d := range devs {
		row := p.Device(d.MAC)
		files[i], _, _ = a.Disks.DevicePath(context.Background(), row.ID)
	}
	// Export the clones first: both targets start from files that are open and cached.
	storm(b, a.BootURL, devs[:1], netboot.Marker(g.ID, 1))
	t := startTgtd(b, files, devs)
	scripts := http.NewServeMux()
	scripts.HandleFunc("/boot.ipxe", func(w http.ResponseWriter, r *http.Request) {
		mac, _ := wire.NormalizeMAC(r.URL.Query().Get("mac"))
		for i, d := range devs {
			if d.MAC == mac {
				fmt.Fprint(w, boot.SanbootScript("tgtd", boot.SANTarget{Portal: fmt.Sprintf("10.0.2.2:%d", t.port), LUN: 1, IQN: t.iqn(i)}, time.Second))
				return
			}
		}
		fmt.Fprint(w, boot.ChainScript())
	})
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: scripts}
	go hs.Serve(hl) //nolint:errcheck
	b.Cleanup(func() { hs.Close() })
	tgtURL := fmt.Sprintf("http://10.0.2.2:%d/boot.ipxe", hl.Addr().(*net.TCPAddr).Port)

	b.ResetTimer()
	var ours, theirs []time.Duration
	for round := 0; round < 2; round++ {
		ours = append(ours, storm(b, a.BootURL, devs, netboot.Marker(g.ID, 1)))
		theirs = append(theirs, storm(b, tgtURL, devs, netboot.Marker(g.ID, 1)))
	}
	b.StopTimer()
	best := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[0]
	}
	o, th := best(ours), best(theirs)
	b.ReportMetric(o.Seconds(), "s-last-marker-ours")
	b.ReportMetric(th.Seconds(), "s-last-marker-tgtd")
	b.ReportMetric(th.Seconds()/o.Seconds(), "speed-vs-tgtd")
	fmt.Printf("boot storm, %d VMs at once: last marker ours %v (rounds %v), tgtd %v (rounds %v); tgtd/ours = %.2f\n",
		n, o.Round(10*time.Millisecond), ours, th.Round(10*time.Millisecond), theirs, th.Seconds()/o.Seconds())
}

// BenchmarkBootScriptLatency sends 500 concurrent boot requests (BOOT_SCRIPT_DEVICES
// sets another number) to one agent's endpoint (the real panel over HTTP and PostgreSQL
// behind it): known devices whose clone exists, and new devices that are registered and
// need a clone (file-backed, provisioned in the agent). Reports p50 and p99.
func BenchmarkBootScriptLatency(b *testing.B) {
	n := 500
	if v, err := strconv.Atoi(os.Getenv("BOOT_SCRIPT_DEVICES")); err == nil && v > 0 {
		n = v
	}
	for _, kind := range []string{"known", "new"} {
		b.Run(kind, func(b *testing.B) {
			p := netboot.StartHostPanel(b)
			if sqlDB, err := p.DB.DB(); err == nil {
				sqlDB.SetMaxOpenConns(40)
			}
			a := netboot.StartHostAgent(b, p, nil, "")
			g := p.Group(true, false)
			p.Publish(a, g, 1)
			var devs []netboot.Device
			if kind == "known" {
				devs = knownDevices(b, p, a, g, 2000, n)
			} else {
				for i := range n {
					devs = append(devs, netboot.DeviceN(5000+i))
				}
			}
			url := strings.Replace(a.BootURL, "10.0.2.2", "127.0.0.1", 1)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}, Timeout: time.Minute}
			get := func(d netboot.Device) (string, error) {
				resp, err := client.Get(fmt.Sprintf("%s?mac=%s&uuid=%s", url, strings.ReplaceAll(d.MAC, ":", "-"), d.UUID))
				if err != nil {
					return "", err
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				return string(body), err
			}
			if kind == "known" {
				// One device alone, warm: the answer's own cost, without queueing.
				var one []time.Duration
				for range 20 {
					t0 := time.Now()
					if _, err := get(devs[0]); err != nil {
						b.Fatal(err)
					}
					one = append(one, time.Since(t0))
				}
				sort.Slice(one, func(i, j int) bool { return one[i] < one[j] })
				fmt.Printf("boot script, one known device at a time: p50 %v\n", one[10].Round(10*time.Microsecond))
				time.Sleep(1500 * time.Millisecond) // let its boot reports go out
			}
			lat := make([]time.Duration, n)
			bodies := make([]string, n)
			errs := make([]error, n)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i, d := range devs {
				wg.Go(func() {
					t0 := time.Now()
					bodies[i], errs[i] = get(d)
					lat[i] = time.Since(t0)
				})
			}
			wg.Wait()
			wall := time.Since(start)
			b.StopTimer()
			// Beyond the admission bounds (provisionings, logins) a device is told to retry
			// after a pause: an answer too, never a timeout.
			kinds := map[string]int{}
			for i := range devs {
				k := boot.ScriptKind(bodies[i])
				if errs[i] != nil || (k != "sanboot" && k != "retry") {
					b.Fatalf("request %d: %v\n%s", i, errs[i], bodies[i])
				}
				kinds[k]++
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			p50, p99 := lat[n/2], lat[n*99/100]
			b.ReportMetric(float64(p50.Microseconds())/1000, "ms-p50")
			b.ReportMetric(float64(p99.Microseconds())/1000, "ms-p99")
			fmt.Printf("boot script, %d concurrent %s devices (no view: the panel answers each): p50 %v, p99 %v, max %v, all answered in %v: %v\n",
				n, kind, p50.Round(time.Microsecond*100), p99.Round(time.Microsecond*100), lat[n-1].Round(time.Millisecond), wall.Round(time.Millisecond), kinds)
		})
	}
}

// BenchmarkAgentRSS200Targets runs the agent's boot side alone in its own process (our
// target and the boot service, bootside/) with 200 exported device targets and reports
// its resident memory before and after exporting them.
func BenchmarkAgentRSS200Targets(b *testing.B) {
	const n = 200
	dir := b.TempDir()
	disks, err := boot.NewFileDisks(filepath.Join(dir, "pool"))
	if err != nil {
		b.Fatal(err)
	}
	head, _, _ := disks.GroupPath(context.Background(), 1)
	if err := netboot.MakeDisk(head, "rss", 0); err != nil {
		b.Fatal(err)
	}
	if err := disks.Publish(1, 1); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(dir, "bootside")
	if out, err := exec.Command("go", "build", "-o", bin, "./bootside").CombinedOutput(); err != nil {
		b.Fatalf("build bootside: %v: %s", err, out)
	}
	b.ResetTimer()
	out, err := exec.Command(bin, "-dir", filepath.Join(dir, "pool"), "-n", strconv.Itoa(n)).Output()
	b.StopTimer()
	if err != nil {
		b.Fatalf("bootside: %v", err)
	}
	var before, after, targets int64
	if _, err := fmt.Sscan(string(out), &before, &after, &targets); err != nil || targets != n {
		b.Fatalf("bootside printed %q: %v", out, err)
	}
	b.ReportMetric(float64(after)/1024, "MiB-rss")
	b.ReportMetric(float64(after-before)/n, "KiB-rss-per-target")
	fmt.Printf("agent boot side (own process) with %d exported targets: RSS %.1f MiB (%.1f MiB with none: %.1f KiB per target)\n",
		n, float64(after)/1024, float64(before)/1024, float64(after-before)/n)
}
