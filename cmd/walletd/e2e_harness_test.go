package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/perspektiva/walletd/api"
	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/store/storetest"
)

// The end-to-end harness: the real program (run) serving on a real port over a
// fresh database of each engine, called over HTTP the way a partner calls it.
// Every answer is checked against the OpenAPI document as well.

const apiBase = "/api/wallet/v1"

// validator is shared by every test; it is safe for concurrent use.
var validator = sync.OnceValues(api.NewValidator)

// testPartner is what `walletd partner create` prints, plus the TSP made for it.
type testPartner struct {
	PartnerID     string `json:"partnerId"`
	ClientID      string `json:"clientId"`
	ClientSecret  string `json:"clientSecret"`
	WebhookSecret string `json:"webhookSecret"`
	TSPID         string `json:"-"`
}

// testServer is a running `walletd serve` with two partners.
type testServer struct {
	URL    string
	DSN    string
	A, B   *testPartner
	client *http.Client
	getenv func(string) string
	logs   *syncBuffer // what serve wrote to stderr
	out    *syncBuffer // what serve printed on stdout (the demo credentials of a new database)

	mu      sync.Mutex
	secrets []string // every credential and token seen, which the logs must never contain
}

// syncBuffer is a bytes.Buffer that several goroutines may write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv is the environment a test gives run: only the variables it names, so
// the real environment of the machine never leaks in.
func testEnv(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

// runCmd runs one command of the program and returns what it printed.
func runCmd(t *testing.T, getenv func(string) string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	err = run(ctx, args, getenv, &out, &errOut)
	return out.String(), errOut.String(), err
}

// createPartner runs `partner create` and `tsp create` for a new partner.
func createPartner(t *testing.T, dsn string, getenv func(string) string, name string) *testPartner {
	t.Helper()
	out, errOut, err := runCmd(t, getenv, "partner", "create", "--db", dsn, "--name", name)
	if err != nil {
		t.Fatalf("partner create: %v\n%s", err, errOut)
	}
	var p testPartner
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("partner create printed %q: %v", out, err)
	}
	if p.PartnerID == "" || p.ClientID == "" || p.ClientSecret == "" || p.WebhookSecret == "" {
		t.Fatalf("partner create printed incomplete credentials: %s", out)
	}
	out, errOut, err = runCmd(t, getenv, "tsp", "create", "--db", dsn, "--partner", p.PartnerID, "--name", "ТСП "+name)
	if err != nil {
		t.Fatalf("tsp create: %v\n%s", err, errOut)
	}
	var tsp struct {
		TSPID string `json:"tspId"`
	}
	if err := json.Unmarshal([]byte(out), &tsp); err != nil || tsp.TSPID == "" {
		t.Fatalf("tsp create printed %q: %v", out, err)
	}
	p.TSPID = tsp.TSPID
	return &p
}

// freePort reserves a free local port and releases it for the server to take.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("reserve a port: %v", err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if err := ln.Close(); err != nil {
		t.Fatalf("release port: %v", err)
	}
	return port
}

// startServer starts `walletd serve` on a fresh database of engine with partners
// A and B (each with a TSP). It stops when the test ends, and the stop must be clean.
func startServer(t *testing.T, engine storetest.Engine) *testServer {
	t.Helper()
	return startServerEnv(t, engine, nil)
}

// startServerEnv is startServer with environment variables for the program.
func startServerEnv(t *testing.T, engine storetest.Engine, env map[string]string) *testServer {
	t.Helper()
	dsn := engine.DSN(t)
	s := &testServer{DSN: dsn, getenv: testEnv(sandboxEnv(dsn, env)), logs: &syncBuffer{}}
	s.A = createPartner(t, s.DSN, s.getenv, "A")
	s.B = createPartner(t, s.DSN, s.getenv, "B")
	for _, p := range []*testPartner{s.A, s.B} {
		s.remember(p.ClientSecret, p.WebhookSecret)
	}
	s.launch(t)
	return s
}

// sandboxEnv is env with WALLET_SANDBOX=true on PostgreSQL, unless env sets
// it: there the sandbox is off by default (a production setup), and the
// harness's servers top wallets up through it. On SQLite it is on by default.
func sandboxEnv(dsn string, env map[string]string) map[string]string {
	if _, set := env["WALLET_SANDBOX"]; set || !store.IsPostgres(dsn) {
		return env
	}
	out := map[string]string{"WALLET_SANDBOX": "true"}
	maps.Copy(out, env)
	return out
}

