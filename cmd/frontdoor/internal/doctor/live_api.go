package doctor

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net/url"

	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/pusher"
)

// checkAPI makes the request a broadcaster makes, signed with the .env's secret
// (pusher-protocol.md §8.2): GET {prefix}/apps/{id}/channels. The signed path never includes
// the prefix, as the PHP SDK signs it. 200 proves the publisher's id, key and secret match the
// server's app.
//
// A 200 over a certificate PHP would refuse is not a promise about publishes: the broadcaster
// verifies TLS (trust), doctor's check had not.
func (lc *liveCheck) checkAPI(target *url.URL, tlsConf *tls.Config, id, key, secret string, trust phpTrust) {
	apiPath := "/apps/" + url.PathEscape(id) + "/channels"
	params := pusher.SignAPIRequest(key, secret, "GET", apiPath, nil, nil, lc.opts.now())
	reqURL := target.Scheme + "://" + hostPort(target) + target.Path + apiPath + "?" + params.Encode()

	client := &fasthttp.Client{TLSConfig: tlsConf, ReadTimeout: lc.opts.Timeout, WriteTimeout: lc.opts.Timeout, NoDefaultUserAgentHeader: true}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(reqURL)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.Header.Set("User-Agent", "frontdoor-doctor")
	if err := client.DoTimeout(req, resp, lc.opts.Timeout); err != nil {
		lc.add(Error, "api-failed", fmt.Sprintf("signed GET %s%s failed: %v", target.Path, apiPath, err), "")
		return
	}
	body := bytes.TrimSpace(resp.Body())
	if len(body) > 300 {
		body = append(body[:300:300], "…"...)
	}
	status := resp.StatusCode()
	html := bytes.Contains(resp.Header.ContentType(), []byte("html"))
	switch {
	case status == fasthttp.StatusOK && !html && trust == trustFails:
		lc.add(Error, "api-tls-untrusted", fmt.Sprintf("signed GET %s%s accepted with this key and secret, but only because doctor did not verify the certificate: PHP does, so every broadcast fails (cURL error 60, a 500 in the app)", target.Path, apiPath),
			"publish over frontdoor's loopback listener: frontdoor serve --listen 127.0.0.1:8080 and REVERB_HOST=127.0.0.1 REVERB_PORT=8080 REVERB_SCHEME=http, with VITE_REVERB_HOST/PORT/SCHEME kept on the public https address; or trust the CA in config/broadcasting.php: 'client_options' => ['verify' => '/path/to/ca.pem']")
	case status == fasthttp.StatusOK && !html && trust == trustCAFileOnly:
		lc.add(Warning, "api-ok-private-ca", fmt.Sprintf("signed GET %s%s accepted: the server has app %s with this key and secret; the certificate is trusted only through --ca-file, so publishes succeed only if PHP trusts that CA too", target.Path, apiPath, id),
			"in config/broadcasting.php: 'client_options' => ['verify' => '/path/to/ca.pem'], or publish over the loopback --listen (REVERB_HOST=127.0.0.1, REVERB_SCHEME=http)")
	case status == fasthttp.StatusOK && !html:
		lc.add(Info, "api-ok", fmt.Sprintf("signed GET %s%s accepted: the server has app %s with this key and secret, so the broadcaster's publishes will be accepted", target.Path, apiPath, id), "")
		if p := resp.Header.Peek(pusher.PartialHeader); len(p) > 0 {
			lc.add(Warning, "api-partial", fmt.Sprintf("the server answered GET %s%s from its own node only (%s: %s): it cannot reach the other nodes over Redis, so channel lists and counts miss theirs and publishes to their subscribers are held back until Redis returns", target.Path, apiPath, pusher.PartialHeader, p),
				"check that every node reaches the Redis given with --redis (the node's log says why it cannot; /readyz reports cluster failing meanwhile)")
		}
	case status == fasthttp.StatusUnauthorized:
		lc.add(Error, "api-signature-rejected", fmt.Sprintf("the server refused a request signed with the .env's secret (401: %s): the broadcaster's REVERB_APP_SECRET (or key) differs from the server's, so every publish fails with \"Pusher error\"", body),
			"give the server and Laravel the same REVERB_APP_KEY and REVERB_APP_SECRET (frontdoor serve --env-file .env reads them), then php artisan config:cache if the config is cached")
	case html || status == fasthttp.StatusNotFound && !bytes.HasPrefix(body, []byte("{")):
		lc.add(Error, "api-not-routed", fmt.Sprintf("GET %s%s answered HTTP %d with a page, not the Pusher API: /apps/ does not reach the server (the broadcaster would log \"Pusher error\" with this page)", target.Path, apiPath, status),
			"route /apps/ to the WebSocket server; with frontdoor in front it is built in (check REVERB_SERVER_PATH matches its --path-prefix)")
	case status == fasthttp.StatusNotFound:
		lc.add(Error, "api-app-unknown", fmt.Sprintf("the server has no app with id %q (404: %s)", id, body),
			"give the server and Laravel the same REVERB_APP_ID")
	default:
		lc.add(Error, "api-failed", fmt.Sprintf("signed GET %s%s answered HTTP %d: %s", target.Path, apiPath, status, body), "")
	}
}
