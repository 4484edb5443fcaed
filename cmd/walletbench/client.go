package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

const (
	apiPath        = "/api/wallet/v1"
	requestTimeout = 30 * time.Second
	maxAnswer      = 1 << 20
)

// apiClient talks to one walletd through keep-alive connections shared by
// every worker.
type apiClient struct {
	base  string
	conns *conns
	runID string
	seq   atomic.Uint64 // numbers X-Request-Id values, so a failure can be found in walletd's log
}

// newAPIClient talks to the walletd at base, an http:// or https:// URL
// without a trailing slash, keeping up to maxIdle connections open.
func newAPIClient(base *url.URL, maxIdle int, seed uint64) *apiClient {
	return &apiClient{
		base:  base.String(),
		conns: newConns(base, maxIdle),
		runID: strconv.FormatUint(seed%(1<<32), 36),
	}
}

func (c *apiClient) close() { c.conns.close() }

// ready waits up to 10 seconds for GET /readyz to answer 200, so the benchmark
// may start together with a walletd that is still starting.
func (c *apiClient) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var last response
	for {
		r := c.do(ctx, http.MethodGet, "/readyz", "", nil)
		if r.ok() {
			return nil
		}
		if !r.canceled || last.outcome == "" {
			last = r
		}
		select {
		case <-ctx.Done():
			return errors.New(last.example())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// response is one answered (or failed) request.
type response struct {
	method, path, requestID string
	status                  int
	body                    []byte
	err                     error // no answer: the request could not be sent or read
	latency                 time.Duration
	canceled                bool   // the benchmark was interrupted: not a result
	outcome                 string // "" for success, else e.g. "400 INSUFFICIENT_FUNDS" or "transport"
}

func (r response) ok() bool { return r.outcome == "" && !r.canceled }

// fail marks a 2xx answer that is not what the protocol promises.
func (r *response) fail(why string) { r.outcome = fmt.Sprintf("%d %s", r.status, why) }

// decode reads a successful answer into out.
func (r *response) decode(out any) {
	if !r.ok() || out == nil {
		return
	}
	if err := json.Unmarshal(r.body, out); err != nil {
		r.fail("malformed answer")
	}
}

// example describes a failed request precisely enough to find it in walletd's log.
func (r response) example() string {
	if r.ok() {
		return ""
	}
	detail := fmt.Sprintf("%d %s", r.status, abbreviate(r.body, 300))
	if r.err != nil {
		detail = r.err.Error()
	}
	return fmt.Sprintf("%s %s (X-Request-Id %s): %s", r.method, r.path, r.requestID, detail)
}

// abbreviate cuts an answer to n bytes at most, never inside a character
// (walletd's messages are Russian).
func abbreviate(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) <= n {
		return s
	}
	// Back off to the start of the character at n; bytes before it stay, even
	// invalid ones (a proxy's binary answer).
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// do sends one request with an optional bearer token and JSON body.
func (c *apiClient) do(ctx context.Context, method, path, token string, in any) response {
	r := response{method: method, path: path, requestID: fmt.Sprintf("wb-%s-%d", c.runID, c.seq.Add(1))}
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			r.err, r.outcome = err, "client"
			return r
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		r.err, r.outcome = err, "client"
		return r
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Request-Id", r.requestID)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	r.status, r.body, err = c.conns.do(req, maxAnswer)
	r.latency = time.Since(start)
	switch {
	case err != nil && ctx.Err() != nil:
		r.err, r.canceled, r.outcome = err, true, "canceled"
	case err != nil:
		r.err, r.outcome = err, "transport"
	case r.status < 200 || r.status > 299:
		r.outcome = strings.TrimSpace(strconv.Itoa(r.status) + " " + errorCode(r.body))
	}
	return r
}

// errorCode is the protocol's `code` of an error answer ("" when there is none).
func errorCode(body []byte) string {
	var e struct {
		Code  string `json:"code"`
		OAuth string `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	if e.Code == "" {
		return e.OAuth
	}
	return e.Code
}

// partner is one partner of the benchmark with its TSPs and tokens.
type partner struct {
	id     string
	tsps   []string
	api    *apiClient
	tokens *tokenSource
}

// call sends a protocol request as the partner. After a 401 it gets a new
// access token and tries once more.
func (p *partner) call(ctx context.Context, method, path string, in, out any) response {
	for attempt := 0; ; attempt++ {
		token, err := p.tokens.get(ctx)
		if err != nil {
			r := response{method: method, path: apiPath + path, err: err, outcome: "token", canceled: ctx.Err() != nil}
			var te *tokenError
			if errors.As(err, &te) {
				r.outcome = "token " + te.outcome()
			}
			return r
		}
		r := p.api.do(ctx, method, apiPath+path, token, in)
		if r.status == http.StatusUnauthorized && attempt == 0 {
			p.tokens.invalidate(token)
			continue
		}
		r.decode(out)
		return r
	}
}

// tokenSource keeps a partner's access token, asking for a new one with the
// client credentials shortly before it expires or after it was refused.
type tokenSource struct {
	api                         *apiClient
	partnerID, clientID, secret string

	mu      sync.Mutex
	token   string
	renewAt time.Time
	issued  int
}

type tokenError struct {
	status      int
	code, descr string
}

func (e *tokenError) outcome() string {
	return strings.TrimSpace(fmt.Sprintf("%d %s", e.status, e.code))
}

func (e *tokenError) Error() string {
	return fmt.Sprintf("token endpoint answered %d %s %s", e.status, e.code, e.descr)
}

func (t *tokenSource) get(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && time.Now().Before(t.renewAt) {
		return t.token, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}, "partner_id": {t.partnerID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.api.base+apiPath+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Request-Id", fmt.Sprintf("wb-%s-%d", t.api.runID, t.api.seq.Add(1)))
	// RFC 6749 section 2.3.1: both parts are form-encoded before Base64.
	req.SetBasicAuth(url.QueryEscape(t.clientID), url.QueryEscape(t.secret))
	status, data, err := t.api.conns.do(req, maxAnswer)
	if err != nil {
		return "", err
	}
	var ans struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(data, &ans)
	if status != http.StatusOK || ans.AccessToken == "" {
		return "", &tokenError{status: status, code: ans.Error, descr: ans.Description}
	}
	ttl := time.Duration(ans.ExpiresIn) * time.Second
	// Renew a little early, so that no request carries a token that dies on the way.
	t.token, t.renewAt = ans.AccessToken, time.Now().Add(ttl-min(ttl/10, 30*time.Second))
	t.issued++
	return t.token, nil
}

// invalidate forgets token after a 401, unless another worker already replaced it.
func (t *tokenSource) invalidate(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token == token {
		t.token = ""
	}
}

func (t *tokenSource) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.issued
}
