package boot

import (
	"crypto/subtle"
	"net"
	"net/http"
	"slices"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// sessionAddrs is a target that lists its live sessions' remote addresses (an *iscsi.Server).
type sessionAddrs interface {
	SessionAddrs(iqn string) []string
}

// CheckIn answers GET or POST /booted?mac=… from a booted OS: a definite up for the
// device's last boot served here (also over a result decided before).
//
// The device proves itself as its target does. With CHAP on (CHAPKey), by HTTP Basic
// authentication with its target's CHAP user and secret, which the OS finds in the iBFT
// iPXE hands it (/sys/firmware/ibft/target0/chap-name, chap-secret). Without CHAP a target
// admits a device by its initiator name (its SMBIOS UUID) alone, and a check-in is held to
// the same and a little more: uuid=… must be the device's UUID and the request must come
// from the address of a live iSCSI session of the device's target.
func (s *Service) CheckIn() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		q := r.URL.Query()
		mac, err := wire.NormalizeMAC(q.Get("mac"))
		if err != nil {
			http.Error(w, "mac: not a MAC address", http.StatusBadRequest)
			return
		}
		b, ok := s.out.lookup(mac)
		if !ok {
			http.Error(w, "no boot of this device is watched by this server", http.StatusNotFound)
			return
		}
		if status, why := s.checkInAllowed(r, b); status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="clusterducks boot"`)
			}
			s.log.Info("boot: check-in refused", "device", b.rep.DeviceID, "from", r.RemoteAddr, "why", why)
			http.Error(w, why, status)
			return
		}
		s.out.checkedIn(mac)
		w.WriteHeader(http.StatusNoContent)
	})
}

// checkInAllowed returns 0 when the request proves it comes from the device of boot b,
// else the status to answer and why.
func (s *Service) checkInAllowed(r *http.Request, b watchedBoot) (int, string) {
	if len(s.cfg.CHAPKey) > 0 {
		user, secret := s.chapCredentials(b.iqn)
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(secret)) != 1 {
			return http.StatusUnauthorized, "the device's target CHAP credentials are required"
		}
		return 0, ""
	}
	if wire.NormalizeUUID(r.URL.Query().Get("uuid")) != b.uuid || b.uuid == "" {
		return http.StatusForbidden, "uuid: not this device's"
	}
	sa, ok := s.cfg.Target.(sessionAddrs)
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if !ok || err != nil || !slices.Contains(sa.SessionAddrs(b.iqn), host) {
		return http.StatusForbidden, "no iSCSI session of this device comes from this address"
	}
	return 0, ""
}
