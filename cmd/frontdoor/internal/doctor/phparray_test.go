package doctor

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseConfigCache(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "config-cache-old", "bootstrap", "cache", "config.php"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfigCache(string(data))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path []string
		want any
	}{
		{[]string{"broadcasting", "default"}, "reverb"},
		{[]string{"broadcasting", "connections", "reverb", "options", "port"}, "443"},
		{[]string{"broadcasting", "connections", "reverb", "options", "useTLS"}, true},
		{[]string{"reverb", "apps", "apps", "0", "app_id"}, "123456"},
		{[]string{"reverb", "apps", "apps", "0", "ping_interval"}, int64(60)},
		{[]string{"cache", "weird"}, "it's a \\ test\x00"},
		{[]string{"cache", "ratio"}, 0.5},
		{[]string{"cache", "none"}, nil},
		{[]string{"cache", "enum"}, nil},
	}
	for _, tt := range tests {
		got, ok := lookupPath(cfg, tt.path...)
		if !ok || got != tt.want {
			t.Errorf("%v = %#v (%v), want %#v", tt.path, got, ok, tt.want)
		}
	}
	if _, ok := lookupPath(cfg, "broadcasting", "missing"); ok {
		t.Error("missing key found")
	}
	for _, bad := range []string{"", "<?php echo 1;", "<?php return 'x';", "<?php return array ( 'a' => ", "<?php return array ( 'a' 'b' )"} {
		if _, err := parseConfigCache(bad); err == nil {
			t.Errorf("parseConfigCache(%q) accepted", bad)
		}
	}
}

// FuzzParseConfigCache: the config cache is user data; the reader must never panic or loop.
func FuzzParseConfigCache(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "config-cache-old", "bootstrap", "cache", "config.php")); err == nil {
		f.Add(string(data))
	}
	for _, s := range []string{
		"<?php return array ( 0 => 'a', 'b' => array ( ), );",
		"<?php return array ( 'x' => \\Foo::__set_state(array( 'a' => 1, )), 'y' => -1.5e3, 'z' => 'q' . \"\\0\" . '' );",
		"<?php return (object) array ( );",
		"<?php return array ( 'k' => \\Closure::fromCallable('strlen') );",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := parseConfigCache(src)
		if err == nil && cfg == nil {
			t.Fatal("nil map without an error")
		}
	})
}
