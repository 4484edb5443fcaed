package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// BasePath is the path of the partner API under the service's origin.
const BasePath = "/api/wallet/v1"

// Defaults of the options.
const (
	DefaultRetries   = 3
	DefaultBackoff   = 200 * time.Millisecond
	DefaultTimeout   = 30 * time.Second // per attempt, of the default http.Client
	DefaultUserAgent = "walletd-go-client/1"
)

const (
	// maxBackoff bounds one pause between attempts computed from the backoff.
	maxBackoff = 10 * time.Second
	// maxRetryAfter is the longest Retry-After the client waits out by itself;
	// a longer one ends the call with the answer's error.
	maxRetryAfter = time.Minute
	// maxAnswer bounds how much of an answer is read.
	maxAnswer = 8 << 20
)

// Credentials identify the partner's OAuth client (walletd partner create prints them).
type Credentials struct {
	PartnerID    uuid.UUID
	ClientID     string
	ClientSecret string
}

// Client calls one walletd for one partner. It is safe for concurrent use;
// create one and share it.
type Client struct {
	origin    *url.URL // scheme://host[:port] plus any prefix before BasePath
	creds     Credentials
	hc        *http.Client
	retries   int
	backoff   time.Duration
	newKey    func() string
	userAgent string
	sleep     func(ctx context.Context, d time.Duration) error
	tokens    *tokenSource
}

// Option changes a Client's defaults.
type Option func(*Client)

// WithHTTPClient sets the http.Client used for every request (default: one
// with a 30 s timeout per attempt). Its Transport may add TLS settings,
// proxies or instrumentation.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithRetries sets how many times a failed attempt is repeated (default 3,
// so at most 4 attempts); 0 turns retries off. See the package doc for what
// is retried.
func WithRetries(n int) Option {
	return func(c *Client) { c.retries = max(n, 0) }
}

// WithBackoff sets the base pause between attempts (default 200 ms). The
// pause before retry n (from 1) is a random duration in [d/2, d] with
// d = base·2^(n-1), at most 10 s.
func WithBackoff(base time.Duration) Option {
	return func(c *Client) {
		if base > 0 {
			c.backoff = base
		}
	}
}

// WithIdempotencyKeys sets the generator of Idempotency-Key values, one per
// POST call (default: a random UUID v4). Keys must be 1-255 printable ASCII
// characters and unique per intended operation.
func WithIdempotencyKeys(next func() string) Option {
	return func(c *Client) {
		if next != nil {
			c.newKey = next
		}
	}
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return func(c *Client) {
		if ua != "" {
			c.userAgent = ua
		}
	}
}

