package tls

import (
	"bufio"
	cryptotls "crypto/tls"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// resumes makes one request to addr with the client's session cache and says whether the
// handshake resumed a session. The response is read so the client also takes in the TLS 1.3
// NewSessionTicket that follows the handshake.
func resumes(t *testing.T, addr string, version uint16, cache cryptotls.ClientSessionCache) bool {
	t.Helper()
	c, err := cryptotls.Dial("tcp", addr, &cryptotls.Config{InsecureSkipVerify: true, ServerName: "app.test",
		MinVersion: version, MaxVersion: version, ClientSessionCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: app.test\r\n\r\n"))
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		t.Fatal(err)
	}
	return c.ConnectionState().DidResume
}

// A client resumes its session against a second Manager started from the same --cert-cache, as
// the process `frontdoor restart` starts beside the old one does; a Manager with another
// directory (or, before the keys were kept, any second Manager) makes it do a full handshake.
func TestSessionResumesAcrossRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	cfg := Config{Mode: "self-signed", Domains: []string{"app.test"}, CacheDir: dir, HTTPSAddr: ":443", HTTPAddr: ":80"}
	newManager := func(cfg Config) *Manager {
		m, err := New(cfg, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	old := serveTLS(t, newManager(cfg))
	next := serveTLS(t, newManager(cfg))
	other := cfg
	other.CacheDir = filepath.Join(t.TempDir(), "other")
	stranger := serveTLS(t, newManager(other))

	fi, err := os.Stat(filepath.Join(dir, ticketKeysFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", ticketKeysFile, fi.Mode().Perm())
	}
	for _, v := range []struct {
		name    string
		version uint16
	}{{"TLS1.3", cryptotls.VersionTLS13}, {"TLS1.2", cryptotls.VersionTLS12}} {
		t.Run(v.name, func(t *testing.T) {
			cache := cryptotls.NewLRUClientSessionCache(4)
			if resumes(t, old, v.version, cache) {
				t.Fatal("the first connection resumed")
			}
			if !resumes(t, old, v.version, cache) {
				t.Fatal("no resumption against the same process")
			}
			if !resumes(t, next, v.version, cache) {
				t.Fatal("no resumption against the second process sharing --cert-cache")
			}
			if resumes(t, stranger, v.version, cache) {
				t.Fatal("resumed against a process with other ticket keys")
			}
		})
	}
}

// The sealing key is replaced every ticketKeyRotation and the two before it still open tickets:
// a ticket resumes after two rotations and not after a third. The clock is injected.
func TestSessionTicketKeysRotate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	m, err := New(Config{Mode: "self-signed", Domains: []string{"app.test"}, CacheDir: dir, HTTPSAddr: ":443", HTTPAddr: ":80"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	m.tickets.now = func() time.Time { return clock }
	addr := serveTLS(t, m)
	fileKeys := func() []ticketKey {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, ticketKeysFile))
		if err != nil {
			t.Fatal(err)
		}
		var f ticketFile
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatal(err)
		}
		return f.Keys
	}
	advance := func(d time.Duration) {
		t.Helper()
		clock = clock.Add(d)
		if err := m.tickets.sync(); err != nil {
			t.Fatal(err)
		}
	}

	cache := &firstTicket{} // keeps the ticket sealed with the first key
	resumes(t, addr, cryptotls.VersionTLS12, cache)
	first := fileKeys()
	if len(first) != 1 {
		t.Fatalf("%d keys at the start, want 1", len(first))
	}
	advance(ticketKeyRotation - time.Minute)
	if k := fileKeys(); len(k) != 1 {
		t.Fatalf("rotated early: %d keys", len(k))
	}
	advance(time.Minute)
	if k := fileKeys(); len(k) != 2 || string(k[1].Key) != string(first[0].Key) {
		t.Fatalf("after %s: %d keys, want the new one before the first", ticketKeyRotation, len(k))
	}
	advance(ticketKeyRotation)
	if k := fileKeys(); len(k) != ticketKeysKept || string(k[2].Key) != string(first[0].Key) {
		t.Fatalf("after two rotations: %d keys, want %d ending with the first", len(k), ticketKeysKept)
	}
	if !resumes(t, addr, cryptotls.VersionTLS12, cache) {
		t.Fatal("a ticket sealed two rotations ago did not resume")
	}
	advance(ticketKeyRotation)
	if k := fileKeys(); len(k) != ticketKeysKept || string(k[len(k)-1].Key) == string(first[0].Key) {
		t.Fatalf("after three rotations the first key is still kept (%d keys)", len(k))
	}
	if resumes(t, addr, cryptotls.VersionTLS12, cache) {
		t.Fatal("a ticket sealed three rotations ago still resumed")
	}
}

// firstTicket is a client session cache that keeps the first ticket it is given: a server that
// resumes with an older key sends a fresh ticket, which would hide the old key's expiry.
type firstTicket struct{ s *cryptotls.ClientSessionState }

func (c *firstTicket) Get(string) (*cryptotls.ClientSessionState, bool) { return c.s, c.s != nil }

func (c *firstTicket) Put(_ string, s *cryptotls.ClientSessionState) {
	if c.s == nil {
		c.s = s
	}
}
