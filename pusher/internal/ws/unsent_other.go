//go:build !linux

package ws

import "syscall"

// unsentBytes reports 0 outside Linux, which alone has SIOCOUTQ: a conn dropped as a slow
// consumer closes normally instead of being reset, so its socket may linger in FIN-WAIT-1 with
// the unread bytes until the kernel gives up. Acceptable on the development platforms.
func unsentBytes(syscall.RawConn) int { return 0 }
