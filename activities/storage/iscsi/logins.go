package iscsi

// Logins returns the number of successful logins to target iqn so far, and whether the
// target exists: the boot path's admission control sees a device's login arrive by it,
// without the cost of Stats over every target.
func (s *Server) Logins(iqn string) (uint64, bool) {
	s.mu.Lock()
	t, ok := s.targets[iqn]
	s.mu.Unlock()
	if !ok {
		return 0, false
	}
	return t.stats.logins.Load(), true
}

// Sessions returns the number of sessions logged in to target iqn now (0 when it does not
// exist): a device's data disk moves only while its device is not booted from it.
func (s *Server) Sessions(iqn string) int {
	s.mu.Lock()
	t, ok := s.targets[iqn]
	s.mu.Unlock()
	if !ok {
		return 0
	}
	return int(t.stats.sessions.Load())
}
