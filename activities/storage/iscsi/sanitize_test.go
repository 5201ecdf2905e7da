package iscsi

import (
	"bytes"
	"context"
	"testing"

	"github.com/clusterducks/clusterducks/test/iscsi/initiator"
)

// sanitizeCDB builds a SANITIZE CDB for service action sa with a parameter list length.
func sanitizeCDB(sa byte, plen uint16) []byte {
	cdb := []byte{0x48, sa, 0, 0, 0, 0, 0, 0, 0, 0}
	put16(cdb[7:], plen)
	return cdb
}

// TestSanitizeBlockErase fills the LUN, erases it with SANITIZE BLOCK ERASE
// and reads it back: every block reads as zeros and is deallocated.
func TestSanitizeBlockErase(t *testing.T) {
	_, _, s := targetSession(t, Config{}, LUNConfig{Path: newDisk(t, 1<<20)})
	ctx := context.Background()
	const blocks = 2048
	if err := s.Write(ctx, 0, 0, 512, bytes.Repeat([]byte{'a'}, blocks*512), false); err != nil {
		t.Fatal(err)
	}
	// IMMED and AUSE are accepted: the erase completes before the status.
	for _, b1 := range []byte{0, 0x80, 0x20} {
		r, err := s.Command(ctx, 0, sanitizeCDB(b1|sanitizeBlockErase, 0), nil, nil)
		if err != nil || r.Status != statusGood {
			t.Fatalf("block erase (byte 1 %#x): %+v %v", b1, r, err)
		}
	}
	got := make([]byte, blocks*512)
	if err := s.Read(ctx, 0, 0, 512, got); err != nil {
		t.Fatal(err)
	}
	if !allZero(got) {
		t.Fatal("blocks do not read back as zeros after BLOCK ERASE")
	}
	// GET LBA STATUS: one deallocated extent covering the whole LUN.
	r, err := s.Command(ctx, 0, []byte{0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0}, nil, make([]byte, 255))
	if err != nil || r.Status != statusGood || len(r.Data) < 24 {
		t.Fatalf("get lba status: %+v %v", r, err)
	}
	if n, lba, cnt, st := be32(r.Data), be64(r.Data[8:]), be32(r.Data[16:]), r.Data[20]; n != 20 || lba != 0 || cnt != blocks || st != 1 {
		t.Fatalf("get lba status: length %d, first descriptor lba %d blocks %d status %d; want 20, 0 %d 1", n, lba, cnt, st, blocks)
	}
}

