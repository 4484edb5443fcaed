package httpapi_test

// Fuzz targets for the HTTP edge. Each sends hostile input over real HTTP to a
// complete walletd (app/apptest: the real wiring on a temporary SQLite
// database), started once per fuzz process, and checks every answer:
//
//   - never a 5xx (a panic in a handler is answered 500, so it is caught too);
//   - the answer is described by api/openapi.yaml (api.Validator);
//   - an error answer is the protocol's body: "code" and "message" strings and a
//     "fieldErrors" object of strings, with the status PROTOCOL.md section 2 gives
//     that code (the OAuth endpoints answer RFC 6749 bodies instead);
//   - what the target knows about its input: which field a refusal must name,
//     that an accepted amount is the amount sent, that nothing is saved when a
//     request is refused, and so on.
//
// Bodies may contain placeholders that are replaced before sending, so that the
// fuzzer can reach past validation with real identifiers: $WALLET (the target's
// wallet; $WALLET_UPPER in upper case), $TSP ($TSP_UPPER), $BANK, $TOKEN (a
// fresh payment token; in paths the wallet's paid token), $USED_TOKEN (a token
// already spent on a payment), $OP (an operation of the wallet),
// $FOREIGN_WALLET and $FOREIGN_TSP (another partner's), and for the token
// endpoint $CLIENT, $SECRET, $PARTNER, $REFRESH, $ACCESS and $BASIC.
//
// Run one with, for example:
//
//	go test -run='^$' -fuzz='^FuzzPaymentBody$' -fuzztime=20000x ./httpapi/

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/perspektiva/walletd/api"
	"github.com/perspektiva/walletd/app/apptest"
	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/httpapi"
	"github.com/perspektiva/walletd/store/storetest"
	"github.com/perspektiva/walletd/wallet"
)

// TestMain stops the shared walletd (and removes its database) when the
// package's tests, or a fuzz worker, are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if env, err := sharedEnv(); err == nil && env != nil {
		env.srv.Close()
	}
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// Seeds, and the seed corpora on PostgreSQL.

// seeder is *testing.F, or seedList when the seeds are replayed on PostgreSQL.
type seeder interface{ Add(args ...any) }

type seedList [][]any

func (l *seedList) Add(args ...any) { *l = append(*l, args) }

// replays are the fuzz targets as plain functions of their arguments.
var replays = []struct {
	name  string
	seeds func(seeder)
	run   func(t *testing.T, e *fuzzEnv, args []any)
}{
	{"FuzzRegistrationBody", seedsRegistrationBody, func(t *testing.T, e *fuzzEnv, a []any) { runRegistrationBody(t, e, a[0].([]byte)) }},
	{"FuzzRefillBody", seedsRefillBody, func(t *testing.T, e *fuzzEnv, a []any) { runRefillBody(t, e, a[0].([]byte)) }},
	{"FuzzPaymentBody", seedsPaymentBody, func(t *testing.T, e *fuzzEnv, a []any) { runPaymentBody(t, e, a[0].([]byte)) }},
	{"FuzzWithdrawalBody", seedsWithdrawalBody, func(t *testing.T, e *fuzzEnv, a []any) { runWithdrawalBody(t, e, a[0].([]byte)) }},
	{"FuzzRefundBody", seedsRefundBody, func(t *testing.T, e *fuzzEnv, a []any) { runRefundBody(t, e, a[0].([]byte)) }},
	{"FuzzLimitsBody", seedsLimitsBody, func(t *testing.T, e *fuzzEnv, a []any) { runLimitsBody(t, e, a[0].([]byte)) }},
	{"FuzzReportQuery", seedsReportQuery, func(t *testing.T, e *fuzzEnv, a []any) { runReportQuery(t, e, a[0].(string)) }},
	{"FuzzTokenForm", seedsTokenForm, func(t *testing.T, e *fuzzEnv, a []any) {
		runTokenForm(t, e, a[0].([]byte), a[1].(string), a[2].(string))
	}},
	{"FuzzPathIDs", seedsPathIDs, func(t *testing.T, e *fuzzEnv, a []any) { runPathIDs(t, e, a[0].(uint8), a[1].(string), a[2].(string)) }},
	{"FuzzIdempotencyKey", seedsIdempotencyKey, func(t *testing.T, e *fuzzEnv, a []any) { runIdempotencyKey(t, e, a[0].(string), a[1].(uint8)) }},
}

// TestSeedCorporaOnPostgres runs every fuzz target's seeds and committed corpus
// on PostgreSQL (the fuzzing itself runs on SQLite), where strings reach a
// stricter database: NUL bytes, invalid UTF-8, out-of-range times.
func TestSeedCorporaOnPostgres(t *testing.T) {
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skip(storetest.PostgresEnv + " is not set")
	}
	e, err := newFuzzEnv(storetest.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.srv.Close)
	for _, r := range replays {
		t.Run(r.name, func(t *testing.T) {
			var seeds seedList
			r.seeds(&seeds)
			for i, args := range seeds {
				t.Run(fmt.Sprintf("seed#%d", i), func(t *testing.T) { r.run(t, e, args) })
			}
			files, err := filepath.Glob(filepath.Join("testdata", "fuzz", r.name, "*"))
			if err != nil {
				t.Fatal(err)
			}
			for _, file := range files {
				args, err := readCorpusFile(file)
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				t.Run(filepath.Base(file), func(t *testing.T) { r.run(t, e, args) })
			}
		})
	}
}

// readCorpusFile reads the "go test fuzz v1" lines this package's corpora use:
// []byte("…"), string("…") and byte('…').
func readCorpusFile(name string) ([]any, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) == 0 || lines[0] != "go test fuzz v1" {
		return nil, errors.New("not a fuzz corpus file")
	}
	var args []any
	for _, line := range lines[1:] {
		kind, lit, ok := strings.Cut(line, "(")
		lit, found := strings.CutSuffix(lit, ")")
		if !ok || !found {
			return nil, fmt.Errorf("cannot read %q", line)
		}
		switch kind {
		case "[]byte", "string":
			v, err := strconv.Unquote(lit)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", line, err)
			}
			if kind == "string" {
				args = append(args, v)
			} else {
				args = append(args, []byte(v))
			}
		case "byte", "uint8":
			if n, err := strconv.ParseUint(lit, 0, 8); err == nil {
				args = append(args, uint8(n))
				continue
			}
			inner, quoted := strings.CutPrefix(lit, "'")
			inner, closed := strings.CutSuffix(inner, "'")
			r, _, rest, err := strconv.UnquoteChar(inner, '\'')
			if !quoted || !closed || err != nil || rest != "" || r > 0xff {
				return nil, fmt.Errorf("%q: not a byte", line)
			}
			args = append(args, uint8(r))
		default:
			return nil, fmt.Errorf("type %q is not used by these targets", kind)
		}
	}
	return args, nil
}

// ---------------------------------------------------------------------------
// The shared walletd and its fixtures.

var (
	envOnce    sync.Once
	envStarted bool
	envValue   *fuzzEnv
	envErr     error
)

// sharedEnv returns the process's walletd, or (nil, nil) when none was started.
func sharedEnv() (*fuzzEnv, error) {
	if !envStarted {
		return nil, nil
	}
	return envValue, envErr
}

// startEnv starts the process's walletd with its fixtures the first time it is called.
func startEnv(t testing.TB) *fuzzEnv {
	t.Helper()
	envOnce.Do(func() {
		envStarted = true
		envValue, envErr = newFuzzEnv("")
	})
	if envErr != nil {
		t.Fatalf("start walletd: %v", envErr)
	}
	return envValue
}

// fixture is a wallet of the test partner.
type fixture struct {
	ID     string
	Number string
}

type fuzzEnv struct {
	srv       *apptest.Server
	client    *http.Client
	validator *api.Validator
	bank      string // a known SBP member

	// Another partner, whose wallet and TSP partner A must never reach.
	foreignWallet fixture
	foreignTSP    string

	mu       sync.Mutex
	access   string
	refresh  string
	issuedAt time.Time

	// One wallet per target, so that what one target does (spending, limits)
	// does not change what another sees.
	refill, pay, withdraw, limits, refund, report, pathW, idem fixture

	usedToken string // a payment token of pay, already spent on 1.00
	reportOp  string // an operation of report
	pathOp    string // an operation of pathW
	pathToken string // a payment token of pathW with a payment behind it

	refundToken string // payment token of refund's current payment
	refundLeft  int64  // kopecks still refundable on it
	limitsState []byte // the last answer of GET/POST limits for limits
	idemSeen    map[string]int
}

// newFuzzEnv starts walletd (on a temporary SQLite database when dsn is empty)
// and makes the fixtures through the API itself.
func newFuzzEnv(dsn string) (_ *fuzzEnv, err error) {
	ctx := context.Background()
	srv, err := apptest.Start(ctx, apptest.Options{DSN: dsn})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			srv.Close()
		}
	}()
	v, err := api.NewValidator()
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 8
	transport.DisableCompression = true
	e := &fuzzEnv{
		srv:       srv,
		validator: v,
		bank:      "100000000111",
		client: &http.Client{
			Transport:     transport,
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		idemSeen: map[string]int{},
	}

	// Partner B, made the way `walletd partner create` and `tsp create` make one.
	credsB, err := auth.NewService(srv.DB.AuthStore(), auth.Config{}).CreatePartner(ctx, "Партнёр Б", "")
	if err != nil {
		return nil, err
	}
	wsvc, err := wallet.NewService(srv.DB, wallet.Config{})
	if err != nil {
		return nil, err
	}
	tspB, err := wsvc.CreateTSP(ctx, credsB.PartnerID, "ТСП Б")
	if err != nil {
		return nil, err
	}
	e.foreignTSP = tspB.ID.String()
	pairB, err := e.issue(credsB)
	if err != nil {
		return nil, err
	}
	if e.foreignWallet, err = e.registerAs(pairB.AccessToken, "9100000001", 2); err != nil {
		return nil, err
	}

	steps := []struct {
		dst   *fixture
		phone string
		fund  string
	}{
		{&e.refill, "9000000001", ""},
		{&e.pay, "9000000002", "500000.00"},
		{&e.withdraw, "9000000003", "500000.00"},
		{&e.limits, "9000000004", ""},
		{&e.refund, "9000000005", "500000.00"},
		{&e.report, "9000000006", "300000.00"},
		{&e.pathW, "9000000007", "300000.00"},
		{&e.idem, "9000000008", "300000.00"},
	}
	for _, s := range steps {
		tok, err := e.bearer()
		if err != nil {
			return nil, err
		}
		if *s.dst, err = e.registerAs(tok, s.phone, 2); err != nil {
			return nil, err
		}
		if s.fund != "" {
			if err := e.topUp(s.dst.ID, s.fund); err != nil {
				return nil, err
			}
		}
	}

	if e.usedToken, _, err = e.payOnce(e.pay.ID, "1.00"); err != nil {
		return nil, err
	}
	if e.refundToken, _, err = e.payOnce(e.refund.ID, "400000.00"); err != nil {
		return nil, err
	}
	e.refundLeft = 400000_00

	// The report wallet gets one operation of every type.
	reportToken, reportOp, err := e.payOnce(e.report.ID, "1234.56")
	if err != nil {
		return nil, err
	}
	e.reportOp = reportOp
	if _, err := e.mustOK(http.MethodPost, "/account/"+e.report.ID+"/payment/"+reportToken+"/refund", map[string]any{"amount": "34.56"}); err != nil {
		return nil, err
	}
	if _, err := e.mustOK(http.MethodPost, "/account/"+e.report.ID+"/wifhdrawal", map[string]any{"bankIdentifier": e.bank, "amount": "100.00"}); err != nil {
		return nil, err
	}
	if _, err := e.mustOK(http.MethodPost, "/account/"+e.report.ID+"/refill", map[string]any{"amount": "10.00"}); err != nil {
		return nil, err
	}
	if e.pathToken, e.pathOp, err = e.payOnce(e.pathW.ID, "10.00"); err != nil {
		return nil, err
	}

	a, err := e.mustOK(http.MethodGet, "/account/"+e.limits.ID+"/limit", nil)
	if err != nil {
		return nil, err
	}
	e.limitsState = a.body
	return e, nil
}

