package zfs

import (
	"encoding/binary"
	"testing"
)

func beginRecord(order binary.ByteOrder, hdrType, toGUID, fromGUID uint64) []byte {
	b := make([]byte, beginRecordLen)
	order.PutUint32(b[0:], 0) // DRR_BEGIN
	order.PutUint64(b[8:], streamMagic)
	order.PutUint64(b[16:], 17<<2|hdrType) // features, then the header type
	order.PutUint64(b[40:], toGUID)
	order.PutUint64(b[48:], fromGUID)
	copy(b[56:], "tank/iscsi/volumes/5@group-7")
	return b
}

func TestStreamGUIDs(t *testing.T) {
	for _, c := range []struct {
		name     string
		head     []byte
		to, from string
		ok       bool
	}{
		{"full, little-endian sender", beginRecord(binary.LittleEndian, 1, 12345678901234567890, 0), "12345678901234567890", "", true},
		{"incremental, big-endian sender", beginRecord(binary.BigEndian, 1, 42, 7), "42", "7", true},
		{"compound (-I)", beginRecord(binary.LittleEndian, 2, 42, 7), "", "", false},
		{"cut short", beginRecord(binary.LittleEndian, 1, 42, 7)[:100], "", "", false},
		{"not a stream", make([]byte, beginRecordLen), "", "", false},
		{"no target guid", beginRecord(binary.LittleEndian, 1, 0, 7), "", "", false},
	} {
		to, from, ok := StreamGUIDs(c.head)
		if to != c.to || from != c.from || ok != c.ok {
			t.Errorf("%s: got %q %q %v, want %q %q %v", c.name, to, from, ok, c.to, c.from, c.ok)
		}
	}
	// The type field of a record other than BEGIN.
	b := beginRecord(binary.LittleEndian, 1, 42, 7)
	binary.LittleEndian.PutUint32(b[0:], 5)
	if _, _, ok := StreamGUIDs(b); ok {
		t.Error("a record other than BEGIN was read as one")
	}
}
