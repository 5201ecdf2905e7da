package iscsi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/iscsi/initiator"
)

const testIQN = "iqn.2026-11.dev.clusterducks:unit"

func newDisk(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

// startServer serves srv on a loopback port until the test ends.
func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	srv := NewServer(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
		if n := srv.panics.Load(); n != 0 {
			t.Errorf("%d connection panics", n)
		}
	})
	return srv, ln.Addr().String()
}

func dial(t *testing.T, addr string, o initiator.Options) *initiator.Session {
	t.Helper()
	if o.InitiatorName == "" {
		o.InitiatorName = "iqn.2026-11.dev.clusterducks:test-initiator"
	}
	s, err := initiator.Dial(context.Background(), addr, o)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return s
}

func TestReadWriteRoundTrip(t *testing.T) {
	for _, tc := range []struct{ sendfile, digests bool }{{false, false}, {true, false}, {false, true}} {
		t.Run(fmt.Sprintf("sendfile=%v,digests=%v", tc.sendfile, tc.digests), func(t *testing.T) {
			testReadWriteRoundTrip(t, tc.sendfile, tc.digests)
		})
	}
}

func testReadWriteRoundTrip(t *testing.T, sendfile, digests bool) {
	srv, addr := startServer(t, Config{Sendfile: sendfile, PreferDigests: digests})
	disk := newDisk(t, 64<<20)
	if err := srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: []LUNConfig{{Path: disk}}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := dial(t, addr, initiator.Options{TargetName: testIQN, Digests: digests})
	defer s.Logout(ctx)
	blocks, bs, err := s.ReadCapacity(ctx, 0)
	if err != nil || blocks != (64<<20)/512 || bs != 512 {
		t.Fatalf("capacity %d×%d, %v", blocks, bs, err)
	}
	for _, size := range []int{512, 4096, 65536, 300 << 10, 1 << 20, 3<<20 + 512} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*7 + size)
		}
		if err := s.Write(ctx, 0, 100, 512, data, size == 4096); err != nil {
			t.Fatalf("write %d: %v", size, err)
		}
		got := make([]byte, size)
		if err := s.Read(ctx, 0, 100, 512, got); err != nil {
			t.Fatalf("read %d: %v", size, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes: mismatch", size)
		}
	}
	st := srv.Stats()
	if len(st) != 1 || st[0].Sessions != 1 || st[0].BytesWritten == 0 || st[0].BytesRead == 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// targetSession serves target testIQN with luns under cfg and returns the server, its address
// and a session to the target; the session logs out when the test ends.
func targetSession(t *testing.T, cfg Config, luns ...LUNConfig) (*Server, string, *initiator.Session) {
	t.Helper()
	srv, addr := startServer(t, cfg)
	if err := srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: luns}); err != nil {
		t.Fatal(err)
	}
	s := dial(t, addr, initiator.Options{TargetName: testIQN})
	t.Cleanup(func() { s.Logout(context.Background()) })
	return srv, addr, s
}

// rwROSession is targetSession with LUN 0 a writable 1 MiB disk and LUN 1 a read-only one.
func rwROSession(t *testing.T) (string, *initiator.Session) {
	t.Helper()
	_, addr, s := targetSession(t, Config{}, LUNConfig{Path: newDisk(t, 1<<20)}, LUNConfig{Path: newDisk(t, 1<<20), ReadOnly: true})
	return addr, s
}

