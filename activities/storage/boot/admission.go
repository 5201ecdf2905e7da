package boot

import (
	"cmp"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// Admission control (DESIGN.md §5): a server makes a bounded number of disks at once and
// lets a bounded number of devices into their iSCSI login phase; a device beyond either
// bound is told to ask again after a jittered pause (a storm then spreads itself out)
// instead of waiting on an answer that would time out.

// errBusy is a provisioning refused because MaxProvisions run already.
var errBusy = errors.New("this server makes as many disks as it may at once")

// View is the agent's own view of its network's boot state (a *bootview.View).
type View interface {
	// Lookup answers a known device as the panel would; fresh says the view is within its
	// lease; ok is false when only the panel can answer.
	Lookup(mac string, groupChoice uint) (info *wire.Info, fresh, ok bool)
	// Provisioned records a device's new clone until the panel's record arrives.
	Provisioned(deviceID, versionID, serverID uint)
}

// loginCounter is a target that counts its logins (an *iscsi.Server).
type loginCounter interface {
	Logins(iqn string) (uint64, bool)
}

// busy is the answer beyond a bound: ask again after RetryPause, give or take half.
func (s *Service) busy(why string) string {
	s.refused.Add(1)
	pause := s.cfg.RetryPause/2 + rand.N(s.cfg.RetryPause+1)
	return RetryScript(why+"; asking again shortly", pause)
}

// admitLogin takes a login slot for a device about to be told to sanboot iqn, or says
// that every slot is taken. A device asking again for the same target keeps its slot.
// Without a target that counts logins there is nothing to wait for: always admitted.
func (s *Service) admitLogin(iqn string) bool {
	lc, ok := s.cfg.Target.(loginCounter)
	if !ok {
		return true
	}
	now := time.Now()
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if p, ok := s.logins[iqn]; ok {
		p.until = now.Add(s.cfg.LoginWindow)
		s.logins[iqn] = p
		return true
	}
	limit := int(s.maxLogins.Load())
	if len(s.logins) >= limit {
		// Only a full table is swept: a storm below the bound pays one map insert each.
		s.releaseLogins(lc, now)
	}
	if len(s.logins) >= limit {
		return false
	}
	base, _ := lc.Logins(iqn)
	s.logins[iqn] = pendingLogin{base: base, until: now.Add(s.cfg.LoginWindow)}
	return true
}

// releaseLogins frees the slots whose login came or whose window ended. Callers hold lmu.
func (s *Service) releaseLogins(lc loginCounter, now time.Time) {
	for iqn, p := range s.logins {
		n, exists := lc.Logins(iqn)
		if now.After(p.until) || n > p.base || (!exists && p.base > 0) {
			delete(s.logins, iqn)
		}
	}
}

// SetBounds changes the admission bounds while the service runs (0: the default). Work
// already admitted goes on; the new bounds apply to the next request.
func (s *Service) SetBounds(maxProvisions, maxLogins int) {
	s.maxProvisions.Store(int64(cmp.Or(max(maxProvisions, 0), wire.DefaultMaxProvisions)))
	s.maxLogins.Store(int64(cmp.Or(max(maxLogins, 0), wire.DefaultMaxLogins)))
}

// Admission is the state of admission control, for the agent's metrics.
type Admission struct {
	Provisions, MaxProvisions int
	Logins, MaxLogins         int
	// Refused counts the requests told to come back later.
	Refused uint64
}

// Admission returns the bounds and what holds them now.
func (s *Service) Admission() Admission {
	a := Admission{MaxProvisions: int(s.maxProvisions.Load()), MaxLogins: int(s.maxLogins.Load()), Refused: s.refused.Load()}
	s.pmu.Lock()
	a.Provisions = len(s.inflight)
	s.pmu.Unlock()
	s.lmu.Lock()
	if lc, ok := s.cfg.Target.(loginCounter); ok {
		s.releaseLogins(lc, time.Now())
	}
	a.Logins = len(s.logins)
	s.lmu.Unlock()
	return a
}
