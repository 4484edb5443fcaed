package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/app/apptest"
	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/webhook"
)

// ---- webhooks ----

const hookSecret = "whs_test_secret"

func eventBody(t *testing.T) []byte {
	t.Helper()
	return []byte(`{"eventId":"0190d4b7-9a8b-7c6d-8e5f-4a3b2c1d0e9f","type":"refill.succeeded","createdAt":"2024-07-10 14:00:03",` +
		`"walletId":"0190d4a2-5b1e-7c3a-9f21-4e8b6a7c1d20","operation":{"operationId":"0190d4a3-7a2b-7c10-b1d4-5e6f7a8b9c0d",` +
		`"operationType":"CREDIT","status":"SUCCESS","description":"Пополнение через СБП","operationDate":"2024-07-10 13:58:12",` +
		`"amount":1500.00,"formattedAmount":"+1\u00a0500,00\u00a0₽","tcp":null}}`)
}

func TestVerifyWebhook(t *testing.T) {
	body := eventBody(t)
	signedAt := time.Unix(1720609203, 0) // 2024-07-10 14:00:03 MSK
	now := signedAt.Add(30 * time.Second)
	valid := webhook.Sign(hookSecret, signedAt, body)
	v1 := strings.TrimPrefix(valid[strings.Index(valid, ",")+1:], "v1=")
	ts := "t=1720609203"
	other := webhook.Sign("another secret", signedAt, body)
	otherV1 := other[strings.Index(other, "v1="):]

	cases := []struct {
		name      string
		secret    string
		header    string
		body      []byte
		now       time.Time
		tolerance time.Duration
		want      error // nil: valid
	}{
		{"valid", hookSecret, valid, body, now, time.Minute, nil},
		{"valid, spaces after commas", hookSecret, ts + ", v1=" + v1, body, now, time.Minute, nil},
		{"valid, upper-case hex", hookSecret, ts + ",v1=" + strings.ToUpper(v1), body, now, time.Minute, nil},
		{"valid, default tolerance", hookSecret, valid, body, signedAt.Add(4 * time.Minute), 0, nil},
		{"valid, unknown scheme ignored", hookSecret, valid + ",v2=abc", body, now, time.Minute, nil},
		{"multiple v1, the second matches", hookSecret, ts + "," + otherV1 + ",v1=" + v1, body, now, time.Minute, nil},
		{"multiple v1, the first matches", hookSecret, valid + "," + otherV1, body, now, time.Minute, nil},
		{"multiple v1, one not hex", hookSecret, ts + ",v1=zz,v1=" + v1, body, now, time.Minute, nil},
		{"wrong secret", "another", valid, body, now, time.Minute, ErrWebhookSignature},
		{"multiple v1, none matches", hookSecret, ts + "," + otherV1 + "," + otherV1, body, now, time.Minute, ErrWebhookSignature},
		{"tampered body", hookSecret, valid, bytes.Replace(body, []byte("1500.00"), []byte("9500.00"), 1), now, time.Minute, ErrWebhookSignature},
		{"tampered timestamp", hookSecret, "t=1720609204,v1=" + v1, body, now, time.Minute, ErrWebhookSignature},
		{"truncated signature", hookSecret, ts + ",v1=" + v1[:63], body, now, time.Minute, ErrWebhookSignature},
		{"stale timestamp", hookSecret, valid, body, signedAt.Add(6 * time.Minute), 5 * time.Minute, ErrWebhookTimestamp},
		{"stale under default tolerance", hookSecret, valid, body, signedAt.Add(DefaultWebhookTolerance + time.Second), 0, ErrWebhookTimestamp},
		{"timestamp from the future", hookSecret, valid, body, signedAt.Add(-2 * time.Minute), time.Minute, ErrWebhookTimestamp},
		{"empty header", hookSecret, "", body, now, time.Minute, ErrWebhookHeader},
		{"no v1", hookSecret, ts, body, now, time.Minute, ErrWebhookHeader},
		{"no t", hookSecret, "v1=" + v1, body, now, time.Minute, ErrWebhookHeader},
		{"t not a number", hookSecret, "t=abc,v1=" + v1, body, now, time.Minute, ErrWebhookHeader},
		{"negative t", hookSecret, "t=-1720609203,v1=" + v1, body, now, time.Minute, ErrWebhookHeader},
		{"repeated t", hookSecret, ts + "," + ts + ",v1=" + v1, body, now, time.Minute, ErrWebhookHeader},
		{"part without =", hookSecret, ts + ",v1", body, now, time.Minute, ErrWebhookHeader},
		{"garbage", hookSecret, "sha256=deadbeef", body, now, time.Minute, ErrWebhookHeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := VerifyWebhook(tc.secret, tc.header, tc.body, tc.now, tc.tolerance)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if ev.Type != EventRefillSucceeded || ev.ID.String() != "0190d4b7-9a8b-7c6d-8e5f-4a3b2c1d0e9f" ||
				ev.CreatedAt.Unix() != 1720609203 || ev.Operation == nil || ev.Operation.Amount != 1500_00 ||
				ev.Operation.Status != StatusSuccess || ev.Operation.TSPID != nil ||
				ev.Operation.Date.Format(time.RFC3339) != "2024-07-10T13:58:12+03:00" {
				t.Fatalf("event = %+v, operation %+v", ev, ev.Operation)
			}
		})
	}

	t.Run("empty secret is refused", func(t *testing.T) {
		h := webhook.Sign("", signedAt, body)
		if _, err := VerifyWebhook("", h, body, now, time.Minute); err == nil {
			t.Fatal("accepted a notification with an empty secret")
		}
	})
	t.Run("signed garbage is a payload error", func(t *testing.T) {
		for _, b := range []string{`not json`, `{"type":"refill.succeeded"}`, `{"eventId":"x"}`} {
			h := webhook.Sign(hookSecret, signedAt, []byte(b))
			if _, err := VerifyWebhook(hookSecret, h, []byte(b), now, time.Minute); !errors.Is(err, ErrWebhookPayload) {
				t.Errorf("%s: err = %v", b, err)
			}
		}
	})
	t.Run("wallet.closed without operation", func(t *testing.T) {
		b := []byte(`{"eventId":"0190d4b7-9a8b-7c6d-8e5f-4a3b2c1d0e9f","type":"wallet.closed","createdAt":"2024-07-10 14:00:03","walletId":"0190d4a2-5b1e-7c3a-9f21-4e8b6a7c1d20","operation":null}`)
		ev, err := VerifyWebhook(hookSecret, webhook.Sign(hookSecret, signedAt, b), b, now, time.Minute)
		if err != nil || ev.Type != EventWalletClosed || ev.Operation != nil {
			t.Fatalf("event %+v, err %v", ev, err)
		}
	})
	t.Run("round trip", func(t *testing.T) {
		ev, err := VerifyWebhook(hookSecret, valid, body, now, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		again, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		var a, b map[string]any
		_ = json.Unmarshal(body, &a)
		_ = json.Unmarshal(again, &b)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("re-encoded event differs:\n%s\n%s", body, again)
		}
	})
}

