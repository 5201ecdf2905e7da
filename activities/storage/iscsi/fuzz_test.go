package iscsi

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Seeds shared by the fuzz targets and written to testdata/fuzz by
// ISCSI_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus.

func bhs(op byte, flags byte, data []byte, fill func(b []byte)) []byte {
	b := make([]byte, 48)
	b[0], b[1] = op, flags
	n := len(data)
	b[5], b[6], b[7] = byte(n>>16), byte(n>>8), byte(n)
	if fill != nil {
		fill(b)
	}
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func loginSeed(target string) []byte {
	text := []byte("InitiatorName=iqn.2026-11.x:fuzz\x00SessionType=Normal\x00TargetName=" + target +
		"\x00HeaderDigest=None\x00DataDigest=None\x00MaxRecvDataSegmentLength=8192\x00InitialR2T=No\x00ImmediateData=Yes\x00FirstBurstLength=65536\x00MaxBurstLength=262144\x00")
	return bhs(0x43, 0x80|1<<2|3, text, func(b []byte) { b[8] = 0x80 })
}

func scsiSeed(cmdSN uint32, itt uint32, flags byte, edtl uint32, cdb []byte, data []byte) []byte {
	return bhs(opSCSICmd, 0x80|flags, data, func(b []byte) {
		binary.BigEndian.PutUint32(b[16:], itt)
		binary.BigEndian.PutUint32(b[20:], edtl)
		binary.BigEndian.PutUint32(b[24:], cmdSN)
		copy(b[32:], cdb)
	})
}

func connSeeds() [][]byte {
	login := loginSeed(testIQN)
	read := scsiSeed(0, 1, 0x40, 4096, []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0}, nil)
	inq := scsiSeed(1, 2, 0x40, 255, []byte{0x12, 1, 0x83, 0, 255, 0}, nil)
	write := scsiSeed(2, 3, 0x20, 1024, []byte{0x2a, 0, 0, 0, 0, 1, 0, 0, 2, 0}, make([]byte, 512))
	dataOut := bhs(opDataOut, 0x80, make([]byte, 512), func(b []byte) {
		binary.BigEndian.PutUint32(b[16:], 3)
		binary.BigEndian.PutUint32(b[20:], reservedTag)
		binary.BigEndian.PutUint32(b[40:], 512)
	})
	unmapParams := make([]byte, 24)
	binary.BigEndian.PutUint16(unmapParams, 22)
	binary.BigEndian.PutUint16(unmapParams[2:], 16)
	binary.BigEndian.PutUint32(unmapParams[16:], 4)
	unmap := scsiSeed(3, 4, 0x20, 24, []byte{0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0}, unmapParams)
	nop := bhs(0x40|opNopOut, 0x80, []byte("ping"), func(b []byte) { binary.BigEndian.PutUint32(b[16:], 9) })
	tmf := bhs(0x40|opTaskMgmt, 0x80|tmfLUReset, nil, func(b []byte) { binary.BigEndian.PutUint32(b[16:], 10) })
	text := bhs(0x40|opTextReq, 0x80, []byte("SendTargets=All\x00"), func(b []byte) {
		binary.BigEndian.PutUint32(b[16:], 11)
		binary.BigEndian.PutUint32(b[20:], reservedTag)
	})
	logout := bhs(0x40|opLogoutReq, 0x80, nil, func(b []byte) { binary.BigEndian.PutUint32(b[16:], 12) })
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	return [][]byte{
		cat(login, read, inq, logout),
		cat(login, write, dataOut, unmap, logout),
		cat(login, nop, tmf, text, logout),
		cat(login, scsiSeed(5, 1, 0x40, 512, []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}, nil), read),
		login,
	}
}

func pduSeeds() [][]byte {
	var out [][]byte
	for _, s := range connSeeds() {
		out = append(out, s[:min(len(s), 400)])
	}
	return out
}

func textSeeds() [][]byte {
	return [][]byte{
		[]byte("HeaderDigest=CRC32C,None\x00DataDigest=None\x00MaxRecvDataSegmentLength=262144\x00"),
		[]byte("InitialR2T=No\x00ImmediateData=Yes\x00MaxBurstLength=0x100000\x00FirstBurstLength=65536\x00"),
		[]byte("AuthMethod=CHAP,None\x00CHAP_A=5\x00CHAP_N=user\x00CHAP_R=0x0102\x00"),
		[]byte("X-com.example=1\x00MaxConnections=1\x00ErrorRecoveryLevel=2\x00DefaultTime2Wait=2\x00"),
	}
}

func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("ISCSI_WRITE_CORPUS") == "" {
		t.Skip("set ISCSI_WRITE_CORPUS=1 to regenerate testdata/fuzz seeds")
	}
	write := func(name string, seeds [][]byte) {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("FuzzConn", connSeeds())
	write("FuzzParsePDU", pduSeeds())
	write("FuzzText", textSeeds())
}

// FuzzParsePDU: the PDU reader never panics and never returns more data than announced.
func FuzzParsePDU(f *testing.F) {
	for _, s := range pduSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, digests := range [][2]bool{{false, false}, {true, true}} {
			p, n, err := parsePDU(b, digests[0], digests[1], 1<<16)
			if n > len(b) {
				t.Fatalf("consumed %d of %d bytes", n, len(b))
			}
			if err == nil && len(p.data) != p.dataLen() {
				t.Fatalf("data %d, header says %d", len(p.data), p.dataLen())
			}
		}
	})
}

// FuzzText: text parsing and operational negotiation never panic and keep
// negotiated values within the server's limits.
func FuzzText(f *testing.F) {
	for _, s := range textSeeds() {
		f.Add(s)
	}
	limits := NewServer(Config{}).cfg
	f.Fuzz(func(t *testing.T, b []byte) {
		kv, err := parseText(b)
		if err != nil {
			return
		}
		n := negotiator{limits: limits, p: defaultParams()}
		for _, k := range kv.keys {
			n.operational(k, kv.vals[k])
		}
		if n.p.maxBurst > limits.MaxBurstLength || n.p.firstBurst > n.p.maxBurst && n.p.firstBurst > limits.FirstBurstLength {
			t.Fatalf("negotiated beyond limits: %+v", n.p)
		}
		if n.p.maxRecvDSL < 512 || n.p.maxRecvDSL > 1<<24-1 {
			t.Fatalf("MaxRecvDataSegmentLength %d accepted", n.p.maxRecvDSL)
		}
	})
}

// FuzzConn feeds arbitrary bytes to a connection as an initiator would send
// them: login, full feature phase, SCSI emulation. No panic may happen.
func FuzzConn(f *testing.F) {
	for _, s := range connSeeds() {
		f.Add(s)
	}
	dir := f.TempDir()
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o600); err != nil {
		f.Fatal(err)
	}
	srv := NewServer(Config{LoginTimeout: 2 * time.Second, NopInterval: -1})
	if err := srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: []LUNConfig{{Path: disk}}}); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		client, server := net.Pipe()
		c := newConn(srv, server)
		srv.mu.Lock()
		srv.conns[c] = struct{}{}
		srv.connWG.Add(1)
		srv.mu.Unlock()
		go io.Copy(io.Discard, client)
		go func() {
			client.Write(b)
			client.Close()
		}()
		done := make(chan struct{})
		go func() { c.serve(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("connection did not end")
		}
		if n := srv.panics.Load(); n != 0 {
			t.Fatalf("%d panics", n)
		}
	})
}
