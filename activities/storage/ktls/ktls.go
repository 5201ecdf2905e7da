// Package ktls hands a TLS 1.3 connection's record layer to the Linux kernel (kernel TLS),
// once Go's crypto/tls has done the handshake and checked the peer's certificate. After
// that the connection's file descriptor carries plaintext for whoever reads or writes it,
// and the kernel seals and opens the records: a process given the descriptor (zfs send
// as its stdout, zfs receive as its stdin) streams through TLS without a copy through
// user space.
//
// crypto/tls does not hand out its keys; its key log (tls.Config.KeyLogWriter, the NSS
// key log format) does. Secrets captures the two application traffic secrets of one
// connection, and Enable derives the record keys from them (RFC 8446 section 7.3).
//
// The record sequence numbers the kernel starts from are 0: Enable must be called for a
// direction before any application record has gone that way through crypto/tls, and the
// peer must not send records crypto/tls could read ahead (see package replication's
// protocol: the server sends no session tickets, and each side waits for the other's
// go-ahead). Only TLS 1.3 is supported.
package ktls

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Secrets keeps the application traffic secrets of one connection, written by its
// config's key log.
type Secrets struct {
	mu     sync.Mutex
	client []byte
	server []byte
}

// Write takes the key log's lines; only the application traffic secrets are kept.
func (s *Secrets) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for line := range strings.SplitSeq(string(p), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		secret, err := hex.DecodeString(f[2])
		if err != nil {
			continue
		}
		switch f[0] {
		case "CLIENT_TRAFFIC_SECRET_0":
			s.client = secret
		case "SERVER_TRAFFIC_SECRET_0":
			s.server = secret
		}
	}
	return len(p), nil
}

// Config returns a copy of c whose key log fills a new Secrets, for one connection. The
// copy allows TLS 1.3 only, and a server sends no session tickets (a ticket is a record
// the kernel would have to be told about).
func Config(c *tls.Config) (*tls.Config, *Secrets) {
	s := &Secrets{}
	cc := c.Clone()
	cc.KeyLogWriter = s
	cc.MinVersion = tls.VersionTLS13
	cc.SessionTicketsDisabled = true
	return cc, s
}

// Direction is which way the kernel takes over: sending (TX) or receiving (RX).
type Direction int

// The directions.
const (
	TX Direction = 1 // TLS_TX
	RX Direction = 2 // TLS_RX
)

// The kernel's <linux/tls.h> values x/sys does not define.
const (
	tls13Version    = 0x0304
	cipherAESGCM128 = 51
	cipherAESGCM256 = 52
	cipherChaCha20  = 54
)

// ErrUnsupported: the kernel has no TLS (module tls absent) or not for this cipher.
var ErrUnsupported = errors.New("kernel TLS is not available")

// Available says whether this kernel offers kernel TLS (loading the tls module, as root,
// when it is not loaded yet).
func Available() bool {
	if _, err := os.Stat("/sys/module/tls"); err == nil {
		return true
	}
	// Attaching the ULP to a socket loads the module on demand, which is the real test.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	err = unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_ULP, "tls")
	// An unconnected socket refuses the ULP with ENOTCONN once it is registered (a module
	// now loaded, or TLS built into the kernel, which has no /sys/module/tls); ENOENT: none.
	return err == nil || errors.Is(err, unix.ENOTCONN)
}

// Role is which end of the handshake a connection was.
type Role int

// The roles.
const (
	Client Role = iota
	Server
)

// Enable hands direction d of conn (its handshake done, as role r) to the kernel.
// raw is the TCP connection beneath conn.
func Enable(conn *tls.Conn, raw *net.TCPConn, s *Secrets, r Role, d Direction) error {
	st := conn.ConnectionState()
	if !st.HandshakeComplete || st.Version != tls.VersionTLS13 {
		return errors.New("ktls: need a completed TLS 1.3 handshake")
	}
	s.mu.Lock()
	// A client sends with the client's secret and receives with the server's.
	secret := s.client
	if (r == Client) != (d == TX) {
		secret = s.server
	}
	s.mu.Unlock()
	if secret == nil {
		return errors.New("ktls: the key log gave no traffic secret")
	}
	info, err := cryptoInfo(st.CipherSuite, secret)
	if err != nil {
		return err
	}
	sc, err := raw.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := sc.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_ULP, "tls")
		if serr == unix.EEXIST {
			serr = nil // the other direction attached it
		}
		if serr != nil {
			serr = fmt.Errorf("%w: attach: %v", ErrUnsupported, serr)
			return
		}
		if e := unix.SetsockoptString(int(fd), unix.SOL_TLS, int(d), string(info)); e != nil {
			serr = fmt.Errorf("%w: %s: %v", ErrUnsupported, tls.CipherSuiteName(st.CipherSuite), e)
		}
	}); err != nil {
		return err
	}
	return serr
}

// cryptoInfo builds the kernel's struct tls12_crypto_info_* for a TLS 1.3 suite from a
// traffic secret: the record key and IV are HKDF-Expand-Label(secret, "key"/"iv", "", n),
// and the record sequence starts at 0.
func cryptoInfo(suite uint16, secret []byte) ([]byte, error) {
	var (
		h      func() hash.Hash
		keyLen int
		cipher uint16
	)
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
		h, keyLen, cipher = sha256.New, 16, cipherAESGCM128
	case tls.TLS_AES_256_GCM_SHA384:
		h, keyLen, cipher = sha512.New384, 32, cipherAESGCM256
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		h, keyLen, cipher = sha256.New, 32, cipherChaCha20
	default:
		return nil, fmt.Errorf("%w: suite %s", ErrUnsupported, tls.CipherSuiteName(suite))
	}
	key, err := expandLabel(h, secret, "key", keyLen)
	if err != nil {
		return nil, err
	}
	iv, err := expandLabel(h, secret, "iv", 12)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	_ = binary.Write(&b, binary.NativeEndian, uint16(tls13Version))
	_ = binary.Write(&b, binary.NativeEndian, cipher)
	if cipher == cipherChaCha20 {
		b.Write(iv)  // iv[12]
		b.Write(key) // key[32], no salt
	} else {
		b.Write(iv[4:]) // iv[8]
		b.Write(key)    // key[16 or 32]
		b.Write(iv[:4]) // salt[4]
	}
	b.Write(make([]byte, 8)) // rec_seq
	return b.Bytes(), nil
}

// expandLabel is TLS 1.3's HKDF-Expand-Label with an empty context.
func expandLabel(h func() hash.Hash, secret []byte, label string, n int) ([]byte, error) {
	full := "tls13 " + label
	info := make([]byte, 0, 4+len(full))
	info = binary.BigEndian.AppendUint16(info, uint16(n))
	info = append(info, byte(len(full)))
	info = append(info, full...)
	info = append(info, 0)
	return hkdf.Expand(h, secret, string(info), n)
}
