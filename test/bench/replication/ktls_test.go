package replication

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/lab"
)

// BenchmarkKernelTLSInGuests sends the same 64 MiB snapshot between two lab VMs three
// ways through the same host relay: raw `zfs send | zfs receive`, over TLS 1.3 sealed by
// the guests' kernels (zfs send writes the socket, zfs receive reads it), and over Go's
// crypto/tls with a process copying between pipe and connection. It tells what kernel TLS
// would give the replication's full send.
func BenchmarkKernelTLSInGuests(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	vms := probeVMs(ctx, b, "ktlsprobe", "ktls-m", "ktls-s")
	for _, v := range vms {
		if out, err := v.Exec(ctx, "sh", "-c", "cp /mnt/host/ktlsprobe /usr/local/bin/ktlsprobe && chmod +x /usr/local/bin/ktlsprobe && (modprobe tls; grep -m1 -o -w 'aes\\|avx2' /proc/cpuinfo | sort -u | tr '\\n' ' '; uname -r)"); err != nil {
			b.Fatalf("install: %v %s", err, out)
		} else {
			b.Logf("%s: %s", v.Name, out)
		}
	}
	m, s := vms[0], vms[1]
	mib := envInt("REPL_BENCH_MIB", 64)
	src := m.Pool + "/src"
	if out, err := m.Exec(ctx, "zfs", "create", "-V", fmt.Sprintf("%dM", mib), "-o", "volblocksize=16k", src); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	if err := m.WaitZvol(ctx, src); err != nil {
		b.Fatal(err)
	}
	if out, err := m.Exec(ctx, "sh", "-c", fmt.Sprintf("dd if=/dev/urandom of=/dev/zvol/%s bs=1M count=%d oflag=direct status=none && zfs snapshot %s@s", src, mib, src)); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	b.Logf("load: %s", loadAverage())
	times := map[string][]time.Duration{}
	n := 0
	run := func(mode string) {
		n++
		dest := fmt.Sprintf("%s/dst%d", s.Pool, n)
		sp, rp, relayed := relay(b)
		start := time.Now()
		var wg sync.WaitGroup
		var recvOut string
		var recvErr error
		var recv, send string
		switch mode {
		case "raw":
			recv = fmt.Sprintf("exec 3<>/dev/tcp/%s/%d && zfs receive -F -u %s <&3", lab.GuestHostIP, rp, dest)
			send = fmt.Sprintf("zfs send -c %s@s >/dev/tcp/%s/%d", src, lab.GuestHostIP, sp)
		default:
			flag := ""
			switch mode {
			case "go-tls":
				flag = "-user"
			case "splice", "splice-records":
				flag = "-splice " + map[string]string{"splice": "plain", "splice-records": "records"}[mode]
			}
			recv = fmt.Sprintf("ktlsprobe -role client %s -addr %s:%d -- zfs receive -F -u %s", flag, lab.GuestHostIP, rp, dest)
			send = fmt.Sprintf("ktlsprobe -role server %s -addr %s:%d -- zfs send -c %s@s", flag, lab.GuestHostIP, sp, src)
		}
		wg.Go(func() { recvOut, recvErr = s.Exec(ctx, "bash", "-c", recv) })
		time.Sleep(500 * time.Millisecond)
		sendOut, err := m.Exec(ctx, "bash", "-c", send+" 2>&1")
		if err != nil {
			b.Fatalf("%s send: %v %s", mode, err, sendOut)
		}
		wg.Wait()
		took := time.Since(start)
		<-relayed
		if recvErr != nil {
			b.Fatalf("%s receive: %v %s", mode, recvErr, recvOut)
		}
		got, err := s.Exec(ctx, "zfs", "get", "-H", "-o", "value", "guid", dest+"@s")
		want, _ := m.Exec(ctx, "zfs", "get", "-H", "-o", "value", "guid", src+"@s")
		if err != nil || got != want {
			b.Fatalf("%s: guid %q, want %q (%v)", mode, got, want, err)
		}
		if _, err := s.Exec(ctx, "zfs", "destroy", "-r", dest); err != nil {
			b.Fatal(err)
		}
		b.Logf("%s: %s %s %s", mode, took, strings.TrimSpace(recvOut), strings.TrimSpace(sendOut))
		times[mode] = append(times[mode], took)
	}
	// KTLS_MODES picks the ways (e.g. "raw kernel-tls splice splice-records"): splice has
	// zfs send write a pipe that the probe splices into the socket, as the master's agent
	// does.
	modes := strings.Fields(cmp.Or(os.Getenv("KTLS_MODES"), "raw kernel-tls go-tls"))
	b.ResetTimer()
	for range b.N {
		for range samples {
			for _, mode := range modes {
				run(mode)
			}
		}
	}
	raw := median(times["raw"])
	for _, mode := range modes {
		md := median(times[mode])
		b.Logf("%-10s median %s (%.2f× raw time) samples %v", mode, md, md.Seconds()/raw.Seconds(), times[mode])
		b.ReportMetric(md.Seconds(), mode+"-s")
	}
	b.Logf("load: %s", loadAverage())
}