// TestSanitizeErrors covers what SANITIZE refuses and what it reports.
func TestSanitizeErrors(t *testing.T) {
	addr, s := rwROSession(t)
	ctx := context.Background()
	pattern := bytes.Repeat([]byte{0x5a}, 8*512)
	if err := s.Write(ctx, 0, 0, 512, pattern, false); err != nil {
		t.Fatal(err)
	}
	withByte := func(i int, v byte) []byte {
		cdb := sanitizeCDB(sanitizeBlockErase, 0)
		cdb[i] |= v
		return cdb
	}
	tests := []struct {
		name   string
		lun    uint64
		cdb    []byte
		out    []byte
		status byte
		key    byte
		asc    uint16
	}{
		{"block erase with parameter list", 0, sanitizeCDB(sanitizeBlockErase, 8), make([]byte, 8), statusCheckCondition, keyIllegalRequest, ascInvalidFieldCDB},
		{"reserved bit in byte 1", 0, withByte(1, 0x40), nil, statusCheckCondition, keyIllegalRequest, ascInvalidFieldCDB},
		{"reserved byte 2", 0, withByte(2, 2), nil, statusCheckCondition, keyIllegalRequest, ascInvalidFieldCDB},
		{"reserved byte 6", 0, withByte(6, 6), nil, statusCheckCondition, keyIllegalRequest, ascInvalidFieldCDB},
		{"service action 0", 0, sanitizeCDB(0x00, 0), nil, statusCheckCondition, keyIllegalRequest, ascInvalidFieldCDB},
		{"overwrite", 0, sanitizeCDB(0x01, 8), make([]byte, 8), statusCheckCondition, keyIllegalRequest, ascInvalidFieldCDB},
		{"crypto erase", 0, sanitizeCDB(0x03, 0), nil, statusCheckCondition, keyIllegalRequest, ascInvalidFieldCDB},
		{"service action 0x1e", 0, sanitizeCDB(0x1e, 0), nil, statusCheckCondition, keyIllegalRequest, ascInvalidFieldCDB},
		{"exit failure mode", 0, sanitizeCDB(sanitizeExitFailureMode, 0), nil, statusGood, 0, 0},
		{"exit failure mode with parameter list", 0, sanitizeCDB(sanitizeExitFailureMode, 8), make([]byte, 8), statusCheckCondition, keyIllegalRequest, ascInvalidFieldCDB},
		{"block erase of a read-only LUN", 1, sanitizeCDB(sanitizeBlockErase, 0), nil, statusCheckCondition, keyDataProtect, ascWriteProtected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := s.Command(ctx, tc.lun, tc.cdb, tc.out, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tc.status || r.SenseKey() != tc.key || r.ASC() != tc.asc {
				t.Fatalf("status %#x key %#x asc %#04x, want %#x %#x %#04x", r.Status, r.SenseKey(), r.ASC(), tc.status, tc.key, tc.asc)
			}
		})
	}
	intact := func(when string) {
		t.Helper()
		got := make([]byte, len(pattern))
		if err := s.Read(ctx, 0, 0, 512, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pattern) {
			t.Fatalf("data changed %s", when)
		}
	}
	intact("by refused SANITIZE commands")

	// Software write protection (MODE SELECT, control page SWP) refuses it too.
	modeSelectSWP := func(on bool) {
		t.Helper()
		page := []byte{0, 0, 0, 0, 0x0a, 0x0a, 0, 0x10, 0, 0, 0, 0, 0xff, 0xff, 0, 0}
		if on {
			page[4+4] = controlSWP
		}
		r, err := s.Command(ctx, 0, []byte{0x15, 0x10, 0, 0, byte(len(page)), 0}, page, nil)
		if err != nil || r.Status != statusGood {
			t.Fatalf("mode select swp=%v: %+v %v", on, r, err)
		}
	}
	modeSelectSWP(true)
	r, err := s.Command(ctx, 0, sanitizeCDB(sanitizeBlockErase, 0), nil, nil)
	if err != nil || r.SenseKey() != keyDataProtect || r.ASC() != ascWriteProtected {
		t.Fatalf("block erase with SWP set: %+v %v", r, err)
	}
	modeSelectSWP(false)
	intact("by SANITIZE under software write protection")

	// A RESERVE(6) held by another initiator makes it a reservation conflict.
	s2 := dial(t, addr, initiator.Options{TargetName: testIQN, InitiatorName: "iqn.2026-11.dev.clusterducks:other"})
	defer s2.Logout(ctx)
	if r, err := s2.Command(ctx, 0, []byte{0x16, 0, 0, 0, 0, 0}, nil, nil); err != nil || r.Status != statusGood {
		t.Fatalf("reserve(6): %+v %v", r, err)
	}
	if r, err := s.Command(ctx, 0, sanitizeCDB(sanitizeBlockErase, 0), nil, nil); err != nil || r.Status != statusReservationConflict {
		t.Fatalf("block erase under another initiator's reservation: %+v %v", r, err)
	}
	if r, err := s2.Command(ctx, 0, []byte{0x17, 0, 0, 0, 0, 0}, nil, nil); err != nil || r.Status != statusGood {
		t.Fatalf("release(6): %+v %v", r, err)
	}
	intact("by SANITIZE under another initiator's reservation")

	// REPORT SUPPORTED OPERATION CODES names BLOCK ERASE and EXIT FAILURE
	// MODE only; the Block Device Characteristics page has WABEREQ 01b.
	for sa, want := range map[byte]byte{sanitizeBlockErase: 3, sanitizeExitFailureMode: 3, 0x01: 1, 0x03: 1} {
		r, err := s.Command(ctx, 0, []byte{0xa3, 0x0c, 0x02, 0x48, 0, sa, 0, 0, 1, 0, 0, 0}, nil, make([]byte, 256))
		if err != nil || r.Status != statusGood || len(r.Data) < 2 || r.Data[1]&0x07 != want {
			t.Fatalf("report opcode 0x48/%#x: %+v %v, want support %d", sa, r, err, want)
		}
	}
	r, err = s.Command(ctx, 0, []byte{0x12, 0x01, 0xb1, 0, 64, 0}, nil, make([]byte, 64))
	if err != nil || r.Status != statusGood || len(r.Data) < 8 || r.Data[7]>>6 != 1 {
		t.Fatalf("block device characteristics: %+v %v, want WABEREQ 1", r, err)
	}
}
