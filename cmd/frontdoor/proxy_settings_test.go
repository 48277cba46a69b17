package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

// TestPreviousReleasesSettings: the deploy settings reach the proxy from a flag, FRONTDOOR_* and
// YAML; 0 releases means off (negative in proxy.Config), and a bad value names its key.
func TestPreviousReleasesSettings(t *testing.T) {
	check := func(how string, s settings, err error, n int) {
		t.Helper()
		p := s.Proxy
		if err != nil || p.BuildDir != "dist" || p.PreviousReleases != n || p.PreviousReleasesWindow != 2*time.Hour || p.PreviousReleasesCopyLimit != 64<<20 {
			t.Fatalf("%s: %+v, %v", how, p, err)
		}
	}
	s, err := load(t, []string{"--build-dir", "dist", "--previous-releases", "5", "--previous-releases-window", "2h", "--previous-releases-copy-limit", "64M"}, env())
	check("flags", s, err, 5)
	s, err = load(t, nil, env("FRONTDOOR_BUILD_DIR", "dist", "FRONTDOOR_PREVIOUS_RELEASES", "0", "FRONTDOOR_PREVIOUS_RELEASES_WINDOW", "2h", "FRONTDOOR_PREVIOUS_RELEASES_COPY_LIMIT", "64M"))
	check("env", s, err, -1)
	yml := writeFile(t, "frontdoor.yaml", "proxy:\n  build_dir: dist\n  previous_releases: 1\n  previous_releases_window: 2h\n  previous_releases_copy_limit: 64M\n")
	s, err = load(t, []string{"--config", yml, "--env-file", ""}, env())
	check("yaml", s, err, 1)
	if _, err := load(t, []string{"--build-dir", "../elsewhere"}, env()); err == nil || !strings.Contains(err.Error(), "build_dir") {
		t.Fatalf("--build-dir ../elsewhere: %v", err)
	}
	if _, err := load(t, []string{"--previous-releases-window", "soon"}, env()); err == nil || !strings.Contains(err.Error(), "--previous-releases-window") {
		t.Fatalf("--previous-releases-window soon: %v", err)
	}
}

// TestAuthLaneSettings: the authorization lane's settings reach the proxy from a flag,
// FRONTDOOR_* and YAML; a share of 0 means off (negative in proxy.Config); bad values name their key.
func TestAuthLaneSettings(t *testing.T) {
	check := func(how string, s settings, err error, share float64) {
		t.Helper()
		p := s.Proxy
		if err != nil || p.AuthLaneShare != share || p.AuthQueue != 100 || p.AuthQueueTimeout != 3*time.Second {
			t.Fatalf("%s: %+v, %v", how, p, err)
		}
	}
	s, err := load(t, []string{"--auth-lane-share", "0.25", "--auth-queue", "100", "--auth-queue-timeout", "3s"}, env())
	check("flags", s, err, 0.25)
	s, err = load(t, nil, env("FRONTDOOR_AUTH_LANE_SHARE", "0", "FRONTDOOR_AUTH_QUEUE", "100", "FRONTDOOR_AUTH_QUEUE_TIMEOUT", "3s"))
	check("env", s, err, -1)
	yml := writeFile(t, "frontdoor.yaml", "proxy:\n  auth_lane_share: 0.75\n  auth_queue: 100\n  auth_queue_timeout: 3s\n")
	s, err = load(t, []string{"--config", yml, "--env-file", ""}, env())
	check("yaml", s, err, 0.75)
	for _, bad := range []string{"1.5", "-0.5", "half"} {
		if _, err := load(t, []string{"--auth-lane-share", bad}, env()); err == nil || !strings.Contains(err.Error(), "--auth-lane-share") {
			t.Fatalf("--auth-lane-share %s: %v", bad, err)
		}
	}
}

// TestReadyzShowsAuthBacklog: with a php-fpm pool under max_conns, /readyz reports the
// authorization lane (slots, backlog, refusals, estimated rate) and /metrics exports it.
func TestReadyzShowsAuthBacklog(t *testing.T) {
	addr, admin := freeAddr(t), freeAddr(t)
	p := startFrontdoor(t, t.TempDir(), "serve", "--listen", addr, "--admin", admin, "--root", t.TempDir(),
		"--upstream", "fastcgi://"+freeAddr(t)+"?max_conns=8", "--app-id", "1", "--app-key", "key1", "--app-secret", "secret1")
	p.waitLog(t, `"admin listening"`)
	get := func(path string) string {
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var ready struct {
		AuthLane *struct {
			Slots     int     `json:"slots"`
			Waiting   int     `json:"waiting"`
			PerSecond float64 `json:"per_second"`
		} `json:"auth_lane"`
	}
	body := get("/readyz")
	if err := json.Unmarshal([]byte(body), &ready); err != nil || ready.AuthLane == nil || ready.AuthLane.Slots != 4 || ready.AuthLane.PerSecond <= 0 {
		t.Fatalf("/readyz: %s", body)
	}
	metrics := get("/metrics")
	for _, want := range []string{"frontdoor_auth_lane_waiting 0", "frontdoor_auth_lane_refused_total 0", "frontdoor_auth_lane_capacity_per_second"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
