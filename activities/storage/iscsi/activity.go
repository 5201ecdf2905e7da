package iscsi

import "net"

// TargetActivity is what a target's initiators have done so far: the boot path watches a
// device's boot through it (a login, reads, how long the session stays up).
type TargetActivity struct {
	Logins    uint64 // successful logins so far
	Sessions  int    // live sessions
	BytesRead uint64 // bytes sent to initiators from the target's LUNs so far
}

// Activity returns target iqn's counters, and whether the target exists: three atomic
// loads, without the histogram copy of Stats.
func (s *Server) Activity(iqn string) (TargetActivity, bool) {
	t := s.lookupTarget(iqn)
	if t == nil {
		return TargetActivity{}, false
	}
	return TargetActivity{Logins: t.stats.logins.Load(), Sessions: int(t.stats.sessions.Load()),
		BytesRead: t.stats.bytesRead.Load()}, true
}

// SessionAddrs returns the remote IP addresses of target iqn's live sessions.
func (s *Server) SessionAddrs(iqn string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.targets[iqn]
	if !ok {
		return nil
	}
	var out []string
	for _, sess := range s.sessions {
		if sess.target == t && sess.conn != nil {
			if host, _, err := net.SplitHostPort(sess.conn.nc.RemoteAddr().String()); err == nil {
				out = append(out, host)
			}
		}
	}
	return out
}
