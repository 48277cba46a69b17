package main

import (
	"os"
	"strings"
	"testing"
)

// The shipped unit runs frontdoor as its own user: php-fpm's user (www-data) must not be able to
// read the TLS and ACME keys in the state directory, and the state directory is private.
func TestSystemdUnitSeparatesKeysFromPHP(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/frontdoor.service")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if u := keys["User"]; u == "" || u == "www-data" || u == "root" {
		t.Errorf("User=%q: want a dedicated user, not php-fpm's or root", u)
	}
	if g := keys["Group"]; g == "www-data" {
		t.Errorf("Group=%q: the state directory would be readable by PHP", g)
	}
	if keys["StateDirectoryMode"] != "0700" {
		t.Errorf("StateDirectoryMode=%q, want 0700", keys["StateDirectoryMode"])
	}
	if !strings.Contains(keys["SupplementaryGroups"], "www-data") {
		t.Errorf("SupplementaryGroups=%q: frontdoor needs www-data's group for php-fpm's socket", keys["SupplementaryGroups"])
	}
}