// issue gets a token pair with client_credentials and HTTP Basic.
func (e *fuzzEnv) issue(c auth.Credentials) (tokenPair, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "partner_id": {c.PartnerID.String()}}
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("Authorization", basicAuth(c.ClientID, c.ClientSecret))
	a, err := e.roundTrip(request{method: http.MethodPost, path: httpapi.BasePath + "/oauth/token", body: []byte(form.Encode()), header: h})
	if err != nil {
		return tokenPair{}, err
	}
	if a.status != http.StatusOK {
		return tokenPair{}, fmt.Errorf("token request: %d %s", a.status, a.body)
	}
	var p tokenPair
	if err := json.Unmarshal(a.body, &p); err != nil || p.AccessToken == "" || p.RefreshToken == "" {
		return tokenPair{}, fmt.Errorf("token answer %s: %v", a.body, err)
	}
	return p, nil
}

type tokenPair struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
}

// basicAuth is client_secret_basic: both parts form-encoded first (RFC 6749 2.3.1).
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// bearer returns a live access token of the test partner, renewed well before
// the default 15 minutes run out, so long fuzzing runs keep working.
func (e *fuzzEnv) bearer() (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.access != "" && time.Since(e.issuedAt) < 10*time.Minute {
		return e.access, nil
	}
	p, err := e.issue(e.srv.Partner)
	if err != nil {
		return "", err
	}
	e.access, e.refresh, e.issuedAt = p.AccessToken, p.RefreshToken, time.Now()
	return e.access, nil
}

// registerAs opens a wallet with the given bearer token.
func (e *fuzzEnv) registerAs(token, phone string, level int) (fixture, error) {
	a, err := e.callWith(token, http.MethodPost, "/account/registration", map[string]any{"phone": phone, "identification": level})
	if err != nil {
		return fixture{}, err
	}
	if a.status != http.StatusOK {
		return fixture{}, fmt.Errorf("register %s: %d %s", phone, a.status, a.body)
	}
	var w struct {
		WalletID string `json:"walletId"`
	}
	if err := json.Unmarshal(a.body, &w); err != nil {
		return fixture{}, err
	}
	info, err := e.callWith(token, http.MethodGet, "/account/"+w.WalletID+"/info", nil)
	if err != nil {
		return fixture{}, err
	}
	var i struct {
		Number string `json:"number"`
	}
	if err := json.Unmarshal(info.body, &i); err != nil || i.Number == "" {
		return fixture{}, fmt.Errorf("info %s: %v", info.body, err)
	}
	return fixture{ID: w.WalletID, Number: i.Number}, nil
}

// topUp refills a wallet and confirms the top-up through the sandbox SBP.
func (e *fuzzEnv) topUp(walletID, amount string) error {
	a, err := e.mustOK(http.MethodPost, "/account/"+walletID+"/refill", map[string]any{"amount": amount})
	if err != nil {
		return err
	}
	var r struct {
		Payload string `json:"payload"`
	}
	if err := json.Unmarshal(a.body, &r); err != nil {
		return err
	}
	u, err := url.Parse(r.Payload)
	if err != nil {
		return fmt.Errorf("payload %q: %w", r.Payload, err)
	}
	c, err := e.roundTrip(request{method: http.MethodPost, path: u.Path + "/confirm"})
	if err != nil {
		return err
	}
	if c.status != http.StatusOK || !bytes.Contains(c.body, []byte(`"SUCCESS"`)) {
		return fmt.Errorf("confirm %s: %d %s", u.Path, c.status, c.body)
	}
	return nil
}

// keepFunded tops a wallet up after a refusal for lack of money, so the
// checks of accepted answers keep running. Near the balance limit the top-up
// is refused (LIMIT_EXCEEDED) and the wallet holds enough anyway; any other
// failure ends the test.
func (e *fuzzEnv) keepFunded(t testing.TB, pe *protoError, walletID string) {
	t.Helper()
	if pe == nil || pe.Code != "INSUFFICIENT_FUNDS" {
		return
	}
	if err := e.topUp(walletID, "100000.00"); err != nil && !strings.Contains(err.Error(), `"LIMIT_EXCEEDED"`) {
		t.Fatalf("top up again: %v", err)
	}
}

// payOnce pays the test partner's TSP from a wallet; it returns the token and the operation.
func (e *fuzzEnv) payOnce(walletID, amount string) (token, opID string, err error) {
	if token, err = e.newPaymentToken(walletID); err != nil {
		return "", "", err
	}
	a, err := e.mustOK(http.MethodPost, "/account/"+walletID+"/payment",
		map[string]any{"walletId": walletID, "token": token, "amount": amount, "tsp": e.srv.TSPID.String()})
	if err != nil {
		return "", "", err
	}
	var p struct {
		OperationID string `json:"operationId"`
	}
	err = json.Unmarshal(a.body, &p)
	return token, p.OperationID, err
}

func (e *fuzzEnv) newPaymentToken(walletID string) (string, error) {
	a, err := e.mustOK(http.MethodGet, "/account/"+walletID+"/payment/initialization", nil)
	if err != nil {
		return "", err
	}
	var p struct {
		Token string `json:"token"`
	}
	err = json.Unmarshal(a.body, &p)
	return p.Token, err
}

// mustOK sends a request of the test partner (path under the base path) and requires a 200.
func (e *fuzzEnv) mustOK(method, p string, body any) (answer, error) {
	tok, err := e.bearer()
	if err != nil {
		return answer{}, err
	}
	a, err := e.callWith(tok, method, p, body)
	if err != nil {
		return a, err
	}
	if a.status != http.StatusOK {
		return a, fmt.Errorf("%s %s: %d %s", method, p, a.status, a.body)
	}
	return a, nil
}

// callWith sends a JSON request (path under the base path) with a bearer token.
func (e *fuzzEnv) callWith(token, method, p string, body any) (answer, error) {
	rq := request{method: method, path: httpapi.BasePath + p, header: http.Header{}}
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return answer{}, err
		}
		rq.body = data
		rq.header.Set("Content-Type", "application/json")
	}
	rq.header.Set("Authorization", "Bearer "+token)
	return e.roundTrip(rq)
}

// ---------------------------------------------------------------------------
// Sending requests exactly as written, and checking the answers.

// request is sent as written: path and query go into the request line untouched.
type request struct {
	method string
	path   string // the request-target's path, escaped as it is to be sent
	query  string // the raw query, without '?'
	body   []byte
	header http.Header
}

// answer is what came back, with the request as the server parsed it.
type answer struct {
	// req is the request for the validator, which matches the document's paths
	// on the escaped path (so that %2F stays inside its segment); nil when the
	// request line is one net/http refuses before any handler runs.
	req *http.Request
	// url is the request-target as the server's net/http parsed it.
	url    *url.URL
	status int
	header http.Header
	body   []byte
}

// errUnsendable marks inputs the HTTP client itself refuses to send (a header
// with a line break, say): they never reach the server.
var errUnsendable = errors.New("the HTTP client refuses to send this request")

func (e *fuzzEnv) roundTrip(rq request) (answer, error) {
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	req, err := http.NewRequest(rq.method, e.srv.URL+"/", body)
	if err != nil {
		return answer{}, err
	}
	req.URL.Opaque = rq.path
	req.URL.RawQuery = rq.query
	for name, values := range rq.header {
		req.Header[name] = values
	}
	for name, values := range req.Header {
		for _, v := range values {
			if !validHeaderValue(v) {
				return answer{}, fmt.Errorf("%w: header %s", errUnsendable, name)
			}
		}
	}
	target := rq.path
	if rq.query != "" {
		target += "?" + rq.query
	}
	if strings.ContainsFunc(target, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return answer{}, fmt.Errorf("%w: request-target %q", errUnsendable, target)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", rq.method, target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: read answer: %w", rq.method, target, err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: data}
	if u, err := url.ParseRequestURI(target); err == nil {
		a.url = u
		escaped := *u
		escaped.Path, escaped.RawPath = u.EscapedPath(), ""
		a.req = &http.Request{Method: rq.method, URL: &escaped, Header: req.Header, Host: req.Host}
	}
	return a, nil
}