// launch starts `walletd serve` for s on a free port, with s.DSN and s.getenv,
// and returns a stop that is also run when the test ends (once, cleanly).
func (s *testServer) launch(t *testing.T) (stop func()) {
	t.Helper()
	s.client = &http.Client{
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		Timeout:   20 * time.Second,
		// A partner must get its answer, not a redirect to it: show redirects as they are.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if s.out == nil {
		s.out = &syncBuffer{}
	}
	// The port is free when reserved but another process may take it before the
	// server does; then try another one.
	for attempt := 1; ; attempt++ {
		addr := "127.0.0.1:" + freePort(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"serve", "--db", s.DSN, "--addr", addr}, s.getenv, s.out, s.logs)
		}()
		s.URL = "http://" + addr
		exited, err := s.waitHealthy(done, 10*time.Second)
		if err == nil {
			var once sync.Once
			stop = func() { once.Do(func() { s.stop(t, cancel, done) }) }
			t.Cleanup(stop)
			return stop
		}
		cancel()
		if exited && errors.Is(err, syscall.EADDRINUSE) && attempt < 3 {
			continue
		}
		if !exited {
			select {
			case <-done:
			case <-time.After(15 * time.Second):
			}
		}
		t.Fatalf("serve did not start: %v\nlogs:\n%s", err, s.logs.String())
	}
}

// waitHealthy polls GET /healthz until it answers 200, run returns (exited), or the
// time is up.
func (s *testServer) waitHealthy(done <-chan error, within time.Duration) (exited bool, err error) {
	deadline := time.Now().Add(within)
	probe := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return true, fmt.Errorf("serve returned early: %w", err)
		default:
		}
		resp, err := probe.Get(s.URL + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return false, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false, errors.New("GET /healthz did not answer 200 within " + within.String())
}

// stop shuts the server down and requires a clean return of run.
func (s *testServer) stop(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	s.client.CloseIdleConnections()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve did not shut down cleanly: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("serve did not return within 20s of cancellation")
	}
	logs := s.logs.String()
	s.mu.Lock()
	secrets := slices.Clone(s.secrets)
	s.mu.Unlock()
	for _, secret := range secrets {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("the server log contains a secret or token (%.8s…)", secret)
		}
	}
	if t.Failed() {
		// Request lines are noise here; warnings and errors tell what went wrong.
		var notable []string
		for line := range strings.Lines(logs) {
			if !strings.Contains(line, `"level":"INFO"`) {
				notable = append(notable, line)
			}
		}
		if len(notable) > 0 {
			t.Logf("server warnings and errors:\n%s", strings.Join(notable, ""))
		}
	}
}

// remember records credentials and tokens that must never show up in the logs.
func (s *testServer) remember(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets = append(s.secrets, values...)
}

// rawBody is a request body sent exactly as written, as JSON.
type rawBody string

// chunkedBody is a request body sent without Content-Length.
type chunkedBody struct{ data []byte }

// do sends a request and returns the answer. body is nil (none), rawBody, url.Values
// (a form), chunkedBody, or anything else (encoded as JSON). headers are name, value
// pairs; an empty value removes the header. A non-empty token is sent as a Bearer
// token. Every answer is checked against the OpenAPI document (except the probes,
// which it does not describe), and no answer may be a 5xx.
func (s *testServer) do(t *testing.T, method, path, token string, body any, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	req, status, header, data := s.send(t, method, path, token, body, headers...)
	if status >= 500 {
		t.Errorf("%s %s answered %d: %s", method, path, status, data)
	}
	if path != "/healthz" && path != "/readyz" {
		validate(t, req, status, header, data)
	}
	return status, header, data
}

// validate checks one answer against the OpenAPI document.
func validate(t *testing.T, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	v, err := validator()
	if err != nil {
		t.Fatalf("load the OpenAPI validator: %v", err)
	}
	if err := v.ValidateResponse(req, status, header, body); err != nil {
		t.Errorf("answer does not match the OpenAPI document: %v\nbody: %s", err, body)
	}
}

// send is do without the checks: one request, its answer as it came.
func (s *testServer) send(t *testing.T, method, path, token string, body any, headers ...string) (*http.Request, int, http.Header, []byte) {
	t.Helper()
	var (
		rdr         io.Reader
		contentType string
	)
	switch b := body.(type) {
	case nil:
	case rawBody:
		rdr, contentType = strings.NewReader(string(b)), "application/json"
	case url.Values:
		rdr, contentType = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	case chunkedBody:
		// An io.MultiReader hides the length, so the transport sends it chunked.
		rdr, contentType = io.MultiReader(bytes.NewReader(b.data)), "application/json"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode request body: %v", err)
		}
		rdr, contentType = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequest(method, s.URL+path, rdr)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if len(headers)%2 != 0 {
		t.Fatalf("do: headers must come in name, value pairs")
	}
	for i := 0; i < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read answer: %v", method, path, err)
	}
	return req, resp.StatusCode, resp.Header, data
}

// basicAuth is the client_secret_basic header: both parts form-encoded first (RFC 6749 2.3.1).
func basicAuth(id, secret string) string {
	creds := url.QueryEscape(id) + ":" + url.QueryEscape(secret)
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(creds))
}

// tokenPair is a successful token answer.
type tokenPair struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
}

// tokenRequest posts to the token endpoint and checks the caching header every
// token answer must carry.
func (s *testServer) tokenRequest(t *testing.T, body any, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	status, hdr, data := s.do(t, http.MethodPost, apiBase+"/oauth/token", "", body, headers...)
	if cc := hdr.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("token answer %d has Cache-Control %q, want no-store", status, cc)
	}
	return status, hdr, data
}

