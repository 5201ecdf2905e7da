// Command ktlsprobe streams a command's output to another guest's command over TLS 1.3,
// either with the records sealed by the kernel (kernel TLS: the command writes or reads
// the socket itself) or through Go's crypto/tls (the probe copies between a pipe and the
// connection, as the replication agents did). BenchmarkKernelTLSInGuests runs it in two
// lab VMs against raw `zfs send | zfs receive`.
//
//	ktlsprobe -role server -addr 10.0.2.2:P [-user] -- zfs send -c tank/v@s
//	ktlsprobe -role client -addr 10.0.2.2:Q [-user] -- zfs receive -F -u tank/w
//
// The server sends the command's output; the client feeds it to its command.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterducks/clusterducks/activities/storage/ktls"
	"github.com/clusterducks/clusterducks/test/bench/replication/internal/probecert"
)

func main() {
	role := flag.String("role", "", "server (sends) or client (receives)")
	addr := flag.String("addr", "", "where to dial")
	listen := flag.String("listen", "", "where to wait for the peer instead of dialing (the server only)")
	user := flag.Bool("user", false, "copy through Go's crypto/tls instead of kernel TLS")
	splice := flag.String("splice", "", "server: the command writes a pipe that the probe splices into the kernel-TLS socket, "+
		"each splice as much as the pipe holds (plain) or whole 16 KiB records of it (records)")
	flag.Parse()
	argv := flag.Args()
	if len(argv) == 0 {
		log.Fatal("no command")
	}
	var c net.Conn
	var err error
	if *listen != "" {
		ln, lerr := net.Listen("tcp", *listen)
		if lerr != nil {
			log.Fatal(lerr)
		}
		c, err = ln.Accept()
		ln.Close()
	} else {
		c, err = net.Dial("tcp", *addr)
	}
	if err != nil {
		log.Fatal(err)
	}
	raw := c.(*net.TCPConn)
	start := time.Now()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	switch *role {
	case "server":
		conf, sec := ktls.Config(&tls.Config{Certificates: []tls.Certificate{probecert.SelfSigned()}})
		t := tls.Server(raw, conf)
		one := make([]byte, 1)
		if _, err := io.ReadFull(t, one); err != nil { // the client's request
			log.Fatal(err)
		}
		if *user {
			out, err := cmd.StdoutPipe()
			if err != nil {
				log.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				log.Fatal(err)
			}
			n, err := io.CopyBuffer(t, out, make([]byte, 256<<10))
			if err != nil {
				log.Fatal(err)
			}
			fmt.Fprintf(os.Stderr, "sent %d bytes (user)\n", n)
		} else {
			if err := ktls.Enable(t, raw, sec, ktls.Server, ktls.TX); err != nil {
				log.Fatal(err)
			}
			if *splice != "" {
				out, err := cmd.StdoutPipe()
				if err != nil {
					log.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					log.Fatal(err)
				}
				n, calls := spliceAll(raw, out.(*os.File), *splice == "records")
				fmt.Fprintf(os.Stderr, "spliced %d bytes in %d calls\n", n, calls)
			} else {
				f, err := raw.File()
				if err != nil {
					log.Fatal(err)
				}
				cmd.Stdout = f
				if err := cmd.Start(); err != nil {
					log.Fatal(err)
				}
				f.Close()
			}
		}
		if err := cmd.Wait(); err != nil {
			log.Fatal(err)
		}
		raw.Close()
	case "client":
		conf, sec := ktls.Config(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a measurement
		t := tls.Client(raw, conf)
		if _, err := t.Write([]byte{1}); err != nil {
			log.Fatal(err)
		}
		if *user {
			cmd.Stdin = t
		} else {
			if err := ktls.Enable(t, raw, sec, ktls.Client, ktls.RX); err != nil {
				log.Fatal(err)
			}
			f, err := raw.File()
			if err != nil {
				log.Fatal(err)
			}
			cmd.Stdin = f
		}
		if err := cmd.Run(); err != nil {
			log.Fatal(err)
		}
		st := t.ConnectionState()
		fmt.Printf("%s received in %s\n", tls.CipherSuiteName(st.CipherSuite), time.Since(start))
	default:
		log.Fatal("-role server or client")
	}
}

// spliceAll moves the pipe's bytes into the socket. With records, a splice takes whole
// 16 KiB records of what the pipe holds when it holds at least one, so that each splice
// (which closes the kernel's TLS record at its end) leaves no short record.
func spliceAll(dst *net.TCPConn, pipe *os.File, records bool) (total int64, calls int) {
	_, _ = unix.FcntlInt(pipe.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	pfd := int(pipe.Fd())
	sc, err := dst.SyscallConn()
	if err != nil {
		log.Fatal(err)
	}
	for {
		want := 1 << 20
		if records {
			if avail, err := unix.IoctlGetInt(pfd, unix.TIOCINQ); err == nil && avail >= 16384 {
				want = avail - avail%16384
			}
		}
		var n int64
		var serr error
		werr := sc.Write(func(fd uintptr) bool {
			n, serr = unix.Splice(pfd, nil, int(fd), nil, want, unix.SPLICE_F_MOVE)
			return serr != unix.EAGAIN
		})
		calls++
		total += max(n, 0)
		switch {
		case werr != nil:
			log.Fatal(werr)
		case serr == unix.EINTR:
		case serr != nil:
			log.Fatal(serr)
		case n == 0:
			return total, calls
		}
	}
}