func TestSCSIErrors(t *testing.T) {
	_, s := rwROSession(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		lun    uint64
		cdb    []byte
		out    []byte
		in     int
		status byte
		key    byte
		asc    uint16
	}{
		{"unknown opcode", 0, []byte{0xc0, 0, 0, 0, 0, 0}, nil, 0, statusCheckCondition, keyIllegalRequest, ascInvalidOpcode},
		{"read beyond end", 0, []byte{0x28, 0, 0, 0, 0x08, 0, 0, 0, 1, 0}, nil, 512, statusCheckCondition, keyIllegalRequest, ascLBAOutOfRange},
		{"write to read-only LUN", 1, []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0}, make([]byte, 512), 0, statusCheckCondition, keyDataProtect, ascWriteProtected},
		{"missing LUN", 7, []byte{0x00, 0, 0, 0, 0, 0}, nil, 0, statusCheckCondition, keyIllegalRequest, ascLUNotSupported},
		{"rdprotect", 0, []byte{0x28, 0x20, 0, 0, 0, 0, 0, 0, 1, 0}, nil, 512, statusCheckCondition, keyIllegalRequest, ascInvalidFieldCDB},
		{"test unit ready", 0, []byte{0x00, 0, 0, 0, 0, 0}, nil, 0, statusGood, 0, 0},
		{"mode sense saved values", 0, []byte{0x1a, 0, 0xc0 | 0x3f, 0, 255, 0}, nil, 255, statusCheckCondition, keyIllegalRequest, ascSavingNotSupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var in []byte
			if tc.in > 0 {
				in = make([]byte, tc.in)
			}
			r, err := s.Command(ctx, tc.lun, tc.cdb, tc.out, in)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tc.status || r.SenseKey() != tc.key || r.ASC() != tc.asc {
				t.Fatalf("status %#x key %#x asc %#04x, want %#x %#x %#04x", r.Status, r.SenseKey(), r.ASC(), tc.status, tc.key, tc.asc)
			}
		})
	}
	// Mode sense on the read-only LUN reports write protection.
	r, err := s.Command(ctx, 1, []byte{0x1a, 0x08, 0x3f, 0, 255, 0}, nil, make([]byte, 255))
	if err != nil || r.Status != 0 || r.Data[2]&0x80 == 0 {
		t.Fatalf("mode sense on read-only LUN: %+v %v", r, err)
	}
}

// TestSoftwareWriteProtect sets SWP in the control mode page with MODE SELECT:
// writes are refused with DATA PROTECT until it is cleared again.
func TestSoftwareWriteProtect(t *testing.T) {
	_, _, s := targetSession(t, Config{}, LUNConfig{Path: newDisk(t, 1<<20)})
	ctx := context.Background()
	write := []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	setSWP := func(on bool) {
		t.Helper()
		page := []byte{0, 0, 0, 0, 0x0a, 0x0a, 0, 0x10, 0, 0, 0, 0, 0xff, 0xff, 0, 0}
		if on {
			page[4+4] = 0x08
		}
		r, err := s.Command(ctx, 0, []byte{0x15, 0x10, 0, 0, byte(len(page)), 0}, page, nil)
		if err != nil || r.Status != statusGood {
			t.Fatalf("mode select swp=%v: %+v %v", on, r, err)
		}
	}
	// The changeable values name SWP.
	r, err := s.Command(ctx, 0, []byte{0x1a, 0x08, 0x40 | 0x0a, 0, 255, 0}, nil, make([]byte, 255))
	if err != nil || r.Status != statusGood || r.Data[4+4]&0x08 == 0 {
		t.Fatalf("changeable control page: %+v %v", r, err)
	}
	setSWP(true)
	r, err = s.Command(ctx, 0, write, make([]byte, 512), nil)
	if err != nil || r.SenseKey() != keyDataProtect || r.ASC() != ascWriteProtected {
		t.Fatalf("write with SWP set: %+v %v", r, err)
	}
	setSWP(false)
	if r, err = s.Command(ctx, 0, write, make([]byte, 512), nil); err != nil || r.Status != statusGood {
		t.Fatalf("write with SWP cleared: %+v %v", r, err)
	}
	// Saving pages is not supported.
	r, err = s.Command(ctx, 0, []byte{0x15, 0x11, 0, 0, 0, 0}, nil, nil)
	if err != nil || r.SenseKey() != keyIllegalRequest || r.ASC() != ascInvalidFieldCDB {
		t.Fatalf("mode select with SP: %+v %v", r, err)
	}
}

func TestWriteSameAndUnmapReallyWork(t *testing.T) {
	_, _, s := targetSession(t, Config{}, LUNConfig{Path: newDisk(t, 1<<20)})
	ctx := context.Background()
	block := bytes.Repeat([]byte{0xa5}, 512)
	// WRITE SAME(16) of 100 blocks at LBA 10.
	cdb := []byte{0x93, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 100, 0, 0}
	if r, err := s.Command(ctx, 0, cdb, block, nil); err != nil || r.Status != 0 {
		t.Fatalf("write same: %+v %v", r, err)
	}
	got := make([]byte, 100*512)
	if err := s.Read(ctx, 0, 10, 512, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.Repeat([]byte{0xa5}, len(got))) {
		t.Fatal("WRITE SAME did not write")
	}
	// UNMAP 8 blocks at LBA 16: they read back as zeros.
	param := make([]byte, 24)
	put16(param, 22)
	put16(param[2:], 16)
	put64(param[8:], 16)
	put32(param[16:], 8)
	if r, err := s.Command(ctx, 0, []byte{0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0}, param, nil); err != nil || r.Status != 0 {
		t.Fatalf("unmap: %+v %v", r, err)
	}
	if err := s.Read(ctx, 0, 16, 512, got[:8*512]); err != nil {
		t.Fatal(err)
	}
	if !allZero(got[:8*512]) {
		t.Fatal("UNMAP did not deallocate")
	}
}