func TestWebhookHandler(t *testing.T) {
	body := eventBody(t)
	var (
		mu   sync.Mutex
		seen []uuid.UUID
		fail atomic.Bool
	)
	h := WebhookHandler(hookSecret, func(ctx context.Context, ev WebhookEvent) error {
		if fail.Load() {
			return errors.New("database down")
		}
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, ev.ID)
		return nil
	})
	post := func(method, sig string, b []byte) int {
		req := httptest.NewRequest(method, "/hooks", bytes.NewReader(b))
		if sig != "" {
			req.Header.Set(WebhookSignatureHeader, sig)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	good := webhook.Sign(hookSecret, time.Now(), body)
	if code := post(http.MethodPost, good, body); code != http.StatusNoContent {
		t.Errorf("valid: %d", code)
	}
	if code := post(http.MethodPost, webhook.Sign("wrong", time.Now(), body), body); code != http.StatusBadRequest {
		t.Errorf("wrong secret: %d", code)
	}
	if code := post(http.MethodPost, "", body); code != http.StatusBadRequest {
		t.Errorf("no header: %d", code)
	}
	if code := post(http.MethodPost, webhook.Sign(hookSecret, time.Now().Add(-time.Hour), body), body); code != http.StatusBadRequest {
		t.Errorf("stale: %d", code)
	}
	if code := post(http.MethodGet, good, nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", code)
	}
	fail.Store(true)
	if code := post(http.MethodPost, good, body); code != http.StatusInternalServerError {
		t.Errorf("handler error: %d", code)
	}
	if len(seen) != 1 {
		t.Errorf("handled %d events, want 1", len(seen))
	}
}

// ---- transport: retries, idempotency, tokens ----

// fakeWalletd is a scripted walletd: a token endpoint that counts grants and
// an API handler supplied by the test.
type fakeWalletd struct {
	t      *testing.T
	srv    *httptest.Server
	creds  Credentials
	api    func(w http.ResponseWriter, r *http.Request, n int) // n: API request number, from 1
	tokens func(grant string, n int) (status int, body string) // nil: always a fresh pair

	mu       sync.Mutex
	grants   []string
	apiCalls int
	keys     []string // Idempotency-Key of each API request
	bearers  []string // Authorization of each API request
	issued   int
}

func newFake(t *testing.T) *fakeWalletd {
	f := &fakeWalletd{t: t, creds: Credentials{PartnerID: uuid.New(), ClientID: "wc_client id", ClientSecret: "wcs_sec:ret/+"}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeWalletd) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Request-Id", "req-"+r.Method)
	if r.URL.Path == BasePath+"/oauth/token" {
		f.token(w, r)
		return
	}
	f.mu.Lock()
	f.apiCalls++
	n := f.apiCalls
	f.keys = append(f.keys, r.Header.Get("Idempotency-Key"))
	f.bearers = append(f.bearers, r.Header.Get("Authorization"))
	f.mu.Unlock()
	f.api(w, r, n)
}

func (f *fakeWalletd) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	id, _ = url.QueryUnescape(id)
	secret, _ = url.QueryUnescape(secret)
	if err := r.ParseForm(); err != nil || !ok || id != f.creds.ClientID || secret != f.creds.ClientSecret {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"bad client"}`)
		return
	}
	grant := r.PostForm.Get("grant_type")
	switch grant {
	case "client_credentials":
		if r.PostForm.Get("partner_id") != f.creds.PartnerID.String() {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
	case "refresh_token":
		if !strings.HasPrefix(r.PostForm.Get("refresh_token"), "wrt_") {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_request"}`)
			return
		}
	}
	f.mu.Lock()
	f.grants = append(f.grants, grant)
	n := len(f.grants)
	f.mu.Unlock()
	if f.tokens != nil {
		if status, body := f.tokens(grant, n); status != 0 {
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
			return
		}
	}
	f.mu.Lock()
	f.issued++
	i := f.issued
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"wat_%d","token_type":"Bearer","expires_in":900,"refresh_token":"wrt_%d","refresh_expires_in":2592000}`, i, i)
}

func (f *fakeWalletd) client(opts ...Option) *Client {
	f.t.Helper()
	opts = append([]Option{WithBackoff(time.Millisecond)}, opts...)
	c, err := New(f.srv.URL, f.creds, opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fakeWalletd) grantLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.grants...)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

const (
	registered   = `{"walletId":"0190d4a2-5b1e-7c3a-9f21-4e8b6a7c1d20","identification":"PERSONALIZED"}`
	unavailable  = `{"code":"UNAVAILABLE","message":"Сервис временно недоступен","fieldErrors":{}}`
	unauthorized = `{"code":"UNAUTHORIZED","message":"Требуется авторизация","fieldErrors":{}}`
)

func TestRetry503ThenSuccessKeepsIdempotencyKey(t *testing.T) {
	f := newFake(t)
	var bodies []string
	f.api = func(w http.ResponseWriter, r *http.Request, n int) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		if r.URL.Path != BasePath+"/account/registration" || r.Method != http.MethodPost {
			t.Errorf("request %s %s", r.Method, r.URL.Path)
		}
		if n <= 2 {
			writeJSON(w, http.StatusServiceUnavailable, unavailable)
			return
		}
		writeJSON(w, http.StatusOK, registered)
	}
	c := f.client()
	res, err := c.Register(t.Context(), "9001234567", Personalized)
	if err != nil {
		t.Fatal(err)
	}
	if res.Identification != Personalized || res.WalletID.String() != "0190d4a2-5b1e-7c3a-9f21-4e8b6a7c1d20" {
		t.Fatalf("result %+v", res)
	}
	if len(f.keys) != 3 {
		t.Fatalf("%d attempts, want 3", len(f.keys))
	}
	if f.keys[0] == "" || f.keys[1] != f.keys[0] || f.keys[2] != f.keys[0] {
		t.Fatalf("Idempotency-Keys %q, want one key three times", f.keys)
	}
	if _, err := uuid.Parse(f.keys[0]); err != nil {
		t.Errorf("default key %q is not a UUID", f.keys[0])
	}
	for _, b := range bodies {
		if b != `{"phone":"9001234567","identification":1}` {
			t.Errorf("body %s", b)
		}
	}
	// A new call gets a new key.
	if _, err := c.Register(t.Context(), "9001234567", Personalized); err != nil {
		t.Fatal(err)
	}
	if f.keys[3] == f.keys[0] {
		t.Errorf("second call reused the key of the first")
	}
	if g := f.grantLog(); len(g) != 1 {
		t.Errorf("token requests %v, want one", g)
	}
}

func TestRetryStatusesAndLimits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		body     string
		retries  int
		attempts int // expected
		code     string
	}{
		{"400 is final", 400, `{"code":"VALIDATION_ERROR","message":"Некорректные параметры запроса","fieldErrors":{"phone":"должен состоять из 10 цифр"}}`, 3, 1, CodeValidation},
		{"404 is final", 404, `{"code":"WALLET_NOT_FOUND","message":"Кошелёк не найден","fieldErrors":{}}`, 3, 1, CodeWalletNotFound},
		{"409 is final", 409, `{"code":"IDEMPOTENCY_KEY_REUSED","message":"x","fieldErrors":{}}`, 3, 1, CodeIdempotencyKeyReused},
		{"500 is final", 500, `{"code":"INTERNAL_ERROR","message":"Внутренняя ошибка","fieldErrors":{}}`, 3, 1, CodeInternal},
		{"503 until retries run out", 503, unavailable, 3, 4, CodeUnavailable},
		{"502 without a body", 502, `<html>bad gateway</html>`, 2, 3, ""},
		{"504", 504, ``, 1, 2, ""},
		{"retries off", 503, unavailable, 0, 1, CodeUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.api = func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, tc.status, tc.body) }
			c := f.client(WithRetries(tc.retries))
			_, err := c.Register(t.Context(), "1", Elementary)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Status != tc.status || e.Code != tc.code || e.RequestID != "req-POST" {
				t.Errorf("error %+v", e)
			}
			if tc.code == "" && e.Message == "" {
				t.Errorf("no message for a body without the protocol's error")
			}
			if f.apiCalls != tc.attempts {
				t.Errorf("%d attempts, want %d", f.apiCalls, tc.attempts)
			}
			if tc.code == CodeValidation && (e.FieldErrors["phone"] == "" || !strings.Contains(e.Error(), "phone: должен")) {
				t.Errorf("field errors lost: %v", e)
			}
		})
	}
}

func TestRetryNetworkError(t *testing.T) {
	f := newFake(t)
	f.api = func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			// Drop the connection without an answer.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		writeJSON(w, http.StatusOK, `{"banks":[{"bankIdentifier":"100000000111","name":"Сбербанк","originalName":"ПАО Сбербанк","bic":"044525225","logoUrl":"https://x/1.png"}]}`)
	}
	banks, err := f.client().Banks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(banks) != 1 || banks[0].Identifier != "100000000111" || banks[0].BIC != "044525225" {
		t.Fatalf("banks %+v", banks)
	}
	if f.apiCalls != 2 || f.keys[0] != "" {
		t.Errorf("%d attempts, GET key %q", f.apiCalls, f.keys[0])
	}

	// With the service gone the call ends with a network error after the retries.
	f.srv.Close()
	c := f.client(WithRetries(2))
	if _, err := c.Banks(t.Context()); err == nil || errors.As(err, new(*Error)) {
		t.Fatalf("closed server: %v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	f := newFake(t)
	f.api = func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "3")
			writeJSON(w, http.StatusTooManyRequests, `{"code":"RATE_LIMITED","message":"Слишком много запросов","fieldErrors":{}}`)
		case 2:
			w.Header().Set("Retry-After", "7200")
			writeJSON(w, http.StatusTooManyRequests, `{"code":"RATE_LIMITED","message":"Слишком много запросов","fieldErrors":{}}`)
		default:
			writeJSON(w, http.StatusOK, registered)
		}
	}
	c := f.client()
	var waits []time.Duration
	c.sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	_, err := c.Register(t.Context(), "9001234567", Personalized)
	// The first 429 is waited out (3 s, not the 1 ms backoff); the second asks
	// for two hours, which ends the call with its error.
	if !IsCode(err, CodeRateLimited) {
		t.Fatalf("err = %v", err)
	}
	if len(waits) != 1 || waits[0] != 3*time.Second || f.apiCalls != 2 {
		t.Fatalf("waits %v after %d attempts", waits, f.apiCalls)
	}
}

func TestRetryRespectsContext(t *testing.T) {
	f := newFake(t)
	f.api = func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 503, unavailable) }
	c := f.client(WithBackoff(time.Hour))
	// Waiting an hour would outlive the deadline: the 503 comes back at once.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Info(ctx, uuid.New())
	if !IsCode(err, CodeUnavailable) || time.Since(start) > 2*time.Second || f.apiCalls != 1 {
		t.Fatalf("err %v after %v and %d attempts", err, time.Since(start), f.apiCalls)
	}
	// A cancelled context stops the backoff.
	ctx, cancel = context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := c.Info(ctx, uuid.New()); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestPause(t *testing.T) {
	c := &Client{backoff: 100 * time.Millisecond}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 20: maxBackoff} {
		for range 50 {
			if d := c.pause(n); d < want/2 || d > want {
				t.Fatalf("pause(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

func TestTokenRefreshAfter401(t *testing.T) {
	f := newFake(t)
	f.api = func(w http.ResponseWriter, r *http.Request, n int) {
		if r.Header.Get("Authorization") == "Bearer wat_1" {
			writeJSON(w, http.StatusUnauthorized, unauthorized)
			return
		}
		writeJSON(w, http.StatusOK, registered)
	}
	c := f.client(WithIdempotencyKeys(func() string { return "fixed-key" }))
	if _, err := c.Register(t.Context(), "9001234567", Personalized); err != nil {
		t.Fatal(err)
	}
	if g := f.grantLog(); fmt.Sprint(g) != "[client_credentials refresh_token]" {
		t.Errorf("grants %v", g)
	}
	if fmt.Sprint(f.bearers) != "[Bearer wat_1 Bearer wat_2]" || fmt.Sprint(f.keys) != "[fixed-key fixed-key]" {
		t.Errorf("bearers %v keys %v", f.bearers, f.keys)
	}
	// The new token is cached.
	if _, err := c.Register(t.Context(), "9001234567", Personalized); err != nil {
		t.Fatal(err)
	}
	if len(f.grantLog()) != 2 {
		t.Errorf("grants %v", f.grantLog())
	}
}

func TestTokenInvalidGrantFallsBackToClientCredentials(t *testing.T) {
	f := newFake(t)
	f.tokens = func(grant string, n int) (int, string) {
		if grant == "refresh_token" {
			return http.StatusBadRequest, `{"error":"invalid_grant","error_description":"refresh token was already used"}`
		}
		return 0, ""
	}
	f.api = func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			writeJSON(w, http.StatusUnauthorized, unauthorized)
			return
		}
		writeJSON(w, http.StatusOK, registered)
	}
	c := f.client()
	if _, err := c.Register(t.Context(), "9001234567", Personalized); err != nil {
		t.Fatal(err)
	}
	if g := f.grantLog(); fmt.Sprint(g) != "[client_credentials refresh_token client_credentials]" {
		t.Errorf("grants %v", g)
	}
	if fmt.Sprint(f.bearers) != "[Bearer wat_1 Bearer wat_2]" {
		t.Errorf("bearers %v", f.bearers)
	}
}

func TestTokenOnly1RetryOn401(t *testing.T) {
	f := newFake(t)
	f.api = func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, http.StatusUnauthorized, unauthorized)
	}
	_, err := f.client().Info(t.Context(), uuid.New())
	if !IsCode(err, CodeUnauthorized) || f.apiCalls != 2 {
		t.Fatalf("err %v after %d calls", err, f.apiCalls)
	}
}

func TestTokenRefreshBeforeExpiry(t *testing.T) {
	f := newFake(t)
	f.api = func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, http.StatusOK, registered) }
	c := f.client()
	now := time.Now()
	var mu sync.Mutex
	c.tokens.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	call := func() {
		t.Helper()
		if _, err := c.Register(t.Context(), "9001234567", Personalized); err != nil {
			t.Fatal(err)
		}
	}
	call()
	advance(14 * time.Minute) // 15 min lifetime, renewed 30 s early
	call()
	advance(29 * time.Second)
	call()
	if g := f.grantLog(); len(g) != 1 {
		t.Fatalf("grants %v before the renewal point", g)
	}
	advance(2 * time.Second)
	call()
	if g := f.grantLog(); fmt.Sprint(g) != "[client_credentials refresh_token]" {
		t.Fatalf("grants %v", g)
	}
	// Past the refresh token's life: client credentials again.
	advance(31 * 24 * time.Hour)
	call()
	if g := f.grantLog(); fmt.Sprint(g) != "[client_credentials refresh_token client_credentials]" {
		t.Fatalf("grants %v", g)
	}
	if f.bearers[len(f.bearers)-1] != "Bearer wat_3" {
		t.Errorf("bearers %v", f.bearers)
	}
}

func TestTokenRefreshFailureUsesLiveToken(t *testing.T) {
	f := newFake(t)
	f.api = func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, http.StatusOK, registered) }
	f.tokens = func(grant string, n int) (int, string) {
		if grant == "refresh_token" {
			return http.StatusServiceUnavailable, unavailable
		}
		return 0, ""
	}
	c := f.client(WithRetries(0))
	now := time.Now()
	c.tokens.now = func() time.Time { return now }
	if _, err := c.Info(t.Context(), uuid.New()); err != nil {
		t.Fatal(err)
	}
	now = now.Add(14*time.Minute + 45*time.Second) // renewal due, token still alive
	if _, err := c.Info(t.Context(), uuid.New()); err != nil {
		t.Fatalf("refresh failed while the token lives: %v", err)
	}
	now = now.Add(time.Minute) // expired: the refresh failure is the answer
	if _, err := c.Info(t.Context(), uuid.New()); !IsCode(err, CodeUnavailable) {
		t.Fatalf("err = %v", err)
	}
}

func TestTokenConcurrentCallersShareOneRequest(t *testing.T) {
	f := newFake(t)
	f.api = func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, http.StatusOK, registered) }
	f.tokens = func(string, int) (int, string) { time.Sleep(20 * time.Millisecond); return 0, "" }
	c := f.client()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := c.Info(t.Context(), uuid.New())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if g := f.grantLog(); len(g) != 1 {
		t.Fatalf("grants %v, want one", g)
	}
}

func TestOAuthErrors(t *testing.T) {
	f := newFake(t)
	f.api = func(w http.ResponseWriter, r *http.Request, n int) { t.Error("API called without a token") }
	creds := f.creds
	creds.ClientSecret = "wrong"
	c, _ := New(f.srv.URL, creds)
	_, err := c.Banks(t.Context())
	var oe *OAuthError
	if !errors.As(err, &oe) || oe.Status != 401 || oe.Code != OAuthInvalidClient || oe.Description != "bad client" {
		t.Fatalf("err = %#v", err)
	}
	if !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("Error() = %q", err.Error())
	}
	// A 503 of the token endpoint is retried, then reported as *Error.
	f.tokens = func(string, int) (int, string) { return 503, unavailable }
	_, err = f.client(WithRetries(1)).Banks(t.Context())
	if !IsCode(err, CodeUnavailable) || len(f.grantLog()) != 2 {
		t.Fatalf("err = %v, grants %v", err, f.grantLog())
	}
}

// ---- against a real walletd ----

func TestTokensAgainstWalletd(t *testing.T) {
	t.Parallel()
	srv, err := apptest.Start(t.Context(), apptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := New(srv.URL, Credentials{PartnerID: srv.Partner.PartnerID, ClientID: srv.Partner.ClientID, ClientSecret: srv.Partner.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var mu sync.Mutex
	c.tokens.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ctx := t.Context()
	if _, err := c.Banks(ctx); err != nil {
		t.Fatal(err)
	}
	snapshot := func() (string, string) {
		c.tokens.mu.Lock()
		defer c.tokens.mu.Unlock()
		return c.tokens.access, c.tokens.refresh
	}
	access1, refresh1 := snapshot()

	// Renewal with the refresh_token grant: a new pair.
	mu.Lock()
	now = now.Add(14*time.Minute + 40*time.Second)
	mu.Unlock()
	if _, err := c.Banks(ctx); err != nil {
		t.Fatal(err)
	}
	access2, refresh2 := snapshot()
	if access2 == access1 || refresh2 == refresh1 || access2 == "" {
		t.Fatal("the pair was not renewed")
	}

	// Someone else exchanges the current refresh token first; the client's
	// own exchange is then reuse: invalid_grant, the whole grant revoked (so
	// the access token answers 401), and the client asks again with its
	// credentials.
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh2}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+BasePath+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(srv.Partner.ClientID), url.QueryEscape(srv.Partner.ClientSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("out-of-band refresh: %d", resp.StatusCode)
	}
	mu.Lock()
	now = now.Add(14*time.Minute + 40*time.Second)
	mu.Unlock()
	if _, err := c.Banks(ctx); err != nil {
		t.Fatalf("after reuse detection: %v", err)
	}
	access3, refresh3 := snapshot()
	if access3 == access2 || refresh3 == refresh2 {
		t.Fatal("no new pair after invalid_grant")
	}

	// A revoked access token answers 401: the client renews and carries on.
	form = url.Values{"token": {access3}}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+BasePath+"/oauth/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(srv.Partner.ClientID), url.QueryEscape(srv.Partner.ClientSecret))
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if _, err := c.Banks(ctx); err != nil {
		t.Fatalf("after revocation: %v", err)
	}
	if access4, _ := snapshot(); access4 == access3 {
		t.Fatal("the revoked token is still cached")
	}
}

// ---- pieces ----

func TestNew(t *testing.T) {
	creds := Credentials{PartnerID: uuid.New(), ClientID: "a", ClientSecret: "b"}
	for _, bad := range []string{"", "localhost:8080", "ftp://host", "http://", "http://host?x=1", "http://u:p@host"} {
		if _, err := New(bad, creds); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	if _, err := New("http://host", Credentials{ClientID: "a", ClientSecret: "b"}); err == nil {
		t.Error("accepted credentials without a partner")
	}
	for base, want := range map[string]string{
		"http://host:8080":                    "http://host:8080/api/wallet/v1/account/x",
		"http://host:8080/":                   "http://host:8080/api/wallet/v1/account/x",
		"https://host/api/wallet/v1":          "https://host/api/wallet/v1/account/x",
		"https://host/api/wallet/v1/":         "https://host/api/wallet/v1/account/x",
		"https://host/prefix":                 "https://host/prefix/api/wallet/v1/account/x",
		" https://host/prefix/api/wallet/v1 ": "https://host/prefix/api/wallet/v1/account/x",
	} {
		c, err := New(base, creds)
		if err != nil {
			t.Fatalf("New(%q): %v", base, err)
		}
		if got := c.endpoint("/account/x", nil); got != want {
			t.Errorf("New(%q): endpoint %s, want %s", base, got, want)
		}
	}
}

func TestLimitsUpdateJSON(t *testing.T) {
	for _, tc := range []struct {
		u    LimitsUpdate
		want string
	}{
		{LimitsUpdate{}, `{}`},
		{LimitsUpdate{BalanceLimit: ClearLimit()}, `{"balanceLimit":null}`},
		{LimitsUpdate{BalanceLimit: SetLimit(1000_50)}, `{"balanceLimit":1000.50}`},
		{LimitsUpdate{BalanceLimit: SetLimit(0)}, `{"balanceLimit":0.00}`},
		{LimitsUpdate{OperationLimits: map[OperationType]OperationLimitUpdate{
			OperationPayment: {OneTimeLimit: SetLimit(5000_00), MonthLimit: ClearLimit()},
			OperationCredit:  {Enabled: Bool(false)},
			OperationDebit:   {},
		}}, `{"operationLimits":{"CREDIT":{"enabled":false},"DEBIT":{},"PAYMENT":{"monthLimit":null,"oneTimeLimit":5000.00}}}`},
	} {
		got, err := json.Marshal(tc.u)
		if err != nil || string(got) != tc.want {
			t.Errorf("Marshal = %s, %v; want %s", got, err, tc.want)
		}
	}
	var l LimitChange
	if !l.IsAbsent() || l.IsClear() {
		t.Error("zero LimitChange is not absent")
	}
	if v, ok := SetLimit(7).Value(); !ok || v != 7 {
		t.Error("SetLimit value")
	}
	if !ClearLimit().IsClear() {
		t.Error("ClearLimit")
	}
}

func TestReportQueryValues(t *testing.T) {
	from := time.Date(2024, 7, 1, 21, 0, 0, 0, time.UTC) // 2024-07-02 00:00:00 in Moscow
	to := time.Date(2024, 7, 31, 23, 59, 59, 999, Moscow)
	a, b := money.Amount(100_00), money.Amount(250_50)
	q := ReportQuery{From: from, To: to, Type: OperationPayment, AmountFrom: &a, AmountTo: &b, Page: 2, Size: 50}
	want := "amountFrom=100.00&amountTo=250.50&dateFrom=2024-07-02+00%3A00%3A00&dateTo=2024-07-31+23%3A59%3A59&operationType=PAYMENT&page=2&size=50"
	if got := q.values().Encode(); got != want {
		t.Errorf("values = %s\nwant %s", got, want)
	}
	if got := (ReportQuery{}).values().Encode(); got != "" {
		t.Errorf("empty query = %q", got)
	}
}

func TestIdentificationJSON(t *testing.T) {
	var r RegisterResult
	if err := json.Unmarshal([]byte(`{"walletId":"0190d4a2-5b1e-7c3a-9f21-4e8b6a7c1d20","identification":"IDENTIFIED"}`), &r); err != nil || r.Identification != Identified {
		t.Fatalf("%+v %v", r, err)
	}
	var l Identification
	if err := json.Unmarshal([]byte(`1`), &l); err != nil || l != Personalized {
		t.Fatalf("%v %v", l, err)
	}
	if err := json.Unmarshal([]byte(`"SUPER"`), &l); err == nil {
		t.Fatal("accepted an unknown level")
	}
	if b, _ := json.Marshal(Elementary); string(b) != `"ELEMENTARY"` {
		t.Fatalf("marshal %s", b)
	}
	if Identification(7).String() != "Identification(7)" || Identification(7).Valid() {
		t.Fatal("invalid level")
	}
}

func TestErrorText(t *testing.T) {
	e := apiError(answer{status: 400, requestID: "r1", body: []byte(`{"code":"LIMIT_EXCEEDED","message":"Превышен лимит","fieldErrors":{"amount":"превышен месячный лимит PAYMENT"},"details":{"limit":"PAYMENT.monthLimit","value":40000.00,"used":28000.00,"available":12000.00,"resetsAt":"2024-08-01 00:00:00"}}`)})
	want := "walletd: LIMIT_EXCEEDED (400): Превышен лимит [amount: превышен месячный лимит PAYMENT] (PAYMENT.monthLimit: value 40000.00, used 28000.00, available 12000.00) request r1"
	if e.Error() != want {
		t.Errorf("Error() = %s\nwant      %s", e.Error(), want)
	}
	if e.Details.ResetsAt.Format(time.RFC3339) != "2024-08-01T00:00:00+03:00" {
		t.Errorf("resetsAt %v", e.Details.ResetsAt)
	}
	wrapped := fmt.Errorf("paying: %w", e)
	if !IsCode(wrapped, CodeLimitExceeded) || IsCode(wrapped, CodeValidation) || ErrorCode(wrapped) != CodeLimitExceeded || ErrorCode(errors.New("x")) != "" {
		t.Error("IsCode / ErrorCode")
	}
	plain := apiError(answer{status: 502, body: []byte("<html>Bad Gateway</html>")})
	if plain.Code != "" || plain.Error() != "walletd: HTTP 502: <html>Bad Gateway</html>" {
		t.Errorf("non-JSON error: %s", plain.Error())
	}
}

func TestSandboxLinks(t *testing.T) {
	var hits []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits = append(hits, r.Method+" "+r.URL.Path+" auth="+r.Header.Get("Authorization"))
		writeJSON(w, 200, `{"qrcId":"AD10006M2K8R7TQ4J1P9VC5B3XNFHG0E","operationId":"0190d4a3-7a2b-7c10-b1d4-5e6f7a8b9c0d","status":"SUCCESS"}`)
	}))
	defer srv.Close()
	c, _ := New("http://unused.invalid", Credentials{PartnerID: uuid.New(), ClientID: "a", ClientSecret: "b"})
	res, err := c.SandboxConfirm(t.Context(), srv.URL+"/sandbox/sbp/AD10006M2K8R7TQ4J1P9VC5B3XNFHG0E?type=02&sum=150000&cur=RUB")
	if err != nil || res.Status != StatusSuccess || res.QRCID != "AD10006M2K8R7TQ4J1P9VC5B3XNFHG0E" {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := c.SandboxDecline(t.Context(), srv.URL+"/sandbox/sbp/AD10006M2K8R7TQ4J1P9VC5B3XNFHG0E"); err != nil {
		t.Fatal(err)
	}
	want := "[POST /sandbox/sbp/AD10006M2K8R7TQ4J1P9VC5B3XNFHG0E/confirm auth= POST /sandbox/sbp/AD10006M2K8R7TQ4J1P9VC5B3XNFHG0E/decline auth=]"
	if fmt.Sprint(hits) != want {
		t.Errorf("requests %v", hits)
	}
	for _, bad := range []string{"", "not a url", "https://qr.nspk.ru/AD10006M2K8R7TQ4J1P9VC5B3XNFHG0E", srv.URL + "/sandbox/sbp/short", srv.URL + "/sandbox/sbp/AD10006M2K8R7TQ4J1P9VC5B3XNFHG0E/confirm"} {
		if _, err := c.SandboxConfirm(t.Context(), bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestOptionsHTTPClientAndUserAgent(t *testing.T) {
	f := newFake(t)
	var agents []string
	f.api = func(w http.ResponseWriter, r *http.Request, n int) {
		agents = append(agents, r.Header.Get("User-Agent"))
		writeJSON(w, http.StatusOK, registered)
	}
	tr := &countingTransport{}
	c := f.client(WithHTTPClient(&http.Client{Transport: tr}), WithUserAgent("partner-app/2.1"))
	if _, err := c.Register(t.Context(), "9001234567", Personalized); err != nil {
		t.Fatal(err)
	}
	if tr.n.Load() != 2 || fmt.Sprint(agents) != "[partner-app/2.1]" {
		t.Fatalf("transport used %d times, agents %v", tr.n.Load(), agents)
	}
	// Defaults.
	if _, err := f.client().Register(t.Context(), "9001234567", Personalized); err != nil {
		t.Fatal(err)
	}
	if agents[1] != DefaultUserAgent {
		t.Fatalf("default agent %q", agents[1])
	}
}
