package ktls

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// recorder keeps what crypto/tls writes beneath it.
type recorder struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.out.Write(p)
	r.mu.Unlock()
	return r.Conn.Write(p)
}

func selfSigned(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ktls"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestCryptoInfoOpensCryptoTLSRecords: the key, IV and salt handed to the kernel (read back
// from the struct) open the first application record crypto/tls sealed, in each
// direction, with the suite Go picks here (AES-128-GCM where the CPU has AES; the
// struct's ChaCha20 layout is checked the same way where it has not). That is what the
// kernel does with them.
func TestCryptoInfoOpensCryptoTLSRecords(t *testing.T) {
	cert := selfSigned(t)
	if os.Getenv("KTLS_TEST_CHILD") == "" {
		// ChaCha20-Poly1305 is what Go picks when it believes the CPU has no AES.
		cmd := exec.Command(os.Args[0], "-test.run", "^TestCryptoInfoOpensCryptoTLSRecords$", "-test.v")
		cmd.Env = append(os.Environ(), "KTLS_TEST_CHILD=1", "GODEBUG=cpu.aes=off")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "TLS_CHACHA20_POLY1305_SHA256: both directions") {
			t.Errorf("with AES hidden from Go: %v\n%s", err, out)
		}
	}
	{
		a, b := net.Pipe()
		srec, crec := &recorder{Conn: a}, &recorder{Conn: b}
		scfg, ssec := Config(&tls.Config{Certificates: []tls.Certificate{cert}})
		ccfg, csec := Config(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a test of the record keys
		server, client := tls.Server(srec, scfg), tls.Client(crec, ccfg)
		done := make(chan error, 1)
		go func() {
			buf := make([]byte, 5)
			if _, err := io.ReadFull(server, buf); err != nil {
				done <- err
				return
			}
			_, err := server.Write([]byte("world"))
			done <- err
		}()
		if err := client.Handshake(); err != nil {
			t.Fatal(err)
		}
		// Both sides' handshake records are written: the client's Finished is its last,
		// and the server wrote its flight before it could read that.
		for _, r := range []*recorder{crec, srec} {
			r.mu.Lock()
			r.out.Reset()
			r.mu.Unlock()
		}
		if _, err := client.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 5)
		if _, err := io.ReadFull(client, got); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		suite := client.ConnectionState().CipherSuite
		for _, d := range []struct {
			name   string
			secret []byte
			rec    *recorder
			want   string
		}{{"client", csec.client, crec, "hello"}, {"server", ssec.server, srec, "world"}} {
			info, err := cryptoInfo(suite, d.secret)
			if err != nil {
				t.Fatal(err)
			}
			d.rec.mu.Lock()
			record := append([]byte(nil), d.rec.out.Bytes()...)
			d.rec.mu.Unlock()
			plain, err := openWithInfo(info, record)
			if err != nil {
				t.Fatalf("%s: %s: %v", tls.CipherSuiteName(suite), d.name, err)
			}
			// TLS 1.3's inner plaintext ends with its content type (23, application data).
			if string(plain) != d.want+"\x17" {
				t.Errorf("%s: %s record opened to %q", tls.CipherSuiteName(suite), d.name, plain)
			}
		}
		t.Logf("%s: both directions' record keys match", tls.CipherSuiteName(suite))
		a.Close() // not through crypto/tls: its close_notify would wait for a reader
		b.Close()
	}
}

// openWithInfo opens one TLS 1.3 record with sequence number 0 as the kernel would from
// its struct tls12_crypto_info_*.
func openWithInfo(info, record []byte) ([]byte, error) {
	cipherType := binary.NativeEndian.Uint16(info[2:4])
	var aead cipher.AEAD
	var nonce []byte
	var err error
	switch cipherType {
	case cipherChaCha20:
		iv, key := info[4:16], info[16:48]
		if aead, err = chacha20poly1305.New(key); err != nil {
			return nil, err
		}
		nonce = append([]byte(nil), iv...)
	default:
		keyLen := 16
		if cipherType == cipherAESGCM256 {
			keyLen = 32
		}
		iv, key, salt := info[4:12], info[12:12+keyLen], info[12+keyLen:16+keyLen]
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		if aead, err = cipher.NewGCM(block); err != nil {
			return nil, err
		}
		nonce = append(append([]byte(nil), salt...), iv...)
	}
	// Sequence 0: the nonce is the IV as it is.
	n := int(binary.BigEndian.Uint16(record[3:5]))
	return aead.Open(nil, nonce, record[5:5+n], record[:5])
}
