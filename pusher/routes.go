package pusher

// KnownKey reports whether key is a configured app's key, as of the last Reload. The front door's
// router asks it for every {prefix}/app/{key} request, so a Laravel route such as /app/dashboard
// reaches PHP instead of the Pusher endpoint. It does not allocate.
func (s *Server) KnownKey(key []byte) bool {
	s.mu.RLock()
	_, ok := s.byKey[string(key)]
	s.mu.RUnlock()
	return ok
}

// KnownAppID reports whether id is a configured app's id, as of the last Reload: the router's
// test for {prefix}/apps/{id}/…, the HTTP API's paths. It does not allocate.
func (s *Server) KnownAppID(id []byte) bool {
	s.mu.RLock()
	_, ok := s.byAppID[string(id)]
	s.mu.RUnlock()
	return ok
}
