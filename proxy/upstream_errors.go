package proxy

import (
	"errors"
	"net"
)

// failKind says why an exchange with an upstream failed: it picks the status the client gets
// and labels frontdoor_upstream_errors_total. The first three are the upstream's fault, the
// rest the client's or the front door's own limits (never counted against the upstream).
type failKind string

const (
	kindConnect  failKind = "connect"   // refused or unreachable: 502, upstream cools down
	kindTimeout  failKind = "timeout"   // connect, read or write timeout: 504
	kindProtocol failKind = "protocol"  // the upstream broke the protocol or closed early: 502
	kindClient   failKind = "client"    // the client's request body failed: 400
	kindTooLarge failKind = "too_large" // the body went over MaxBody while it streamed: 413
	kindSlow     failKind = "slow_body" // the client stalled mid-body past BodyTimeout: 408
	kindBusy     failKind = "busy"      // buffered bodies are over BodyBufferLimit: 503
	kindAuthBusy failKind = "auth_busy" // the authorization lane is full: 503 with Retry-After
)

// upstreamError is a failed exchange whose kind was decided where it failed (a dial refused
// is kindConnect whatever its error says).
type upstreamError struct {
	kind failKind
	err  error
}

func (e *upstreamError) Error() string { return string(e.kind) + ": " + e.err.Error() }
func (e *upstreamError) Unwrap() error { return e.err }

// failed gives err its kind.
func failed(kind failKind, err error) error { return &upstreamError{kind: kind, err: err} }

// kindOf is the kind an exchange's error carries, else the one its cause implies.
func kindOf(err error) failKind {
	var ue *upstreamError
	if errors.As(err, &ue) {
		return ue.kind
	}
	return failureKind(err)
}

// clientError marks a failure reading the client's body, not the upstream's fault.
type clientError struct{ error }

func (e clientError) Unwrap() error { return e.error }

func failureKind(err error) failKind {
	var ne net.Error
	var ce clientError
	switch {
	case errors.Is(err, errBodyTooLarge):
		return kindTooLarge
	case errors.Is(err, errBodyBudget):
		return kindBusy
	case errors.As(err, &ce) && errors.As(err, &ne) && ne.Timeout():
		return kindSlow
	case errors.As(err, &ce):
		return kindClient
	case errors.As(err, &ne) && ne.Timeout():
		return kindTimeout
	}
	return kindProtocol
}
