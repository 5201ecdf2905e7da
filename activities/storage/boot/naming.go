// Package boot is the agent's side of the boot path (DESIGN.md §5): it identifies a
// netbooting device by MAC, decides which image it boots (Decide, the versions-and-locks
// table), makes sure the device's disk is exported by the agent's iSCSI target, and
// answers with an iPXE script. It keeps a local cache so that devices of non-strict
// groups still boot while the panel or Temporal is unreachable.
package boot

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// IPXEInitiatorPrefix is how iPXE names itself when no initiator-iqn is set: the prefix
// followed by the machine's SMBIOS UUID.
const IPXEInitiatorPrefix = "iqn.2010-04.org.ipxe:"

// InitiatorName is the name iPXE logs in with on a machine of this SMBIOS UUID; a device's
// targets admit only this name.
func InitiatorName(uuid string) string {
	return IPXEInitiatorPrefix + strings.ToLower(strings.TrimSpace(uuid))
}

// CHAPCredentials are the CHAP user and secret of target iqn on a server whose CHAP key is
// key: the secret is an HMAC of the target's name, so the agent derives it again after a
// restart and no two targets share one. 16 characters, the most every initiator accepts.
func CHAPCredentials(key []byte, iqn string) (user, secret string) {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(iqn))
	return "clusterducks", hex.EncodeToString(m.Sum(nil))[:16]
}
