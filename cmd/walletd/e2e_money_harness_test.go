package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/store/storetest"
)

// Harness extensions for the money tests: a server that can be stopped early and
// started again on the same database, the ledger audit, and partner-side helpers
// for top-ups, payments, withdrawals and the report. Numbers are decoded as
// written (json.Number), so amounts are compared in their JSON form ("1500.00").

// moneyServer is a running `walletd serve` seen by the money tests.
type moneyServer struct {
	*testServer
}

// startMoneyServer starts a server on a fresh database of engine with partners A
// and B (startServerEnv) and audits the ledger once the test and all its
// subtests are done, before the server stops.
func startMoneyServer(t *testing.T, e storetest.Engine, env map[string]string) *moneyServer {
	t.Helper()
	s := startServerEnv(t, e, moneyEnv(e.Name == "postgres", env))
	t.Cleanup(func() { moneyAudit(t, s.DSN) })
	return &moneyServer{s}
}

// startMoneyServerOn starts `walletd serve` on an existing database whose
// partners a and b already exist, as a restarted process would. stop shuts it
// down (and requires a clean return, like the harness); it may be called before
// the test ends and runs as a cleanup otherwise.
func startMoneyServerOn(t *testing.T, dsn string, a, b *testPartner, env map[string]string) (s *moneyServer, stop func()) {
	t.Helper()
	ts := &testServer{DSN: dsn, A: a, B: b, getenv: testEnv(sandboxEnv(dsn, moneyEnv(store.IsPostgres(dsn), env))), logs: &syncBuffer{}}
	for _, p := range []*testPartner{a, b} {
		ts.remember(p.ClientSecret, p.WebhookSecret)
	}
	stop = ts.launch(t)
	return &moneyServer{ts}, stop
}

// moneyEnv is env with the database pool size for the engine, unless env sets
// one. PostgreSQL: a small pool, since many servers run at once and together
// they must stay well within the server's connections. SQLite: many readers,
// so that the known stall of a reader pool whose connections are all in
// transactions (see moneySQLiteOneReader) does not make other tests flaky.
func moneyEnv(postgres bool, env map[string]string) map[string]string {
	out := map[string]string{"WALLET_DB_MAX_CONNS": "64"}
	if postgres {
		out["WALLET_DB_MAX_CONNS"] = "4"
	}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// concurrentRuns runs subtests at once. Unlike t.Parallel it takes no slot
// (there are only as many as CPUs), which suits tests that mostly wait.
type concurrentRuns struct {
	t  *testing.T
	wg sync.WaitGroup
}

// runConcurrently starts a group of concurrent subtests of t; Wait must be
// called before t's function returns.
func runConcurrently(t *testing.T) *concurrentRuns { return &concurrentRuns{t: t} }

// Run starts the subtest and returns at once.
func (c *concurrentRuns) Run(name string, fn func(t *testing.T)) {
	c.wg.Go(func() { c.t.Run(name, fn) })
}

// Wait waits for every subtest started by Run.
func (c *concurrentRuns) Wait() { c.wg.Wait() }

// moneyAudit runs `walletd audit` on dsn and requires every invariant to hold.
func moneyAudit(t *testing.T, dsn string) {
	t.Helper()
	out, errOut, err := runCmd(t, testEnv(nil), "audit", "--db", dsn)
	if err != nil || !strings.HasPrefix(out, "audit ok") {
		t.Errorf("audit: %v\n%s%s", err, out, errOut)
	}
}

// moneyObject decodes a JSON object answer keeping numbers as written.
func moneyObject(t *testing.T, body []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		t.Fatalf("answer is not a JSON object: %v\n%s", err, body)
	}
	return m
}

// moneyOK requires a 200 and decodes it keeping numbers as written.
func moneyOK(t *testing.T, what string, status int, body []byte) map[string]any {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("%s: status %d, want 200: %s", what, status, body)
	}
	return moneyObject(t, body)
}

// moneyKeys requires m to have exactly the given members.
func moneyKeys(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	if len(m) != len(keys) {
		t.Errorf("%s: members %v, want exactly %q", what, m, keys)
		return
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: member %q missing: %v", what, k, m)
		}
	}
}

// moneyNum is the JSON text of a number member ("" when it is not a number).
func moneyNum(m map[string]any, key string) string {
	n, _ := m[key].(json.Number)
	return string(n)
}

// moneyStr is a string member ("" when it is not a string).
func moneyStr(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// moneyEqual requires one member of an answer to have the wanted value:
// a string for strings, the JSON text for numbers, nil for null.
func moneyEqual(t *testing.T, what string, m map[string]any, key string, want any) {
	t.Helper()
	got, ok := m[key]
	if !ok {
		t.Errorf("%s: member %q missing: %v", what, key, m)
		return
	}
	if n, isNum := got.(json.Number); isNum {
		got = string(n)
	}
	if got != want {
		t.Errorf("%s: %s = %#v, want %#v", what, key, got, want)
	}
}

// moneyAcct is the path of a wallet's endpoints.
func moneyAcct(wallet string) string { return apiBase + "/account/" + wallet }

// moneyLocation is the protocol's time zone.
var moneyLocation = sync.OnceValue(func() *time.Location {
	loc, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		panic(err)
	}
	return loc
})

