package bench

import (
	"bytes"
	cryptotls "crypto/tls"
	"fmt"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"
)

// apiClient calls the signed Pusher HTTP API (spec § 8) over keep-alive connections.
type apiClient struct {
	e  *endpoint
	hc *fasthttp.HostClient
}

func newAPIClient(e *endpoint, insecure bool, conns int) *apiClient {
	return &apiClient{e: e, hc: &fasthttp.HostClient{
		Addr:         e.host,
		Name:         "frontdoor-bench",
		IsTLS:        e.tls,
		TLSConfig:    &cryptotls.Config{InsecureSkipVerify: insecure, ServerName: e.hostname},
		MaxConns:     conns,
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		// A saturated server must show up as latency, not as "no free connections" errors.
		MaxConnWaitTimeout: 10 * time.Second,
	}}
}

// triggerBody is the events body for one channel; data must be plain ASCII without quotes or
// backslashes (the bench's own payloads are), so it needs no JSON escaping.
func triggerBody(dst []byte, channel, data string) []byte {
	dst = append(dst, `{"name":"bench","channels":["`...)
	dst = append(dst, channel...)
	dst = append(dst, `"],"data":"`...)
	dst = append(dst, data...)
	return append(dst, `"}`...)
}

// trigger publishes one event (POST /apps/{id}/events). A 200 whose body carries an "error"
// also fails: Soketi answers refusals with 200 (spec § 11).
func (a *apiClient) trigger(channel, data string) error {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	body := triggerBody(req.Body()[:0], channel, data)
	req.SetBodyRaw(body)
	path := "/apps/" + a.e.signer.appID + "/events"
	q := a.e.signer.apiQuery("POST", path, nil, body, time.Now().Unix())
	req.SetRequestURI(a.e.httpBase + a.e.prefix + path + "?" + q)
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/json")
	if err := a.hc.Do(req, resp); err != nil {
		return simplifyNetErr(err)
	}
	return apiStatus(resp)
}

func apiStatus(resp *fasthttp.Response) error {
	b := resp.Body()
	if resp.StatusCode() != fasthttp.StatusOK || bytes.Contains(b, []byte(`"error"`)) {
		if len(b) > 200 {
			b = b[:200]
		}
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode(), bytes.TrimSpace(b))
	}
	return nil
}

// get calls a signed GET endpoint and returns the body.
func (a *apiClient) get(path string, params url.Values) ([]byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	q := a.e.signer.apiQuery("GET", path, params, nil, time.Now().Unix())
	req.SetRequestURI(a.e.httpBase + a.e.prefix + path + "?" + q)
	if err := a.hc.Do(req, resp); err != nil {
		return nil, simplifyNetErr(err)
	}
	if err := apiStatus(resp); err != nil {
		return nil, err
	}
	return append([]byte(nil), resp.Body()...), nil
}
