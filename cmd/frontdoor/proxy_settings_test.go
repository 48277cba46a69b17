package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRequestBodySettings: body_timeout, body_buffer_limit and stream_request_bodies reach the
// proxy from a flag, FRONTDOOR_* and YAML, and a bad value names its key.
func TestRequestBodySettings(t *testing.T) {
	s, err := load(t, []string{"--body-timeout", "15s", "--body-buffer-limit", "2G", "--stream-request-bodies"}, env())
	if err != nil || s.Proxy.BodyTimeout != 15*time.Second || s.Proxy.BodyBufferLimit != 2<<30 || !s.Proxy.StreamRequestBodies {
		t.Fatalf("flags: %+v, %v", s.Proxy, err)
	}
	s, err = load(t, nil, env("FRONTDOOR_BODY_TIMEOUT", "20s", "FRONTDOOR_BODY_BUFFER_LIMIT", "512M", "FRONTDOOR_STREAM_REQUEST_BODIES", "true"))
	if err != nil || s.Proxy.BodyTimeout != 20*time.Second || s.Proxy.BodyBufferLimit != 512<<20 || !s.Proxy.StreamRequestBodies {
		t.Fatalf("env: %+v, %v", s.Proxy, err)
	}
	yml := writeFile(t, "frontdoor.yaml", "proxy:\n  body_timeout: 5s\n  body_buffer_limit: 256M\n  stream_request_bodies: true\n")
	s, err = load(t, []string{"--config", yml, "--env-file", ""}, env())
	if err != nil || s.Proxy.BodyTimeout != 5*time.Second || s.Proxy.BodyBufferLimit != 256<<20 || !s.Proxy.StreamRequestBodies {
		t.Fatalf("yaml: %+v, %v", s.Proxy, err)
	}
	if _, err := load(t, []string{"--body-buffer-limit", "1M"}, env()); err == nil || !strings.Contains(err.Error(), "body_buffer_limit") {
		t.Fatalf("a buffer limit below max_body: %v", err)
	}
	if _, err := load(t, []string{"--body-timeout", "soon"}, env()); err == nil || !strings.Contains(err.Error(), "--body-timeout") {
		t.Fatalf("--body-timeout soon: %v", err)
	}
}

// TestSymlinkRootSetting: --symlink-root repeats, FRONTDOOR_SYMLINK_ROOT is a comma list, YAML a list.
func TestSymlinkRootSetting(t *testing.T) {
	want := "[/srv/media /srv/shared/storage]"
	s, err := load(t, []string{"--symlink-root", "/srv/media", "--symlink-root", "/srv/shared/storage"}, env())
	if err != nil || fmt.Sprint(s.Proxy.SymlinkRoots) != want {
		t.Fatalf("flags: %v, %v", s.Proxy.SymlinkRoots, err)
	}
	s, err = load(t, nil, env("FRONTDOOR_SYMLINK_ROOT", "/srv/media,/srv/shared/storage"))
	if err != nil || fmt.Sprint(s.Proxy.SymlinkRoots) != want {
		t.Fatalf("env: %v, %v", s.Proxy.SymlinkRoots, err)
	}
	yml := writeFile(t, "frontdoor.yaml", "proxy:\n  symlink_roots: [/srv/media, /srv/shared/storage]\n")
	s, err = load(t, []string{"--config", yml, "--env-file", ""}, env())
	if err != nil || fmt.Sprint(s.Proxy.SymlinkRoots) != want {
		t.Fatalf("yaml: %v, %v", s.Proxy.SymlinkRoots, err)
	}
}

// TestCompressSettings: compression is on by default; --compress=false, FRONTDOOR_COMPRESS and
// YAML turn it off, the level comes from each layer, and a level out of range names its key.
func TestCompressSettings(t *testing.T) {
	s, err := load(t, nil, env())
	if err != nil || s.Proxy.DisableCompression {
		t.Fatalf("default: %+v, %v", s.Proxy, err)
	}
	s, err = load(t, []string{"--compress=false", "--compress-level", "7"}, env())
	if err != nil || !s.Proxy.DisableCompression || s.Proxy.CompressLevel != 7 {
		t.Fatalf("flags: %+v, %v", s.Proxy, err)
	}
	s, err = load(t, nil, env("FRONTDOOR_COMPRESS", "false", "FRONTDOOR_COMPRESS_LEVEL", "3"))
	if err != nil || !s.Proxy.DisableCompression || s.Proxy.CompressLevel != 3 {
		t.Fatalf("env: %+v, %v", s.Proxy, err)
	}
	yml := writeFile(t, "frontdoor.yaml", "proxy:\n  compress: false\n  compress_level: 9\n")
	s, err = load(t, []string{"--config", yml, "--env-file", ""}, env())
	if err != nil || !s.Proxy.DisableCompression || s.Proxy.CompressLevel != 9 {
		t.Fatalf("yaml: %+v, %v", s.Proxy, err)
	}
	if _, err := load(t, []string{"--compress-level", "12"}, env()); err == nil || !strings.Contains(err.Error(), "compress_level") {
		t.Fatalf("--compress-level 12: %v", err)
	}
}

// TestSendfileRootSetting: --sendfile-root repeats, FRONTDOOR_SENDFILE_ROOT is a comma list,
// YAML a list; a bad location names the key.
func TestSendfileRootSetting(t *testing.T) {
	want := "[/srv/app/storage/app /protected/=/srv/app/storage/private]"
	s, err := load(t, []string{"--sendfile-root", "/srv/app/storage/app", "--sendfile-root", "/protected/=/srv/app/storage/private"}, env())
	if err != nil || fmt.Sprint(s.Proxy.SendfileRoots) != want {
		t.Fatalf("flags: %v, %v", s.Proxy.SendfileRoots, err)
	}
	s, err = load(t, nil, env("FRONTDOOR_SENDFILE_ROOT", "/srv/app/storage/app,/protected/=/srv/app/storage/private"))
	if err != nil || fmt.Sprint(s.Proxy.SendfileRoots) != want {
		t.Fatalf("env: %v, %v", s.Proxy.SendfileRoots, err)
	}
	yml := writeFile(t, "frontdoor.yaml", "proxy:\n  sendfile_roots: [/srv/app/storage/app, \"/protected/=/srv/app/storage/private\"]\n")
	s, err = load(t, []string{"--config", yml, "--env-file", ""}, env())
	if err != nil || fmt.Sprint(s.Proxy.SendfileRoots) != want {
		t.Fatalf("yaml: %v, %v", s.Proxy.SendfileRoots, err)
	}
	if _, err := load(t, []string{"--sendfile-root", "/=/srv"}, env()); err == nil || !strings.Contains(err.Error(), "sendfile_roots") {
		t.Fatalf("a bad location: %v", err)
	}
}