// validHeaderValue is what net/http's client accepts in a header value: no
// control characters other than tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// escapeTarget percent-encodes the bytes a request line cannot carry (controls,
// space, DEL) and those in extra; everything else, '%' included, is kept, so
// that percent-encoded junk reaches the server as written.
func escapeTarget(s, extra string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c == 0x7f || strings.IndexByte(extra, c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// codeStatus is PROTOCOL.md section 2: the status of each error code.
var codeStatus = map[string]int{
	"VALIDATION_ERROR": 400, "WALLET_CLOSED": 400, "WALLET_HAS_BALANCE": 400, "INSUFFICIENT_FUNDS": 400,
	"LIMIT_EXCEEDED": 400, "OPERATION_DISABLED": 400, "TOKEN_INVALID": 400, "TSP_NOT_FOUND": 400,
	"BANK_NOT_FOUND": 400, "UNAUTHORIZED": 401, "FORBIDDEN": 403, "WALLET_NOT_FOUND": 404,
	"OPERATION_NOT_FOUND": 404, "NOT_FOUND": 404, "METHOD_NOT_ALLOWED": 405, "IDEMPOTENCY_KEY_REUSED": 409,
	"PAYLOAD_TOO_LARGE": 413, "RATE_LIMITED": 429,
}

// protoError is the protocol's error body.
type protoError struct {
	Code        string
	Message     string
	FieldErrors map[string]string
}

func (p *protoError) keys() []string {
	if p == nil {
		return nil
	}
	return slices.Sorted(func(yield func(string) bool) {
		for k := range p.FieldErrors {
			if !yield(k) {
				return
			}
		}
	})
}

// decodeProtoError reads an error body strictly: code and message are non-empty
// strings and fieldErrors is an object of non-empty strings.
func decodeProtoError(body []byte) (*protoError, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, fmt.Errorf("not a JSON object (%v)", err)
	}
	p := &protoError{}
	for name, dst := range map[string]*string{"code": &p.Code, "message": &p.Message} {
		raw, ok := m[name]
		if !ok {
			return nil, fmt.Errorf("no %q", name)
		}
		if err := json.Unmarshal(raw, dst); err != nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) || *dst == "" {
			return nil, fmt.Errorf("%q is not a non-empty string: %s", name, raw)
		}
	}
	raw, ok := m["fieldErrors"]
	if !ok {
		return nil, errors.New(`no "fieldErrors"`)
	}
	if err := json.Unmarshal(raw, &p.FieldErrors); err != nil || p.FieldErrors == nil {
		return nil, fmt.Errorf(`"fieldErrors" is not an object of strings: %s`, raw)
	}
	for k, v := range p.FieldErrors {
		if v == "" {
			return nil, fmt.Errorf("fieldErrors.%s has no text", k)
		}
	}
	return p, nil
}

// check applies what every answer of a protected endpoint must satisfy and
// returns the error body, nil for a 2xx. what describes the input for messages.
func (e *fuzzEnv) check(t testing.TB, a answer, what string) *protoError {
	t.Helper()
	if a.status >= 500 {
		t.Fatalf("%s: answered %d (no input may cause a 5xx): %s", what, a.status, a.body)
	}
	if a.req == nil {
		t.Fatalf("%s: the request line was not valid, yet answered %d: %s", what, a.status, a.body)
	}
	if err := e.validator.ValidateResponse(a.req, a.status, a.header, a.body); err != nil {
		t.Fatalf("%s: answer does not match openapi.yaml: %v\nbody: %s", what, err, a.body)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: answered %d with Content-Type %q: %s", what, a.status, ct, a.body)
	}
	if a.status < 300 {
		if !json.Valid(a.body) {
			t.Fatalf("%s: answered %d with a body that is not JSON: %q", what, a.status, a.body)
		}
		return nil
	}
	pe, err := decodeProtoError(a.body)
	if err != nil {
		t.Fatalf("%s: answered %d without the protocol's error body (%v): %q", what, a.status, err, a.body)
	}
	want, known := codeStatus[pe.Code]
	if !known {
		t.Fatalf("%s: answered %d with an undocumented code %q: %s", what, a.status, pe.Code, a.body)
	}
	if want != a.status {
		t.Fatalf("%s: code %s came with status %d, PROTOCOL.md says %d: %s", what, pe.Code, a.status, want, a.body)
	}
	switch a.status {
	case http.StatusUnauthorized:
		if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%s: 401 without WWW-Authenticate: Bearer", what)
		}
	case http.StatusTooManyRequests:
		if a.header.Get("Retry-After") == "" {
			t.Fatalf("%s: 429 without Retry-After", what)
		}
	}
	return pe
}

// expectCode requires an error answer with one of the codes (an empty list: any).
func expectCode(t testing.TB, what string, a answer, pe *protoError, codes ...string) {
	t.Helper()
	if pe == nil {
		t.Fatalf("%s: answered %d, want one of %v: %s", what, a.status, codes, a.body)
	}
	if len(codes) > 0 && !slices.Contains(codes, pe.Code) {
		t.Fatalf("%s: code %s, want one of %v: %s", what, pe.Code, codes, a.body)
	}
}

// fieldsWithin requires a VALIDATION_ERROR whose fieldErrors keys all pass ok,
// and that names every key of must.
func fieldsWithin(t testing.TB, what string, a answer, pe *protoError, ok func(string) bool, must ...string) {
	t.Helper()
	if pe == nil || pe.Code != "VALIDATION_ERROR" {
		return
	}
	for _, k := range pe.keys() {
		if !ok(k) {
			t.Fatalf("%s: fieldErrors names %q, which is not a field of this request: %s", what, k, a.body)
		}
	}
	for _, k := range must {
		if _, found := pe.FieldErrors[k]; !found {
			t.Fatalf("%s: fieldErrors does not name %q: %s", what, k, a.body)
		}
	}
}

func oneOf(names ...string) func(string) bool {
	return func(k string) bool { return slices.Contains(names, k) }
}

// fixedBug fails when an answer shows a bug the fuzzer found once and that was
// fixed; the inputs that found it stay in the corpus.
func fixedBug(t testing.TB, present bool, text string) {
	t.Helper()
	if present {
		t.Fatal("regression: " + text)
	}
}

// trailingBug fails on the reported bug: readObject checks Decoder.More after the
// object, which is false before ']' and '}', so `{"amount":1}}`, `{}]` or
// `{}}0` is read as the object and the rest ignored instead of a 400 naming "body".
func trailingBug(t testing.TB, body []byte, pe *protoError) {
	t.Helper()
	if !trailingCloser(body) {
		return
	}
	_, bodyNamed := pe.fieldErrors()["body"]
	fixedBug(t, !bodyNamed, "a JSON object followed by ']' or '}' is read as that object (readObject relies on Decoder.More)")
}

func (p *protoError) fieldErrors() map[string]string {
	if p == nil {
		return nil
	}
	return p.FieldErrors
}

// ---------------------------------------------------------------------------
// What the tests know about JSON bodies, independently of the server.

// jsonObject reads a request body the way PROTOCOL.md describes it: an empty
// body is an empty object; anything else must be exactly one JSON object.
// Duplicate members: the last one counts (as encoding/json does).
func jsonObject(body []byte) (map[string]json.RawMessage, bool) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return map[string]json.RawMessage{}, true
	}
	if !json.Valid(trimmed) || trimmed[0] != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return nil, false
	}
	return m, true
}

// trailingCloser reports whether body is one JSON object followed by anything
// that starts with a closing bracket, e.g. `{"amount":1}}`, `{}]` or `{}}0`.
func trailingCloser(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	var v map[string]json.RawMessage
	if err := dec.Decode(&v); err != nil || v == nil {
		return false
	}
	rest := bytes.TrimSpace(body[dec.InputOffset():])
	return len(rest) > 0 && (rest[0] == ']' || rest[0] == '}')
}

func isNull(raw json.RawMessage) bool { return raw == nil || string(bytes.TrimSpace(raw)) == "null" }

