package bench

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// signer produces the Pusher HTTP API query signature and channel authorization strings with
// the app's credentials (spec § 8.2 and § 5.3). It is the bench's own, small implementation so
// the package never depends on the server code it measures.
type signer struct {
	appID, key, secret string
}

// apiQuery returns the full query string, auth_signature included, for a request to path
// (without any mount prefix: the string to sign always starts with /apps/{id}/, spec § 8.2).
// params are the request's own query parameters; body is the request body (body_md5 is added
// only for a non-empty body, as the SDKs do).
func (s signer) apiQuery(method, path string, params url.Values, body []byte, ts int64) string {
	kv := make([][2]string, 0, len(params)+4)
	for k, vs := range params {
		if len(vs) > 0 {
			kv = append(kv, [2]string{strings.ToLower(k), vs[0]})
		}
	}
	kv = append(kv,
		[2]string{"auth_key", s.key},
		[2]string{"auth_timestamp", strconv.FormatInt(ts, 10)},
		[2]string{"auth_version", "1.0"},
	)
	if len(body) > 0 {
		sum := md5.Sum(body)
		kv = append(kv, [2]string{"body_md5", hex.EncodeToString(sum[:])})
	}
	sort.Slice(kv, func(i, j int) bool { return kv[i][0] < kv[j][0] })

	// The string to sign carries decoded values joined without escaping (spec § 10.2).
	var plain, query strings.Builder
	for i, p := range kv {
		if i > 0 {
			plain.WriteByte('&')
			query.WriteByte('&')
		}
		plain.WriteString(p[0] + "=" + p[1])
		query.WriteString(url.QueryEscape(p[0]) + "=" + url.QueryEscape(p[1]))
	}
	sig := hmacHex(s.secret, method+"\n"+path+"\n"+plain.String())
	query.WriteString("&auth_signature=" + sig)
	return query.String()
}

// channelAuth is the `auth` value of a pusher:subscribe for a private or presence channel:
// key ":" hex(HMAC-SHA256(secret, socket_id ":" channel [":" channel_data])) (spec § 5.3).
func (s signer) channelAuth(socketID, channel, channelData string) string {
	msg := socketID + ":" + channel
	if channelData != "" {
		msg += ":" + channelData
	}
	return s.key + ":" + hmacHex(s.secret, msg)
}

func hmacHex(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}
