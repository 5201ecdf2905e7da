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
	"fmt"
	"strings"
)

// IQNPrefix is the naming authority of every target the agents export.
const IQNPrefix = "iqn.2026-11.dev.clusterducks"

// IPXEInitiatorPrefix is how iPXE names itself when no initiator-iqn is set: the prefix
// followed by the machine's SMBIOS UUID.
const IPXEInitiatorPrefix = "iqn.2010-04.org.ipxe:"

// DeviceIQN names the target of a device's own disk. Names come from ids only.
func DeviceIQN(networkID, deviceID uint) string {
	return fmt.Sprintf("%s:n%d.device%d", IQNPrefix, networkID, deviceID)
}

// GroupHeadIQN names the target of a group head exported read-write to its maintenance device.
func GroupHeadIQN(networkID, groupID uint) string {
	return fmt.Sprintf("%s:n%d.group%d", IQNPrefix, networkID, groupID)
}

// VolumeIQN names the target of a volume exported to a maintenance device (first install).
func VolumeIQN(networkID, volumeID uint) string {
	return fmt.Sprintf("%s:n%d.volume%d", IQNPrefix, networkID, volumeID)
}

// InitiatorName is the name iPXE logs in with on a machine of this SMBIOS UUID; a device's
// targets admit only this name.
func InitiatorName(uuid string) string {
	return IPXEInitiatorPrefix + strings.ToLower(strings.TrimSpace(uuid))
}

// NormalizeUUID returns a UUID in the lower-case 8-4-4-4-12 form iPXE prints, or "" when
// v is not a UUID.
func NormalizeUUID(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	if len(v) != 36 {
		return ""
	}
	for i, r := range v {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return ""
			}
		default:
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
				return ""
			}
		}
	}
	return v
}

// CHAPCredentials are the CHAP user and secret of target iqn on a server whose CHAP key is
// key: the secret is an HMAC of the target's name, so the agent derives it again after a
// restart and no two targets share one. 16 characters, the most every initiator accepts.
func CHAPCredentials(key []byte, iqn string) (user, secret string) {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(iqn))
	return "clusterducks", hex.EncodeToString(m.Sum(nil))[:16]
}