// moneyDate matches the protocol's time format.
var moneyDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$`)

// payloadRe matches a sandbox SBP link: public URL, qrcId, amount in kopecks.
var payloadRe = regexp.MustCompile(`^(.+)/sandbox/sbp/([A-Z0-9]{32})\?type=02&sum=([1-9][0-9]*)&cur=RUB$`)

// publicURL is the base the server writes into payload links.
func (s *moneyServer) publicURL() string {
	if u := s.getenv("WALLET_PUBLIC_URL"); u != "" {
		return strings.TrimRight(u, "/")
	}
	return strings.Replace(s.URL, "127.0.0.1", "localhost", 1)
}

// info returns the wallet's data.
func (s *moneyServer) info(t *testing.T, tok, wallet string) map[string]any {
	t.Helper()
	status, _, data := s.do(t, http.MethodGet, moneyAcct(wallet)+"/info", tok, nil)
	return moneyOK(t, "info", status, data)
}

// balance returns the wallet's balance as written in the answer ("1500.00").
func (s *moneyServer) balance(t *testing.T, tok, wallet string) string {
	t.Helper()
	return moneyNum(s.info(t, tok, wallet), "balance")
}

// expectBalance requires the wallet's balance.
func (s *moneyServer) expectBalance(t *testing.T, what, tok, wallet, want string) {
	t.Helper()
	if got := s.balance(t, tok, wallet); got != want {
		t.Errorf("%s: balance %s, want %s", what, got, want)
	}
}

// refill asks for a top-up of amount, a JSON literal (`1500.00` or `"1500.00"`).
func (s *moneyServer) refill(t *testing.T, tok, wallet, amount string, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	return s.do(t, http.MethodPost, moneyAcct(wallet)+"/refill", tok, map[string]any{"amount": rawJSON(amount)}, headers...)
}

// sbpTopUp is an accepted top-up.
type sbpTopUp struct {
	OperationID, QRC, Path string
	Answer                 map[string]any
}

// refillOK asks for a top-up that must be accepted and checks the link's shape.
func (s *moneyServer) refillOK(t *testing.T, tok, wallet, amount string, headers ...string) sbpTopUp {
	t.Helper()
	status, _, data := s.refill(t, tok, wallet, amount, headers...)
	ans := moneyOK(t, "refill "+amount, status, data)
	payload := moneyStr(ans, "payload")
	m := payloadRe.FindStringSubmatch(payload)
	if m == nil || m[1] != s.publicURL() {
		t.Fatalf("refill payload %q is not %s/sandbox/sbp/{qrcId}?type=02&sum={kopecks}&cur=RUB", payload, s.publicURL())
	}
	return sbpTopUp{OperationID: moneyStr(ans, "operationId"), QRC: m[2], Path: strings.TrimPrefix(payload, m[1]), Answer: ans}
}

// sbp confirms or declines a top-up as the sandbox bank does and returns the
// status the answer reports.
func (s *moneyServer) sbp(t *testing.T, qrc, action string) string {
	t.Helper()
	status, _, data := s.do(t, http.MethodPost, "/sandbox/sbp/"+qrc+"/"+action, "", nil)
	ans := moneyOK(t, "sandbox "+action, status, data)
	moneyKeys(t, "sandbox "+action, ans, "qrcId", "operationId", "status")
	if ans["qrcId"] != qrc {
		t.Errorf("sandbox %s answered qrcId %v, want %s", action, ans["qrcId"], qrc)
	}
	return moneyStr(ans, "status")
}

// fund tops the wallet up by amount and confirms it; it returns the operation id.
func (s *moneyServer) fund(t *testing.T, tok, wallet, amount string) string {
	t.Helper()
	tu := s.refillOK(t, tok, wallet, amount)
	if got := s.sbp(t, tu.QRC, "confirm"); got != "SUCCESS" {
		t.Fatalf("confirm top-up of %s: status %s, want SUCCESS", amount, got)
	}
	return tu.OperationID
}

// operation returns one report item.
func (s *moneyServer) operation(t *testing.T, tok, wallet, op string) map[string]any {
	t.Helper()
	status, _, data := s.do(t, http.MethodGet, moneyAcct(wallet)+"/operation/"+op, tok, nil)
	return moneyOK(t, "operation", status, data)
}

// waitStatus polls the operation until it has status want, within the deadline.
func (s *moneyServer) waitStatus(t *testing.T, tok, wallet, op, want string, within time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		item := s.operation(t, tok, wallet, op)
		if item["status"] == want {
			return item
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s is %v after %s, want %s", op, item["status"], within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// initPayment returns a new payment token for the wallet.
func (s *moneyServer) initPayment(t *testing.T, tok, wallet string) string {
	t.Helper()
	status, _, data := s.do(t, http.MethodGet, moneyAcct(wallet)+"/payment/initialization", tok, nil)
	ans := moneyOK(t, "payment initialization", status, data)
	moneyKeys(t, "payment initialization", ans, "walletId", "token")
	if ans["walletId"] != wallet || !uuidRe.MatchString(moneyStr(ans, "token")) {
		t.Errorf("payment initialization answered %v", ans)
	}
	return moneyStr(ans, "token")
}

// pay sends a payment; amount is a JSON literal.
func (s *moneyServer) pay(t *testing.T, tok, wallet, token, amount, tspID string, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	body := map[string]any{"walletId": wallet, "token": token, "amount": rawJSON(amount), "tsp": tspID}
	return s.do(t, http.MethodPost, moneyAcct(wallet)+"/payment", tok, body, headers...)
}

// payOK pays amount with a new token and returns the answer.
func (s *moneyServer) payOK(t *testing.T, tok, wallet, amount, tspID string) map[string]any {
	t.Helper()
	status, _, data := s.pay(t, tok, wallet, s.initPayment(t, tok, wallet), amount, tspID)
	return moneyOK(t, "pay "+amount, status, data)
}

// withdraw asks for a payout; amount is a JSON literal.
func (s *moneyServer) withdraw(t *testing.T, tok, wallet, bank, amount string, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	body := map[string]any{"bankIdentifier": bank, "amount": rawJSON(amount)}
	return s.do(t, http.MethodPost, moneyAcct(wallet)+"/wifhdrawal", tok, body, headers...)
}

// limits returns the wallet's limits.
func (s *moneyServer) limits(t *testing.T, tok, wallet string) map[string]any {
	t.Helper()
	status, _, data := s.do(t, http.MethodGet, moneyAcct(wallet)+"/limit", tok, nil)
	return moneyOK(t, "GET limit", status, data)
}

// moneyMonthUsed returns monthUsed of one type in a limits answer.
func moneyMonthUsed(lim map[string]any, typ string) string {
	ops, _ := lim["operationLimits"].(map[string]any)
	tl, _ := ops[typ].(map[string]any)
	return moneyNum(tl, "monthUsed")
}

// setLimits posts the partner's limits, which must be accepted.
func (s *moneyServer) setLimits(t *testing.T, tok, wallet string, body any) {
	t.Helper()
	status, _, data := s.do(t, http.MethodPost, moneyAcct(wallet)+"/limit", tok, body)
	moneyOK(t, "POST limit", status, data)
}

// typeLimit is a POST /limit body setting one field of one type.
func typeLimit(typ, field string, value any) map[string]any {
	return map[string]any{"operationLimits": map[string]any{typ: map[string]any{field: value}}}
}

// closeWallet asks to close the wallet.
func (s *moneyServer) closeWallet(t *testing.T, tok, wallet string) (int, []byte) {
	t.Helper()
	status, _, data := s.do(t, http.MethodPost, moneyAcct(wallet)+"/deactivation", tok, nil)
	return status, data
}

// report returns a report page for the query ("" for the defaults).
func (s *moneyServer) report(t *testing.T, tok, wallet, query string) (map[string]any, []map[string]any) {
	t.Helper()
	path := moneyAcct(wallet) + "/report"
	if query != "" {
		path += "?" + query
	}
	status, _, data := s.do(t, http.MethodGet, path, tok, nil)
	page := moneyOK(t, "report "+query, status, data)
	raw, ok := page["content"].([]any)
	if !ok {
		t.Fatalf("report %s: content is not an array: %s", query, data)
	}
	items := make([]map[string]any, 0, len(raw))
	for _, r := range raw {
		item, ok := r.(map[string]any)
		if !ok {
			t.Fatalf("report %s: item is not an object: %s", query, data)
		}
		items = append(items, item)
	}
	return page, items
}

// moneyIDs lists the operation ids of report items.
func moneyIDs(items []map[string]any) []string {
	ids := make([]string, 0, len(items))
	for _, it := range items {
		ids = append(ids, moneyStr(it, "operationId"))
	}
	return ids
}

// expectDetails requires an error answer's details: limit, value, used and
// available as JSON numbers, and resetsAt ("" when it must be absent).
func expectDetails(t *testing.T, what string, body []byte, limit, value, used, available, resetsAt string) {
	t.Helper()
	ans := moneyObject(t, body)
	d, ok := ans["details"].(map[string]any)
	if !ok {
		t.Errorf("%s: no details: %s", what, body)
		return
	}
	moneyEqual(t, what+" details", d, "limit", limit)
	moneyEqual(t, what+" details", d, "value", value)
	moneyEqual(t, what+" details", d, "used", used)
	moneyEqual(t, what+" details", d, "available", available)
	if resetsAt == "" {
		if _, ok := d["resetsAt"]; ok {
			t.Errorf("%s: details.resetsAt present for a limit that does not reset: %s", what, body)
		}
	} else {
		moneyEqual(t, what+" details", d, "resetsAt", resetsAt)
	}
}

// nextMonthMoscow is when monthly limits reset: the next month's start, Moscow time.
func nextMonthMoscow() string {
	now := time.Now().In(moneyLocation())
	return time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, moneyLocation()).Format("2006-01-02 15:04:05")
}
