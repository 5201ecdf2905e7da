package replication

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
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
	if out, err := m.Exec(ctx, "zfs", "create", "-V", fmt.Sprintf("%dM", mib), "-o", "volblocksize="+cmp.Or(os.Getenv("KTLS_VOLBLOCKSIZE"), "16k"), src); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	if err := m.WaitZvol(ctx, src); err != nil {
		b.Fatal(err)
	}
	if out, err := m.Exec(ctx, "sh", "-c", fmt.Sprintf("dd if=/dev/urandom of=/dev/zvol/%s bs=1M count=%d oflag=direct status=none && zfs snapshot %s@s", src, mib, src)); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	b.Logf("load: %s", loadAverage())
	times, busy := map[string][]time.Duration{}, map[string][]time.Duration{}
	n := 0
	run := func(mode string) {
		n++
		dest := fmt.Sprintf("%s/dst%d", s.Pool, n)
		// "-fwd" modes take the replication's own path: the sender listens in its guest
		// (its port forwarded by qemu) and the relay dials it once the receiver came.
		fwd := strings.HasSuffix(mode, "-fwd")
		var sp, rp int
		var relayed <-chan int64
		if fwd {
			rp, relayed = relayTo(b, m.Addr(lab.PortReplication))
		} else {
			sp, rp, relayed = relay(b)
		}
		start, busy0 := time.Now(), hostBusy()
		var wg sync.WaitGroup
		var recvOut, sendOut string
		var recvErr, sendErr error
		var recv, send string
		base := strings.TrimSuffix(mode, "-fwd")
		switch base {
		case "raw":
			recv = fmt.Sprintf("exec 3<>/dev/tcp/%s/%d && zfs receive -F -u %s <&3", lab.GuestHostIP, rp, dest)
			send = fmt.Sprintf("zfs send -c %s@s >/dev/tcp/%s/%d", src, lab.GuestHostIP, sp)
			if fwd {
				send = fmt.Sprintf(`python3 -c 'import socket,subprocess,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("",%d)); s.listen(1)
c,_=s.accept(); sys.exit(subprocess.call(["zfs","send","-c","%s@s"],stdout=c.fileno()))'`, lab.PortReplication, src)
			}
		default:
			flag := ""
			switch base {
			case "go-tls":
				flag = "-user"
			case "splice", "splice-records":
				flag = "-splice " + map[string]string{"splice": "plain", "splice-records": "records"}[base]
			}
			recv = fmt.Sprintf("ktlsprobe -role client %s -addr %s:%d -- zfs receive -F -u %s", flag, lab.GuestHostIP, rp, dest)
			to := fmt.Sprintf("-addr %s:%d", lab.GuestHostIP, sp)
			if fwd {
				to = fmt.Sprintf("-listen :%d", lab.PortReplication)
			}
			send = fmt.Sprintf("ktlsprobe -role server %s %s -- zfs send -c %s@s", flag, to, src)
		}
		// One side runs in the background and waits for its peer: the receiver, or in the
		// -fwd modes the sender, which listens. The other side's failure is reported
		// before waiting for the background one, which would wait for it forever.
		runSend := func() { sendOut, sendErr = m.Exec(ctx, "bash", "-c", send+" 2>&1") }
		runRecv := func() { recvOut, recvErr = s.Exec(ctx, "bash", "-c", recv) }
		background, foreground, fgName, fgOut, fgErr := runRecv, runSend, "send", &sendOut, &sendErr
		if fwd {
			background, foreground, fgName, fgOut, fgErr = runSend, runRecv, "receive", &recvOut, &recvErr
		}
		wg.Go(background)
		time.Sleep(500 * time.Millisecond)
		if fwd { // qemu forwards a connection to a port nobody listens on yet and drops it
			listening := fmt.Sprintf("for i in $(seq 100); do ss -Hltn 'sport = :%d' | grep -q . && exit 0; sleep 0.1; done; exit 1", lab.PortReplication)
			if out, err := m.Exec(ctx, "bash", "-c", listening); err != nil {
				b.Fatalf("%s: the sender never listened: %v %s", mode, err, out)
			}
			start, busy0 = time.Now(), hostBusy() // from the receiver's connection: no 500 ms wait in these
		}
		foreground()
		if *fgErr != nil {
			b.Fatalf("%s %s: %v %s", mode, fgName, *fgErr, *fgOut)
		}
		wg.Wait()
		took, cost := time.Since(start), hostBusy()-busy0
		<-relayed
		if sendErr != nil {
			b.Fatalf("%s send: %v %s", mode, sendErr, sendOut)
		}
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
		b.Logf("%s: %s, host CPU %s (%.2f of %d cores) %s %s", mode, took, cost, cost.Seconds()/took.Seconds(), runtime.NumCPU(),
			strings.TrimSpace(recvOut), strings.TrimSpace(sendOut))
		times[mode] = append(times[mode], took)
		busy[mode] = append(busy[mode], cost)
	}
	// KTLS_MODES picks the ways (e.g. "raw kernel-tls splice splice-records"): splice has
	// zfs send write a pipe that the probe splices into the socket, as the master's agent
	// does; raw-fwd and kernel-tls-fwd go the replication's way (see run).
	modes := strings.Fields(cmp.Or(os.Getenv("KTLS_MODES"), "raw kernel-tls go-tls"))
	b.ResetTimer()
	for range b.N {
		for range samples {
			for _, mode := range modes {
				run(mode)
			}
		}
	}
	// Each mode against raw over its own path (the first mode when raw is not run).
	ref := func(mode string) time.Duration {
		if r := "raw" + strings.TrimPrefix(mode, strings.TrimSuffix(mode, "-fwd")); len(times[r]) > 0 {
			return median(times[r])
		}
		return median(times[modes[0]])
	}
	for _, mode := range modes {
		md := median(times[mode])
		// The host CPU a send costs bounds how fast it can go on this host: no schedule
		// finishes it sooner than that CPU time spread over every core.
		mb := median(busy[mode])
		b.Logf("%-14s median %s (%.2f× raw time) samples %v; host CPU median %s, so no faster than %s on %d cores (%.2f× raw time)",
			mode, md, md.Seconds()/ref(mode).Seconds(), times[mode], mb, mb/time.Duration(runtime.NumCPU()), runtime.NumCPU(),
			mb.Seconds()/float64(runtime.NumCPU())/ref(mode).Seconds())
		b.ReportMetric(md.Seconds(), mode+"-s")
	}
	b.Logf("load: %s", loadAverage())
}

// relayTo accepts one connection from the receiving guest on host loopback and joins it
// to a connection it dials to target (the sending guest's forwarded port), both ways.
func relayTo(b *testing.B, target string) (recvPort int, done <-chan int64) {
	b.Helper()
	lr, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ch := make(chan int64, 1)
	go func() {
		defer lr.Close()
		cr, err := lr.Accept()
		if err != nil {
			ch <- -1
			return
		}
		cs, err := net.Dial("tcp", target)
		if err != nil {
			cr.Close()
			ch <- -1
			return
		}
		ch <- join(cs.(*net.TCPConn), cr.(*net.TCPConn))
	}()
	return lr.Addr().(*net.TCPAddr).Port, ch
}
