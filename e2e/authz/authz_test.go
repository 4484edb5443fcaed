// Package authz checks the authorisation matrix of PROTOCOL.md sections 2 and
// 3 end to end, on every database engine: every protected endpoint of
// httpapi/routes.go, called by everyone who is not partner A (no token, a
// malformed header, an expired, revoked or refresh token, partner B, a
// disabled partner), against the real walletd binary. Nobody but A may get A's
// data or change A's wallet.
package authz

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/perspektiva/walletd/api"
	"github.com/perspektiva/walletd/e2e/procs"
	"github.com/perspektiva/walletd/store/storetest"
)

const base = "/api/wallet/v1"

func TestMain(m *testing.M) { procs.Main(m) }

// TestAuthorizationMatrix builds walletd once and runs the matrix on each engine.
func TestAuthorizationMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the walletd binary")
	}
	procs.Binary(t) // build once, before the engines
	v, err := api.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	storetest.ForEach(t, func(t *testing.T, engine storetest.Engine) {
		start := time.Now()
		m := newMatrix(t, engine.DSN(t), v)
		m.run(t)
		t.Logf("%s: %d matrix cells checked in %s", engine.Name, m.cells, time.Since(start).Round(time.Millisecond))
	})
}

// ---------------------------------------------------------------------------
// The walletd program: operator commands and servers.

// serve starts `walletd serve` on a free port (procs.Start) and, when the test
// ends, stops it with SIGTERM, which must end in a clean exit within 20s.
func serve(t *testing.T, dsn, name string, env map[string]string) *procs.Process {
	t.Helper()
	p := procs.Start(t, procs.Options{Name: name, DSN: dsn, Env: env})
	t.Cleanup(func() {
		if err := p.Stop(20 * time.Second); err != nil {
			t.Errorf("walletd serve (%s) did not stop cleanly: %v", name, err)
		}
	})
	return p
}

// cli runs one operator command (procs.Command adds --db) and returns its
// standard output.
func (m *matrix) cli(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := procs.Command(t, m.dsn, args...)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(out)
}

// ---------------------------------------------------------------------------
// HTTP.

