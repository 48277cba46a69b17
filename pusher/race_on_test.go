//go:build race

package pusher

// raceEnabled: the race detector makes each TLS handshake several times slower, so the memory
// test opens fewer TLS sockets under it (the per-socket figure does not depend on the count).
const raceEnabled = true