var amountGrammar = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$`)

// maxKopecks is 1 000 000 000.00 roubles.
const maxKopecks = 1_000_000_000_00

// kopecks reads a decimal amount by the protocol's grammar; ok is false for
// anything the grammar does not allow or above the maximum.
func kopecks(s string) (int64, bool) {
	if !amountGrammar.MatchString(s) {
		return 0, false
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, false
	}
	r.Mul(r, big.NewRat(100, 1))
	if !r.IsInt() || r.Num().Cmp(big.NewInt(maxKopecks)) > 0 {
		return 0, false
	}
	return r.Num().Int64(), true
}

// amountVerdict says what the protocol makes of an amount member: valid (with
// its value in kopecks), invalid, or unclear (forms the protocol does not
// settle, such as a JSON string with escapes); a required amount must be > 0.
type verdict int

const (
	unclear verdict = iota
	valid
	invalid
)

func amountOf(raw json.RawMessage) (verdict, int64) {
	v, k := decimalOf(raw)
	if v != invalid && k == 0 {
		return invalid, 0
	}
	return v, k
}

// decimalOf is amountOf where zero is allowed (limits).
func decimalOf(raw json.RawMessage) (verdict, int64) {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) || len(raw) == 0 {
		return invalid, 0
	}
	text := string(raw)
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return invalid, 0
		}
		if bytes.IndexByte(raw, '\\') >= 0 {
			// "\u0031" is "1" to JSON; the protocol does not say whether it is an amount.
			if k, ok := kopecks(s); ok {
				return unclear, k
			}
			return invalid, 0
		}
		text = s
	}
	k, ok := kopecks(text)
	if !ok {
		return invalid, 0
	}
	return valid, k
}

// answerKopecks reads an amount of an answer (a JSON number with two decimals).
func answerKopecks(t testing.TB, what string, raw json.RawMessage) int64 {
	t.Helper()
	s := string(raw)
	if i := strings.IndexByte(s, '.'); i < 0 || len(s)-i-1 != 2 {
		t.Fatalf("%s: answered amount %s, want exactly two fraction digits", what, raw)
	}
	k, ok := kopecks(s)
	if !ok {
		t.Fatalf("%s: answered amount %s is not an amount", what, raw)
	}
	return k
}

var (
	tenDigits    = regexp.MustCompile(`^[0-9]{10}$`)
	twelveDigits = regexp.MustCompile(`^[0-9]{12}$`)
	pageValid    = regexp.MustCompile(`^(0|[1-9][0-9]{0,5})$`)
	pageUnclear  = regexp.MustCompile(`^[1-9][0-9]*$|^[+]?0[0-9]+$|^[+][0-9]+$|^-0+$`)
	sizeValid    = regexp.MustCompile(`^([1-9]|[1-9][0-9]|100)$`)
	leadingZeros = regexp.MustCompile(`^0[0-9]+$`)
)

var uuidLower = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
var uuidAnyCase = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// uuidVerdict: a lower-case UUID is valid, an upper-case one unclear (PROTOCOL.md
// writes lower case but does not say upper case is refused), the rest invalid.
func uuidVerdict(s string) verdict {
	switch {
	case uuidLower.MatchString(s):
		return valid
	case uuidAnyCase.MatchString(s):
		return unclear
	}
	return invalid
}

// stringMember reads a member that must be a JSON string.
func stringMember(obj map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := obj[name]
	if !ok || isNull(raw) {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

const nilUUID = "00000000-0000-0000-0000-000000000000"

// asJSONString is s as it reads back from a JSON answer (invalid UTF-8 replaced).
func asJSONString(s string) string {
	data, _ := json.Marshal(s)
	var back string
	_ = json.Unmarshal(data, &back)
	return back
}

// ---------------------------------------------------------------------------
// Placeholders.

func (e *fuzzEnv) expand(t testing.TB, s string, w fixture) string {
	t.Helper()
	if !strings.Contains(s, "$") {
		return s
	}
	if strings.Contains(s, "$TOKEN") {
		tok, err := e.newPaymentToken(w.ID)
		if err != nil {
			t.Fatalf("payment token: %v", err)
		}
		s = strings.ReplaceAll(s, "$TOKEN", tok)
	}
	return strings.NewReplacer(
		"$WALLET_UPPER", strings.ToUpper(w.ID),
		"$TSP_UPPER", strings.ToUpper(e.srv.TSPID.String()),
		"$WALLET", w.ID,
		"$FOREIGN_WALLET", e.foreignWallet.ID,
		"$FOREIGN_TSP", e.foreignTSP,
		"$TSP", e.srv.TSPID.String(),
		"$BANK", e.bank,
		"$USED_TOKEN", e.usedToken,
		"$OP", e.reportOp,
	).Replace(s)
}

// post sends a JSON-typed body to a path under the base path as the test partner.
func (e *fuzzEnv) post(t testing.TB, p string, body []byte, header ...string) answer {
	t.Helper()
	return e.send(t, http.MethodPost, p, "", body, header...)
}

func (e *fuzzEnv) send(t testing.TB, method, p, query string, body []byte, header ...string) answer {
	t.Helper()
	tok, err := e.bearer()
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+tok)
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	a, err := e.roundTrip(request{method: method, path: httpapi.BasePath + p, query: query, body: body, header: h})
	if err != nil {
		t.Fatalf("%v", err)
	}
	return a
}

// nested is n arrays deep.
func nested(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// ---------------------------------------------------------------------------
// POST /account/registration

func FuzzRegistrationBody(f *testing.F) {
	seedsRegistrationBody(f)
	f.Fuzz(func(t *testing.T, body []byte) { runRegistrationBody(t, startEnv(t), body) })
}

func seedsRegistrationBody(f seeder) {
	for _, s := range []string{
		``, `{}`, `{"phone":"9001234567"}`, `{"phone":"9001234567","identification":2}`,
		`{"phone":"9001234567","identification":1.0}`, `{"phone":"9001234567","identification":"1"}`,
		`{"phone":"9001234567","identification":-1}`, `{"phone":"9001234567","identification":1e0}`,
		`{"phone":9001234567}`, `{"phone":"+79001234567"}`, `{"phone":"900123456７"}`, `{"phone":" 9001234567"}`,
		`{"phone":"9001234567","phone":"1"}`, `{"phone":null}`, `null`, `[]`, `"x"`, `{`, `{"phone":"9001234567"}{}`,
		`{"phone":"9001234567"}]`, `{"phone":"\u0039001234567"}`, "{\"phone\":\"900123\x00567\"}", "\xff\xfe{}",
		`{"identification":99999999999999999999999}`, nested(1000),
	} {
		f.Add([]byte(s))
	}
}

func runRegistrationBody(t *testing.T, e *fuzzEnv, body []byte) {
	a := e.post(t, "/account/registration", body)
	what := fmt.Sprintf("POST /account/registration %q", truncate(body))
	pe := e.check(t, a, what)

	obj, isObj := jsonObject(body)
	if !isObj {
		trailingBug(t, body, pe)
		expectCode(t, what, a, pe, "VALIDATION_ERROR", "PAYLOAD_TOO_LARGE")
		fieldsWithin(t, what, a, pe, oneOf("body"), "body")
		return
	}
	phoneOK := false
	if s, ok := stringMember(obj, "phone"); ok {
		phoneOK = tenDigits.MatchString(s)
	}
	ident := valid
	if raw, ok := obj["identification"]; ok && !isNull(raw) {
		switch r := string(raw); r {
		case "0", "1", "2":
		default:
			ident = invalid
			if f, err := strconv.ParseFloat(r, 64); err == nil && (f == 0 || f == 1 || f == 2) && json.Valid(raw) && raw[0] != '"' {
				ident = unclear // -0, 1.0, 2e0: the same numbers, written otherwise
			}
		}
	}
	switch {
	case pe != nil && pe.Code == "PAYLOAD_TOO_LARGE":
		if len(body) <= 64<<10 {
			t.Fatalf("%s: 413 for a body of %d bytes", what, len(body))
		}
	case phoneOK && ident == valid:
		if pe != nil {
			t.Fatalf("%s: a valid registration was refused: %s", what, a.body)
		}
	case !phoneOK || ident == invalid:
		var must []string
		if !phoneOK {
			must = append(must, "phone")
		}
		if ident == invalid {
			must = append(must, "identification")
		}
		expectCode(t, what, a, pe, "VALIDATION_ERROR")
		fieldsWithin(t, what, a, pe, oneOf("phone", "identification"), must...)
	}
	if len(body) > 64<<10 && (pe == nil || pe.Code != "PAYLOAD_TOO_LARGE") {
		t.Fatalf("%s: a body of %d bytes was not refused with 413", what, len(body))
	}
}

func truncate(b []byte) string { return short(string(b)) }

// short keeps messages about huge inputs readable.
func short(s string) string {
	if len(s) > 200 {
		return s[:200] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

// ---------------------------------------------------------------------------
// POST /account/{walletId}/refill

func FuzzRefillBody(f *testing.F) {
	seedsRefillBody(f)
	f.Fuzz(func(t *testing.T, body []byte) { runRefillBody(t, startEnv(t), body) })
}

func seedsRefillBody(f seeder) {
	for _, s := range []string{
		`{"amount":1500.00}`, `{"amount":"1500.00"}`, `{"amount":1500}`, `{"amount":"0.01"}`, `{"amount":0.001}`,
		`{"amount":1e3}`, `{"amount":"1E3"}`, `{"amount":-1}`, `{"amount":"-1"}`, `{"amount":0}`, `{"amount":"0.00"}`,
		`{"amount":"NaN"}`, `{"amount":"Infinity"}`, `{"amount":""}`, `{"amount":null}`, `{"amount":true}`,
		`{"amount":[1]}`, `{"amount":{"value":1}}`, `{"amount":1000000000.00}`, `{"amount":1000000000.01}`,
		`{"amount":99999999999999999999999999999}`, `{"amount":"\u0031"}`, `{"amount":1,"amount":"x"}`,
		`{"amount":" 1"}`, `{"amount":"1,5"}`, `{"amount":01}`, `{"amount":1.}`, ``, `{}`, `{"amount":1}]`,
	} {
		f.Add([]byte(s))
	}
}

func runRefillBody(t *testing.T, e *fuzzEnv, body []byte) {
	body = []byte(e.expand(t, string(body), e.refill))
	p := "/account/" + e.refill.ID + "/refill"
	a := e.post(t, p, body)
	what := fmt.Sprintf("POST %s %q", p, truncate(body))
	pe := e.check(t, a, what)
	amountTarget(t, what, a, pe, body, true, false)
	if pe == nil {
		var r struct {
			Status  string `json:"status"`
			Payload string `json:"payload"`
		}
		if err := json.Unmarshal(a.body, &r); err != nil || r.Status != "PENDING" || !strings.HasPrefix(r.Payload, e.srv.URL+"/sandbox/sbp/") {
			t.Fatalf("%s: refill answer %s", what, a.body)
		}
	}
}

// amountTarget checks the part every money request shares: a body that is not
// one JSON object is refused naming "body"; a missing or bad amount is refused
// naming "amount"; an accepted request answers the amount that was sent. It
// returns the verdict on the amount. domainAmount says the operation itself may
// refuse a well-formed amount as VALIDATION_ERROR (a refund above what is left).
func amountTarget(t testing.TB, what string, a answer, pe *protoError, body []byte, required, domainAmount bool) verdict {
	t.Helper()
	if len(body) > 64<<10 {
		expectCode(t, what, a, pe, "PAYLOAD_TOO_LARGE")
		return invalid
	}
	obj, isObj := jsonObject(body)
	if !isObj {
		trailingBug(t, body, pe)
		expectCode(t, what, a, pe, "VALIDATION_ERROR")
		fieldsWithin(t, what, a, pe, oneOf("body"), "body")
		return invalid
	}
	raw, present := obj["amount"]
	v, k := amountOf(raw)
	if !required && (!present || isNull(raw)) {
		v = valid
	}
	if v == invalid {
		expectCode(t, what, a, pe, "VALIDATION_ERROR")
		fieldsWithin(t, what, a, pe, func(string) bool { return true }, "amount")
	}
	if pe == nil && present && !isNull(raw) {
		var ans struct {
			Amount json.RawMessage `json:"amount"`
		}
		if err := json.Unmarshal(a.body, &ans); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := answerKopecks(t, what, ans.Amount); got != k {
			t.Fatalf("%s: sent amount %s, the answer says %s", what, raw, ans.Amount)
		}
	}
	if pe != nil && pe.Code == "VALIDATION_ERROR" {
		if _, named := pe.FieldErrors["amount"]; named && v == valid && !domainAmount {
			t.Fatalf("%s: a valid amount %s was refused: %s", what, raw, a.body)
		}
	}
	return v
}

// ---------------------------------------------------------------------------
// POST /account/{walletId}/payment

func FuzzPaymentBody(f *testing.F) {
	seedsPaymentBody(f)
	f.Fuzz(func(t *testing.T, body []byte) { runPaymentBody(t, startEnv(t), body) })
}

func seedsPaymentBody(f seeder) {
	for _, s := range []string{
		`{"walletId":"$WALLET","token":"$TOKEN","amount":"10.00","tsp":"$TSP"}`,
		`{"walletId":"$WALLET","token":"$TOKEN","amount":10,"tsp":"$FOREIGN_TSP"}`,
		`{"walletId":"$FOREIGN_WALLET","token":"$TOKEN","amount":10,"tsp":"$TSP"}`,
		`{"walletId":"$WALLET","token":"$USED_TOKEN","amount":"1.00","tsp":"$TSP"}`,
		`{"walletId":"$WALLET","token":"$USED_TOKEN","amount":"2.00","tsp":"$TSP"}`,
		`{"walletId":"$WALLET","token":"$TOKEN","amount":"999999999.99","tsp":"$TSP"}`,
		`{"walletId":"$WALLET","token":"$TOKEN","amount":1e2,"tsp":"$TSP"}`,
		`{"walletId":"$WALLET","token":"00000000-0000-0000-0000-000000000000","amount":1,"tsp":"$TSP"}`,
		`{"walletId":"$WALLET","token":"$TOKEN","amount":1,"tsp":"$TSP","tsp":"x"}`,
		`{"walletId":"$WALLET","token":"$TOKEN","amount":1,"tsp":"{$TSP}"}`,
		`{"walletId":"$WALLET","token":"$TOKEN","amount":1,"tsp":["$TSP"]}`,
		`{"walletId":null,"token":null,"amount":null,"tsp":null}`, `{}`, ``, `[{}]`,
	} {
		f.Add([]byte(s))
	}
}

func runPaymentBody(t *testing.T, e *fuzzEnv, body []byte) {
	body = []byte(e.expand(t, string(body), e.pay))
	p := "/account/" + e.pay.ID + "/payment"
	a := e.post(t, p, body)
	what := fmt.Sprintf("POST %s %q", p, truncate(body))
	pe := e.check(t, a, what)
	if amountTarget(t, what, a, pe, body, true, false) == invalid && len(body) > 64<<10 {
		return
	}
	obj, isObj := jsonObject(body)
	if !isObj {
		return
	}
	fieldsWithin(t, what, a, pe, oneOf("body", "walletId", "token", "amount", "tsp"))
	for _, name := range []string{"walletId", "token", "tsp"} {
		s, ok := stringMember(obj, name)
		if !ok || uuidVerdict(s) == invalid {
			expectCode(t, what, a, pe, "VALIDATION_ERROR")
			fieldsWithin(t, what, a, pe, func(string) bool { return true }, name)
		}
	}
	if s, ok := stringMember(obj, "walletId"); ok && uuidVerdict(s) == valid && s != e.pay.ID {
		_, named := pe.fieldErrors()["walletId"]
		fixedBug(t, s == nilUUID && !named, "a body walletId of the nil UUID is taken for an absent one: no mismatch error, "+
			"and with the other fields valid the payment is looked up for wallet 0000…: 404 WALLET_NOT_FOUND instead of 400 naming walletId")
		expectCode(t, what, a, pe, "VALIDATION_ERROR")
		fieldsWithin(t, what, a, pe, func(string) bool { return true }, "walletId")
	}
	if tsp, _ := stringMember(obj, "tsp"); strings.EqualFold(tsp, e.foreignTSP) {
		expectCode(t, what, a, pe, "TSP_NOT_FOUND", "VALIDATION_ERROR", "TOKEN_INVALID")
	}
	if pe == nil {
		var r struct {
			WalletID, Token, Status string
		}
		if err := json.Unmarshal(a.body, &r); err != nil {
			t.Fatal(err)
		}
		tok, _ := stringMember(obj, "token")
		tsp, _ := stringMember(obj, "tsp")
		if r.WalletID != e.pay.ID || !strings.EqualFold(r.Token, tok) || r.Status != "SUCCESS" || !strings.EqualFold(tsp, e.srv.TSPID.String()) {
			t.Fatalf("%s: accepted payment answered %s", what, a.body)
		}
	}
	e.keepFunded(t, pe, e.pay.ID)
}

// ---------------------------------------------------------------------------
// POST /account/{walletId}/wifhdrawal (and the withdrawal alias)

func FuzzWithdrawalBody(f *testing.F) {
	seedsWithdrawalBody(f)
	f.Fuzz(func(t *testing.T, body []byte) { runWithdrawalBody(t, startEnv(t), body) })
}

func seedsWithdrawalBody(f seeder) {
	for _, s := range []string{
		`{"bankIdentifier":"$BANK","amount":"100.00"}`, `{"bankIdentifier":"$BANK","amount":"100.13"}`,
		`{"bankIdentifier":"$BANK","amount":100}`, `{"bankIdentifier":"999999999999","amount":1}`,
		`{"bankIdentifier":"10000000011","amount":1}`, `{"bankIdentifier":"１００000000111","amount":1}`,
		`{"bankIdentifier":100000000111,"amount":1}`, `{"bankIdentifier":"$BANK","amount":"1e2"}`,
		`{"bankIdentifier":"$BANK","amount":600000.01}`, `{"bankIdentifier":"$BANK"}`, `{"amount":1}`,
		`{"bankIdentifier":"$BANK","amount":1,"walletId":"$FOREIGN_WALLET"}`, ``, `{}`, `0`,
	} {
		f.Add([]byte(s))
	}
}

func runWithdrawalBody(t *testing.T, e *fuzzEnv, body []byte) {
	body = []byte(e.expand(t, string(body), e.withdraw))
	// Odd lengths go to the alias, so both spellings are fuzzed.
	spelling := "wifhdrawal"
	if len(body)%2 == 1 {
		spelling = "withdrawal"
	}
	p := "/account/" + e.withdraw.ID + "/" + spelling
	a := e.post(t, p, body)
	what := fmt.Sprintf("POST %s %q", p, truncate(body))
	pe := e.check(t, a, what)
	amountTarget(t, what, a, pe, body, true, false)
	obj, isObj := jsonObject(body)
	if !isObj || len(body) > 64<<10 {
		return
	}
	fieldsWithin(t, what, a, pe, oneOf("body", "bankIdentifier", "amount"))
	bank, ok := stringMember(obj, "bankIdentifier")
	if !ok || !twelveDigits.MatchString(bank) {
		expectCode(t, what, a, pe, "VALIDATION_ERROR")
		fieldsWithin(t, what, a, pe, func(string) bool { return true }, "bankIdentifier")
	}
	if pe == nil {
		var r struct {
			WalletID, BankIdentifier, Status string
		}
		if err := json.Unmarshal(a.body, &r); err != nil {
			t.Fatal(err)
		}
		if r.WalletID != e.withdraw.ID || r.BankIdentifier != bank || r.Status != "PENDING" {
			t.Fatalf("%s: accepted withdrawal answered %s", what, a.body)
		}
	}
	e.keepFunded(t, pe, e.withdraw.ID)
}

// ---------------------------------------------------------------------------
// POST /account/{walletId}/payment/{token}/refund

func FuzzRefundBody(f *testing.F) {
	seedsRefundBody(f)
	f.Fuzz(func(t *testing.T, body []byte) { runRefundBody(t, startEnv(t), body) })
}

func seedsRefundBody(f seeder) {
	for _, s := range []string{
		``, `{}`, `{"amount":null}`, `{"amount":"1.00"}`, `{"amount":0.5}`, `{"amount":0}`, `{"amount":-5}`,
		`{"amount":"400000.01"}`, `{"amount":1000000000.00}`, `{"amount":1e1}`, `{"amount":"0.001"}`,
		`{"amount":1,"amount":2}`, `{"amount":"1"}]`, `[]`, `{"amount":{}}`,
	} {
		f.Add([]byte(s))
	}
}

func runRefundBody(t *testing.T, e *fuzzEnv, body []byte) {
	e.mu.Lock()
	token, left := e.refundToken, e.refundLeft
	e.mu.Unlock()
	body = []byte(e.expand(t, string(body), e.refund))
	p := "/account/" + e.refund.ID + "/payment/" + token + "/refund"
	a := e.post(t, p, body)
	what := fmt.Sprintf("POST %s %q (refundable %d kopecks)", p, truncate(body), left)
	pe := e.check(t, a, what)

	// Bookkeeping first, so that a skipped input does not leave it wrong.
	got := int64(-1)
	var status string
	if pe == nil {
		var r struct {
			Amount json.RawMessage `json:"amount"`
			Status string          `json:"status"`
		}
		if err := json.Unmarshal(a.body, &r); err != nil {
			t.Fatal(err)
		}
		got, status = answerKopecks(t, what, r.Amount), r.Status
		e.mu.Lock()
		e.refundLeft -= got
		exhausted := e.refundLeft <= 0
		e.mu.Unlock()
		if exhausted {
			// A new payment to refund.
			tok, _, err := e.payOnce(e.refund.ID, "400000.00")
			if err != nil {
				t.Fatalf("new payment to refund: %v", err)
			}
			e.mu.Lock()
			e.refundToken, e.refundLeft = tok, 400000_00
			e.mu.Unlock()
		}
	}

	v := amountTarget(t, what, a, pe, body, false, true)
	fieldsWithin(t, what, a, pe, oneOf("body", "amount"))
	obj, _ := jsonObject(body)
	raw := obj["amount"]
	if pe != nil {
		expectCode(t, what, a, pe, "VALIDATION_ERROR", "LIMIT_EXCEEDED", "PAYLOAD_TOO_LARGE")
		if pe.Code == "VALIDATION_ERROR" && v == valid && left > 0 {
			if _, k := amountOf(raw); isNull(raw) || k <= left {
				t.Fatalf("%s: a refund within what is refundable was refused: %s", what, a.body)
			}
		}
		return
	}
	if isNull(raw) && got != left {
		t.Fatalf("%s: a refund without amount must return all that is left (%d kopecks), answered %s", what, left, a.body)
	}
	if got > left || got <= 0 || status != "SUCCESS" {
		t.Fatalf("%s: refunded %d kopecks of %d left: %s", what, got, left, a.body)
	}
}

// ---------------------------------------------------------------------------
// POST /account/{walletId}/limit

// systemIdentified is PROTOCOL.md section 5 for IDENTIFIED wallets, in kopecks.
const systemIdentified = 600000_00

func FuzzLimitsBody(f *testing.F) {
	seedsLimitsBody(f)
	f.Fuzz(func(t *testing.T, body []byte) { runLimitsBody(t, startEnv(t), body) })
}

func seedsLimitsBody(f seeder) {
	for _, s := range []string{
		`{}`, ``, `{"balanceLimit":100000}`, `{"balanceLimit":null}`, `{"balanceLimit":600000.01}`, `{"balanceLimit":-1}`,
		`{"operationLimits":{"PAYMENT":{"oneTimeLimit":"5000.00","monthLimit":null,"enabled":false}}}`,
		`{"operationLimits":{"DEBIT":{"enabled":true}}}`, `{"operationLimits":{"REFUND":{"enabled":true}}}`,
		`{"operationLimits":{"CREDIT":{"operationType":"DEBIT"}}}`, `{"operationLimits":{"CREDIT":[]}}`,
		`{"operationLimits":[]}`, `{"operationLimits":{"CREDIT":{"enabled":"true"}}}`,
		`{"operationLimits":{"CREDIT":{"oneTimeLimit":1e5}}}`, `{"operationLimits":{"":{}}}`,
		`{"walletId":"$WALLET","balanceLimit":1}`, `{"walletId":"$FOREIGN_WALLET","balanceLimit":1}`,
		`{"walletId":5}`, `{"balanceLimit":1,"balanceLimit":"x"}`, `{"balanceLimit":1}}`,
		`{"identification":"ELEMENTARY","operationLimits":{"PAYMENT":{"monthUsed":5}}}`,
	} {
		f.Add([]byte(s))
	}
}

func runLimitsBody(t *testing.T, e *fuzzEnv, body []byte) {
	body = []byte(e.expand(t, string(body), e.limits))
	p := "/account/" + e.limits.ID + "/limit"
	a := e.post(t, p, body)
	what := fmt.Sprintf("POST %s %q", p, truncate(body))
	pe := e.check(t, a, what)
	fieldsWithin(t, what, a, pe, func(k string) bool {
		return k == "body" || k == "walletId" || k == "balanceLimit" || k == "operationLimits" || strings.HasPrefix(k, "operationLimits.")
	})
	if pe == nil {
		// Bookkeeping first, so that a skipped input does not leave it wrong.
		e.mu.Lock()
		e.limitsState = a.body
		e.mu.Unlock()
	}
	obj, isObj := jsonObject(body)
	if len(body) > 64<<10 {
		expectCode(t, what, a, pe, "PAYLOAD_TOO_LARGE")
	} else if !isObj {
		trailingBug(t, body, pe)
		expectCode(t, what, a, pe, "VALIDATION_ERROR")
		fieldsWithin(t, what, a, pe, oneOf("body"), "body")
	} else {
		// Each limit: null, or an amount >= 0 not above the system's (600000.00
		// one-time and balance for IDENTIFIED; months have no system value).
		checkLimit := func(field string, raw json.RawMessage, capped bool) {
			if isNull(raw) {
				return
			}
			switch v, k := decimalOf(raw); {
			case v == invalid, v == valid && capped && k > systemIdentified:
				expectCode(t, what, a, pe, "VALIDATION_ERROR")
				fieldsWithin(t, what, a, pe, func(string) bool { return true }, field)
			}
		}
		if raw, ok := obj["balanceLimit"]; ok {
			checkLimit("balanceLimit", raw, true)
		}
		var ops map[string]json.RawMessage
		if raw, ok := obj["operationLimits"]; ok && !isNull(raw) && json.Unmarshal(raw, &ops) == nil {
			for typ, rawType := range ops {
				var fields map[string]json.RawMessage
				if !slices.Contains([]string{"CREDIT", "PAYMENT", "DEBIT"}, typ) || json.Unmarshal(rawType, &fields) != nil {
					continue
				}
				for name, raw := range fields {
					switch name {
					case "oneTimeLimit":
						checkLimit("operationLimits."+typ+".oneTimeLimit", raw, true)
					case "monthLimit":
						checkLimit("operationLimits."+typ+".monthLimit", raw, false)
					}
				}
			}
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if pe != nil {
		// Nothing is saved when a request is refused.
		tok, err := e.bearerLocked()
		if err != nil {
			t.Fatal(err)
		}
		now, err := e.callWith(tok, http.MethodGet, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.check(t, now, "GET "+p)
		if !bytes.Equal(now.body, e.limitsState) {
			t.Fatalf("%s: refused (%s), yet the limits changed:\nbefore %s\nafter  %s", what, pe.Code, e.limitsState, now.body)
		}
		return
	}
	var l struct {
		WalletID        string          `json:"walletId"`
		BalanceLimit    json.RawMessage `json:"balanceLimit"`
		OperationLimits map[string]struct {
			OneTimeLimit json.RawMessage `json:"oneTimeLimit"`
		} `json:"operationLimits"`
	}
	if err := json.Unmarshal(a.body, &l); err != nil || l.WalletID != e.limits.ID {
		t.Fatalf("%s: limits answer %s (%v)", what, a.body, err)
	}
	for name, raw := range map[string]json.RawMessage{
		"balanceLimit":   l.BalanceLimit,
		"CREDIT.oneTime": l.OperationLimits["CREDIT"].OneTimeLimit,
		"PAYMENT.onTime": l.OperationLimits["PAYMENT"].OneTimeLimit,
		"DEBIT.oneTime":  l.OperationLimits["DEBIT"].OneTimeLimit,
	} {
		if !isNull(raw) && answerKopecks(t, what, raw) > systemIdentified {
			t.Fatalf("%s: effective %s %s is above the system's 600000.00", what, name, raw)
		}
	}
}

// bearerLocked is bearer for callers that hold e.mu.
func (e *fuzzEnv) bearerLocked() (string, error) {
	if e.access != "" && time.Since(e.issuedAt) < 10*time.Minute {
		return e.access, nil
	}
	p, err := e.issue(e.srv.Partner)
	if err != nil {
		return "", err
	}
	e.access, e.refresh, e.issuedAt = p.AccessToken, p.RefreshToken, time.Now()
	return e.access, nil
}

// ---------------------------------------------------------------------------
// GET /account/{walletId}/report?…

var reportParams = []string{"dateFrom", "dateTo", "operationType", "amountFrom", "amountTo", "page", "size"}

func FuzzReportQuery(f *testing.F) {
	seedsReportQuery(f)
	f.Fuzz(func(t *testing.T, query string) { runReportQuery(t, startEnv(t), query) })
}

func seedsReportQuery(f seeder) {
	for _, s := range []string{
		``, `page=0&size=20`, `size=100`, `size=101`, `size=0`, `size=-1`, `page=-1`, `page=1000000`, `page=1000001`,
		`page=99999999999999999999`, `size=1e1`, `size=%2B5`, `page=0&page=1`, `x=1&x=2`, `operationType=PAYMENT`,
		`operationType=payment`, `operationType=`, `amountFrom=0&amountTo=1000000000`, `amountFrom=1e3`, `amountFrom=-1`,
		`amountFrom=`, `amountTo=1000000000.01`, `dateFrom=2024-07-10`, `dateFrom=2024-07-10+14-03-59`,
		`dateFrom=2024-07-10+14:03:59`, `dateFrom=2024-07-10T14:03:59%2B03:00`, `dateFrom=0000-01-01&dateTo=9999-12-31`,
		`dateFrom=2024-02-30`, `dateTo=2024-13-01`, `dateFrom=-0001-01-01T00:00:00Z`, `dateFrom=10000-01-01T00:00:00Z`,
		`dateTo=2024-07-10T14:03:59.999999999-23:59`, `dateFrom=%ZZ`, `a;b=c`, `%00=%00`, `&&&=&`, `dateFrom=2024-07-10%00`,
	} {
		f.Add(s)
	}
}

func runReportQuery(t *testing.T, e *fuzzEnv, query string) {
	raw := escapeTarget(query, "#")
	p := "/account/" + e.report.ID + "/report"
	a := e.send(t, http.MethodGet, p, raw, nil)
	what := fmt.Sprintf("GET %s?%s", p, short(raw))
	pe := e.check(t, a, what)
	q := a.url.Query()

	must, unsure := []string{}, false
	for name, vals := range q {
		if len(vals) > 1 {
			must = append(must, name)
			continue
		}
		if !slices.Contains(reportParams, name) {
			continue
		}
		switch reportParamVerdict(name, vals[0]) {
		case invalid:
			must = append(must, name)
		case unclear:
			unsure = true
		}
	}
	// An inverted range (from above to) is not settled by the protocol.
	if f, ok := kopecks(q.Get("amountFrom")); ok {
		if to, ok := kopecks(q.Get("amountTo")); ok && f > to {
			unsure = true
		}
	}
	if q.Get("dateFrom") != "" && q.Get("dateTo") != "" && q.Get("dateFrom") > q.Get("dateTo") {
		unsure = true
	}
	if len(must) > 0 {
		expectCode(t, what, a, pe, "VALIDATION_ERROR")
	} else if !unsure && pe != nil {
		t.Fatalf("%s: a valid query was refused: %s", what, a.body)
	}
	// A name that is not UTF-8 comes back with U+FFFD for each bad byte, as JSON writes it.
	names := map[string]bool{}
	for name := range q {
		names[asJSONString(name)] = true
	}
	for i := range must {
		must[i] = asJSONString(must[i])
	}
	fieldsWithin(t, what, a, pe, func(k string) bool { return names[k] }, must...)
	if pe != nil {
		return
	}
	var r struct {
		Content []struct {
			OperationType string          `json:"operationType"`
			Amount        json.RawMessage `json:"amount"`
		} `json:"content"`
		Page, Size, TotalElements, TotalPages int
	}
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatal(err)
	}
	if r.Size < 1 || r.Size > 100 || len(r.Content) > r.Size || r.TotalPages != (r.TotalElements+r.Size-1)/r.Size {
		t.Fatalf("%s: inconsistent page: %s", what, a.body)
	}
	if q.Has("size") {
		if n, err := strconv.Atoi(q.Get("size")); err == nil && n != r.Size {
			t.Fatalf("%s: asked for size %d, answered %d", what, n, r.Size)
		}
	}
	typ := q.Get("operationType")
	from, hasFrom := kopecks(q.Get("amountFrom"))
	to, hasTo := kopecks(q.Get("amountTo"))
	for _, it := range r.Content {
		if typ != "" && it.OperationType != typ {
			t.Fatalf("%s: item of type %s in a report of %s", what, it.OperationType, typ)
		}
		k := answerKopecks(t, what, it.Amount)
		if (hasFrom && k < from) || (hasTo && k > to) {
			t.Fatalf("%s: item of %s outside the amount bounds", what, it.Amount)
		}
	}
}

var (
	plainDate     = regexp.MustCompile(`^(19[7-9][0-9]|2[01][0-9][0-9])-[01][0-9]-[0-3][0-9]$`)
	dateForbidden = regexp.MustCompile(`[^0-9 :T+Z.\-]`)
)

// reportParamVerdict is PROTOCOL.md section 4.5 for one report parameter.
func reportParamVerdict(name, v string) verdict {
	switch name {
	case "page":
		// 0-based; the protocol names no upper bound, so a huge page is unclear.
		switch {
		case pageValid.MatchString(v):
			return valid
		case pageUnclear.MatchString(v):
			return unclear
		}
		return invalid
	case "size":
		if sizeValid.MatchString(v) {
			return valid
		}
		if leadingZeros.MatchString(v) || strings.HasPrefix(v, "+") {
			return unclear
		}
		return invalid
	case "operationType":
		if slices.Contains([]string{"PAYMENT", "CREDIT", "DEBIT", "REFUND"}, v) {
			return valid
		}
		if v == "" {
			return unclear
		}
		return invalid
	case "amountFrom", "amountTo":
		if _, ok := kopecks(v); ok {
			return valid
		}
		return invalid
	case "dateFrom", "dateTo":
		if plainDate.MatchString(v) {
			if _, err := time.Parse("2006-01-02", v); err == nil {
				return valid
			}
			return invalid
		}
		if v != "" && dateForbidden.MatchString(strings.TrimSpace(v)) {
			return invalid
		}
		return unclear
	}
	return unclear
}

// ---------------------------------------------------------------------------
// POST /oauth/token

func FuzzTokenForm(f *testing.F) {
	seedsTokenForm(f)
	f.Fuzz(func(t *testing.T, body []byte, contentType, authorization string) {
		runTokenForm(t, startEnv(t), body, contentType, authorization)
	})
}

func seedsTokenForm(f seeder) {
	form := "application/x-www-form-urlencoded"
	for _, s := range [][3]string{
		{`grant_type=client_credentials&partner_id=$PARTNER`, form, `$BASIC`},
		{`grant_type=client_credentials&client_id=$CLIENT&client_secret=$SECRET&partner_id=$PARTNER`, form, ``},
		{`{"grant_type":"client_credentials","client_id":"$CLIENT","client_secret":"$SECRET","partner_id":"$PARTNER"}`, "application/json", ``},
		{`grant_type=refresh_token&refresh_token=$REFRESH`, form, `$BASIC`},
		{`grant_type=refresh_token&refresh_token=$ACCESS`, form, `$BASIC`},
		{`grant_type=client_credentials&partner_id=00000000-0000-0000-0000-000000000000`, form, `$BASIC`},
		{`grant_type=client_credentials&client_id=$CLIENT&client_secret=$SECRET&partner_id=$PARTNER`, form, `$BASIC`},
		{`grant_type=client_credentials&grant_type=refresh_token`, form, `$BASIC`},
		{`grant_type=password&username=a&password=b`, form, `$BASIC`},
		{`grant_type=client_credentials&partner_id=$PARTNER`, form, `Basic !!!`},
		{`grant_type=client_credentials&partner_id=$PARTNER`, form, `Basic ` + base64.StdEncoding.EncodeToString([]byte("%zz:%zz"))},
		{`grant_type=client_credentials&partner_id=$PARTNER`, form, `Bearer x`},
		{`{"grant_type":1}`, "application/json", ``},
		{`{"grant_type":"client_credentials","partner_id":null}`, "application/json; charset=utf-8", `$BASIC`},
		{`[]`, "application/json", ``},
		{`%zz=%zz`, form, ``},
		{`grant_type=client_credentials;partner_id=$PARTNER`, form, `$BASIC`},
		{`grant_type=client_credentials&partner_id=$PARTNER`, "multipart/form-data; boundary=x", `$BASIC`},
		{`grant_type=client_credentials&partner_id=$PARTNER`, "text/plain", `$BASIC`},
		{`grant_type=client_credentials&partner_id=$PARTNER`, ";;;", `$BASIC`},
		{``, ``, ``},
	} {
		f.Add([]byte(s[0]), s[1], s[2])
	}
}

func runTokenForm(t *testing.T, e *fuzzEnv, body []byte, contentType, authorization string) {
	body, authorization = e.expandOAuth(t, body, authorization)
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	if authorization != "" {
		h.Set("Authorization", authorization)
	}
	a, err := e.roundTrip(request{method: http.MethodPost, path: httpapi.BasePath + "/oauth/token", body: body, header: h})
	if errors.Is(err, errUnsendable) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	what := fmt.Sprintf("POST /oauth/token Content-Type %q Authorization %q body %q", short(contentType), short(authorization), truncate(body))
	if id := clientIDOf(body, contentType, authorization); a.status == http.StatusInternalServerError {
		fixedBug(t, strings.ContainsRune(id, 0) || !utf8.ValidString(id),
			"on PostgreSQL a client_id with a NUL byte or invalid UTF-8 reaches the query and answers 500 (auth.Service.authenticate)")
	}
	if a.status >= 500 {
		t.Fatalf("%s: answered %d: %s", what, a.status, a.body)
	}
	if err := e.validator.ValidateResponse(a.req, a.status, a.header, a.body); err != nil {
		t.Fatalf("%s: answer does not match openapi.yaml: %v\nbody: %s", what, err, a.body)
	}
	switch a.status {
	case http.StatusOK:
		var p tokenPair
		if err := json.Unmarshal(a.body, &p); err != nil || !strings.HasPrefix(p.AccessToken, "wat_") ||
			!strings.HasPrefix(p.RefreshToken, "wrt_") || p.TokenType != "Bearer" || p.ExpiresIn <= 0 || p.RefreshExpiresIn <= 0 {
			t.Fatalf("%s: token answer %s", what, a.body)
		}
		// Nobody gets a token without presenting the secret.
		secret := e.srv.Partner.ClientSecret
		decoded, _ := url.QueryUnescape(string(body))
		basic := ""
		if _, enc, ok := strings.Cut(authorization, " "); ok {
			b, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
			basic, _ = url.QueryUnescape(string(b))
		}
		if !strings.Contains(string(body), secret) && !strings.Contains(decoded, secret) && !strings.Contains(basic, secret) {
			t.Fatalf("%s: issued a token to a request without the client secret: %s", what, a.body)
		}
	case http.StatusBadRequest, http.StatusUnauthorized:
		var o map[string]any
		if err := json.Unmarshal(a.body, &o); err != nil {
			t.Fatalf("%s: %d answer is not JSON: %q", what, a.status, a.body)
		}
		code, _ := o["error"].(string)
		desc, hasDesc := o["error_description"].(string)
		okCodes := []string{"invalid_request", "invalid_grant", "unsupported_grant_type", "unauthorized_client", "invalid_scope"}
		if a.status == http.StatusUnauthorized {
			okCodes = []string{"invalid_client"}
		}
		if !slices.Contains(okCodes, code) || !hasDesc || desc == "" {
			t.Fatalf("%s: %d answer is not an RFC 6749 error with a description: %s", what, a.status, a.body)
		}
		if _, isProto := o["code"]; isProto {
			t.Fatalf("%s: OAuth error mixed with the protocol's: %s", what, a.body)
		}
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		pe, err := decodeProtoError(a.body)
		if err != nil || codeStatus[pe.Code] != a.status {
			t.Fatalf("%s: %d answer %q (%v)", what, a.status, a.body, err)
		}
	default:
		t.Fatalf("%s: unexpected status %d: %s", what, a.status, a.body)
	}
	if cc := a.header.Get("Cache-Control"); a.status != http.StatusTooManyRequests && a.status != http.StatusRequestEntityTooLarge && !strings.Contains(cc, "no-store") {
		t.Fatalf("%s: %d answer without Cache-Control: no-store", what, a.status)
	}
}

// clientIDOf is the client_id the token endpoint reads from the request: the
// user of HTTP Basic, else the field of the JSON or form body.
func clientIDOf(body []byte, contentType, authorization string) string {
	if scheme, enc, ok := strings.Cut(authorization, " "); ok && strings.EqualFold(scheme, "Basic") {
		if raw, err := base64.StdEncoding.DecodeString(enc); err == nil {
			if user, _, ok := strings.Cut(string(raw), ":"); ok {
				if id, err := url.QueryUnescape(user); err == nil {
					return id
				}
			}
		}
	}
	if media, _, _ := mime.ParseMediaType(contentType); media == "application/json" {
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		id, _ := m["client_id"].(string)
		return id
	}
	q, _ := url.ParseQuery(string(body))
	return q.Get("client_id")
}

// expandOAuth fills in the token endpoint's placeholders. $REFRESH is a fresh,
// unused refresh token; $ACCESS a live access token.
func (e *fuzzEnv) expandOAuth(t testing.TB, body []byte, authorization string) ([]byte, string) {
	t.Helper()
	c := e.srv.Partner
	s := string(body)
	if strings.Contains(s, "$REFRESH") || strings.Contains(s, "$ACCESS") {
		p, err := e.issue(c)
		if err != nil {
			t.Fatal(err)
		}
		s = strings.ReplaceAll(strings.ReplaceAll(s, "$REFRESH", p.RefreshToken), "$ACCESS", p.AccessToken)
	}
	r := strings.NewReplacer("$CLIENT", c.ClientID, "$SECRET", c.ClientSecret, "$PARTNER", c.PartnerID.String())
	authorization = strings.ReplaceAll(authorization, "$BASIC", basicAuth(c.ClientID, c.ClientSecret))
	return []byte(r.Replace(s)), r.Replace(authorization)
}

// ---------------------------------------------------------------------------
// Path parameters: walletId, operationId, token, isIdentified.

type pathRoute struct {
	method   string
	template string // %[1]s: walletId, %[2]s: the second parameter
	second   string // the name of the second parameter, if any
	body     string
	// bodyWallet: the body has a walletId of its own, which fieldErrors may name.
	bodyWallet bool
}

var pathRoutes = []pathRoute{
	{http.MethodGet, "/account/%[1]s/info", "", "", false},
	{http.MethodPost, "/account/%[1]s/deactivation", "", "", false},
	{http.MethodPost, "/account/%[1]s/identification/%[2]s", "isIdentified", "", false},
	{http.MethodGet, "/account/%[1]s/limit", "", "", false},
	{http.MethodPost, "/account/%[1]s/limit", "", `{}`, false},
	{http.MethodGet, "/account/%[1]s/report", "", "", false},
	{http.MethodPost, "/account/%[1]s/refill", "", `{"amount":"1.00"}`, false},
	{http.MethodGet, "/account/%[1]s/payment/initialization", "", "", false},
	{http.MethodPost, "/account/%[1]s/payment", "", `{}`, true},
	{http.MethodPost, "/account/%[1]s/payment/%[2]s/refund", "token", `{"amount":"0.01"}`, false},
	{http.MethodGet, "/account/%[1]s/operation/%[2]s", "operationId", "", false},
	{http.MethodPost, "/account/%[1]s/wifhdrawal", "", `{}`, false},
	{http.MethodPost, "/account/%[1]s/withdrawal", "", `{}`, false},
}

func FuzzPathIDs(f *testing.F) {
	seedsPathIDs(f)
	f.Fuzz(func(t *testing.T, route uint8, walletSeg, secondSeg string) {
		runPathIDs(t, startEnv(t), route, walletSeg, secondSeg)
	})
}

func seedsPathIDs(f seeder) {
	for i := range pathRoutes {
		for _, w := range []string{"$WALLET", "$FOREIGN_WALLET", "00000000-0000-0000-0000-000000000000", "not-a-uuid",
			"%24WALLET", "$WALLET%00", "%2e%2e", "a%2Fb"} {
			second := map[string]string{"isIdentified": "2", "token": "$TOKEN", "operationId": "$OP"}[pathRoutes[i].second]
			f.Add(uint8(i), w, second)
		}
	}
	for _, s := range [][2]string{
		{"$WALLET", "3"}, {"$WALLET", "02"}, {"$WALLET", "-0"}, {"$WALLET", "%32"}, {"$WALLET", ""}, {"$WALLET", "%"},
		{"{$WALLET}", "$OP"}, {"urn:uuid:$WALLET", "$OP"}, {"$WALLET", "$FOREIGN_WALLET"}, {"..", "."},
		{"%C0%AF", "\xff\xfe"}, {"$WALLET/", "x"}, {"$WALLET?x=1", "#"}, {strings.Repeat("a", 5000), "b"},
	} {
		f.Add(uint8(2), s[0], s[1])
		f.Add(uint8(10), s[0], s[1])
	}
}

func runPathIDs(t *testing.T, e *fuzzEnv, route uint8, walletSeg, secondSeg string) {
	r := pathRoutes[int(route)%len(pathRoutes)]
	expand := func(s string) string {
		return strings.NewReplacer("$WALLET_UPPER", strings.ToUpper(e.pathW.ID), "$TOKEN_UPPER", strings.ToUpper(e.pathToken),
			"$WALLET", e.pathW.ID, "$FOREIGN_WALLET", e.foreignWallet.ID, "$TOKEN", e.pathToken, "$OP", e.pathOp).Replace(s)
	}
	w, second := escapeTarget(expand(walletSeg), "?#"), escapeTarget(expand(secondSeg), "?#")
	p := fmt.Sprintf(r.template, w, second)
	if r.second == "" {
		p = fmt.Sprintf(r.template, w)
	}
	var body []byte
	if r.body != "" {
		body = []byte(r.body)
	}
	tok, err := e.bearer()
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+tok)
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	what := fmt.Sprintf("%s %s (walletId %q, second %q)", r.method, short(p), short(walletSeg), short(secondSeg))
	a, err := e.roundTrip(request{method: r.method, path: httpapi.BasePath + p, body: body, header: h})
	if err != nil {
		t.Fatal(err)
	}
	if a.req == nil {
		// net/http itself refuses a request-target that is not a valid URI
		// (a bad percent-escape) before any handler runs: 400, plain text.
		if a.status != http.StatusBadRequest {
			t.Fatalf("%s: an invalid request-target answered %d: %s", what, a.status, a.body)
		}
		return
	}
	pe := e.check(t, a, what)

	// A path with empty, "." or ".." segments (also percent-encoded ones) is
	// not canonical: 404 NOT_FOUND, never a redirect or another resource.
	if sp := a.url.Path; path.Clean(sp) != strings.TrimSuffix(sp, "/") || strings.HasSuffix(sp, "/") {
		expectCode(t, what, a, pe, "NOT_FOUND")
		return
	}

	// What the server sees as the parameter.
	wallet, werr := url.PathUnescape(w)
	sec, serr := url.PathUnescape(second)
	clean := func(s string) bool { return s != "" && s != "." && s != ".." && !strings.Contains(s, "/") }
	if werr != nil || serr != nil {
		return
	}
	if !clean(wallet) || (r.second != "" && !clean(sec)) {
		// "", "." and ".." segments (also when percent-encoded) are not canonical
		// paths: 404 NOT_FOUND; a decoded '/' may make another path.
		return
	}
	switch uuidVerdict(wallet) {
	case invalid:
		expectCode(t, what, a, pe, "VALIDATION_ERROR")
		fieldsWithin(t, what, a, pe, func(string) bool { return true }, "walletId")
	case valid:
		if pe != nil && !r.bodyWallet {
			if _, named := pe.FieldErrors["walletId"]; named {
				t.Fatalf("%s: a well-formed walletId was refused as malformed: %s", what, a.body)
			}
		}
		if wallet != e.pathW.ID {
			// Not a wallet of this partner: never an answer with data.
			expectCode(t, what, a, pe, "WALLET_NOT_FOUND", "VALIDATION_ERROR")
			if strings.Contains(string(a.body), e.foreignWallet.Number) {
				t.Fatalf("%s: answer shows the other partner's wallet: %s", what, a.body)
			}
		}
	}
	if uuidVerdict(wallet) == invalid {
		return // the first malformed parameter is the one named
	}
	switch r.second {
	case "operationId", "token":
		switch uuidVerdict(sec) {
		case invalid:
			expectCode(t, what, a, pe, "VALIDATION_ERROR")
			fieldsWithin(t, what, a, pe, func(string) bool { return true }, r.second)
		case valid:
			if pe != nil {
				if _, named := pe.FieldErrors[r.second]; named && pe.Code == "VALIDATION_ERROR" {
					t.Fatalf("%s: a well-formed %s was refused as malformed: %s", what, r.second, a.body)
				}
			}
		}
	case "isIdentified":
		if sec != "0" && sec != "1" && sec != "2" {
			expectCode(t, what, a, pe, "VALIDATION_ERROR")
			fieldsWithin(t, what, a, pe, func(string) bool { return true }, "isIdentified")
		}
	}
	if pe == nil && !strings.Contains(string(a.body), e.pathW.ID) && r.method == http.MethodGet && r.template != "/account/%[1]s/report" && r.template != "/account/%[1]s/operation/%[2]s" {
		t.Fatalf("%s: answered 200 without the wallet's id: %s", what, a.body)
	}
}

// ---------------------------------------------------------------------------
// The Idempotency-Key header.

type idemEndpoint struct {
	path         string
	first, other string
}

func (e *fuzzEnv) idemEndpoints() []idemEndpoint {
	w := "/account/" + e.idem.ID
	return []idemEndpoint{
		{w + "/refill", `{"amount":"1.00"}`, `{"amount":"2.00"}`},
		{"/account/registration", `{"phone":"9000000099"}`, `{"phone":"9000000098"}`},
		{w + "/limit", `{"balanceLimit":"590000.00"}`, `{"balanceLimit":"580000.00"}`},
		{w + "/wifhdrawal", `{"bankIdentifier":"100000000111","amount":"0.01"}`, `{"bankIdentifier":"100000000111","amount":"0.02"}`},
	}
}

func FuzzIdempotencyKey(f *testing.F) {
	seedsIdempotencyKey(f)
	f.Fuzz(func(t *testing.T, key string, endpoint uint8) { runIdempotencyKey(t, startEnv(t), key, endpoint) })
}

func seedsIdempotencyKey(f seeder) {
	for _, k := range []string{
		"5c1f0a9e-refill-0001", "a", " ", "", "\t", strings.Repeat("k", 255), strings.Repeat("k", 256), "ключ", "a\x00b",
		"a\x7fb", "a b", " padded ", "a\tb", "\xff", "~!@#$%^&*()_+{}|:\"<>?", "a\r\nX-Injected: 1", "%00",
	} {
		for ep := range 4 {
			f.Add(k, uint8(ep))
		}
	}
}

func runIdempotencyKey(t *testing.T, e *fuzzEnv, key string, endpoint uint8) {
	eps := e.idemEndpoints()
	ep := int(endpoint) % len(eps)
	target := eps[ep]
	what := fmt.Sprintf("POST %s Idempotency-Key %q", target.path, short(key))
	if !validHeaderValue(key) {
		return // the client cannot send it
	}
	// The server sees the value without surrounding blanks (RFC 9110 5.5).
	seen := strings.Trim(key, " \t")
	ok := len(seen) >= 1 && len(seen) <= 255 && !strings.ContainsFunc(seen, func(r rune) bool { return r < 0x20 || r > 0x7e })

	first := e.post(t, target.path, []byte(target.first), "Idempotency-Key", key)
	pe := e.check(t, first, what)
	if !ok {
		expectCode(t, what, first, pe, "VALIDATION_ERROR")
		fieldsWithin(t, what, first, pe, oneOf("Idempotency-Key"), "Idempotency-Key")
		return
	}
	if pe != nil && pe.Code == "VALIDATION_ERROR" {
		if _, named := pe.FieldErrors["Idempotency-Key"]; named {
			t.Fatalf("%s: a valid key was refused: %s", what, first.body)
		}
	}
	e.mu.Lock()
	prev, used := e.idemSeen[seen]
	if !used {
		e.idemSeen[seen] = ep
	}
	e.mu.Unlock()
	if used && prev != ep {
		// The key was first used for another request.
		expectCode(t, what, first, pe, "IDEMPOTENCY_KEY_REUSED")
		return
	}
	if pe != nil && pe.Code == "IDEMPOTENCY_KEY_REUSED" {
		t.Fatalf("%s: 409 for the key's own request: %s", what, first.body)
	}
	again := e.post(t, target.path, []byte(target.first), "Idempotency-Key", key)
	e.check(t, again, what+" (repeated)")
	if again.status != first.status || !bytes.Equal(again.body, first.body) {
		t.Fatalf("%s: the repeat answered %d %s, the first %d %s", what, again.status, again.body, first.status, first.body)
	}
	if again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("%s: the repeat is not marked Idempotent-Replayed", what)
	}
	other := e.post(t, target.path, []byte(target.other), "Idempotency-Key", key)
	ope := e.check(t, other, what+" (other body)")
	expectCode(t, what+" (other body)", other, ope, "IDEMPOTENCY_KEY_REUSED")
}
