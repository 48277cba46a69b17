package tls

import (
	"crypto/rand"
	cryptotls "crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Session resumption. A returning client (a reconnecting WebSocket, a browser opening its next
// connection) presents a session ticket and skips the certificate signature and its verification,
// the expensive half of a full handshake. Tickets are sealed with keys that live in the
// --cert-cache directory rather than only in memory, so the process started by `frontdoor restart`
// (which binds beside the old one) decrypts the tickets the old one issued: resumed sessions
// survive an upgrade. 0-RTT (early data) stays off: Go's crypto/tls server does not implement it,
// so replayable early data is never accepted.
//
// The key that seals new tickets is replaced every ticketKeyRotation; the previous ones still
// open tickets until they fall out of the kept set, so a ticket resumes for ticketKeyRotation ×
// (ticketKeysKept − 1) to × ticketKeysKept after it was issued. A stolen key file opens TLS 1.2
// sessions sealed with it (TLS 1.3 resumption does a fresh ECDHE, psk_dhe_ke, so 1.3 traffic keeps
// forward secrecy); hence the file is 0600 in a 0700 directory and keys are short-lived.
const (
	ticketKeysFile    = "session-ticket-keys.json"
	ticketKeyRotation = 12 * time.Hour
	ticketKeysKept    = 3 // the sealing key and the previous two, which still open tickets
	// ticketKeysCheck is how often the file is read again: a process that did not rotate picks up
	// the other's new key within this, and meanwhile seals with a key both still accept.
	ticketKeysCheck = time.Minute
)

// ticketKey is one key in the file; Key is 32 bytes (crypto/tls derives its AES and HMAC keys
// from it).
type ticketKey struct {
	Created time.Time `json:"created"`
	Key     []byte    `json:"key"`
}

type ticketFile struct {
	Keys []ticketKey `json:"keys"` // newest first
}

// ticketKeys keeps the file and every listener configuration that seals tickets in step.
type ticketKeys struct {
	dir string
	now func() time.Time
	log zerolog.Logger

	mu      sync.Mutex
	keys    [][32]byte // newest first, as last applied
	configs []*cryptotls.Config
}

// newTicketKeys loads (or creates) the kept keys in dir. An unusable directory is not fatal:
// tickets then use crypto/tls's own per-process keys and do not survive a restart, which the
// warning says.
func newTicketKeys(dir string, now func() time.Time, log zerolog.Logger) *ticketKeys {
	if dir == "" {
		return nil
	}
	tk := &ticketKeys{dir: dir, now: now, log: log}
	if err := tk.sync(); err != nil {
		log.Warn().Err(err).Str("dir", dir).Msg("session tickets: cannot keep their keys in --cert-cache; resumption works but not across a restart")
		return nil
	}
	return tk
}

// use makes cfg seal and open tickets with the kept keys from now on, rotations included.
func (tk *ticketKeys) use(cfg *cryptotls.Config) {
	if tk == nil {
		return
	}
	tk.mu.Lock()
	defer tk.mu.Unlock()
	tk.configs = append(tk.configs, cfg)
	cfg.SetSessionTicketKeys(tk.keys)
}

// sync reads the file under an exclusive lock (the old and the new process may both be here),
// adds a new sealing key when the newest is ticketKeyRotation old, drops keys beyond
// ticketKeysKept, writes the file back when it changed, and applies the result to every config.
func (tk *ticketKeys) sync() error {
	if err := os.MkdirAll(tk.dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(tk.dir, ticketKeysFile)
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := lockFile(lock); err != nil {
		return err
	}
	defer unlockFile(lock)

	var f ticketFile
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(data, &f); err != nil {
			// A damaged file costs the sessions it could have resumed, nothing else: start afresh.
			tk.log.Warn().Err(err).Str("file", path).Msg("session tickets: the key file is unreadable; replacing it with a new key")
			f = ticketFile{}
		}
	}
	f.Keys = slices.DeleteFunc(f.Keys, func(k ticketKey) bool { return len(k.Key) != 32 })
	slices.SortStableFunc(f.Keys, func(a, b ticketKey) int { return b.Created.Compare(a.Created) })
	now := tk.now()
	changed := false
	if len(f.Keys) == 0 || now.Sub(f.Keys[0].Created) >= ticketKeyRotation {
		k := ticketKey{Created: now.UTC(), Key: make([]byte, 32)}
		if _, err := rand.Read(k.Key); err != nil {
			return err
		}
		f.Keys = append([]ticketKey{k}, f.Keys...)
		changed = true
	}
	if len(f.Keys) > ticketKeysKept {
		f.Keys, changed = f.Keys[:ticketKeysKept], true
	}
	if changed {
		out, err := json.Marshal(&f)
		if err != nil {
			return err
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, out, 0o600); err != nil {
			return err
		}
		if err := os.Chmod(tmp, 0o600); err != nil { // WriteFile keeps an existing file's mode
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	keys := make([][32]byte, len(f.Keys))
	for i, k := range f.Keys {
		keys[i] = [32]byte(k.Key)
	}
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if slices.Equal(keys, tk.keys) {
		return nil
	}
	if tk.keys != nil {
		tk.log.Info().Time("sealing_key_created", f.Keys[0].Created).Int("keys", len(keys)).Msg("session tickets: keys rotated")
	}
	tk.keys = keys
	for _, cfg := range tk.configs {
		cfg.SetSessionTicketKeys(keys)
	}
	return nil
}

// check runs sync from Manager.Run; a failure keeps the keys in use.
func (tk *ticketKeys) check() {
	if tk == nil {
		return
	}
	if err := tk.sync(); err != nil {
		tk.log.Error().Err(err).Str("dir", tk.dir).Msg(fmt.Sprintf("session tickets: cannot read or rotate the keys; keeping the current ones (next try in %s)", ticketKeysCheck))
	}
}
