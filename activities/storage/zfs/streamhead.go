package zfs

import (
	"encoding/binary"
	"strconv"
)

// A send stream opens with a BEGIN record (dmu_replay_record_t, 312 bytes): drr_type
// (0 for BEGIN) and drr_payloadlen, then drr_begin: drr_magic, drr_versioninfo,
// drr_creation_time, the objset type, drr_flags, drr_toguid, drr_fromguid and the
// snapshot's name. The sender writes it in its own byte order; the magic tells which.
const (
	streamMagic      = 0x2F5bacbac
	beginRecordLen   = 312
	hdrTypeSubstream = 1 // DMU_GET_STREAM_HDRTYPE of a stream of one snapshot
)

// StreamHeadLen is how many bytes of a stream's start StreamGUIDs reads.
const StreamHeadLen = beginRecordLen

// StreamGUIDs reads what a stream of one snapshot (zfs send [-i base] snap, or the rest of
// a cut one with -t) says it makes, from its first bytes: the guid of the snapshot a zfs
// receive of it creates (a received snapshot keeps its sender's guid), and the guid of
// its base ("" for a full stream). ok is false for bytes that are not a BEGIN record and
// for a compound stream (-I, -R: several snapshots, named further on).
func StreamGUIDs(head []byte) (to, from string, ok bool) {
	if len(head) < beginRecordLen {
		return "", "", false
	}
	var order binary.ByteOrder = binary.LittleEndian
	if binary.LittleEndian.Uint64(head[8:]) != streamMagic {
		if binary.BigEndian.Uint64(head[8:]) != streamMagic {
			return "", "", false
		}
		order = binary.BigEndian
	}
	if order.Uint32(head[0:]) != 0 || order.Uint64(head[16:])&3 != hdrTypeSubstream {
		return "", "", false
	}
	toGUID, fromGUID := order.Uint64(head[40:]), order.Uint64(head[48:])
	if toGUID == 0 {
		return "", "", false
	}
	to = strconv.FormatUint(toGUID, 10)
	if fromGUID != 0 {
		from = strconv.FormatUint(fromGUID, 10)
	}
	return to, from, true
}

// StreamGUIDs is the package's StreamGUIDs (the replication's zfs interface has it).
func (z *ZFS) StreamGUIDs(head []byte) (to, from string, ok bool) { return StreamGUIDs(head) }
