package pusher

import (
	"encoding/json"
	"testing"
)

// The frames real clients send take the fast path: pusher-js (JSON.stringify of {auth, channel}),
// Go's json.Marshal of a map (sorted keys), laravel-echo's private channels with an auth string.
// Anything that needs encoding/json's full reading does not.
func TestFastSubscribeShapes(t *testing.T) {
	for _, tt := range []struct {
		frame         string
		ok            bool
		channel, auth string
	}{
		{`{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}`, true, "my-channel", ""},
		{`{"data":{"channel":"bench-churn-7"},"event":"pusher:subscribe"}`, true, "bench-churn-7", ""},
		{`{"event":"pusher:subscribe","data":{"auth":"key:0123abcd","channel":"private-orders.1"}}`, true, "private-orders.1", "key:0123abcd"},
		{`{"event":"pusher:subscribe","data":{"channel":"c","auth":"a"}}`, true, "c", "a"},
		{`{"event":"pusher:subscribe","data":{"auth":"k:s","channel_data":"{\"user_id\":1}","channel":"presence-a"}}`, false, "", ""},
		{`{"event":"pusher:subscribe","data":"{\"channel\":\"c\"}"}`, false, "", ""},
		{`{"event": "pusher:subscribe","data":{"channel":"c"}}`, false, "", ""},
		{`{"event":"pusher:subscribe","data":{"channel":"c","channel":"d"}}`, false, "", ""},
		{`{"event":"pusher:subscribe","data":{"Channel":"c"}}`, false, "", ""},
		{`{"event":"pusher:subscribe","data":{"channel":""}}`, false, "", ""},
		{`{"event":"pusher:subscribe","data":{"channel":"a\u00e9"}}`, false, "", ""},
		{`{"event":"pusher:subscribe","data":{"channel":"c"},"channel":"x"}`, false, "", ""},
		{`{"event":"pusher:subscribe","data":{"channel":"c"}} `, false, "", ""},
		{`{"event":"pusher:ping","data":{}}`, false, "", ""},
	} {
		d, ok := fastSubscribe([]byte(tt.frame))
		if ok != tt.ok || ok && (d.Channel != tt.channel || d.Auth != tt.auth || d.ChannelData != nil) {
			t.Errorf("%s: ok %v %+v; want ok %v channel %q auth %q", tt.frame, ok, d, tt.ok, tt.channel, tt.auth)
		}
	}
}

// FuzzFastSubscribe: whatever the fast path accepts, encoding/json (the slow path: inbound, then
// decodeData) reads as a pusher:subscribe with the same channel and auth and no channel_data.
func FuzzFastSubscribe(f *testing.F) {
	for _, s := range []string{
		`{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}`,
		`{"data":{"channel":"bench-churn-7"},"event":"pusher:subscribe"}`,
		`{"event":"pusher:subscribe","data":{"channel":"c","auth":"a"}}`,
		`{"event":"pusher:subscribe","data":{"channel":"c","channel":"d"}}`,
		`{"event":"pusher:subscribe","event":"pusher:ping","data":{"channel":"c"}}`,
		`{"event":"pusher:subscribe","data":{"auth":"k","channel_data":"{}","channel":"p"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		d, ok := fastSubscribe(p)
		if !ok {
			return
		}
		var m inbound
		if err := json.Unmarshal(p, &m); err != nil || m.Event != "pusher:subscribe" {
			t.Fatalf("fast path accepted %q; encoding/json: %v, event %q", p, err, m.Event)
		}
		var want subscribeData
		if err := decodeData(m.Data, &want); err != nil {
			t.Fatalf("fast path accepted %q; encoding/json data: %v", p, err)
		}
		if d.Channel != want.Channel || d.Auth != want.Auth || len(want.ChannelData) != 0 || d.Channel == "" {
			t.Fatalf("%q: fast %+v, encoding/json %+v", p, d, want)
		}
	})
}
