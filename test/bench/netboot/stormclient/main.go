// Command stormclient is the devices of a boot storm, in a process of their own: it opens
// one HTTP/1.1 connection per device to a boot endpoint, then, for each round, writes
// every device's request at once and reads the answers as they come, with one epoll loop
// (no goroutine per device: on a two-core machine the load generator must cost as little
// as it can, since it shares the cores with the server it measures).
//
// Input (stdin): one request path per line (/boot.ipxe?mac=...&uuid=...); with -go, an
// empty line ends the paths and each round waits, after its pause, for a line on stdin
// (the caller's word that the server is quiet). Output (stdout):
// "start N" before round N's first write and, after its last answer, one line
// "round N <errors> <cpu-ns> <latency-ns>..." with every request's latency. An answer is
// counted an error unless it is a 200 whose body contains -want.
//
//	stormclient -addr 127.0.0.1:8080 -rounds 3 -pause 2s -want 'sanboot iscsi:' < paths
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

type device struct {
	fd      int
	req     []byte
	buf     []byte
	sent    time.Time
	latency time.Duration // until this process read the whole answer
	arrival time.Duration // until the kernel received its last byte (SO_TIMESTAMPNS)
	done    bool
	ok      bool
}

func main() {
	addr := flag.String("addr", "", "the boot endpoint, host:port")
	rounds := flag.Int("rounds", 3, "storms")
	pause := flag.Duration("pause", 2*time.Second, "pause before each storm")
	want := flag.String("want", "", "text every answer must contain")
	timeout := flag.Duration("timeout", time.Minute, "bound of one storm")
	wait := flag.Bool("go", false, "wait for a line on stdin before each round")
	flag.Parse()
	if err := run(*addr, *rounds, *pause, *want, *timeout, *wait); err != nil {
		fmt.Fprintln(os.Stderr, "stormclient:", err)
		os.Exit(1)
	}
}

func run(addr string, rounds int, pause time.Duration, want string, timeout time.Duration, wait bool) error {
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return err
	}
	var devs []*device
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		p := strings.TrimSpace(in.Text())
		if p == "" && wait {
			break
		}
		if p != "" {
			devs = append(devs, &device{req: []byte("GET " + p + " HTTP/1.1\r\nHost: boot\r\nUser-Agent: iPXE/1.21\r\n\r\n")})
		}
	}
	if len(devs) == 0 {
		return fmt.Errorf("no request paths on stdin")
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	sa := &syscall.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To4())
	byFD := map[int]*device{}
	for _, d := range devs {
		// Blocking connect (before the storm), then non-blocking for the epoll loop.
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := syscall.Connect(fd, sa); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		// The kernel's receive time of each read's data: what a device's NIC sees, not
		// when this one loop, busy with a thousand sockets, got round to reading it.
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1); err != nil {
			return fmt.Errorf("SO_TIMESTAMPNS: %w", err)
		}
		if err := syscall.SetNonblock(fd, true); err != nil {
			return err
		}
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return err
		}
		d.fd, d.buf = fd, make([]byte, 0, 4096)
		byFD[fd] = d
	}
	out := bufio.NewWriter(os.Stdout)
	events := make([]syscall.EpollEvent, 256)
	chunk := make([]byte, 16<<10)
	oob := make([]byte, syscall.CmsgSpace(16))
	for round := 1; round <= rounds; round++ {
		time.Sleep(pause)
		if wait && !in.Scan() {
			return fmt.Errorf("stdin ended before round %d", round)
		}
		fmt.Fprintf(out, "start %d\n", round)
		out.Flush()
		cpu0 := cpuTime()
		for _, d := range devs {
			d.buf, d.done, d.ok = d.buf[:0], false, false
			d.sent = time.Now()
			if n, err := syscall.Write(d.fd, d.req); err != nil || n != len(d.req) {
				d.done = true // a short write to an idle socket: the request failed
			}
		}
		left := 0
		for _, d := range devs {
			if !d.done {
				left++
			}
		}
		end := time.Now().Add(timeout)
		for left > 0 && time.Now().Before(end) {
			n, err := syscall.EpollWait(ep, events, 1000)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			for _, ev := range events[:n] {
				d := byFD[int(ev.Fd)]
				if d == nil || d.done {
					continue
				}
				// Read until the answer is whole, and not once more: the read that would
				// only say EAGAIN is a syscall per device, on the cores the server uses
				// (epoll is level-triggered: whatever else comes is reported again).
				for !d.done {
					m, oobn, _, _, err := syscall.Recvmsg(d.fd, chunk, oob, 0)
					if m > 0 {
						d.buf = append(d.buf, chunk[:m]...)
						at, ok := received(oob[:oobn])
						if !ok {
							return fmt.Errorf("no receive timestamp from the kernel")
						}
						if body, complete := response(d.buf); complete {
							d.done, d.latency, d.arrival = true, time.Since(d.sent), at.Sub(d.sent)
							d.ok = bytes.HasPrefix(d.buf, []byte("HTTP/1.1 200")) && bytes.Contains(body, []byte(want))
							left--
						}
						continue
					}
					if m == 0 && err == nil { // closed
						d.done, d.latency, d.arrival = true, time.Since(d.sent), time.Since(d.sent)
						left--
					}
					break
				}
			}
		}
		cpu := cpuTime() - cpu0
		errs := 0
		var line, arrived strings.Builder
		for _, d := range devs {
			if !d.ok {
				errs++
			}
			line.WriteByte(' ')
			line.WriteString(strconv.FormatInt(int64(d.latency), 10))
			arrived.WriteByte(' ')
			arrived.WriteString(strconv.FormatInt(int64(d.arrival), 10))
		}
		fmt.Fprintf(out, "arrived %d%s\n", round, arrived.String())
		fmt.Fprintf(out, "round %d %d %d%s\n", round, errs, int64(cpu), line.String())
		out.Flush()
	}
	return nil
}

// response returns the body of the HTTP response in b and whether b holds all of it (by
// its Content-Length).
func response(b []byte) ([]byte, bool) {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		return nil, false
	}
	head, body := b[:i], b[i+4:]
	for _, l := range bytes.Split(head, []byte("\r\n")) {
		if k, v, ok := bytes.Cut(l, []byte(":")); ok && strings.EqualFold(string(k), "content-length") {
			n, err := strconv.Atoi(strings.TrimSpace(string(v)))
			if err != nil {
				return body, true
			}
			return body, len(body) >= n
		}
	}
	return body, false // no length: wait (the endpoint always sends one)
}

// received returns the kernel's receive time in a recvmsg's control data: the one
// SCM_TIMESTAMPNS message SO_TIMESTAMPNS asks for, read in place (this loop reads a
// thousand answers a storm; ParseSocketControlMessage allocates).
func received(oob []byte) (time.Time, bool) {
	h := syscall.CmsgLen(0)
	if len(oob) < h+int(unsafe.Sizeof(syscall.Timespec{})) {
		return time.Time{}, false
	}
	c := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
	if c.Level != syscall.SOL_SOCKET || c.Type != syscall.SO_TIMESTAMPNS {
		return time.Time{}, false
	}
	ts := (*syscall.Timespec)(unsafe.Pointer(&oob[h]))
	return time.Unix(ts.Sec, ts.Nsec), true
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}