var client = &http.Client{
	Timeout:       20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type answer struct {
	req    *http.Request
	status int
	header http.Header
	body   []byte
}

// send makes one request; authorization is the whole Authorization header ("" for none).
func send(t *testing.T, s *procs.Process, method, path, authorization string, body []byte, header ...string) answer {
	t.Helper()
	var rdr io.Reader
	if body != nil {
		rdr = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL()+path, rdr)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return answer{req: req, status: resp.StatusCode, header: resp.Header, body: data}
}

func jsonBody(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}

func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// ---------------------------------------------------------------------------
// Partners, tokens and A's wallet.

type partner struct {
	PartnerID    string `json:"partnerId"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	TSPID        string `json:"-"`
}

type tokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// pair asks s for a token pair of p (client_credentials, HTTP Basic).
func pair(t *testing.T, s *procs.Process, p *partner) tokenPair {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "partner_id": {p.PartnerID}}
	req, err := http.NewRequest(http.MethodPost, s.URL()+base+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", basicAuth(p.ClientID, p.ClientSecret))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var tp tokenPair
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &tp) != nil || tp.AccessToken == "" || tp.RefreshToken == "" {
		t.Fatalf("token for partner %s from %s: %d %s", p.PartnerID, s.URL(), resp.StatusCode, data)
	}
	return tp
}

// walletOfA is what the test knows of partner A, none of which anyone else may see.
type walletOfA struct {
	id, number, phone string
	payToken          string // a payment token with a payment behind it
	freshToken        string // a payment token never used
	operations        []string
}

// secrets lists A's data that must never appear in another caller's answer.
func (w walletOfA) secrets() map[string]string {
	m := map[string]string{"walletId": w.id, "number": w.number, "phone": w.phone,
		"payment token": w.payToken, "unused payment token": w.freshToken}
	for i, op := range w.operations {
		m[fmt.Sprintf("operation %d", i)] = op
	}
	return m
}

// ---------------------------------------------------------------------------
// The matrix.

type matrix struct {
	dsn       string
	validator *api.Validator
	main      *procs.Process // default token lifetimes
	shortTTL  *procs.Process // WALLET_ACCESS_TOKEN_TTL=1s, same database
	a, b, c   *partner
	w         walletOfA
	cells     int
}

func newMatrix(t *testing.T, dsn string, v *api.Validator) *matrix {
	t.Helper()
	m := &matrix{dsn: dsn, validator: v}
	m.a, m.b, m.c = m.createPartner(t, "A"), m.createPartner(t, "B"), m.createPartner(t, "C")
	// The wallet of A is topped up through the sandbox, which PostgreSQL does
	// not serve unless asked.
	m.main = serve(t, dsn, "main", map[string]string{"WALLET_SANDBOX": "true", "WALLET_SANDBOX_PAYOUT_DELAY": "50ms"})
	m.shortTTL = serve(t, dsn, "short-ttl", map[string]string{"WALLET_SANDBOX": "true", "WALLET_ACCESS_TOKEN_TTL": "1s", "WALLET_SANDBOX_PAYOUT_DELAY": "50ms"})
	m.setUpWalletOfA(t)
	return m
}

// createPartner creates a partner and a TSP of its through the CLI, as an
// operator would.
func (m *matrix) createPartner(t *testing.T, name string) *partner {
	t.Helper()
	p := procs.CreatePartner(t, m.dsn, "Партнёр "+name)
	tsp := procs.CreateTSP(t, m.dsn, p.PartnerID, "ТСП "+name)
	return &partner{PartnerID: p.PartnerID.String(), ClientID: p.ClientID, ClientSecret: p.ClientSecret, TSPID: tsp.String()}
}

// asA sends a request of partner A to the main server and requires a 200.
func (m *matrix) asA(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	var data []byte
	if body != nil {
		data = jsonBody(body)
	}
	a := send(t, m.main, method, base+path, "Bearer "+pair(t, m.main, m.a).AccessToken, data)
	m.validate(t, a)
	if a.status != http.StatusOK {
		t.Fatalf("A: %s %s: %d %s", method, path, a.status, a.body)
	}
	var out map[string]any
	if err := json.Unmarshal(a.body, &out); err != nil {
		t.Fatalf("A: %s %s: %v", method, path, err)
	}
	return out
}

// setUpWalletOfA opens A's wallet and gives it a confirmed top-up and a payment.
func (m *matrix) setUpWalletOfA(t *testing.T) {
	t.Helper()
	w := &m.w
	w.phone = "9161234567"
	reg := m.asA(t, http.MethodPost, "/account/registration", map[string]any{"phone": w.phone, "identification": 2})
	w.id = reg["walletId"].(string)
	w.number = m.asA(t, http.MethodGet, "/account/"+w.id+"/info", nil)["number"].(string)

	refill := m.asA(t, http.MethodPost, "/account/"+w.id+"/refill", map[string]any{"amount": "5000.00"})
	w.operations = append(w.operations, refill["operationId"].(string))
	u, err := url.Parse(refill["payload"].(string))
	if err != nil {
		t.Fatal(err)
	}
	confirm := send(t, m.main, http.MethodPost, u.Path+"/confirm", "", nil)
	if confirm.status != http.StatusOK || !bytes.Contains(confirm.body, []byte("SUCCESS")) {
		t.Fatalf("confirm the top-up: %d %s", confirm.status, confirm.body)
	}

	w.payToken = m.asA(t, http.MethodGet, "/account/"+w.id+"/payment/initialization", nil)["token"].(string)
	pay := m.asA(t, http.MethodPost, "/account/"+w.id+"/payment",
		map[string]any{"walletId": w.id, "token": w.payToken, "amount": "1000.00", "tsp": m.a.TSPID})
	w.operations = append(w.operations, pay["operationId"].(string))
	refund := m.asA(t, http.MethodPost, "/account/"+w.id+"/payment/"+w.payToken+"/refund", map[string]any{"amount": "100.00"})
	w.operations = append(w.operations, refund["operationId"].(string))
	w.freshToken = m.asA(t, http.MethodGet, "/account/"+w.id+"/payment/initialization", nil)["token"].(string)
}

// snapshot is what A sees of its wallet.
func (m *matrix) snapshot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range []string{"/info", "/limit", "/report?size=100"} {
		a := send(t, m.main, http.MethodGet, base+"/account/"+m.w.id+p, "Bearer "+pair(t, m.main, m.a).AccessToken, nil)
		if a.status != http.StatusOK {
			t.Fatalf("A: GET %s: %d %s", p, a.status, a.body)
		}
		out[p] = string(a.body)
	}
	return out
}

// endpoint is one method of one protected route, with what A would send.
type endpoint struct {
	method, path string
	body         []byte
	walletScoped bool // a path with A's walletId
}

func (m *matrix) endpoints() []endpoint {
	w := "/account/" + m.w.id
	bank := "100000000111"
	eps := []endpoint{
		{http.MethodPost, "/account/registration", jsonBody(map[string]any{"phone": m.w.phone}), false},
		{http.MethodGet, w + "/info", nil, true},
		{http.MethodPost, w + "/deactivation", nil, true},
		{http.MethodPost, w + "/identification/0", nil, true},
		{http.MethodGet, w + "/limit", nil, true},
		{http.MethodPost, w + "/limit", jsonBody(map[string]any{"balanceLimit": "1000.00"}), true},
		{http.MethodGet, w + "/report", nil, true},
		{http.MethodPost, w + "/refill", jsonBody(map[string]any{"amount": "100.00"}), true},
		{http.MethodGet, w + "/payment/initialization", nil, true},
		{http.MethodPost, w + "/payment", jsonBody(map[string]any{"walletId": m.w.id, "token": m.w.freshToken, "amount": "1.00", "tsp": m.a.TSPID}), true},
		{http.MethodPost, w + "/payment/" + m.w.payToken + "/refund", jsonBody(map[string]any{"amount": "1.00"}), true},
		{http.MethodGet, w + "/operation/" + m.w.operations[1], nil, true},
		{http.MethodGet, "/account/wifhdrawal/banks", nil, false},
		{http.MethodGet, "/account/withdrawal/banks", nil, false},
		{http.MethodPost, w + "/wifhdrawal", jsonBody(map[string]any{"bankIdentifier": bank, "amount": "1.00"}), true},
		{http.MethodPost, w + "/withdrawal", jsonBody(map[string]any{"bankIdentifier": bank, "amount": "1.00"}), true},
	}
	// Every GET route also answers HEAD.
	for _, ep := range eps {
		if ep.method == http.MethodGet {
			eps = append(eps, endpoint{http.MethodHead, ep.path, nil, ep.walletScoped})
		}
	}
	return eps
}

// caller is one row of the matrix: who calls, and what each endpoint must answer.
type caller struct {
	name   string
	server *procs.Process
	// authorization is the Authorization header ("" for none); called before each request.
	authorization func() string
	want          func(ep endpoint) (status int, code string)
}

func unauthorized(endpoint) (int, string) { return http.StatusUnauthorized, "UNAUTHORIZED" }
func forbidden(endpoint) (int, string)    { return http.StatusForbidden, "FORBIDDEN" }

func (m *matrix) run(t *testing.T) {
	before := m.snapshot(t)
	eps := m.endpoints()

	// Tokens of A that must not work: revoked, a refresh token, and one of the
	// 1-second server that has expired.
	revoked := pair(t, m.main, m.a)
	form := url.Values{"token": {revoked.AccessToken}}
	req, _ := http.NewRequest(http.MethodPost, m.main.URL()+base+"/oauth/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", basicAuth(m.a.ClientID, m.a.ClientSecret))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	refresh := pair(t, m.main, m.a).RefreshToken
	// The short-lived token works at first (so that its refusal later is its
	// expiry). It is issued after asked, so an answer that came back within a
	// second of asked was given while it was alive and must be a 200. An
	// answer that came later proves nothing: try again with a new token, a
	// bounded number of times.
	var short tokenPair
	var issued time.Time // the token is issued before this
	for attempt := 1; ; attempt++ {
		asked := time.Now()
		short = pair(t, m.shortTTL, m.a)
		issued = time.Now()
		a := send(t, m.shortTTL, http.MethodGet, base+"/account/"+m.w.id+"/info", "Bearer "+short.AccessToken, nil)
		if a.status == http.StatusOK {
			break
		}
		if took := time.Since(asked); took < time.Second {
			t.Fatalf("a fresh token of the 1s server, used %s after it was asked for: %d %s", took, a.status, a.body)
		}
		if attempt == 5 {
			t.Fatalf("a token of the 1s server could not be used within its lifetime in %d attempts (each took a second or more); last answer %d %s", attempt, a.status, a.body)
		}
	}

	garbage := make([]byte, 32)
	_, _ = rand.Read(garbage)
	lookalike := "wat_" + base64.RawURLEncoding.EncodeToString(garbage) // the right shape, unknown
	lookalike = lookalike + strings.Repeat("A", max(0, 47-len(lookalike)))

	live := pair(t, m.main, m.a).AccessToken
	altered := []byte(live)
	if altered[len(altered)-1] == 'A' {
		altered[len(altered)-1] = 'B'
	} else {
		altered[len(altered)-1] = 'A'
	}

	tokenB := pair(t, m.main, m.b).AccessToken
	tokenC := pair(t, m.main, m.c).AccessToken
	m.cli(t, "partner", "disable", "--partner", m.c.PartnerID)

	fixed := func(h string) func() string { return func() string { return h } }
	waitExpired := func() string {
		if d := time.Second + 100*time.Millisecond - time.Since(issued); d > 0 {
			time.Sleep(d)
		}
		return "Bearer " + short.AccessToken
	}
	rows := []caller{
		{"no Authorization header", m.main, fixed(""), unauthorized},
		{`"Bearer" without a token`, m.main, fixed("Bearer"), unauthorized},
		{`"Bearer " and blanks`, m.main, fixed("Bearer    "), unauthorized},
		{`"Basic xyz"`, m.main, fixed("Basic xyz"), unauthorized},
		{"A's client credentials as Basic", m.main, fixed(basicAuth(m.a.ClientID, m.a.ClientSecret)), unauthorized},
		{"Bearer <garbage>", m.main, fixed("Bearer " + base64.StdEncoding.EncodeToString(garbage)), unauthorized},
		{"Bearer <unknown token of the right shape>", m.main, fixed("Bearer " + lookalike), unauthorized},
		{"A's token under another scheme", m.main, fixed("Token " + live), unauthorized},
		{"A's token with one character changed", m.main, fixed("Bearer " + string(altered)), unauthorized},
		{"A's token with a suffix", m.main, fixed("Bearer " + live + "x"), unauthorized},
		{"expired access token (1s server)", m.shortTTL, waitExpired, unauthorized},
		{"expired access token (main server)", m.main, waitExpired, unauthorized},
		{"revoked access token", m.main, fixed("Bearer " + revoked.AccessToken), unauthorized},
		{"refresh token as access token", m.main, fixed("Bearer " + refresh), unauthorized},
		{"A's client secret as a bearer token", m.main, fixed("Bearer " + m.a.ClientSecret), unauthorized},
		{"partner B", m.main, fixed("Bearer " + tokenB), func(ep endpoint) (int, string) {
			if ep.walletScoped {
				return http.StatusNotFound, "WALLET_NOT_FOUND"
			}
			return http.StatusOK, ""
		}},
		{"disabled partner C", m.main, fixed("Bearer " + tokenC), forbidden},
	}
	for _, row := range rows {
		m.row(t, row, eps)
	}

	// A itself, disabled: its live token stops at once, on its own wallet too.
	tokenA := pair(t, m.main, m.a).AccessToken
	m.cli(t, "partner", "disable", "--partner", m.a.PartnerID)
	m.row(t, caller{"disabled partner A (its own wallet)", m.main, fixed("Bearer " + tokenA), forbidden}, eps)
	m.row(t, caller{"disabled partner A (1s server)", m.shortTTL, fixed("Bearer " + tokenA), forbidden}, eps)
	m.cli(t, "partner", "enable", "--partner", m.a.PartnerID)

	// A replaces its secret: a second client, then the first one disabled,
	// whose live token stops at once. The rest of the test acts as A through
	// the second client, on the same wallet.
	var second partner
	if err := json.Unmarshal(m.cli(t, "client", "create", "--partner", m.a.PartnerID), &second); err != nil ||
		second.PartnerID != m.a.PartnerID || second.ClientID == "" || second.ClientID == m.a.ClientID {
		t.Fatalf("client create for A: %v (%+v)", err, second)
	}
	firstClient := pair(t, m.main, m.a).AccessToken
	m.cli(t, "client", "disable", "--client", m.a.ClientID)
	m.row(t, caller{"A's disabled first client", m.main, fixed("Bearer " + firstClient), forbidden}, eps)
	m.a.ClientID, m.a.ClientSecret = second.ClientID, second.ClientSecret

	after := m.snapshot(t)
	for p, was := range before {
		if after[p] != was {
			t.Errorf("A's wallet changed (%s):\nbefore %s\nafter  %s", p, was, after[p])
		}
	}

	// Nobody used A's unused payment token or refunded A's payment: A still can, in full.
	pay := m.asA(t, http.MethodPost, "/account/"+m.w.id+"/payment",
		map[string]any{"walletId": m.w.id, "token": m.w.freshToken, "amount": "1.00", "tsp": m.a.TSPID})
	if op, _ := pay["operationId"].(string); op == "" || strings.Contains(strings.Join(m.w.operations, " "), op) {
		t.Errorf("A's unused payment token was not usable as new: %v", pay)
	}
	refund := m.asA(t, http.MethodPost, "/account/"+m.w.id+"/payment/"+m.w.payToken+"/refund", map[string]any{})
	if got := fmt.Sprint(refund["amount"]); got != "900" {
		t.Errorf("refund of all that is left of A's payment: %v, want 900.00 (1000.00 paid, 100.00 refunded by A)", refund["amount"])
	}
}

// row calls every endpoint as the caller and checks each answer.
func (m *matrix) row(t *testing.T, c caller, eps []endpoint) {
	t.Helper()
	secrets := m.w.secrets()
	for _, ep := range eps {
		what := fmt.Sprintf("[%s] %s %s", c.name, ep.method, ep.path)
		wantStatus, wantCode := c.want(ep)
		a := send(t, c.server, ep.method, base+ep.path, c.authorization(), ep.body)
		m.cells++
		if a.status != wantStatus {
			t.Errorf("%s: status %d, want %d: %s", what, a.status, wantStatus, a.body)
			continue
		}
		if ep.method != http.MethodHead {
			m.validate(t, a)
		}
		if wantStatus == http.StatusUnauthorized && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 with WWW-Authenticate %q, want a Bearer challenge", what, a.header.Get("WWW-Authenticate"))
		}
		if wantCode != "" && ep.method != http.MethodHead {
			var e struct {
				Code        string            `json:"code"`
				Message     string            `json:"message"`
				FieldErrors map[string]string `json:"fieldErrors"`
			}
			if err := json.Unmarshal(a.body, &e); err != nil || e.Code != wantCode || e.Message == "" || e.FieldErrors == nil {
				t.Errorf("%s: want code %s with message and fieldErrors, got %s", what, wantCode, a.body)
			}
		}
		// Nothing of A's, in the body or in any header.
		var headers strings.Builder
		for k, vs := range a.header {
			fmt.Fprintf(&headers, "%s: %s\n", k, strings.Join(vs, ", "))
		}
		for name, secret := range secrets {
			if secret == "" {
				continue
			}
			if bytes.Contains(a.body, []byte(secret)) || strings.Contains(headers.String(), secret) {
				t.Errorf("%s: the answer carries A's %s: %s", what, name, a.body)
			}
		}
	}
}

func (m *matrix) validate(t *testing.T, a answer) {
	t.Helper()
	if err := m.validator.ValidateResponse(a.req, a.status, a.header, a.body); err != nil {
		t.Errorf("answer does not match openapi.yaml: %v\nbody: %s", err, a.body)
	}
}
