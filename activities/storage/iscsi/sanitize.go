package iscsi

// SANITIZE (SBC-4) service actions we implement; OVERWRITE (0x01) and
// CRYPTO ERASE (0x03) are not.
const (
	sanitizeBlockErase      = 0x02
	sanitizeExitFailureMode = 0x1f
)

// sanitizeUsage is the CDB usage data of the SANITIZE service actions we
// implement: IMMED, AUSE, the service action and the parameter list length.
func sanitizeUsage(sa byte) []byte {
	return []byte{0x48, 0x80 | 0x20 | sa, 0, 0, 0, 0, 0, 0xff, 0xff, 0}
}

// sanitize implements SANITIZE for two service actions:
//
//   - BLOCK ERASE deallocates every LBA of the LUN the way UNMAP does (holes
//     in files, discard on block devices), so all blocks read back as zeros
//     (LBPRZ) and GET LBA STATUS reports them deallocated. It completes
//     before the status is returned, so IMMED changes nothing, and it cannot
//     leave the LUN in the sanitize failure mode: AUSE changes nothing either.
//   - EXIT FAILURE MODE has no failure mode to leave and completes at once.
//
// OVERWRITE and CRYPTO ERASE are not implemented (INVALID FIELD IN CDB), and
// neither is reporting progress: there is never a sanitize in progress.
func sanitize(cmd *scsiCmd) plan {
	l := cmd.lun
	cdb := cmd.cdb
	if cdb[1]&0x40 != 0 || cdb[2]|cdb[3]|cdb[4]|cdb[5]|cdb[6] != 0 {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	sa := cdb[1] & 0x1f
	if sa != sanitizeBlockErase && sa != sanitizeExitFailureMode {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	// Neither service action takes a parameter list.
	if be16(cdb[7:]) != 0 {
		return check(keyIllegalRequest, ascInvalidFieldCDB)
	}
	if sa == sanitizeExitFailureMode {
		return good()
	}
	if p, ok := l.checkWritable(); !ok {
		return p
	}
	if err := l.punch(0, int64(l.blocks*uint64(l.bs))); err != nil {
		return check(keyMediumError, ascWriteError)
	}
	return good()
}