func TestLoginRefusals(t *testing.T) {
	srv, addr := startServer(t, Config{})
	disk := newDisk(t, 1<<20)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: []LUNConfig{{Path: disk}}, AllowedInitiators: []string{"iqn.2026-11.x:allowed"}}))
	must(srv.AddTarget(TargetConfig{IQN: testIQN + "-chap", LUNs: []LUNConfig{{Path: disk, ReadOnly: true}},
		CHAP: &CHAPConfig{User: "user", Secret: "secret-123456"}}))
	ctx := context.Background()
	tests := []struct {
		name   string
		o      initiator.Options
		status uint16
	}{
		{"unknown target", initiator.Options{InitiatorName: "iqn.2026-11.x:allowed", TargetName: "iqn.2026-11.x:nope"}, loginNotFound},
		{"not in ACL", initiator.Options{InitiatorName: "iqn.2026-11.x:other", TargetName: testIQN}, loginForbidden},
		{"in ACL", initiator.Options{InitiatorName: "iqn.2026-11.x:allowed", TargetName: testIQN}, 0},
		{"CHAP missing", initiator.Options{InitiatorName: "iqn.2026-11.x:a", TargetName: testIQN + "-chap"}, loginAuthFailed},
		{"CHAP wrong secret", initiator.Options{InitiatorName: "iqn.2026-11.x:a", TargetName: testIQN + "-chap", CHAPUser: "user", CHAPSecret: "wrong"}, loginAuthFailed},
		{"CHAP right", initiator.Options{InitiatorName: "iqn.2026-11.x:a", TargetName: testIQN + "-chap", CHAPUser: "user", CHAPSecret: "secret-123456"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := initiator.Dial(ctx, addr, tc.o)
			var rej *initiator.ErrLoginRejected
			switch {
			case tc.status == 0 && err != nil:
				t.Fatalf("login: %v", err)
			case tc.status == 0:
				if err := s.Ping(ctx); err != nil {
					t.Fatal(err)
				}
				s.Logout(ctx)
			case !errors.As(err, &rej) || rej.Status != tc.status:
				t.Fatalf("got %v, want status %#04x", err, tc.status)
			}
		})
	}
}

func TestDiscoveryHonoursACL(t *testing.T) {
	srv, addr := startServer(t, Config{})
	disk := newDisk(t, 1<<20)
	srv.AddTarget(TargetConfig{IQN: testIQN + "-a", LUNs: []LUNConfig{{Path: disk, ReadOnly: true}}})
	srv.AddTarget(TargetConfig{IQN: testIQN + "-b", LUNs: []LUNConfig{{Path: disk, ReadOnly: true}}, AllowedInitiators: []string{"iqn.2026-11.x:b"}})
	ctx := context.Background()
	s := dial(t, addr, initiator.Options{InitiatorName: "iqn.2026-11.x:a"})
	defer s.Logout(ctx)
	got, err := s.SendTargets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[testIQN+"-a"]; !ok || len(got) != 1 {
		t.Fatalf("SendTargets: %v", got)
	}
	if addrs := got[testIQN+"-a"]; len(addrs) != 1 || addrs[0] != addr+",1" {
		t.Fatalf("addresses %v", addrs)
	}
}

func TestRemoveTargetEndsSessions(t *testing.T) {
	srv, addr := startServer(t, Config{})
	disk := newDisk(t, 1<<20)
	tc := TargetConfig{IQN: testIQN, LUNs: []LUNConfig{{Path: disk}}}
	if err := srv.AddTarget(tc); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddTarget(tc); err != nil {
		t.Fatalf("adding the same target again: %v", err)
	}
	other := tc
	other.AllowedInitiators = []string{"iqn.2026-11.x:y"}
	if err := srv.AddTarget(other); !errors.Is(err, ErrTargetExists) {
		t.Fatalf("conflicting add: %v", err)
	}
	s := dial(t, addr, initiator.Options{TargetName: testIQN})
	if err := srv.RemoveTarget(testIQN); err != nil {
		t.Fatal(err)
	}
	if err := srv.RemoveTarget(testIQN); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err == nil {
		t.Fatal("session survived target removal")
	}
	if _, err := initiator.Dial(ctx, addr, initiator.Options{InitiatorName: "iqn.2026-11.x:z", TargetName: testIQN}); err == nil {
		t.Fatal("login to removed target succeeded")
	}
}

