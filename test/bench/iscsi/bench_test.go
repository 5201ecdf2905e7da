//go:build bench

package iscsibench

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/iscsi/initiator"
)

const (
	diskSize  = 1 << 30
	ourIQN    = "iqn.2026-11.dev.clusterducks:bench"
	tgtIQN    = "iqn.2026-11.dev.clusterducks:bench-tgtd"
	initName  = "iqn.2026-11.dev.clusterducks:bench-client"
	blockSize = 512
)

type targetProc struct {
	name string
	pid  int
	addr string
	iqn  string
	lun  uint64
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitPort(t *testing.T, addr string) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listened: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startOurs builds test/iscsi/targetd and runs it as its own process, so its
// CPU time and memory can be measured like tgtd's.
func startOurs(t *testing.T, disk string, extra ...string) *targetProc {
	bin := filepath.Join(t.TempDir(), "targetd")
	if out, err := exec.Command("go", "build", "-o", bin, "../../iscsi/targetd").CombinedOutput(); err != nil {
		t.Fatalf("build targetd: %v\n%s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, append(append([]string{"-listen", addr, "-iqn", ourIQN}, extra...), disk)...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitPort(t, addr)
	return &targetProc{name: "ours", pid: cmd.Process.Pid, addr: addr, iqn: ourIQN, lun: 0}
}

func startTgtd(t *testing.T, disk string) *targetProc {
	harness.RequirePackages(t, "tgt")
	port := freePort(t)
	ctl := 30000 + os.Getpid()%2000 // tgtd accepts control numbers below 32768
	clean := func() {
		os.Remove(fmt.Sprintf("/var/run/tgtd/socket.%d", ctl))
		os.Remove(fmt.Sprintf("/var/run/tgtd/socket.%d.lock", ctl))
	}
	clean()
	os.MkdirAll("/var/run/tgtd", 0o755)
	cmd := exec.Command("tgtd", "-f", "-C", strconv.Itoa(ctl), "--iscsi", fmt.Sprintf("portal=127.0.0.1:%d", port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); clean() })
	adm := func(args ...string) error {
		out, err := exec.Command("tgtadm", append([]string{"-C", strconv.Itoa(ctl), "--lld", "iscsi"}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("tgtadm %v: %v %s", args, err, out)
		}
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for adm("--op", "new", "--mode", "target", "--tid", "1", "-T", tgtIQN) != nil {
		if time.Now().After(deadline) {
			t.Fatal("tgtd did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", disk); err != nil {
		t.Fatal(err)
	}
	if err := adm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL"); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitPort(t, addr)
	return &targetProc{name: "tgtd", pid: cmd.Process.Pid, addr: addr, iqn: tgtIQN, lun: 1}
}

// cpuSeconds returns a process's user+system CPU time.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// rssBytes returns a process's resident set size.
func rssBytes(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}

type pattern struct {
	name     string
	sessions int
	qd       int // per session
	size     int
	write    bool
	random   bool
}

type result struct {
	mbps, iops, cpuPerGB float64
	p99                  time.Duration
}

func run(t *testing.T, tp *targetProc, p pattern, dur time.Duration) result {
	ctx := context.Background()
	var sessions []*initiator.Session
	for i := range p.sessions {
		s, err := initiator.Dial(ctx, tp.addr, initiator.Options{
			InitiatorName: initName, TargetName: tp.iqn, ISID: [6]byte{0x80, 9, 0, 0, 0, byte(i)}})
		if err != nil {
			t.Fatalf("%s: login: %v", tp.name, err)
		}
		sessions = append(sessions, s)
	}
	defer func() {
		for _, s := range sessions {
			s.Logout(ctx)
		}
	}()
	var ops, bytesMoved atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	workers := p.sessions * p.qd
	blocks := diskSize / p.size
	lat := make([][]time.Duration, workers)
	cpu0 := cpuSeconds(tp.pid)
	start := time.Now()
	for w := range workers {
		s := sessions[w%p.sessions]
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, p.size)
			crand.Read(buf)
			r := mrand(w)
			// Sequential workers each walk their own stripe of the disk.
			next := w * (blocks / workers)
			for !stop.Load() {
				var idx int
				if p.random {
					idx = r.IntN(blocks)
				} else {
					idx = next
					next = (next + 1) % blocks
				}
				lba := uint64(idx * p.size / blockSize)
				t0 := time.Now()
				var err error
				if p.write {
					err = s.Write(ctx, tp.lun, lba, blockSize, buf, false)
				} else {
					err = s.Read(ctx, tp.lun, lba, blockSize, buf)
				}
				if err != nil {
					t.Errorf("%s %s: %v", tp.name, p.name, err)
					return
				}
				if len(lat[w]) < 200000 {
					lat[w] = append(lat[w], time.Since(t0))
				}
				ops.Add(1)
				bytesMoved.Add(int64(p.size))
			}
		}()
	}
	time.Sleep(dur)
	stop.Store(true)
	wg.Wait()
	el := time.Since(start).Seconds()
	cpu := cpuSeconds(tp.pid) - cpu0
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	r := result{
		mbps:     float64(bytesMoved.Load()) / el / 1e6,
		iops:     float64(ops.Load()) / el,
		cpuPerGB: cpu / (float64(bytesMoved.Load()) / 1e9),
		p99:      percentile(all, 0.99),
	}
	return r
}

func mrand(seed int) *rand.Rand { return rand.New(rand.NewPCG(uint64(seed), 42)) }

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sortDurations(d)
	return d[int(float64(len(d)-1)*q)]
}

func sortDurations(d []time.Duration) {
	// small insertion-free sort via the standard library
	sortSlice(d)
}

// idleSessionMemory opens n idle sessions and reports the target's RSS growth per session.
func idleSessionMemory(t *testing.T, tp *targetProc, n int) float64 {
	ctx := context.Background()
	time.Sleep(500 * time.Millisecond)
	before := rssBytes(tp.pid)
	var ss []*initiator.Session
	for i := range n {
		s, err := initiator.Dial(ctx, tp.addr, initiator.Options{
			InitiatorName: fmt.Sprintf("%s-idle-%d", initName, i), TargetName: tp.iqn})
		if err != nil {
			t.Fatalf("%s idle session %d: %v", tp.name, i, err)
		}
		// One small read so the session has done real work before it idles.
		if err := s.Read(ctx, tp.lun, uint64(i), blockSize, make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	time.Sleep(time.Second)
	after := rssBytes(tp.pid)
	for _, s := range ss {
		s.Logout(ctx)
	}
	return float64(after-before) / float64(n)
}

// samples holds one pattern's runs against one target.
type samples []result

// figure is the pattern's headline value of one run: MB/s, or IOPS for 4 KiB blocks.
func figure(p pattern, r result) float64 {
	if p.size == 4096 {
		return r.iops
	}
	return r.mbps
}

func unit(p pattern) string {
	if p.size == 4096 {
		return "IOPS"
	}
	return "MB/s"
}

// median returns the median of f over the runs, with the smallest and largest.
func (ss samples) median(f func(result) float64) (med, lo, hi float64) {
	v := make([]float64, len(ss))
	for i, r := range ss {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	med = v[n/2]
	if n%2 == 0 {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	return med, v[0], v[n-1]
}

func (ss samples) medianP99() time.Duration {
	m, _, _ := ss.median(func(r result) float64 { return float64(r.p99) })
	return time.Duration(m).Round(time.Microsecond)
}

// compare runs p runs times against a and b, alternating which goes first so
// that neither always meets the machine in the same state.
func compare(t *testing.T, a, b *targetProc, p pattern, runs int, dur time.Duration) (samples, samples) {
	var sa, sb samples
	for i := range runs {
		if i%2 == 0 {
			sa = append(sa, run(t, a, p, dur))
			sb = append(sb, run(t, b, p, dur))
		} else {
			sb = append(sb, run(t, b, p, dur))
			sa = append(sa, run(t, a, p, dur))
		}
	}
	return sa, sb
}

// cell formats a median with its spread, e.g. "17685 IOPS (15012–18230)".
func cell(p pattern, ss samples) (string, float64) {
	m, lo, hi := ss.median(func(r result) float64 { return figure(p, r) })
	return fmt.Sprintf("%.0f %s (%.0f–%.0f)", m, unit(p), lo, hi), m
}

func cpuMedian(ss samples) float64 {
	m, _, _ := ss.median(func(r result) float64 { return r.cpuPerGB })
	return m
}

func TestBenchVsTgtd(t *testing.T) {
	secs := 2
	if v, err := strconv.Atoi(os.Getenv("ISCSI_BENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	runs := 5
	if v, err := strconv.Atoi(os.Getenv("ISCSI_BENCH_RUNS")); err == nil && v > 0 {
		runs = v
	}
	dur := time.Duration(secs) * time.Second
	disk := filepath.Join(t.TempDir(), "bench.img")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4<<20)
	for off := 0; off < diskSize; off += len(chunk) {
		crand.Read(chunk)
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	ours := startOurs(t, disk)
	tgt := startTgtd(t, disk)
	// Warm the page cache through both.
	for _, tp := range []*targetProc{ours, tgt} {
		run(t, tp, pattern{name: "warm", sessions: 1, qd: 4, size: 1 << 20}, 2*time.Second)
	}
	patterns := []pattern{
		{name: "seq read 1 MiB qd8", sessions: 1, qd: 8, size: 1 << 20},
		{name: "seq write 1 MiB qd8", sessions: 1, qd: 8, size: 1 << 20, write: true},
		{name: "rand read 4 KiB qd1", sessions: 1, qd: 1, size: 4096, random: true},
		{name: "rand read 4 KiB qd32", sessions: 1, qd: 32, size: 4096, random: true},
		{name: "rand write 4 KiB qd1", sessions: 1, qd: 1, size: 4096, random: true, write: true},
		{name: "rand write 4 KiB qd32", sessions: 1, qd: 32, size: 4096, random: true, write: true},
		{name: "8 sessions seq read 1 MiB qd4", sessions: 8, qd: 4, size: 1 << 20},
		{name: "8 sessions rand read 4 KiB qd4", sessions: 8, qd: 4, size: 4096, random: true},
	}
	var b strings.Builder
	host, _ := os.Hostname()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&b, "## iSCSI target benchmark: ours vs tgtd (medians of %d runs)\n\n", runs)
	fmt.Fprintf(&b, "Same 1 GiB file (page cache warm), same client (test/iscsi/initiator, in the test process), loopback. "+
		"Each pattern runs %d times per target, %d s per run, the two targets alternating which goes first; "+
		"each cell is the median with the spread (min–max) in brackets, the ratio is of the medians, "+
		"CPU s/GB and p99 are medians too. Host %s, %d CPUs, load average at start: %s\n\n",
		runs, secs, host, numCPU(), strings.TrimSpace(string(load)))
	fmt.Fprintf(&b, "| pattern | ours median (min–max) | tgtd median (min–max) | ratio | ours CPU s/GB | tgtd CPU s/GB | ours p99 | tgtd p99 |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	only := os.Getenv("ISCSI_BENCH_ONLY") // substring filter on pattern names, for quick checks
	for _, p := range patterns {
		if only != "" && !strings.Contains(p.name, only) {
			continue
		}
		so, st := compare(t, ours, tgt, p, runs, dur)
		co, mo := cell(p, so)
		ct, mt := cell(p, st)
		line := fmt.Sprintf("| %s | %s | %s | **%.2f×** | %.2f | %.2f | %v | %v |", p.name, co, ct,
			mo/mt, cpuMedian(so), cpuMedian(st), so.medianP99(), st.medianP99())
		t.Log(line)
		fmt.Fprintln(&b, line)
	}
	if only != "" {
		t.Logf("\n%s", b.String())
		return
	}
	// Read path: pread+writev (default) vs sendfile, same patterns.
	sf := startOurs(t, disk, "-sendfile")
	run(t, sf, pattern{name: "warm", sessions: 1, qd: 4, size: 1 << 20}, time.Second)
	fmt.Fprintf(&b, "\nRead path of our target: pread(2)+writev(2) (default) vs sendfile(2) (`Config.Sendfile`), medians of %d runs.\n\n", runs)
	fmt.Fprintf(&b, "| pattern | pread median (min–max) | sendfile median (min–max) | ratio | pread CPU s/GB | sendfile CPU s/GB |\n|---|---:|---:|---:|---:|---:|\n")
	for _, p := range []pattern{patterns[0], patterns[3], patterns[6]} {
		sp, ss := compare(t, ours, sf, p, runs, dur)
		cp, mp := cell(p, sp)
		cs, ms := cell(p, ss)
		line := fmt.Sprintf("| %s | %s | %s | %.2f× | %.2f | %.2f |", p.name, cp, cs, ms/mp, cpuMedian(sp), cpuMedian(ss))
		t.Log(line)
		fmt.Fprintln(&b, line)
	}
	mo := idleSessionMemory(t, ours, 1000)
	mt := idleSessionMemory(t, tgt, 1000)
	line := fmt.Sprintf("\nMemory per idle session (RSS growth over 1000 idle sessions, each after one 4 KiB read): ours %.1f KiB, tgtd %.1f KiB.\n", mo/1024, mt/1024)
	t.Log(line)
	b.WriteString(line)
	t.Logf("\n%s", b.String())
	if os.Getenv("ISCSI_BENCH_WRITE") != "" {
		// Append: the figures are noisy on shared machines, so the file keeps runs side by side.
		f, err := os.OpenFile("RESULTS.md", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "\n---\n\nRun of %s\n\n%s", time.Now().UTC().Format(time.RFC3339), b.String())
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
