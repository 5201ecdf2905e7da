// Command tlsprobe measures, where it runs (a lab VM under TCG), what the replication
// stream's encryption costs: AEAD seal rates of the TLS ciphers for 16 KiB records, then
// the same bytes over loopback TCP plainly, over TLS 1.3 (the cipher Go picks) and over
// TLS 1.2 with each cipher forced. BenchmarkCiphersInGuest runs it in a lab VM.
package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	"github.com/clusterducks/clusterducks/test/bench/replication/internal/probecert"
	"golang.org/x/crypto/chacha20poly1305"
)

func main() {
	mib := flag.Int("mib", 64, "MiB sent over each connection")
	secs := flag.Float64("seal-seconds", 2, "how long each AEAD is measured")
	flag.Parse()
	for _, a := range []struct {
		name string
		make func() cipher.AEAD
	}{
		{"AES-128-GCM", func() cipher.AEAD { return gcm(16) }},
		{"AES-256-GCM", func() cipher.AEAD { return gcm(32) }},
		{"ChaCha20-Poly1305", func() cipher.AEAD {
			c, err := chacha20poly1305.New(make([]byte, 32))
			if err != nil {
				log.Fatal(err)
			}
			return c
		}},
	} {
		fmt.Printf("seal %-18s %7.1f MiB/s\n", a.name, seal(a.make(), time.Duration(*secs*float64(time.Second))))
	}
	cert := probecert.SelfSigned()
	n := int64(*mib) << 20
	rate, _ := transfer(n, nil, nil)
	fmt.Printf("tcp  plain              %7.1f MiB/s\n", rate)
	for _, c := range []struct {
		name  string
		suite uint16
		max   uint16
	}{
		{"TLS 1.3 (Go's pick)", 0, tls.VersionTLS13},
		{"TLS 1.2 AES-128-GCM", tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.VersionTLS12},
		{"TLS 1.2 ChaCha20", tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.VersionTLS12},
	} {
		srv := &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: c.max}
		cli := &tls.Config{InsecureSkipVerify: true, MaxVersion: c.max} //nolint:gosec // a measurement on loopback
		if c.suite != 0 {
			srv.CipherSuites, cli.CipherSuites = []uint16{c.suite}, []uint16{c.suite}
		}
		rate, suite := transfer(n, srv, cli)
		fmt.Printf("tls  %-18s %7.1f MiB/s  %s\n", c.name, rate, suite)
	}
}

func gcm(keyLen int) cipher.AEAD {
	b, err := aes.NewCipher(make([]byte, keyLen))
	if err != nil {
		log.Fatal(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		log.Fatal(err)
	}
	return g
}

func seal(a cipher.AEAD, d time.Duration) float64 {
	buf := make([]byte, 16<<10, 16<<10+a.Overhead())
	nonce := make([]byte, a.NonceSize())
	start := time.Now()
	var n int64
	for time.Since(start) < d {
		a.Seal(buf[:0], nonce, buf, nil)
		n += int64(len(buf))
	}
	return float64(n) / (1 << 20) / time.Since(start).Seconds()
}

// transfer sends n bytes over a loopback connection (TLS when srv is set) and returns the
// rate the receiver saw, handshake included, and the cipher suite negotiated.
func transfer(n int64, srv, cli *tls.Config) (float64, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var w io.Writer = c
		if srv != nil {
			t := tls.Server(c, srv)
			defer t.Close()
			w = t
		}
		buf := make([]byte, 256<<10)
		for left := n; left > 0; left -= int64(len(buf)) {
			if _, err := w.Write(buf[:min(int64(len(buf)), left)]); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var r io.Reader = c
	suite := ""
	if cli != nil {
		t := tls.Client(c, cli)
		if err := t.Handshake(); err != nil {
			log.Fatal(err)
		}
		r, suite = t, tls.CipherSuiteName(t.ConnectionState().CipherSuite)
	}
	got, err := io.CopyN(io.Discard, r, n)
	if err != nil {
		log.Fatalf("received %d of %d: %v", got, n, err)
	}
	return float64(got) / (1 << 20) / time.Since(start).Seconds(), suite
}