func TestSessionReinstatement(t *testing.T) {
	srv, addr := startServer(t, Config{})
	disk := newDisk(t, 1<<20)
	srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: []LUNConfig{{Path: disk}}})
	ctx := context.Background()
	o := initiator.Options{TargetName: testIQN, ISID: [6]byte{0x80, 1, 2, 3, 4, 5}}
	a := dial(t, addr, o)
	b := dial(t, addr, o) // same initiator and ISID: replaces a
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := a.Ping(tctx); err == nil {
		t.Fatal("old session still alive after reinstatement")
	}
	if st := srv.Stats(); st[0].Sessions != 1 {
		t.Fatalf("%d sessions, want 1", st[0].Sessions)
	}
	b.Logout(ctx)
}

func TestNopInKeepalive(t *testing.T) {
	srv, addr := startServer(t, Config{NopInterval: 100 * time.Millisecond, NopTimeout: 200 * time.Millisecond, LoginTimeout: time.Second})
	disk := newDisk(t, 1<<20)
	srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: []LUNConfig{{Path: disk}}})
	ctx := context.Background()
	s := dial(t, addr, initiator.Options{TargetName: testIQN})
	// The initiator answers the target's pings, so an idle session survives.
	time.Sleep(700 * time.Millisecond)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("idle session dropped: %v", err)
	}
	s.Logout(ctx)
	// A silent peer is dropped.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("expected the target to close a silent connection")
	}
}

func TestShutdownClosesEverything(t *testing.T) {
	srv := NewServer(Config{})
	disk := newDisk(t, 1<<20)
	srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: []LUNConfig{{Path: disk}}})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	s := dial(t, ln.Addr().String(), initiator.Options{TargetName: testIQN})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("session alive after shutdown")
	}
	if err := srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

func TestTextParsing(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
		keys    int
	}{
		{"A=1\x00B=2\x00", false, 2},
		{"A=1\x00A=2\x00", true, 0},
		{"novalue\x00", true, 0},
		{"=x\x00", true, 0},
		{"A=\x00", false, 1},
		{"A=1", false, 1},
		{"\x00\x00", false, 0},
	}
	for _, tc := range tests {
		kv, err := parseText([]byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if err == nil && len(kv.keys) != tc.keys {
			t.Errorf("%q: %d keys", tc.in, len(kv.keys))
		}
	}
}

func TestNegotiation(t *testing.T) {
	n := negotiator{limits: NewServer(Config{}).cfg, p: defaultParams()}
	tests := []struct{ key, val, want string }{
		{"HeaderDigest", "CRC32C,None", "None"},
		{"DataDigest", "CRC32C", "CRC32C"},
		{"MaxBurstLength", "16776192", "1048576"},
		{"FirstBurstLength", "65536", "65536"},
		{"InitialR2T", "No", "No"},
		{"ImmediateData", "Yes", "Yes"},
		{"MaxConnections", "8", "1"},
		{"ErrorRecoveryLevel", "2", "0"},
		{"X-com.example.thing", "1", "NotUnderstood"},
		{"MaxRecvDataSegmentLength", "8192", ""},
	}
	for _, tc := range tests {
		got, err := n.operational(tc.key, tc.val)
		if err != nil || got != tc.want {
			t.Errorf("%s=%s: got %q %v, want %q", tc.key, tc.val, got, err, tc.want)
		}
	}
	if n.p.maxRecvDSL != 8192 || !n.p.dataDigest || n.p.headerDigest {
		t.Errorf("params %+v", n.p)
	}
	if _, err := n.operational("MaxBurstLength", "12"); err == nil {
		t.Error("accepted MaxBurstLength=12")
	}
}

func TestCHAPDigest(t *testing.T) {
	// RFC 1994: MD5(id || secret || challenge).
	got := chapDigest(1, "s", []byte{2})
	if len(got) != 16 {
		t.Fatal(len(got))
	}
	for _, v := range []string{"0x0102", "0b AQI="} {
		if v == "0b AQI=" {
			v = "0bAQI="
		}
		b, err := decodeCHAPBinary(v)
		if err != nil || !bytes.Equal(b, []byte{1, 2}) {
			t.Errorf("%s: %x %v", v, b, err)
		}
	}
}