// decodePair requires a 200 token answer and decodes it.
func (s *testServer) decodePair(t *testing.T, status int, body []byte) tokenPair {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("token request answered %d: %s", status, body)
	}
	var p tokenPair
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("decode token answer %s: %v", body, err)
	}
	if p.AccessToken == "" || p.RefreshToken == "" || p.TokenType != "Bearer" {
		t.Fatalf("incomplete token answer: %s", body)
	}
	s.remember(p.AccessToken, p.RefreshToken)
	return p
}

// pair gets a token pair for p with client_credentials and HTTP Basic.
func (s *testServer) pair(t *testing.T, p *testPartner) tokenPair {
	t.Helper()
	status, _, body := s.tokenRequest(t,
		url.Values{"grant_type": {"client_credentials"}, "partner_id": {p.PartnerID}},
		"Authorization", basicAuth(p.ClientID, p.ClientSecret))
	return s.decodePair(t, status, body)
}

// token gets an access token for p.
func (s *testServer) token(t *testing.T, p *testPartner) string {
	t.Helper()
	return s.pair(t, p).AccessToken
}

// phone returns a random 10-digit phone number.
func phone() string {
	return fmt.Sprintf("9%09d", rand.N(1_000_000_000))
}

// register opens a wallet and returns its id.
func (s *testServer) register(t *testing.T, token, phone string, identification ...int) string {
	t.Helper()
	body := map[string]any{"phone": phone}
	if len(identification) > 0 {
		body["identification"] = identification[0]
	}
	status, _, data := s.do(t, http.MethodPost, apiBase+"/account/registration", token, body)
	if status != http.StatusOK {
		t.Fatalf("register %s: %d %s", phone, status, data)
	}
	var ans struct {
		WalletID string `json:"walletId"`
	}
	if err := json.Unmarshal(data, &ans); err != nil || ans.WalletID == "" {
		t.Fatalf("register answer %s: %v", data, err)
	}
	return ans.WalletID
}

// object decodes a JSON object answer.
func object(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v\n%s", err, body)
	}
	return m
}

// expectOK requires a 200 and returns the decoded object.
func expectOK(t *testing.T, what string, status int, body []byte) map[string]any {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("%s: status %d, want 200: %s", what, status, body)
	}
	return object(t, body)
}

// expectError requires a protocol error answer with exactly the given fieldErrors keys.
func expectError(t *testing.T, what string, status int, body []byte, wantStatus int, wantCode string, wantFields ...string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: status %d, want %d: %s", what, status, wantStatus, body)
		return
	}
	var e struct {
		Code        string            `json:"code"`
		Message     string            `json:"message"`
		FieldErrors map[string]string `json:"fieldErrors"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Errorf("%s: error answer is not JSON: %v: %s", what, err, body)
		return
	}
	if e.Code != wantCode {
		t.Errorf("%s: code %q, want %q: %s", what, e.Code, wantCode, body)
	}
	if e.Message == "" {
		t.Errorf("%s: empty message: %s", what, body)
	}
	if e.FieldErrors == nil {
		t.Errorf("%s: fieldErrors missing or null: %s", what, body)
	}
	got := make([]string, 0, len(e.FieldErrors))
	for k, v := range e.FieldErrors {
		got = append(got, k)
		if v == "" {
			t.Errorf("%s: fieldErrors.%s has no text", what, k)
		}
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(wantFields))
	if !slices.Equal(got, want) {
		t.Errorf("%s: fieldErrors keys %q, want %q: %s", what, got, want, body)
	}
}

// expectOAuthError requires an RFC 6749 error answer.
func expectOAuthError(t *testing.T, what string, status int, body []byte, wantStatus int, wantError string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: status %d, want %d: %s", what, status, wantStatus, body)
		return
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Errorf("%s: OAuth error answer is not JSON: %v: %s", what, err, body)
		return
	}
	if e.Error != wantError {
		t.Errorf("%s: error %q, want %q: %s", what, e.Error, wantError, body)
	}
}

// validatingTransport checks every answer against the OpenAPI document, for
// clients the test does not drive through do (the oauth2 package).
type validatingTransport struct {
	t    *testing.T
	base http.RoundTripper
}

func (v validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := v.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	validate(v.t, req, resp.StatusCode, resp.Header, data)
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp, nil
}

// luhnValid reports whether a digit string ends in a correct Luhn check digit.
func luhnValid(number string) bool {
	if len(number) < 2 {
		return false
	}
	sum := 0
	for i := 0; i < len(number); i++ {
		c := number[len(number)-1-i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// TestLuhnValid pins the test's own check digit routine to known numbers.
func TestLuhnValid(t *testing.T) {
	t.Parallel()
	for number, want := range map[string]bool{
		"79927398713":      true,
		"79927398710":      false,
		"4111111111111111": true,
		"4111111111111112": false,
		"0000000000000000": true,
		"12a4":             false,
		"7":                false,
	} {
		if got := luhnValid(number); got != want {
			t.Errorf("luhnValid(%q) = %v, want %v", number, got, want)
		}
	}
}
