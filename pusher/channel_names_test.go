package pusher

import (
	"strings"
	"testing"
)

func TestChannelTypesLongestPrefixWithDash(t *testing.T) {
	cases := map[string]channelType{
		"orders":                        {kindPublic, false},
		"privateer":                     {kindPublic, false}, // Reverb's dash-less match would say private
		"cache-prices":                  {kindPublic, true},
		"private-orders.1":              {kindPrivate, false},
		"private-cache-x":               {kindPrivate, true},
		"private-encrypted-x":           {kindEncrypted, false},
		"private-encrypted-cache-x":     {kindEncrypted, true},
		"presence-room.7":               {kindPresence, false},
		"presence-cache-room":           {kindPresence, true},
		"#server-to-user-42":            {kindServerToUser, false},
		"presenceroom":                  {kindPublic, false},
		"private-App.Models.User.1":     {kindPrivate, false},
		"private-encrypted-cacheless-x": {kindEncrypted, false},
	}
	for name, want := range cases {
		if got := typeOf(name); got != want {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
}

func TestChannelNames(t *testing.T) {
	ok := []string{"a", "private-App.Models.User.1", "x_y-z=@,.;", strings.Repeat("a", 164), strings.Repeat("a", 200), "#server-to-user-1"}
	bad := []string{"", strings.Repeat("a", 201), "has space", "ümlaut", "a#b", "#other", "#server-to-user-", "a/b", "a*"}
	for _, n := range ok {
		if !validChannelName(n) {
			t.Errorf("refused %q", n)
		}
	}
	for _, n := range bad {
		if validChannelName(n) {
			t.Errorf("accepted %q", n)
		}
	}
}

func TestOriginMatching(t *testing.T) {
	a := newApp(AppConfig{ID: "1", Key: "k", Secret: "s", AllowedOrigins: []string{"laravel.test", "*.example.com"}})
	cases := map[string]bool{
		"https://laravel.test":          true,
		"http://laravel.test:8000":      true,
		"https://app.example.com":       true,
		"https://example.com":           false,
		"https://evil.com":              false,
		"https://laravel.test.evil.com": false,
		"":                              false,
	}
	for origin, want := range cases {
		if got := a.originAllowed(origin); got != want {
			t.Errorf("%q: %v", origin, got)
		}
	}
	all := newApp(AppConfig{ID: "1", Key: "k", Secret: "s"})
	if !all.originAllowed("") || !all.originAllowed("https://anything") {
		t.Error("default * must allow everything, a missing Origin included")
	}
}

func TestJSONStringEscaping(t *testing.T) {
	got := string(appendJSONString(nil, "a\"b\\c\n\x01é"))
	if got != `"a\"b\\c\n\u0001é"` {
		t.Fatalf("%s", got)
	}
}

func TestValidateNamesKeys(t *testing.T) {
	c := Config{Apps: []AppConfig{{ID: "1", Key: "k", Secret: "s"}, {ID: "1", Key: "", Secret: "s", AcceptClientEventsFrom: "everyone"}}}
	err := c.Validate()
	for _, want := range []string{"apps[1].id", "apps[1].key", "apps[1].accept_client_events_from", `"everyone"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}
