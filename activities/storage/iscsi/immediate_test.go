package iscsi

import (
	"bytes"
	"context"
	"testing"
)

// TestImmediateDataIsReceivedOnce: a write's immediate data counts as received, so the
// target asks (R2T) only for what is missing and unsolicited Data-Out goes on from the
// immediate data's end. Before, every write with immediate data was solicited again from
// offset 0: written twice, with one more round trip; unsolicited Data-Out after immediate
// data was refused as out of order.
func TestImmediateDataIsReceivedOnce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxRecv  uint32 // the target's MaxRecvDataSegmentLength: caps the immediate data
		size     int
		segments string
	}{
		{"4 KiB, all immediate", 0, 4 << 10, "immediate"},
		{"1 MiB, immediate up to the first burst then R2T", 0, 1 << 20, "immediate + R2T"},
		{"32 KiB, 8 KiB immediate then unsolicited Data-Out", 8 << 10, 32 << 10, "immediate + unsolicited + R2T"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, s := targetSession(t, Config{MaxRecvDataSegmentLength: tc.maxRecv}, LUNConfig{Path: newDisk(t, 4<<20)})
			ctx := context.Background()
			data := bytes.Repeat([]byte("clusterducks-imm"), tc.size/16)
			const writes = 3
			for i := range writes {
				if err := s.Write(ctx, 0, uint64(i*tc.size/512), 512, data, false); err != nil {
					t.Fatalf("write %d (%s): %v", i, tc.segments, err)
				}
			}
			if st := srv.Stats()[0]; st.BytesWritten != writes*uint64(tc.size) || st.Errors != 0 {
				t.Fatalf("%d bytes written to the LUN for %d writes of %d (%s), %d errors; want each byte once",
					st.BytesWritten, writes, tc.size, tc.segments, st.Errors)
			}
			got := make([]byte, tc.size)
			for i := range writes {
				if err := s.Read(ctx, 0, uint64(i*tc.size/512), 512, got); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read back %d: %v (equal %v)", i, err, bytes.Equal(got, data))
				}
			}
		})
	}
}