// TestRemoveLUNDuringIO removes a LUN while an initiator writes to it: the
// writes fail cleanly and never land in a file opened afterwards.
func TestRemoveLUNDuringIO(t *testing.T) {
	srv, addr := startServer(t, Config{})
	victim := newDisk(t, 4<<20)
	if err := srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: []LUNConfig{{Path: victim}}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := dial(t, addr, initiator.Options{TargetName: testIQN})
	defer s.Logout(ctx)
	done := make(chan int)
	go func() {
		buf := bytes.Repeat([]byte{0xee}, 64<<10)
		failed := 0
		for i := 0; i < 2000 && failed < 50; i++ {
			if err := s.Write(ctx, 0, uint64(i%64)*128, 512, buf, false); err != nil {
				failed++
			}
		}
		done <- failed
	}()
	time.Sleep(5 * time.Millisecond)
	if err := srv.RemoveLUN(testIQN, 0); err != nil {
		t.Fatal(err)
	}
	// Files opened now may reuse the descriptor number the LUN had.
	bystanders := make([]string, 8)
	for i := range bystanders {
		bystanders[i] = newDisk(t, 4<<20)
		if err := srv.AddLUN(testIQN, uint64(10+i), LUNConfig{Path: bystanders[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if failed := <-done; failed == 0 {
		t.Fatal("writes kept succeeding after the LUN was removed")
	}
	for _, p := range bystanders {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !allZero(b) {
			t.Fatalf("a write to the removed LUN landed in %s", p)
		}
	}
}

// dropFinalLogin is a listener whose connections fail the write of the final
// login response (Login Response, T bit, next stage full feature), as when
// an initiator gives up between its last login request and the answer.
type dropFinalLogin struct{ net.Listener }

func (l dropFinalLogin) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return dropFinalLoginConn{c}, nil
}

type dropFinalLoginConn struct{ net.Conn }

func (c dropFinalLoginConn) Write(b []byte) (int, error) {
	if len(b) >= 48 && b[0]&0x3f == 0x23 && b[1]&0x83 == 0x83 {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	return c.Conn.Write(b)
}

// TestSessionEndsWhenFinalLoginResponseFails: the session was bound before
// the final login response failed to go out; it must not stay behind.
func TestSessionEndsWhenFinalLoginResponseFails(t *testing.T) {
	srv := NewServer(Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(dropFinalLogin{ln})
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: []LUNConfig{{Path: newDisk(t, 1<<20)}}})
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := initiator.Dial(ctx, ln.Addr().String(), initiator.Options{
			InitiatorName: "iqn.2026-11.dev.clusterducks:dropper", TargetName: testIQN,
			ISID: [6]byte{0x80, 0, 0, 0, 0, byte(i)}})
		cancel()
		if err == nil {
			t.Fatal("login succeeded although its final response was dropped")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.ConnectionCount() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.SessionCount(); n != 0 {
		t.Fatalf("%d sessions left after failed final login responses", n)
	}
	if st := srv.Stats(); st[0].Sessions != 0 {
		t.Fatalf("target counts %d sessions", st[0].Sessions)
	}
}

// TestLUNPath: the path behind an exported target's LUN, for the boot path's "the disk is
// there" without a stat; nothing for a LUN or a target that is not exported.
func TestLUNPath(t *testing.T) {
	srv := NewServer(Config{})
	disk, vdisk := newDisk(t, 1<<20), newDisk(t, 1<<20)
	if _, ok := srv.LUNPath(testIQN, 0); ok {
		t.Error("a target not exported has a LUN path")
	}
	if err := srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: []LUNConfig{{Path: disk}}}); err != nil {
		t.Fatal(err)
	}
	if p, ok := srv.LUNPath(testIQN, 0); !ok || p != disk {
		t.Errorf("LUN 0 is %q %v, want %q", p, ok, disk)
	}
	if _, ok := srv.LUNPath(testIQN, 1); ok {
		t.Error("LUN 1 has a path before it was added")
	}
	if err := srv.AddLUN(testIQN, 1, LUNConfig{Path: vdisk}); err != nil {
		t.Fatal(err)
	}
	if p, ok := srv.LUNPath(testIQN, 1); !ok || p != vdisk {
		t.Errorf("LUN 1 is %q %v, want %q", p, ok, vdisk)
	}
	if err := srv.RemoveTarget(testIQN); err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.LUNPath(testIQN, 0); ok {
		t.Error("a removed target still has a LUN path")
	}
}