// New returns a client of the walletd at baseURL, the service's origin such as
// "http://localhost:8080" (a URL that already ends in /api/wallet/v1 is
// accepted too). No request is made until the first call.
func New(baseURL string, creds Credentials, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil {
		return nil, fmt.Errorf("walletd client: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("walletd client: base URL %q: need http(s)://host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("walletd client: base URL %q: no query, fragment or user info allowed", baseURL)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), BasePath)
	u.RawPath = ""
	if creds.PartnerID == uuid.Nil || creds.ClientID == "" || creds.ClientSecret == "" {
		return nil, errors.New("walletd client: credentials need PartnerID, ClientID and ClientSecret")
	}
	c := &Client{
		origin:    u,
		creds:     creds,
		hc:        &http.Client{Timeout: DefaultTimeout},
		retries:   DefaultRetries,
		backoff:   DefaultBackoff,
		newKey:    uuid.NewString,
		userAgent: DefaultUserAgent,
		sleep:     sleepCtx,
	}
	for _, o := range opts {
		o(c)
	}
	c.tokens = &tokenSource{c: c, now: time.Now, sem: make(chan struct{}, 1)}
	return c, nil
}

// endpoint is the absolute URL of an API path (which starts with "/").
func (c *Client) endpoint(path string, query url.Values) string {
	u := *c.origin
	u.Path += BasePath + path
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	return u.String()
}

// exchange is one logical request: everything needed to send it again.
type exchange struct {
	method  string
	url     string
	body    []byte // nil: no body
	ctype   string // Content-Type of body
	idemKey string // Idempotency-Key, the same on every attempt
	bearer  string // Authorization: Bearer value; "" for none
	basic   [2]string
}

// answer is what came back from the last attempt.
type answer struct {
	status    int
	header    http.Header
	body      []byte
	requestID string
}

// send runs an exchange with the retry policy: network errors, 502, 503, 504
// and 429 are tried again, up to c.retries times, with backoff and jitter (and
// at least Retry-After when the answer has one). The last answer is returned
// whatever its status; err is set only when no answer came back.
func (c *Client) send(ctx context.Context, ex *exchange) (answer, error) {
	for attempt := 0; ; attempt++ {
		ans, err := c.attempt(ctx, ex)
		if err != nil && ctx.Err() != nil {
			// The caller gave up; the error wraps context.Canceled or DeadlineExceeded.
			return answer{}, fmt.Errorf("walletd client: %s %s: %w", ex.method, redact(ex.url), err)
		}
		retryable := err != nil || retryableStatus(ans.status)
		if !retryable || attempt >= c.retries {
			if err != nil {
				return answer{}, fmt.Errorf("walletd client: %s %s: %w", ex.method, redact(ex.url), err)
			}
			return ans, nil
		}
		wait := c.pause(attempt + 1)
		if err == nil {
			if ra, ok := retryAfter(ans.header, time.Now()); ok {
				if ra > maxRetryAfter {
					return ans, nil
				}
				wait = max(wait, ra)
			}
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			// Waiting would outlive the caller's deadline: report what we have.
			if err != nil {
				return answer{}, fmt.Errorf("walletd client: %s %s: %w", ex.method, redact(ex.url), err)
			}
			return ans, nil
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return answer{}, serr
		}
	}
}

// attempt sends the exchange once and reads the whole answer.
func (c *Client) attempt(ctx context.Context, ex *exchange) (answer, error) {
	var body io.Reader
	if ex.body != nil {
		body = bytes.NewReader(ex.body)
	}
	req, err := http.NewRequestWithContext(ctx, ex.method, ex.url, body)
	if err != nil {
		return answer{}, err
	}
	h := req.Header
	h.Set("Accept", "application/json")
	h.Set("User-Agent", c.userAgent)
	if ex.body != nil {
		h.Set("Content-Type", ex.ctype)
	}
	if ex.idemKey != "" {
		h.Set("Idempotency-Key", ex.idemKey)
	}
	if ex.bearer != "" {
		h.Set("Authorization", "Bearer "+ex.bearer)
	}
	if ex.basic[0] != "" {
		// RFC 6749 section 2.3.1: both parts are form-encoded before Base64.
		req.SetBasicAuth(url.QueryEscape(ex.basic[0]), url.QueryEscape(ex.basic[1]))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: data, requestID: resp.Header.Get("X-Request-Id")}, nil
}

func retryableStatus(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// pause is the backoff before retry n (from 1): random in [d/2, d], d = base·2^(n-1) ≤ maxBackoff.
func (c *Client) pause(n int) time.Duration {
	d := c.backoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	half := d / 2
	return half + rand.N(half+1) //nolint:gosec // jitter, not security
}

// retryAfter reads a Retry-After header: delta seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// redact drops the query of a URL for error texts.
func redact(raw string) string {
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		return raw[:i]
	}
	return raw
}

// idemKeyCtx carries a caller-chosen Idempotency-Key.
type idemKeyCtx struct{}

// ContextWithIdempotencyKey returns a context that makes the next POST call
// made with it send key as its Idempotency-Key instead of a generated one.
// Use it to repeat a call across process restarts: store the key with the
// intended operation before the first try, and send the same key again; the
// service answers the first result and moves no money twice.
func ContextWithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idemKeyCtx{}, key)
}

func (c *Client) idempotencyKey(ctx context.Context) string {
	if k, ok := ctx.Value(idemKeyCtx{}).(string); ok && k != "" {
		return k
	}
	return c.newKey()
}

// call makes an authorised API request and decodes a 2xx answer into out
// (when out is not nil). POST bodies are JSON; in is marshalled once, and the
// same bytes and Idempotency-Key go out on every attempt. A 401 drops the
// access token and the call is tried once more with a fresh one.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	ex := &exchange{method: method, url: c.endpoint(path, query)}
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("walletd client: encode %s %s: %w", method, path, err)
		}
		ex.body, ex.ctype = data, "application/json"
	}
	if method == http.MethodPost {
		ex.idemKey = c.idempotencyKey(ctx)
	}
	for reauth := false; ; reauth = true {
		tok, err := c.tokens.token(ctx)
		if err != nil {
			return err
		}
		ex.bearer = tok
		ans, err := c.send(ctx, ex)
		if err != nil {
			return err
		}
		if ans.status == http.StatusUnauthorized && !reauth {
			c.tokens.invalidate(tok)
			continue
		}
		return decodeAnswer(ans, method, path, out)
	}
}

// decodeAnswer turns a 2xx answer into out and anything else into *Error.
func decodeAnswer(ans answer, method, path string, out any) error {
	if ans.status < 200 || ans.status > 299 {
		return apiError(ans)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(ans.body, out); err != nil {
		return fmt.Errorf("walletd client: decode answer of %s %s (request %s): %w", method, path, ans.requestID, err)
	}
	return nil
}
