package pusher

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// hmacHex is hex(HMAC-SHA256(secret, msg)), the digest every Pusher signature uses (§5.3, §7, §8.2, §9).
func hmacHex(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// equalDigest compares two hex digests in constant time.
func equalDigest(a, b string) bool {
	return hmac.Equal([]byte(a), []byte(b))
}

// ChannelAuth is the auth string a Laravel app's /broadcasting/auth returns for a private or
// presence channel (channelData empty for private): "key:hex(HMAC(secret, socket:channel[:data]))".
func ChannelAuth(key, secret, socketID, channel, channelData string) string {
	msg := socketID + ":" + channel
	if channelData != "" {
		msg += ":" + channelData
	}
	return key + ":" + hmacHex(secret, msg)
}

// UserAuth is the auth string for pusher:signin: the string signed is "socket::user::user_data" (§7).
func UserAuth(key, secret, socketID, userData string) string {
	return key + ":" + hmacHex(secret, socketID+"::user::"+userData)
}

// verifyAuth checks an "app_key:hex" auth string against the signed message (§5.3): the key part
// must be the app's key, and the digest is compared in constant time.
func verifyAuth(auth, key, secret, msg string) bool {
	k, sig, ok := strings.Cut(auth, ":")
	if !ok || k != key || len(sig) != 64 {
		return false
	}
	return equalDigest(strings.ToLower(sig), hmacHex(secret, msg))
}

// apiStringToSign builds "METHOD\npath\nsorted query" (§8.2): keys lower-cased and sorted, values
// decoded, repeated keys joined by ",", auth_signature left out.
func apiStringToSign(method, path string, params url.Values) string {
	keys := make([]string, 0, len(params))
	lower := make(map[string][]string, len(params))
	for k, v := range params {
		lk := strings.ToLower(k)
		if lk == "auth_signature" {
			continue
		}
		if _, seen := lower[lk]; !seen {
			keys = append(keys, lk)
		}
		lower[lk] = append(lower[lk], v...)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(strings.ToUpper(method))
	b.WriteByte('\n')
	b.WriteString(path)
	b.WriteByte('\n')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strings.Join(lower[k], ","))
	}
	return b.String()
}

func bodyMD5(body []byte) string {
	sum := md5.Sum(body)
	return hex.EncodeToString(sum[:])
}

// SignAPIRequest returns params plus the auth_* parameters a client adds to call the HTTP API, as
// the Pusher SDKs do. frontdoor doctor uses it to prove the broadcaster's credentials; tests use it.
// path is the unprefixed path ("/apps/1/events"), which is what the SDKs sign (§8.2).
func SignAPIRequest(key, secret, method, path string, params url.Values, body []byte, now time.Time) url.Values {
	out := url.Values{}
	for k, v := range params {
		out[k] = append([]string(nil), v...)
	}
	out.Set("auth_key", key)
	out.Set("auth_timestamp", strconv.FormatInt(now.Unix(), 10))
	out.Set("auth_version", "1.0")
	if len(body) > 0 {
		out.Set("body_md5", bodyMD5(body))
	}
	out.Set("auth_signature", hmacHex(secret, apiStringToSign(method, path, out)))
	return out
}

// maxClockSkew is Pusher's timestamp window: requests older or newer than this are refused (§8.2).
const maxClockSkew = 600 * time.Second

// verifyAPIRequest checks an HTTP API request's signature (§8.2). The error message says what is
// wrong without revealing the secret.
func verifyAPIRequest(key, secret, method, path string, params url.Values, body []byte, now time.Time) error {
	if got := params.Get("auth_key"); got != key {
		return fmt.Errorf("auth_key %q does not match the app's key", got)
	}
	if v := params.Get("auth_version"); v != "1.0" {
		return fmt.Errorf("auth_version must be 1.0, got %q", v)
	}
	ts, err := strconv.ParseInt(params.Get("auth_timestamp"), 10, 64)
	if err != nil {
		return fmt.Errorf("auth_timestamp %q is not a Unix timestamp", params.Get("auth_timestamp"))
	}
	if skew := now.Sub(time.Unix(ts, 0)); skew >= maxClockSkew || skew <= -maxClockSkew {
		return fmt.Errorf("timestamp expired: Given timestamp (%d) not within 600s of server time (%d)", ts, now.Unix())
	}
	if len(body) > 0 {
		if got := params.Get("body_md5"); !equalDigest(got, bodyMD5(body)) {
			return fmt.Errorf("body_md5 does not match the MD5 of the request body")
		}
	}
	want := hmacHex(secret, apiStringToSign(method, path, params))
	if !equalDigest(strings.ToLower(params.Get("auth_signature")), want) {
		return fmt.Errorf("invalid signature: you should have sent HmacSHA256Hex(%q, your_secret_key), but you sent %q",
			apiStringToSign(method, path, params), params.Get("auth_signature"))
	}
	return nil
}
