// Package rlimit reads and sets the open-file limit (RLIMIT_NOFILE) where the OS has one: every
// WebSocket holds a descriptor, so frontdoor, the doctor, the load generator and the memory tests
// all care about it. On Windows, which has no such limit, both calls return an error wrapping
// errors.ErrUnsupported.
package rlimit
