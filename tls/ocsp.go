package tls

import (
	"bytes"
	"context"
	cryptotls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/ocsp"
)

// stapler staples OCSP responses (RFC 6960) to the certificates this process serves, when the
// leaf names a responder (its Authority Information Access extension): clients then learn the
// revocation status in the handshake (RFC 6066 §8) instead of asking the CA, which is faster for
// them and private. Responses are fetched in the background and refreshed halfway through their
// validity; a handshake never waits for the CA, and an expired response is never stapled.
type stapler struct {
	log    zerolog.Logger
	client *http.Client
	now    func() time.Time

	mu     sync.Mutex
	leaves map[*x509.Certificate]*leafState // by parsed leaf: autocert and Reload keep one per certificate
}

// leafState is what the stapler knows about one served leaf.
type leafState struct {
	stapled    *cryptotls.Certificate // the certificate with its current response, nil until one is good
	nextUpdate time.Time              // the response must not be stapled after this (RFC 6960 §4.2.2.1)
	refreshAt  time.Time              // when to fetch a newer response
	fetching   bool
	failures   int
}

const (
	ocspTimeout      = 10 * time.Second
	ocspMaxResponse  = 64 << 10 // a response is a few KB; bound what a broken responder can make us read
	ocspRetryMin     = time.Minute
	ocspRetryMax     = time.Hour
	ocspNoNextUpdate = time.Hour // a response without nextUpdate is stapled this long (RFC 6960 §4.2.2.1)
	ocspMaxLeaves    = 1000      // renewals add leaves; names are bounded by --domain, so this is only a backstop
)

func newStapler(log zerolog.Logger) *stapler {
	return &stapler{
		log:    log,
		client: &http.Client{Timeout: ocspTimeout},
		now:    time.Now,
		leaves: map[*x509.Certificate]*leafState{},
	}
}

// staple returns cert with a current OCSP response attached when there is one, and starts a
// fetch when none is held or the held one is due for refresh. Certificates without a responder
// URL or without their issuer in the chain pass through untouched.
func (s *stapler) staple(cert *cryptotls.Certificate) *cryptotls.Certificate {
	leaf := cert.Leaf
	if leaf == nil || len(leaf.OCSPServer) == 0 || len(cert.Certificate) < 2 {
		return cert
	}
	now := s.now()
	s.mu.Lock()
	st := s.leaves[leaf]
	if st == nil {
		if len(s.leaves) >= ocspMaxLeaves {
			s.pruneLocked(now)
		}
		st = &leafState{}
		s.leaves[leaf] = st
	}
	if !st.fetching && !now.Before(st.refreshAt) {
		st.fetching = true
		go s.fetch(cert, st)
	}
	stapled := st.stapled
	if stapled != nil && !now.Before(st.nextUpdate) {
		stapled = nil // expired: a client would reject the handshake over it
	}
	s.mu.Unlock()
	if stapled == nil {
		return cert
	}
	return stapled
}

// pruneLocked forgets expired leaves (renewals and reloads leave their old one behind), then,
// if that is not enough, the ones without a response.
func (s *stapler) pruneLocked(now time.Time) {
	for leaf, st := range s.leaves {
		if now.After(leaf.NotAfter) || st.stapled == nil && !st.fetching {
			delete(s.leaves, leaf)
		}
	}
}

func (s *stapler) fetch(cert *cryptotls.Certificate, st *leafState) {
	leaf := cert.Leaf
	resp, err := s.query(cert)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st.fetching = false
	ev := s.log.Debug()
	switch {
	case err != nil:
		st.failures++
		backoff := min(ocspRetryMin<<min(st.failures-1, 10), ocspRetryMax)
		st.refreshAt = now.Add(backoff)
		if st.failures == 1 || backoff == ocspRetryMax {
			ev = s.log.Warn()
		}
		ev.Err(err).Strs("names", leaf.DNSNames).Str("responder", leaf.OCSPServer[0]).Dur("retry_in", backoff).
			Msg("OCSP response not obtained; handshakes go without a stapled response until it is")
		return
	case resp.Status == ocsp.Revoked:
		st.failures = 0
		st.stapled = nil
		st.refreshAt = now.Add(ocspRetryMax)
		s.log.Error().Strs("names", leaf.DNSNames).Time("revoked_at", resp.RevokedAt).Int("reason", resp.RevocationReason).
			Msg("the CA says this certificate is REVOKED: browsers will refuse it; replace it")
		return
	case resp.Status != ocsp.Good:
		st.failures++
		st.refreshAt = now.Add(ocspRetryMin)
		s.log.Warn().Strs("names", leaf.DNSNames).Int("status", resp.Status).Msg("OCSP status unknown; not stapled")
		return
	}
	next := resp.NextUpdate
	if next.IsZero() {
		next = now.Add(ocspNoNextUpdate)
	}
	stapled := *cert
	stapled.OCSPStaple = resp.Raw
	st.stapled = &stapled
	st.nextUpdate = next
	// Halfway through the validity window, as CAs expect (Let's Encrypt's responses live 7 days
	// and are refreshed daily): a failed refresh then has half the window to succeed.
	st.refreshAt = resp.ThisUpdate.Add(next.Sub(resp.ThisUpdate) / 2)
	if !st.refreshAt.After(now) {
		st.refreshAt = now.Add(ocspRetryMin)
	}
	st.failures = 0
	ev.Strs("names", leaf.DNSNames).Time("next_update", next).Time("refresh_at", st.refreshAt).Msg("OCSP response stapled")
}

// query asks the leaf's responder (RFC 6960 Appendix A.1, HTTP POST) and checks the answer is
// for this certificate and signed by its issuer or a responder the issuer delegated to.
func (s *stapler) query(cert *cryptotls.Certificate) (*ocsp.Response, error) {
	leaf := cert.Leaf
	issuer, err := x509.ParseCertificate(cert.Certificate[1])
	if err != nil {
		return nil, fmt.Errorf("issuer certificate: %w", err)
	}
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), ocspTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, leaf.OCSPServer[0], bytes.NewReader(req))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	hreq.Header.Set("Accept", "application/ocsp-response")
	hresp, err := s.client.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("responder answered %s", hresp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(hresp.Body, ocspMaxResponse+1))
	if err != nil {
		return nil, err
	}
	if len(body) > ocspMaxResponse {
		return nil, errors.New("response larger than 64 KiB")
	}
	return ocsp.ParseResponseForCert(body, leaf, issuer)
}
