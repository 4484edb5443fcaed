package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/store/storetest"
)

// End-to-end tests of money movement (PROTOCOL.md 4.5–4.9, 5, 7): top-ups
// through the sandbox SBP, payments and refunds, withdrawals, the report,
// Idempotency-Key and restarts. Each runs on every engine and ends with the
// `audit` command passing on its database.

const (
	nbsp     = "\u00a0"
	sberbank = "100000000111" // Сбербанк in the shipped bank list
)

// TestE2EMoney runs the money scenarios on every engine. They spend most of
// their time waiting for the server (top-up lifetimes, payout delays, a
// restart), so they run all at once rather than queueing for t.Parallel
// slots, of which there are only as many as CPUs. The test itself is not
// parallel: it runs before the parallel tests, so its burst of servers does
// not slow down their timing-sensitive checks (token lifetimes).
func TestE2EMoney(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		c := runConcurrently(t)
		defer c.Wait()
		for _, scenario := range []struct {
			name string
			fn   func(*testing.T, storetest.Engine)
		}{
			{"TopUp", moneyTopUp},
			{"TopUpExpiry", moneyTopUpExpiry},
			{"Payment", moneyPayment},
			{"Withdrawal", moneyWithdrawal},
			{"Restart", moneyRestart},
			{"Report", moneyReport},
			{"Idempotency", moneyIdempotency},
			{"Isolation", moneyIsolation},
			{"Concurrency", moneyConcurrency},
		} {
			c.Run(scenario.name, func(t *testing.T) { scenario.fn(t, e) })
		}
		if e.Name == "sqlite" {
			c.Run("OneReader", func(t *testing.T) { moneySQLiteOneReader(t, e) })
		}
	})
}

// moneySQLiteOneReader: WALLET_DB_MAX_CONNS caps SQLite's readers; with one
// reader a read must still be answered.
func moneySQLiteOneReader(t *testing.T, e storetest.Engine) {
	s := startMoneyServer(t, e, map[string]string{"WALLET_DB_MAX_CONNS": "1"})
	tok := s.token(t, s.A)
	w := s.register(t, tok, phone())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+moneyAcct(w)+"/info", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("with one SQLite reader GET /info gets no answer within 3 s: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /info with one SQLite reader: %d", resp.StatusCode)
	}
}

func moneyTopUp(t *testing.T, e storetest.Engine) {
	c := runConcurrently(t)
	defer c.Wait()
	s := startMoneyServer(t, e, map[string]string{"WALLET_PUBLIC_URL": "https://wallet.example.test/"})
	tok := s.token(t, s.A)

	c.Run("confirm", func(t *testing.T) {
		w := s.register(t, tok, phone())
		before := time.Now()
		status, _, data := s.do(t, http.MethodPost, moneyAcct(w)+"/refill", tok, rawBody(`{"amount":1500.00}`))
		after := time.Now()
		ans := moneyOK(t, "refill", status, data)
		moneyKeys(t, "refill", ans, "operationId", "amount", "payload", "status", "expiresAt")
		op := moneyStr(ans, "operationId")
		if !uuidRe.MatchString(op) {
			t.Errorf("operationId %q is not a lower-case UUID", op)
		}
		moneyEqual(t, "refill", ans, "status", "PENDING")
		if !strings.Contains(string(data), `"amount":1500.00`) {
			t.Errorf("refill amount not written as 1500.00: %s", data)
		}
		payload := moneyStr(ans, "payload")
		m := payloadRe.FindStringSubmatch(payload)
		if m == nil || m[1] != "https://wallet.example.test" || m[3] != "150000" {
			t.Fatalf("payload %q, want https://wallet.example.test/sandbox/sbp/{32 A-Z0-9}?type=02&sum=150000&cur=RUB", payload)
		}
		qrc := m[2]
		expires := moneyStr(ans, "expiresAt")
		at, err := time.ParseInLocation("2006-01-02 15:04:05", expires, moneyLocation())
		if !moneyDate.MatchString(expires) || err != nil {
			t.Errorf("expiresAt %q is not YYYY-MM-DD HH:MM:SS", expires)
		} else if lo, hi := before.Add(30*time.Minute-time.Second), after.Add(30*time.Minute+time.Second); at.Before(lo) || at.After(hi) {
			t.Errorf("expiresAt %s (Moscow) is not 30 minutes after the request (%s)", expires, before.In(moneyLocation()).Format(time.DateTime))
		}

		// Nothing is credited until the bank confirms.
		s.expectBalance(t, "pending top-up", tok, w, "0.00")
		pending := s.operation(t, tok, w, op)
		for k, v := range map[string]any{"operationId": op, "operationType": "CREDIT", "status": "PENDING",
			"description": "Пополнение через СБП", "amount": "1500.00", "formattedAmount": "+1" + nbsp + "500,00" + nbsp + "₽", "tcp": nil} {
			moneyEqual(t, "pending top-up", pending, k, v)
		}

		// The bank page of the link.
		status, hdr, page := s.do(t, http.MethodGet, strings.TrimPrefix(payload, "https://wallet.example.test"), "", nil)
		if status != http.StatusOK {
			t.Fatalf("sandbox page: %d %s", status, page)
		}
		if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("sandbox page Content-Type %q", ct)
		}
		if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("sandbox page Content-Security-Policy %q", csp)
		}
		if xfo := hdr.Get("X-Frame-Options"); xfo != "DENY" {
			t.Errorf("sandbox page X-Frame-Options %q", xfo)
		}
		for _, frag := range []string{"1" + nbsp + "500,00" + nbsp + "₽", `id="pay"`, "Оплатить", `id="decline"`, "Отклонить",
			`action="/sandbox/sbp/` + qrc + `/confirm"`, `action="/sandbox/sbp/` + qrc + `/decline"`} {
			if !strings.Contains(string(page), frag) {
				t.Errorf("sandbox page lacks %q:\n%s", frag, page)
			}
		}

		if got := s.sbp(t, qrc, "confirm"); got != "SUCCESS" {
			t.Errorf("confirm answered status %s, want SUCCESS", got)
		}
		s.expectBalance(t, "confirmed top-up", tok, w, "1500.00")
		done := s.operation(t, tok, w, op)
		moneyEqual(t, "confirmed top-up", done, "status", "SUCCESS")
		moneyEqual(t, "confirmed top-up", done, "operationDate", pending["operationDate"])

		// Confirming again, or declining afterwards, changes nothing.
		if got := s.sbp(t, qrc, "confirm"); got != "SUCCESS" {
			t.Errorf("second confirm answered %s", got)
		}
		if got := s.sbp(t, qrc, "decline"); got != "SUCCESS" {
			t.Errorf("decline after confirm answered %s", got)
		}
		s.expectBalance(t, "confirmed twice", tok, w, "1500.00")
		status, _, page = s.do(t, http.MethodGet, "/sandbox/sbp/"+qrc, "", nil)
		if status != http.StatusOK || strings.Contains(string(page), `id="pay"`) || !strings.Contains(string(page), "Перевод выполнен") {
			t.Errorf("page of a confirmed top-up: %d\n%s", status, page)
		}
	})

	c.Run("decline", func(t *testing.T) {
		w := s.register(t, tok, phone())
		s.fund(t, tok, w, "100")
		tu := s.refillOK(t, tok, w, `"700.5"`)
		moneyEqual(t, "refill 700.5", tu.Answer, "amount", "700.50")
		if got := s.sbp(t, tu.QRC, "decline"); got != "FAILED" {
			t.Errorf("decline answered %s, want FAILED", got)
		}
		s.expectBalance(t, "declined top-up", tok, w, "100.00")
		if got := s.sbp(t, tu.QRC, "confirm"); got != "FAILED" {
			t.Errorf("confirm after decline answered %s, want FAILED", got)
		}
		s.expectBalance(t, "confirm after decline", tok, w, "100.00")
		moneyEqual(t, "declined top-up", s.operation(t, tok, w, tu.OperationID), "status", "FAILED")

		for _, qrc := range []string{strings.Repeat("A", 32), "abc", strings.ToLower(tu.QRC)} {
			status, _, data := s.do(t, http.MethodPost, "/sandbox/sbp/"+qrc+"/confirm", "", nil)
			expectError(t, "confirm unknown link "+qrc, status, data, http.StatusNotFound, "NOT_FOUND")
		}
		status, _, data := s.do(t, http.MethodGet, "/sandbox/sbp/"+strings.Repeat("B", 32), "", nil)
		expectError(t, "page of an unknown link", status, data, http.StatusNotFound, "NOT_FOUND")
	})

	c.Run("page buttons", func(t *testing.T) {
		// The page's buttons post a form and get the result page back.
		w := s.register(t, tok, phone())
		declined, paid := s.refillOK(t, tok, w, "5"), s.refillOK(t, tok, w, "7")
		var exchanges []struct {
			req    *http.Request
			status int
			hdr    http.Header
			body   []byte
		}
		for _, c := range []struct {
			tu            sbpTopUp
			action, title string
			status        string
		}{{declined, "decline", "Перевод отклонён", "FAILED"}, {paid, "confirm", "Перевод выполнен", "SUCCESS"}} {
			req, status, hdr, page := s.send(t, http.MethodPost, "/sandbox/sbp/"+c.tu.QRC+"/"+c.action, "", url.Values{})
			if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || !strings.Contains(string(page), c.title) {
				t.Errorf("%s button: %d %s\n%s", c.action, status, hdr.Get("Content-Type"), page)
			}
			if hdr.Get("X-Frame-Options") != "DENY" || hdr.Get("Content-Security-Policy") == "" {
				t.Errorf("%s button: answer without the page's security headers", c.action)
			}
			moneyEqual(t, c.action+" button", s.operation(t, tok, w, c.tu.OperationID), "status", c.status)
			exchanges = append(exchanges, struct {
				req    *http.Request
				status int
				hdr    http.Header
				body   []byte
			}{req, status, hdr, page})
		}
		s.expectBalance(t, "after the buttons", tok, w, "7.00")

		t.Run("documented", func(t *testing.T) {
			v, err := validator()
			if err != nil {
				t.Fatal(err)
			}
			var undocumented []string
			for _, x := range exchanges {
				if err := v.ValidateResponse(x.req, x.status, x.hdr, x.body); err != nil {
					undocumented = append(undocumented, err.Error())
				}
			}
			if len(undocumented) > 0 {
				t.Errorf("the HTML answer of the sandbox buttons is not in openapi.yaml: %s", strings.Join(undocumented, "; "))
			}
		})
	})

	c.Run("refusals", func(t *testing.T) {
		w := s.register(t, tok, phone())
		for _, amount := range []string{`0`, `"0.00"`, `-5`, `"-5"`, `"12.345"`, `12.345`, `1e3`, `"1e3"`, `""`, `null`, `"abc"`, `true`, `1000000000.01`} {
			status, _, data := s.refill(t, tok, w, amount)
			expectError(t, "refill "+amount, status, data, http.StatusBadRequest, "VALIDATION_ERROR", "amount")
		}
		status, _, data := s.do(t, http.MethodPost, moneyAcct(w)+"/refill", tok, rawBody(`{}`))
		expectError(t, "refill without amount", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "amount")
		status, _, data = s.do(t, http.MethodPost, moneyAcct(w)+"/refill", tok, nil)
		expectError(t, "refill without a body", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "amount")
		status, _, data = s.do(t, http.MethodPost, moneyAcct(w)+"/refill", tok, rawBody(`{"amount":`))
		expectError(t, "refill with malformed JSON", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "body")

		// One-time CREDIT limit of an ELEMENTARY wallet: 15 000.00.
		status, _, data = s.refill(t, tok, w, `"15000.01"`)
		expectError(t, "refill above the one-time limit", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
		expectDetails(t, "refill above the one-time limit", data, "CREDIT.oneTimeLimit", "15000.00", "0.00", "15000.00", "")
		if !strings.Contains(string(data), `"value":15000.00`) {
			t.Errorf("details.value not written as 15000.00: %s", data)
		}

		// The balance limit counts pending top-ups.
		first := s.refillOK(t, tok, w, "10000")
		status, _, data = s.refill(t, tok, w, "6000")
		expectError(t, "refill above the balance limit with a pending top-up", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
		expectDetails(t, "balance limit", data, "balanceLimit", "15000.00", "10000.00", "5000.00", "")
		second := s.refillOK(t, tok, w, "5000") // exactly up to the limit
		if s.sbp(t, first.QRC, "confirm") != "SUCCESS" || s.sbp(t, second.QRC, "confirm") != "SUCCESS" {
			t.Errorf("top-ups up to the balance limit were not credited")
		}
		s.expectBalance(t, "at the balance limit", tok, w, "15000.00")
		status, _, data = s.refill(t, tok, w, "0.01")
		expectError(t, "refill at the balance limit", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
		expectDetails(t, "at the balance limit", data, "balanceLimit", "15000.00", "15000.00", "0.00", "")

		// The partner disables CREDIT.
		w2 := s.register(t, tok, phone())
		s.setLimits(t, tok, w2, typeLimit("CREDIT", "enabled", false))
		status, _, data = s.refill(t, tok, w2, "100")
		expectError(t, "refill with CREDIT disabled", status, data, http.StatusBadRequest, "OPERATION_DISABLED", "amount")
		s.setLimits(t, tok, w2, typeLimit("CREDIT", "enabled", true))
		s.refillOK(t, tok, w2, "100")

		// A downgrade leaves the balance above the new limit: no credit until it is below.
		w4 := s.register(t, tok, phone(), 1)
		s.fund(t, tok, w4, "20000")
		if status, _, data := s.do(t, http.MethodPost, moneyAcct(w4)+"/identification/0", tok, nil); status != http.StatusOK {
			t.Fatalf("downgrade: %d %s", status, data)
		}
		s.expectBalance(t, "after the downgrade", tok, w4, "20000.00")
		status, _, data = s.refill(t, tok, w4, "1")
		expectError(t, "refill above the balance limit after a downgrade", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
		expectDetails(t, "after a downgrade", data, "balanceLimit", "15000.00", "20000.00", "0.00", "")

		// Closed, unknown and malformed wallets.
		w3 := s.register(t, tok, phone())
		if status, data := s.closeWallet(t, tok, w3); status != http.StatusOK {
			t.Fatalf("close: %d %s", status, data)
		}
		status, _, data = s.refill(t, tok, w3, "100")
		expectError(t, "refill of a closed wallet", status, data, http.StatusBadRequest, "WALLET_CLOSED")
		status, _, data = s.refill(t, tok, uuid.NewString(), "100")
		expectError(t, "refill of an unknown wallet", status, data, http.StatusNotFound, "WALLET_NOT_FOUND")
		status, _, data = s.refill(t, tok, "nope", "100")
		expectError(t, "refill of a malformed walletId", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "walletId")

		// Refusals leave no operations behind.
		if page, _ := s.report(t, tok, w, ""); moneyNum(page, "totalElements") != "2" {
			t.Errorf("report after refusals: %v operations, want the 2 accepted ones", page["totalElements"])
		}
		if page, _ := s.report(t, tok, w3, ""); moneyNum(page, "totalElements") != "0" {
			t.Errorf("closed wallet has operations: %v", page)
		}
	})

	c.Run("limits re-checked at confirmation", func(t *testing.T) {
		w := s.register(t, tok, phone(), 1)
		tu := s.refillOK(t, tok, w, "10000")
		s.setLimits(t, tok, w, map[string]any{"balanceLimit": "5000"})
		if got := s.sbp(t, tu.QRC, "confirm"); got != "FAILED" {
			t.Errorf("confirm above the lowered balance limit answered %s, want FAILED", got)
		}
		s.expectBalance(t, "top-up failed at confirmation", tok, w, "0.00")
		moneyEqual(t, "top-up failed at confirmation", s.operation(t, tok, w, tu.OperationID), "status", "FAILED")
		if got := moneyMonthUsed(s.limits(t, tok, w), "CREDIT"); got != "0.00" {
			t.Errorf("CREDIT monthUsed %s after a failed top-up, want 0.00", got)
		}

		// The one-time limit too.
		tu = s.refillOK(t, tok, w, "4000")
		s.setLimits(t, tok, w, typeLimit("CREDIT", "oneTimeLimit", "3000"))
		if got := s.sbp(t, tu.QRC, "confirm"); got != "FAILED" {
			t.Errorf("confirm above the lowered one-time limit answered %s, want FAILED", got)
		}
		// Within the limits it goes through.
		tu = s.refillOK(t, tok, w, "3000")
		if got := s.sbp(t, tu.QRC, "confirm"); got != "SUCCESS" {
			t.Errorf("confirm within the limits answered %s", got)
		}
		s.expectBalance(t, "after the limits held", tok, w, "3000.00")
	})

	c.Run("monthUsed", func(t *testing.T) {
		w := s.register(t, tok, phone())
		used := func(typ string) string { return moneyMonthUsed(s.limits(t, tok, w), typ) }
		if got := used("CREDIT"); got != "0.00" {
			t.Errorf("CREDIT monthUsed of a new wallet %s", got)
		}
		a := s.refillOK(t, tok, w, "1000")
		b := s.refillOK(t, tok, w, "500")
		if got := used("CREDIT"); got != "1500.00" {
			t.Errorf("CREDIT monthUsed with two pending top-ups %s, want 1500.00", got)
		}
		s.sbp(t, a.QRC, "decline")
		if got := used("CREDIT"); got != "500.00" {
			t.Errorf("CREDIT monthUsed after a decline %s, want 500.00", got)
		}
		s.sbp(t, b.QRC, "confirm")
		if got := used("CREDIT"); got != "500.00" {
			t.Errorf("CREDIT monthUsed after a confirmation %s, want 500.00", got)
		}
		s.payOK(t, tok, w, "120.5", s.A.TSPID)
		lim := s.limits(t, tok, w)
		if moneyMonthUsed(lim, "PAYMENT") != "120.50" || moneyMonthUsed(lim, "DEBIT") != "0.00" {
			t.Errorf("monthUsed after a payment: %v", lim["operationLimits"])
		}
	})
}

func moneyTopUpExpiry(t *testing.T, e storetest.Engine) {
	s := startMoneyServer(t, e, map[string]string{"WALLET_TOPUP_TTL": "1s"})
	tok := s.token(t, s.A)
	w := s.register(t, tok, phone())

	// While it is pending a top-up holds its room under the balance limit. A
	// one-second top-up may expire before the next request on a slow machine,
	// so this is shown with a top-up of an hour, issued by a second server on
	// the same database.
	long, _ := startMoneyServerOn(t, s.DSN, s.A, s.B, map[string]string{"WALLET_TOPUP_TTL": "1h"})
	held := long.refillOK(t, tok, w, "15000")
	status, _, data := s.refill(t, tok, w, "0.01")
	expectError(t, "refill while 15000.00 is pending", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
	expectDetails(t, "refill while 15000.00 is pending", data, "balanceLimit", "15000.00", "15000.00", "0.00", "")
	if got := long.sbp(t, held.QRC, "decline"); got != "FAILED" {
		t.Fatalf("decline of the pending top-up answered %s", got)
	}

	before := time.Now()
	tu := s.refillOK(t, tok, w, "15000")
	after := time.Now()
	at, err := time.ParseInLocation("2006-01-02 15:04:05", moneyStr(tu.Answer, "expiresAt"), moneyLocation())
	if err != nil || at.Before(before.Add(time.Second).Truncate(time.Second)) || at.After(after.Add(time.Second)) {
		t.Errorf("expiresAt %v with WALLET_TOPUP_TTL=1s (requested between %s and %s)", tu.Answer["expiresAt"],
			before.In(moneyLocation()).Format(time.DateTime), after.In(moneyLocation()).Format(time.DateTime))
	}
	// Confirmation never came: the background work ends it.
	item := s.waitStatus(t, tok, w, tu.OperationID, "EXPIRED", 10*time.Second)
	moneyEqual(t, "expired top-up", item, "formattedAmount", "+15"+nbsp+"000,00"+nbsp+"₽")
	if got := s.sbp(t, tu.QRC, "confirm"); got != "EXPIRED" {
		t.Errorf("confirm after expiry answered %s, want EXPIRED", got)
	}
	s.expectBalance(t, "expired top-up", tok, w, "0.00")
	if got := moneyMonthUsed(s.limits(t, tok, w), "CREDIT"); got != "0.00" {
		t.Errorf("CREDIT monthUsed after expiry %s, want 0.00", got)
	}
	status, _, page := s.do(t, http.MethodGet, tu.Path, "", nil)
	if status != http.StatusOK || strings.Contains(string(page), `id="pay"`) || !strings.Contains(string(page), "Срок оплаты истёк") {
		t.Errorf("page of an expired top-up: %d\n%s", status, page)
	}

	// The expired top-up no longer holds room under the balance limit.
	s.refillOK(t, tok, w, "15000")
}

func moneyPayment(t *testing.T, e storetest.Engine) {
	c := runConcurrently(t)
	defer c.Wait()
	s := startMoneyServer(t, e, nil)
	tok := s.token(t, s.A)
	tspA := s.A.TSPID

	c.Run("pay and replay", func(t *testing.T) {
		w := s.register(t, tok, phone())
		s.fund(t, tok, w, "1000")
		token := s.initPayment(t, tok, w)
		status, _, data := s.pay(t, tok, w, token, "250", tspA)
		ans := moneyOK(t, "pay", status, data)
		moneyKeys(t, "pay", ans, "walletId", "token", "operationId", "amount", "status")
		for k, v := range map[string]any{"walletId": w, "token": token, "amount": "250.00", "status": "SUCCESS"} {
			moneyEqual(t, "pay", ans, k, v)
		}
		if !strings.Contains(string(data), `"amount":250.00`) {
			t.Errorf("payment amount not written as 250.00: %s", data)
		}
		op := moneyStr(ans, "operationId")
		s.expectBalance(t, "after the payment", tok, w, "750.00")

		// The same payment again: the same answer, no money moves.
		for _, amount := range []string{"250", `"250.00"`, "250.0"} {
			status, _, again := s.pay(t, tok, w, token, amount, tspA)
			if got := moneyOK(t, "repeat payment "+amount, status, again); moneyStr(got, "operationId") != op || got["status"] != "SUCCESS" {
				t.Errorf("repeat payment %s answered %s, want operation %s", amount, again, op)
			}
		}
		s.expectBalance(t, "after repeats", tok, w, "750.00")

		// The token with other data.
		status, _, data = s.pay(t, tok, w, token, "251", tspA)
		expectError(t, "used token, other amount", status, data, http.StatusBadRequest, "TOKEN_INVALID", "token")
		s.expectBalance(t, "after a refused reuse", tok, w, "750.00")

		item := s.operation(t, tok, w, op)
		for k, v := range map[string]any{"operationType": "PAYMENT", "status": "SUCCESS", "description": "Оплата: ТСП A",
			"amount": "250.00", "formattedAmount": "-250,00" + nbsp + "₽", "tcp": tspA} {
			moneyEqual(t, "payment item", item, k, v)
		}
		if page, _ := s.report(t, tok, w, "operationType=PAYMENT"); moneyNum(page, "totalElements") != "1" {
			t.Errorf("payments in the report: %v, want 1", page["totalElements"])
		}
	})

	c.Run("token and request refusals", func(t *testing.T) {
		w := s.register(t, tok, phone())
		other := s.register(t, tok, phone())
		s.fund(t, tok, w, "500")
		token := s.initPayment(t, tok, w)
		status, _, data := s.pay(t, tok, w, uuid.NewString(), "10", tspA)
		expectError(t, "unknown token", status, data, http.StatusBadRequest, "TOKEN_INVALID", "token")
		status, _, data = s.pay(t, tok, w, s.initPayment(t, tok, other), "10", tspA)
		expectError(t, "token of another wallet", status, data, http.StatusBadRequest, "TOKEN_INVALID", "token")

		body := func(fields map[string]any) map[string]any {
			b := map[string]any{"walletId": w, "token": token, "amount": "10", "tsp": tspA}
			for k, v := range fields {
				if v == nil {
					delete(b, k)
				} else {
					b[k] = v
				}
			}
			return b
		}
		for _, c := range []struct {
			name   string
			body   any
			fields []string
		}{
			{"walletId of another wallet", body(map[string]any{"walletId": other}), []string{"walletId"}},
			{"unknown walletId", body(map[string]any{"walletId": uuid.NewString()}), []string{"walletId"}},
			{"malformed walletId", body(map[string]any{"walletId": "x"}), []string{"walletId"}},
			{"malformed tsp", body(map[string]any{"tsp": "not-a-uuid"}), []string{"tsp"}},
			{"tsp with a trailing character", body(map[string]any{"tsp": tspA + "0"}), []string{"tsp"}},
			{"malformed token", body(map[string]any{"token": 42}), []string{"token"}},
			{"zero amount", body(map[string]any{"amount": 0}), []string{"amount"}},
			{"three decimals", body(map[string]any{"amount": "1.001"}), []string{"amount"}},
			{"missing everything", map[string]any{}, []string{"walletId", "token", "amount", "tsp"}},
		} {
			status, _, data := s.do(t, http.MethodPost, moneyAcct(w)+"/payment", tok, c.body)
			expectError(t, c.name, status, data, http.StatusBadRequest, "VALIDATION_ERROR", c.fields...)
		}
		s.expectBalance(t, "after refusals", tok, w, "500.00")
		// None of that used the token up.
		status, _, data = s.pay(t, tok, w, token, "10", tspA)
		moneyOK(t, "pay with the token after refusals", status, data)
		s.expectBalance(t, "after the payment", tok, w, "490.00")
	})

	c.Run("refused payments keep the token", func(t *testing.T) {
		w := s.register(t, tok, phone())
		s.fund(t, tok, w, "300")
		token := s.initPayment(t, tok, w)
		status, _, data := s.pay(t, tok, w, token, "100", s.B.TSPID)
		expectError(t, "TSP of another partner", status, data, http.StatusBadRequest, "TSP_NOT_FOUND", "tsp")
		status, _, data = s.pay(t, tok, w, token, "100", uuid.NewString())
		expectError(t, "unknown TSP", status, data, http.StatusBadRequest, "TSP_NOT_FOUND", "tsp")
		status, _, data = s.pay(t, tok, w, token, "300.01", tspA)
		expectError(t, "above the balance", status, data, http.StatusBadRequest, "INSUFFICIENT_FUNDS", "amount")
		expectDetails(t, "above the balance", data, "balance", "300.00", "0.00", "300.00", "")
		s.expectBalance(t, "after refusals", tok, w, "300.00")
		status, _, data = s.pay(t, tok, w, token, "300", tspA)
		if ans := moneyOK(t, "corrected payment", status, data); ans["status"] != "SUCCESS" {
			t.Errorf("corrected payment answered %s", data)
		}
		s.expectBalance(t, "after the corrected payment", tok, w, "0.00")
	})

	c.Run("statutory monthly cap", func(t *testing.T) {
		// PERSONALIZED: payments and withdrawals together stay within
		// 200 000.00 a month (161-FZ), though each type is within its own limit.
		w := s.register(t, tok, phone(), 1)
		for range 3 {
			s.fund(t, tok, w, "50000")
			s.payOK(t, tok, w, "50000", tspA)
		}
		s.fund(t, tok, w, "50001")
		status, _, data := s.withdraw(t, tok, w, sberbank, "50000")
		moneyOK(t, "withdrawal up to the cap", status, data)
		token := s.initPayment(t, tok, w)
		status, _, data = s.pay(t, tok, w, token, "1", tspA)
		expectError(t, "payment past the statutory cap", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
		expectDetails(t, "statutory cap", data, "statutoryMonthLimit", "200000.00", "200000.00", "0.00", nextMonthMoscow())
		s.expectBalance(t, "after the refused payment", tok, w, "1.00")
	})

	c.Run("limits", func(t *testing.T) {
		w := s.register(t, tok, phone())
		s.fund(t, tok, w, "1000")
		s.setLimits(t, tok, w, typeLimit("PAYMENT", "oneTimeLimit", "100"))
		token := s.initPayment(t, tok, w)
		status, _, data := s.pay(t, tok, w, token, "100.01", tspA)
		expectError(t, "above the one-time limit", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
		expectDetails(t, "one-time limit", data, "PAYMENT.oneTimeLimit", "100.00", "0.00", "100.00", "")
		status, _, data = s.pay(t, tok, w, token, "100", tspA)
		moneyOK(t, "payment at the one-time limit", status, data)

		// Monthly: 100 used already.
		s.setLimits(t, tok, w, map[string]any{"operationLimits": map[string]any{"PAYMENT": map[string]any{"oneTimeLimit": nil, "monthLimit": "300"}}})
		token = s.initPayment(t, tok, w)
		status, _, data = s.pay(t, tok, w, token, "200.01", tspA)
		expectError(t, "above the monthly limit", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
		expectDetails(t, "monthly limit", data, "PAYMENT.monthLimit", "300.00", "100.00", "200.00", nextMonthMoscow())
		status, _, data = s.pay(t, tok, w, token, "200", tspA)
		moneyOK(t, "payment up to the monthly limit", status, data)
		if got := moneyMonthUsed(s.limits(t, tok, w), "PAYMENT"); got != "300.00" {
			t.Errorf("PAYMENT monthUsed %s, want 300.00", got)
		}

		s.setLimits(t, tok, w, map[string]any{"operationLimits": map[string]any{"PAYMENT": map[string]any{"monthLimit": nil, "enabled": false}}})
		token = s.initPayment(t, tok, w)
		status, _, data = s.pay(t, tok, w, token, "1", tspA)
		expectError(t, "PAYMENT disabled", status, data, http.StatusBadRequest, "OPERATION_DISABLED", "amount")
		s.setLimits(t, tok, w, typeLimit("PAYMENT", "enabled", true))
		status, _, data = s.pay(t, tok, w, token, "1", tspA)
		moneyOK(t, "payment enabled again", status, data)
		s.expectBalance(t, "after the limits", tok, w, "699.00")
	})

	c.Run("closed wallet", func(t *testing.T) {
		w := s.register(t, tok, phone())
		token := s.initPayment(t, tok, w)
		if status, data := s.closeWallet(t, tok, w); status != http.StatusOK {
			t.Fatalf("close: %d %s", status, data)
		}
		status, _, data := s.pay(t, tok, w, token, "1", tspA)
		expectError(t, "payment from a closed wallet", status, data, http.StatusBadRequest, "WALLET_CLOSED")
		status, _, data = s.do(t, http.MethodGet, moneyAcct(w)+"/payment/initialization", tok, nil)
		expectError(t, "initialization on a closed wallet", status, data, http.StatusBadRequest, "WALLET_CLOSED")
		status, _, data = s.do(t, http.MethodGet, moneyAcct(uuid.NewString())+"/payment/initialization", tok, nil)
		expectError(t, "initialization on an unknown wallet", status, data, http.StatusNotFound, "WALLET_NOT_FOUND")

		// A refund into a wallet closed since its payment is refused.
		spent := s.register(t, tok, phone())
		s.fund(t, tok, spent, "100")
		paid := s.payOK(t, tok, spent, "100", tspA)
		if status, data := s.closeWallet(t, tok, spent); status != http.StatusOK {
			t.Fatalf("close the spent wallet: %d %s", status, data)
		}
		status, _, data = s.do(t, http.MethodPost, moneyAcct(spent)+"/payment/"+moneyStr(paid, "token")+"/refund", tok, nil)
		expectError(t, "refund into a closed wallet", status, data, http.StatusBadRequest, "WALLET_CLOSED")
		s.expectBalance(t, "closed wallet after the refused refund", tok, spent, "0.00")

		// A PENDING top-up keeps a wallet at 0.00 from closing (4.3).
		waiting := s.register(t, tok, phone())
		status, _, data = s.do(t, http.MethodPost, moneyAcct(waiting)+"/refill", tok, map[string]any{"amount": "10"})
		moneyOK(t, "top-up left pending", status, data)
		closeStatus, closeData := s.closeWallet(t, tok, waiting)
		expectError(t, "close with a pending top-up", closeStatus, closeData, http.StatusBadRequest, "WALLET_HAS_BALANCE")
		moneyEqual(t, "wallet with a pending top-up", s.info(t, tok, waiting), "status", "ACTIVE")
	})

	c.Run("refund", func(t *testing.T) {
		w := s.register(t, tok, phone())
		s.fund(t, tok, w, "1000")
		pay := s.payOK(t, tok, w, "600", tspA)
		token, payOp := moneyStr(pay, "token"), moneyStr(pay, "operationId")
		refundPath := moneyAcct(w) + "/payment/" + token + "/refund"

		status, _, data := s.do(t, http.MethodPost, refundPath, tok, map[string]any{"amount": "200"})
		first := moneyOK(t, "partial refund", status, data)
		moneyKeys(t, "refund", first, "walletId", "token", "operationId", "amount", "status")
		for k, v := range map[string]any{"walletId": w, "token": token, "amount": "200.00", "status": "SUCCESS"} {
			moneyEqual(t, "partial refund", first, k, v)
		}
		if moneyStr(first, "operationId") == payOp {
			t.Errorf("the refund answered the payment's operation id")
		}
		s.expectBalance(t, "after a partial refund", tok, w, "600.00")

		status, _, data = s.do(t, http.MethodPost, refundPath, tok, map[string]any{"amount": "400.01"})
		expectError(t, "refund above the rest", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "amount")
		for _, amount := range []string{`0`, `"x"`, `-1`, `1.001`} {
			status, _, data = s.do(t, http.MethodPost, refundPath, tok, map[string]any{"amount": rawJSON(amount)})
			expectError(t, "refund amount "+amount, status, data, http.StatusBadRequest, "VALIDATION_ERROR", "amount")
		}

		// Refunds are not CREDIT: disabling CREDIT does not block them.
		s.setLimits(t, tok, w, typeLimit("CREDIT", "enabled", false))
		status, _, data = s.do(t, http.MethodPost, refundPath, tok, nil)
		rest := moneyOK(t, "refund of the rest", status, data)
		moneyEqual(t, "refund of the rest", rest, "amount", "400.00")
		s.expectBalance(t, "after the full refund", tok, w, "1000.00")
		status, _, data = s.do(t, http.MethodPost, refundPath, tok, map[string]any{})
		expectError(t, "refund of a refunded payment", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "amount")

		status, _, data = s.do(t, http.MethodPost, moneyAcct(w)+"/payment/"+uuid.NewString()+"/refund", tok, nil)
		expectError(t, "refund of an unknown token", status, data, http.StatusBadRequest, "TOKEN_INVALID", "token")
		unused := s.initPayment(t, tok, w)
		status, _, data = s.do(t, http.MethodPost, moneyAcct(w)+"/payment/"+unused+"/refund", tok, nil)
		expectError(t, "refund of an unused token", status, data, http.StatusBadRequest, "TOKEN_INVALID", "token")
		other := s.register(t, tok, phone())
		status, _, data = s.do(t, http.MethodPost, moneyAcct(other)+"/payment/"+token+"/refund", tok, nil)
		expectError(t, "refund through another wallet", status, data, http.StatusBadRequest, "TOKEN_INVALID", "token")
		status, _, data = s.do(t, http.MethodPost, moneyAcct(w)+"/payment/nope/refund", tok, nil)
		expectError(t, "refund of a malformed token", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "token")

		_, items := s.report(t, tok, w, "operationType=REFUND")
		if len(items) != 2 {
			t.Fatalf("REFUND operations in the report: %d, want 2", len(items))
		}
		for i, want := range []struct{ id, amount, formatted string }{
			{moneyStr(rest, "operationId"), "400.00", "+400,00" + nbsp + "₽"},
			{moneyStr(first, "operationId"), "200.00", "+200,00" + nbsp + "₽"},
		} {
			for k, v := range map[string]any{"operationId": want.id, "operationType": "REFUND", "status": "SUCCESS",
				"description": "Возврат: ТСП A", "amount": want.amount, "formattedAmount": want.formatted, "tcp": tspA} {
				moneyEqual(t, fmt.Sprintf("refund item %d", i), items[i], k, v)
			}
		}
		// The payment itself is unchanged in the report.
		moneyEqual(t, "refunded payment", s.operation(t, tok, w, payOp), "amount", "600.00")
	})

	c.Run("refund within the balance limit only", func(t *testing.T) {
		w := s.register(t, tok, phone())
		s.fund(t, tok, w, "15000")
		pay := s.payOK(t, tok, w, "1000", tspA)
		pending := s.refillOK(t, tok, w, "1000") // 14 000 + 1 000 pending = the limit
		refundPath := moneyAcct(w) + "/payment/" + moneyStr(pay, "token") + "/refund"
		status, _, data := s.do(t, http.MethodPost, refundPath, tok, map[string]any{"amount": "0.01"})
		expectError(t, "refund above the balance limit", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
		expectDetails(t, "refund above the balance limit", data, "balanceLimit", "15000.00", "15000.00", "0.00", "")
		s.sbp(t, pending.QRC, "decline")
		status, _, data = s.do(t, http.MethodPost, refundPath, tok, map[string]any{"amount": "1000"})
		moneyOK(t, "refund after the decline", status, data)
		s.expectBalance(t, "refunded up to the limit", tok, w, "15000.00")
	})
}

func moneyWithdrawal(t *testing.T, e storetest.Engine) {
	c := runConcurrently(t)
	defer c.Wait()
	s := startMoneyServer(t, e, map[string]string{"WALLET_SANDBOX_PAYOUT_DELAY": "300ms"})
	tok := s.token(t, s.A)

	c.Run("ELEMENTARY", func(t *testing.T) {
		w := s.register(t, tok, phone())
		s.fund(t, tok, w, "1000")
		status, _, data := s.withdraw(t, tok, w, sberbank, "100")
		expectError(t, "withdrawal from an ELEMENTARY wallet", status, data, http.StatusBadRequest, "OPERATION_DISABLED", "amount")
		s.expectBalance(t, "after the refusal", tok, w, "1000.00")
	})

	c.Run("payout", func(t *testing.T) {
		w := s.register(t, tok, phone(), 1)
		s.fund(t, tok, w, "5000")
		status, _, data := s.do(t, http.MethodPost, moneyAcct(w)+"/wifhdrawal", tok, rawBody(`{"bankIdentifier":"`+sberbank+`","amount":1000.00}`))
		ans := moneyOK(t, "withdrawal", status, data)
		moneyKeys(t, "withdrawal", ans, "walletId", "operationId", "amount", "bankIdentifier", "status")
		for k, v := range map[string]any{"walletId": w, "amount": "1000.00", "bankIdentifier": sberbank, "status": "PENDING"} {
			moneyEqual(t, "withdrawal", ans, k, v)
		}
		op := moneyStr(ans, "operationId")
		// Held at once.
		s.expectBalance(t, "pending withdrawal", tok, w, "4000.00")
		item := s.operation(t, tok, w, op)
		for k, v := range map[string]any{"operationType": "DEBIT", "description": "Вывод в банк: Сбербанк",
			"amount": "1000.00", "formattedAmount": "-1" + nbsp + "000,00" + nbsp + "₽", "tcp": nil} {
			moneyEqual(t, "withdrawal item", item, k, v)
		}
		if got := moneyMonthUsed(s.limits(t, tok, w), "DEBIT"); got != "1000.00" {
			t.Errorf("DEBIT monthUsed %s, want 1000.00", got)
		}
		s.waitStatus(t, tok, w, op, "SUCCESS", 10*time.Second)
		s.expectBalance(t, "completed payout", tok, w, "4000.00")
		if got := moneyMonthUsed(s.limits(t, tok, w), "DEBIT"); got != "1000.00" {
			t.Errorf("DEBIT monthUsed after the payout %s, want 1000.00", got)
		}
	})

	c.Run("failed payout returns the money", func(t *testing.T) {
		w := s.register(t, tok, phone(), 1)
		s.fund(t, tok, w, "500")
		status, _, data := s.withdraw(t, tok, w, sberbank, `"100.13"`)
		ans := moneyOK(t, "withdrawal of 100.13", status, data)
		moneyEqual(t, "withdrawal of 100.13", ans, "status", "PENDING")
		// That the money is held until then is shown by "a payout bound to fail
		// holds the money", where the payout is not due before the check.
		s.waitStatus(t, tok, w, moneyStr(ans, "operationId"), "FAILED", 10*time.Second)
		s.expectBalance(t, "after the failed payout", tok, w, "500.00")
		if got := moneyMonthUsed(s.limits(t, tok, w), "DEBIT"); got != "0.00" {
			t.Errorf("DEBIT monthUsed after a failed payout %s, want 0.00", got)
		}
	})

	c.Run("a payout bound to fail holds the money", func(t *testing.T) {
		// A server of its own, on its own database, whose payouts are due only
		// in an hour: the withdrawal is sure to be PENDING when it is looked at.
		held := startMoneyServer(t, e, map[string]string{"WALLET_SANDBOX_PAYOUT_DELAY": "1h"})
		tok := held.token(t, held.A)
		w := held.register(t, tok, phone(), 1)
		held.fund(t, tok, w, "500")
		status, _, data := held.withdraw(t, tok, w, sberbank, `"100.13"`)
		op := moneyStr(moneyOK(t, "withdrawal of 100.13", status, data), "operationId")
		held.expectBalance(t, "right after the withdrawal", tok, w, "399.87")
		moneyEqual(t, "pending withdrawal of 100.13", held.operation(t, tok, w, op), "status", "PENDING")
		if got := moneyMonthUsed(held.limits(t, tok, w), "DEBIT"); got != "100.13" {
			t.Errorf("DEBIT monthUsed of a pending withdrawal %s, want 100.13", got)
		}
	})

	c.Run("refusals", func(t *testing.T) {
		w := s.register(t, tok, phone(), 1)
		s.fund(t, tok, w, "200")
		status, _, data := s.withdraw(t, tok, w, "999999999999", "10")
		expectError(t, "unknown bank", status, data, http.StatusBadRequest, "BANK_NOT_FOUND", "bankIdentifier")
		for _, bank := range []string{"123", "", "10000000011a", "1000000001111"} {
			status, _, data = s.withdraw(t, tok, w, bank, "10")
			expectError(t, "bankIdentifier "+bank, status, data, http.StatusBadRequest, "VALIDATION_ERROR", "bankIdentifier")
		}
		status, _, data = s.do(t, http.MethodPost, moneyAcct(w)+"/wifhdrawal", tok, map[string]any{"bankIdentifier": 100000000111, "amount": "10"})
		expectError(t, "bankIdentifier as a number", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "bankIdentifier")
		status, _, data = s.do(t, http.MethodPost, moneyAcct(w)+"/wifhdrawal", tok, map[string]any{})
		expectError(t, "empty withdrawal", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "bankIdentifier", "amount")
		for _, amount := range []string{`0`, `"1.234"`, `-1`} {
			status, _, data = s.withdraw(t, tok, w, sberbank, amount)
			expectError(t, "withdrawal amount "+amount, status, data, http.StatusBadRequest, "VALIDATION_ERROR", "amount")
		}
		status, _, data = s.withdraw(t, tok, w, sberbank, "200.01")
		expectError(t, "withdrawal above the balance", status, data, http.StatusBadRequest, "INSUFFICIENT_FUNDS", "amount")
		expectDetails(t, "withdrawal above the balance", data, "balance", "200.00", "0.00", "200.00", "")
		s.setLimits(t, tok, w, typeLimit("DEBIT", "oneTimeLimit", "50"))
		status, _, data = s.withdraw(t, tok, w, sberbank, "50.01")
		expectError(t, "withdrawal above the one-time limit", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
		expectDetails(t, "DEBIT one-time limit", data, "DEBIT.oneTimeLimit", "50.00", "0.00", "50.00", "")
		status, _, data = s.withdraw(t, tok, uuid.NewString(), sberbank, "10")
		expectError(t, "withdrawal from an unknown wallet", status, data, http.StatusNotFound, "WALLET_NOT_FOUND")
		s.expectBalance(t, "after refusals", tok, w, "200.00")
		if page, _ := s.report(t, tok, w, "operationType=DEBIT"); moneyNum(page, "totalElements") != "0" {
			t.Errorf("refused withdrawals left operations: %v", page)
		}
	})

	c.Run("alias path and closing", func(t *testing.T) {
		w := s.register(t, tok, phone(), 1)
		s.fund(t, tok, w, "300")
		status, data := s.closeWallet(t, tok, w)
		expectError(t, "close with money", status, data, http.StatusBadRequest, "WALLET_HAS_BALANCE")
		status, _, data = s.do(t, http.MethodPost, moneyAcct(w)+"/withdrawal", tok, map[string]any{"bankIdentifier": sberbank, "amount": "300"})
		ans := moneyOK(t, "withdrawal by the alias path", status, data)
		moneyEqual(t, "alias", ans, "status", "PENDING")
		s.expectBalance(t, "all held", tok, w, "0.00")
		s.waitStatus(t, tok, w, moneyStr(ans, "operationId"), "SUCCESS", 10*time.Second)
		status, data = s.closeWallet(t, tok, w)
		moneyOK(t, "close after the payout", status, data)
		moneyEqual(t, "closed wallet", s.info(t, tok, w), "status", "CLOSED")
		status, _, data = s.withdraw(t, tok, w, sberbank, "1")
		expectError(t, "withdrawal from a closed wallet", status, data, http.StatusBadRequest, "WALLET_CLOSED")
	})
}

func moneyRestart(t *testing.T, e storetest.Engine) {
	dsn := e.DSN(t)
	a, b := createPartner(t, dsn, testEnv(nil), "A"), createPartner(t, dsn, testEnv(nil), "B")
	// The payout and the expiry fall due this long after they are requested,
	// by the clock of either process.
	const due = 3 * time.Second
	env := map[string]string{"WALLET_SANDBOX_PAYOUT_DELAY": due.String(), "WALLET_TOPUP_TTL": due.String()}
	first, stop := startMoneyServerOn(t, dsn, a, b, env)
	tok := first.token(t, a)
	w := first.register(t, tok, phone(), 1)
	// Links live only a few seconds: should a confirmation come too late, fund again.
	for attempt := 1; ; attempt++ {
		tu := first.refillOK(t, tok, w, "3000")
		got := first.sbp(t, tu.QRC, "confirm")
		if got == "SUCCESS" {
			break
		}
		if got != "EXPIRED" || attempt == 5 {
			t.Fatalf("confirm of a fresh top-up answered %s", got)
		}
	}
	requested := time.Now()
	status, _, data := first.withdraw(t, tok, w, sberbank, "3000")
	payout := moneyStr(moneyOK(t, "withdrawal", status, data), "operationId")
	topUp := first.refillOK(t, tok, w, "700")
	// Stop at once: the payout and the expiry are due only after the restart.
	// The first process can do neither before requested+due, so once it has
	// exited by then the work is sure to be left to the second one.
	stop()
	if late := time.Since(requested); late >= due {
		t.Fatalf("the first server was stopped %s after the withdrawal, not within %s: it may have completed the payout or the expiry itself, so the restart would prove nothing", late, due)
	}

	second, _ := startMoneyServerOn(t, dsn, a, b, env)
	// The access token was issued by the first process; it still works.
	second.waitStatus(t, tok, w, payout, "SUCCESS", 10*time.Second)
	second.waitStatus(t, tok, w, topUp.OperationID, "EXPIRED", 10*time.Second)
	if got := second.sbp(t, topUp.QRC, "confirm"); got != "EXPIRED" {
		t.Errorf("confirm of the expired top-up after the restart answered %s", got)
	}
	second.expectBalance(t, "after the restart", tok, w, "0.00")
	status, data = second.closeWallet(t, tok, w)
	moneyOK(t, "close after the payout", status, data)
	moneyAudit(t, dsn)
}

func moneyReport(t *testing.T, e storetest.Engine) {
	// Payouts stay PENDING here, so every status is known.
	s := startMoneyServer(t, e, map[string]string{"WALLET_SANDBOX_PAYOUT_DELAY": "1h"})
	tok := s.token(t, s.A)
	tspA := s.A.TSPID
	w := s.register(t, tok, phone(), 1)

	// A mix of operations, oldest first; the last one a second after the others.
	type want struct{ id, typ, description, amount, formatted string }
	var ops []want
	credit := func(id, amount, formatted string) {
		ops = append(ops, want{id, "CREDIT", "Пополнение через СБП", amount, formatted})
	}
	credit(s.fund(t, tok, w, "1500"), "1500.00", "+1"+nbsp+"500,00"+nbsp+"₽")
	declined := s.refillOK(t, tok, w, "200")
	s.sbp(t, declined.QRC, "decline")
	credit(declined.OperationID, "200.00", "+200,00"+nbsp+"₽")
	pending := s.refillOK(t, tok, w, "300")
	pendingDate := moneyStr(s.operation(t, tok, w, pending.OperationID), "operationDate")
	credit(pending.OperationID, "300.00", "+300,00"+nbsp+"₽")
	pay := s.payOK(t, tok, w, "250", tspA)
	ops = append(ops, want{moneyStr(pay, "operationId"), "PAYMENT", "Оплата: ТСП A", "250.00", "-250,00" + nbsp + "₽"})
	status, _, data := s.do(t, http.MethodPost, moneyAcct(w)+"/payment/"+moneyStr(pay, "token")+"/refund", tok, map[string]any{"amount": "50"})
	ops = append(ops, want{moneyStr(moneyOK(t, "refund", status, data), "operationId"), "REFUND", "Возврат: ТСП A", "50.00", "+50,00" + nbsp + "₽"})
	status, _, data = s.withdraw(t, tok, w, sberbank, "100")
	ops = append(ops, want{moneyStr(moneyOK(t, "withdrawal", status, data), "operationId"), "DEBIT", "Вывод в банк: Сбербанк", "100.00", "-100,00" + nbsp + "₽"})
	pay = s.payOK(t, tok, w, "12.34", tspA)
	ops = append(ops, want{moneyStr(pay, "operationId"), "PAYMENT", "Оплата: ТСП A", "12.34", "-12,34" + nbsp + "₽"})
	// Into the next second, so the last operation has an operationDate of its own.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 20*time.Millisecond)))
	pay = s.payOK(t, tok, w, "1000", tspA)
	ops = append(ops, want{moneyStr(pay, "operationId"), "PAYMENT", "Оплата: ТСП A", "1000.00", "-1" + nbsp + "000,00" + nbsp + "₽"})
	n := len(ops)
	newestFirst := make([]string, n)
	for i, op := range ops {
		newestFirst[n-1-i] = op.id
	}
	// ids of ops (by index, oldest first) in report order.
	idsOf := func(idx ...int) []string {
		var ids []string
		for i := n - 1; i >= 0; i-- {
			if slices.Contains(idx, i) {
				ids = append(ids, ops[i].id)
			}
		}
		return ids
	}
	expectIDs := func(t *testing.T, query string, want []string) {
		t.Helper()
		page, items := s.report(t, tok, w, query)
		if got := moneyIDs(items); !slices.Equal(got, want) {
			t.Errorf("report %s: operations %q, want %q", query, got, want)
		}
		if moneyNum(page, "totalElements") != fmt.Sprint(len(want)) {
			t.Errorf("report %s: totalElements %v, want %d", query, page["totalElements"], len(want))
		}
	}

	t.Run("default page", func(t *testing.T) {
		status, _, data := s.do(t, http.MethodGet, moneyAcct(w)+"/report", tok, nil)
		page := moneyOK(t, "report", status, data)
		moneyKeys(t, "report", page, "content", "page", "size", "totalElements", "totalPages")
		for k, v := range map[string]any{"page": "0", "size": "20", "totalElements": fmt.Sprint(n), "totalPages": "1"} {
			moneyEqual(t, "report", page, k, v)
		}
		_, items := s.report(t, tok, w, "")
		if got := moneyIDs(items); !slices.Equal(got, newestFirst) {
			t.Fatalf("report order %q, want newest first %q", got, newestFirst)
		}
		for i, item := range items {
			op := ops[n-1-i]
			moneyKeys(t, "report item", item, "operationId", "operationType", "status", "description", "operationDate", "amount", "formattedAmount", "tcp")
			var tcp any
			if op.typ == "PAYMENT" || op.typ == "REFUND" {
				tcp = tspA
			}
			for k, v := range map[string]any{"operationType": op.typ, "description": op.description, "amount": op.amount,
				"formattedAmount": op.formatted, "tcp": tcp} {
				moneyEqual(t, "item "+op.id, item, k, v)
			}
			if !moneyDate.MatchString(moneyStr(item, "operationDate")) {
				t.Errorf("operationDate %v", item["operationDate"])
			}
			if i > 0 && moneyStr(items[i-1], "operationDate") < moneyStr(item, "operationDate") {
				t.Errorf("item %d is newer than the one before it", i)
			}
			// The operation endpoint answers the same item.
			if single := s.operation(t, tok, w, op.id); fmt.Sprint(single) != fmt.Sprint(item) {
				t.Errorf("operation %s answers %v, the report %v", op.id, single, item)
			}
		}
		for i, st := range []string{"SUCCESS", "FAILED", "PENDING", "SUCCESS", "SUCCESS", "PENDING", "SUCCESS", "SUCCESS"} {
			moneyEqual(t, "status of "+ops[i].typ, items[n-1-i], "status", st)
		}
		if got := moneyStr(items[n-1-2], "operationDate"); got != pendingDate {
			t.Errorf("pending top-up date %s, was %s", got, pendingDate)
		}
		for _, frag := range []string{`"amount":1500.00`, `"amount":12.34`, `"tcp":null`, `"page":0`, `"size":20`} {
			if !strings.Contains(string(data), frag) {
				t.Errorf("report does not contain %s: %s", frag, data)
			}
		}
		// An empty report.
		empty := s.register(t, tok, phone())
		status, _, data = s.do(t, http.MethodGet, moneyAcct(empty)+"/report", tok, nil)
		page = moneyOK(t, "empty report", status, data)
		if !strings.Contains(string(data), `"content":[]`) || moneyNum(page, "totalElements") != "0" || moneyNum(page, "totalPages") != "0" {
			t.Errorf("empty report: %s", data)
		}
	})

	t.Run("filters", func(t *testing.T) {
		expectIDs(t, "operationType=CREDIT", idsOf(0, 1, 2))
		expectIDs(t, "operationType=PAYMENT", idsOf(3, 6, 7))
		expectIDs(t, "operationType=REFUND", idsOf(4))
		expectIDs(t, "operationType=DEBIT", idsOf(5))
		expectIDs(t, "amountFrom=50&amountTo=300", idsOf(1, 2, 3, 4, 5))
		expectIDs(t, "amountFrom=50.00&amountTo=300.00", idsOf(1, 2, 3, 4, 5))
		expectIDs(t, "amountFrom=1500", idsOf(0))
		expectIDs(t, "amountTo=12.34", idsOf(6))
		expectIDs(t, "amountFrom=1000.01&amountTo=1499.99", nil)
		expectIDs(t, "operationType=PAYMENT&amountFrom=100", idsOf(3, 7))
		page, items := s.report(t, tok, w, "operationType=CREDIT&size=2&page=1")
		if got := moneyIDs(items); !slices.Equal(got, idsOf(0)) || moneyNum(page, "totalElements") != "3" || moneyNum(page, "totalPages") != "2" {
			t.Errorf("second page of CREDIT by 2: %q, totalElements %v, totalPages %v", got, page["totalElements"], page["totalPages"])
		}
	})

	t.Run("dates", func(t *testing.T) {
		_, items := s.report(t, tok, w, "")
		oldest, _ := time.ParseInLocation(time.DateTime, moneyStr(items[n-1], "operationDate"), moneyLocation())
		prev, _ := time.ParseInLocation(time.DateTime, moneyStr(items[1], "operationDate"), moneyLocation())
		newest, _ := time.ParseInLocation(time.DateTime, moneyStr(items[0], "operationDate"), moneyLocation())
		if !newest.After(prev) {
			t.Fatalf("the last operation (%s) is not in a later second than the one before (%s)", newest, prev)
		}
		forms := map[string]func(time.Time) string{
			"HH-MM-SS":     func(t time.Time) string { return t.Format("2006-01-02 15-04-05") },
			"HH:MM:SS":     func(t time.Time) string { return t.Format(time.DateTime) },
			"RFC 3339":     func(t time.Time) string { return t.Format(time.RFC3339) },
			"RFC 3339 UTC": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		}
		q := func(name string, v string) string { return name + "=" + url.QueryEscape(v) }
		for name, f := range forms {
			t.Run(name, func(t *testing.T) {
				expectIDs(t, q("dateFrom", f(oldest)), newestFirst)
				expectIDs(t, q("dateFrom", f(newest)), idsOf(n-1))
				expectIDs(t, q("dateFrom", f(oldest))+"&"+q("dateTo", f(newest.Add(time.Second))), newestFirst)
				expectIDs(t, q("dateTo", f(oldest.Add(-time.Second))), nil)
				expectIDs(t, q("dateFrom", f(newest.Add(time.Second))), nil)
				expectIDs(t, q("dateFrom", f(oldest.AddDate(-1, 0, 0)))+"&"+q("dateTo", f(oldest.AddDate(-1, 0, 1))), nil)
			})
		}
		t.Run("dateTo includes its second in every form", func(t *testing.T) {
			// dateTo set to an operationDate the report showed must include
			// that operation, whichever form the partner writes it in.
			var inconsistent []string
			for name, f := range forms {
				for _, c := range []struct {
					to   time.Time
					want []string
				}{{prev, newestFirst[1:]}, {newest, newestFirst}} {
					_, items := s.report(t, tok, w, q("dateTo", f(c.to)))
					if got := moneyIDs(items); !slices.Equal(got, c.want) {
						inconsistent = append(inconsistent, fmt.Sprintf("%s %s: %d operations, want %d", name, f(c.to), len(got), len(c.want)))
					}
				}
			}
			if len(inconsistent) > 0 {
				slices.Sort(inconsistent)
				t.Errorf("dateTo is not inclusive of the operations of its second in every form: %s", strings.Join(inconsistent, "; "))
			}
		})
		t.Run("dates only", func(t *testing.T) {
			day := func(t time.Time) string { return t.Format(time.DateOnly) }
			expectIDs(t, q("dateFrom", day(oldest))+"&"+q("dateTo", day(newest)), newestFirst)
			expectIDs(t, q("dateTo", day(oldest.AddDate(0, 0, -1))), nil)
			expectIDs(t, q("dateFrom", day(newest.AddDate(0, 0, 1))), nil)
			expectIDs(t, "dateFrom=2000-01-01&dateTo=2000-01-31", nil)
		})
	})

	t.Run("paging", func(t *testing.T) {
		var walked []string
		for p := 0; ; p++ {
			page, items := s.report(t, tok, w, fmt.Sprintf("size=2&page=%d", p))
			for k, v := range map[string]any{"page": fmt.Sprint(p), "size": "2", "totalElements": fmt.Sprint(n), "totalPages": fmt.Sprint((n + 1) / 2)} {
				moneyEqual(t, fmt.Sprintf("page %d", p), page, k, v)
			}
			if len(items) == 0 {
				if p != (n+1)/2 {
					t.Errorf("page %d is empty, want %d pages", p, (n+1)/2)
				}
				break
			}
			walked = append(walked, moneyIDs(items)...)
			if p > n {
				t.Fatalf("paging does not end")
			}
		}
		if !slices.Equal(walked, newestFirst) {
			t.Errorf("pages of 2 give %q, one page %q", walked, newestFirst)
		}
		page, items := s.report(t, tok, w, "size=3&page=2")
		if moneyNum(page, "totalPages") != "3" || !slices.Equal(moneyIDs(items), newestFirst[6:]) {
			t.Errorf("last page of 3: %v %q", page["totalPages"], moneyIDs(items))
		}
		_, items = s.report(t, tok, w, "size=100")
		if !slices.Equal(moneyIDs(items), newestFirst) {
			t.Errorf("size=100: %q", moneyIDs(items))
		}
		_, items = s.report(t, tok, w, "page=1000000")
		if len(items) != 0 {
			t.Errorf("a page past the end has %d items", len(items))
		}
	})

	t.Run("no upper bound on page", func(t *testing.T) {
		// Neither the protocol nor openapi.yaml bounds page: past the end is an empty page.
		status, _, data := s.do(t, http.MethodGet, moneyAcct(w)+"/report?page=1000001", tok, nil)
		if status != http.StatusOK {
			t.Fatalf("page above 1000000 is refused although no maximum is documented: %s", data)
		}
		if page := moneyObject(t, data); len(page["content"].([]any)) != 0 {
			t.Errorf("page 1000001: %s", data)
		}
	})

	t.Run("bad parameters", func(t *testing.T) {
		for _, c := range []struct{ query, field string }{
			{"size=101", "size"}, {"size=0", "size"}, {"size=-1", "size"}, {"size=abc", "size"}, {"size=2.5", "size"},
			{"page=-1", "page"}, {"page=x", "page"}, {"page=0&page=1", "page"},
			{"operationType=FOO", "operationType"}, {"operationType=WITHDRAWAL", "operationType"},
			{"dateFrom=yesterday", "dateFrom"}, {"dateFrom=2024-13-01", "dateFrom"}, {"dateTo=2024-07-10+25:00:00", "dateTo"},
			{"amountFrom=-1", "amountFrom"}, {"amountTo=1.234", "amountTo"}, {"amountFrom=1e3", "amountFrom"},
			{"dateFrom=2024-07-11&dateTo=2024-07-10", "dateFrom"}, {"amountFrom=10&amountTo=5", "amountFrom"},
		} {
			status, _, data := s.do(t, http.MethodGet, moneyAcct(w)+"/report?"+c.query, tok, nil)
			expectError(t, "report "+c.query, status, data, http.StatusBadRequest, "VALIDATION_ERROR", c.field)
		}
		status, _, data := s.do(t, http.MethodGet, moneyAcct(w)+"/report?size=101&page=-1&operationType=FOO", tok, nil)
		expectError(t, "three bad parameters", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "size", "page", "operationType")
		status, _, data = s.do(t, http.MethodGet, moneyAcct(uuid.NewString())+"/report", tok, nil)
		expectError(t, "report of an unknown wallet", status, data, http.StatusNotFound, "WALLET_NOT_FOUND")
		status, _, data = s.do(t, http.MethodGet, moneyAcct("x")+"/report", tok, nil)
		expectError(t, "report of a malformed walletId", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "walletId")
	})

	t.Run("operation", func(t *testing.T) {
		status, _, data := s.do(t, http.MethodGet, moneyAcct(w)+"/operation/"+uuid.NewString(), tok, nil)
		expectError(t, "unknown operation", status, data, http.StatusNotFound, "OPERATION_NOT_FOUND")
		other := s.register(t, tok, phone())
		status, _, data = s.do(t, http.MethodGet, moneyAcct(other)+"/operation/"+ops[0].id, tok, nil)
		expectError(t, "operation of another wallet", status, data, http.StatusNotFound, "OPERATION_NOT_FOUND")
		status, _, data = s.do(t, http.MethodGet, moneyAcct(w)+"/operation/nope", tok, nil)
		expectError(t, "malformed operationId", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "operationId")
		status, _, data = s.do(t, http.MethodGet, moneyAcct(uuid.NewString())+"/operation/"+ops[0].id, tok, nil)
		expectError(t, "operation of an unknown wallet", status, data, http.StatusNotFound, "WALLET_NOT_FOUND")
	})
}

func moneyIdempotency(t *testing.T, e storetest.Engine) {
	c := runConcurrently(t)
	defer c.Wait()
	s := startMoneyServer(t, e, nil)
	tokA, tokB := s.token(t, s.A), s.token(t, s.B)

	c.Run("replay and reuse", func(t *testing.T) {
		w := s.register(t, tokA, phone())
		key := "refill-" + uuid.NewString()
		status, hdr, first := s.do(t, http.MethodPost, moneyAcct(w)+"/refill", tokA, rawBody(`{"amount":1000}`), "Idempotency-Key", key)
		ans := moneyOK(t, "refill with a key", status, first)
		if hdr.Get("Idempotent-Replayed") != "" {
			t.Errorf("first answer carries Idempotent-Replayed %q", hdr.Get("Idempotent-Replayed"))
		}
		// The same request, also re-encoded with other whitespace.
		for _, body := range []rawBody{`{"amount":1000}`, `{ "amount" : 1000 }`} {
			status, hdr, again := s.do(t, http.MethodPost, moneyAcct(w)+"/refill", tokA, body, "Idempotency-Key", key)
			if status != http.StatusOK || string(again) != string(first) {
				t.Errorf("replay of %s: %d %s, want the first answer %s", body, status, again, first)
			}
			if got := hdr.Get("Idempotent-Replayed"); got != "true" {
				t.Errorf("replay: Idempotent-Replayed %q, want true", got)
			}
		}
		if page, _ := s.report(t, tokA, w, ""); moneyNum(page, "totalElements") != "1" {
			t.Errorf("replays created operations: %v", page["totalElements"])
		}
		// Another request under the key.
		for name, req := range map[string]struct {
			path string
			body rawBody
		}{
			"other amount":   {moneyAcct(w) + "/refill", `{"amount":1001}`},
			"other spelling": {moneyAcct(w) + "/refill", `{"amount":"1000"}`},
			"other endpoint": {moneyAcct(w) + "/wifhdrawal", `{"amount":1000}`},
			"other wallet":   {moneyAcct(s.register(t, tokA, phone())) + "/refill", `{"amount":1000}`},
		} {
			status, _, data := s.do(t, http.MethodPost, req.path, tokA, req.body, "Idempotency-Key", key)
			expectError(t, "key reused for "+name, status, data, http.StatusConflict, "IDEMPOTENCY_KEY_REUSED")
		}
		// The top-up itself is unaffected.
		m := payloadRe.FindStringSubmatch(moneyStr(ans, "payload"))
		if m == nil {
			t.Fatalf("refill payload %v", ans["payload"])
		}
		if got := s.sbp(t, m[2], "confirm"); got != "SUCCESS" {
			t.Errorf("confirm: %s", got)
		}
		s.expectBalance(t, "after replays", tokA, w, "1000.00")
	})

	// PROTOCOL 1: the typo wifhdrawal is canonical and withdrawal its alias;
	// a wallet id is the same wallet in either case. A retry under the key
	// may spell the path either way and gets the first answer.
	c.Run("one withdrawal under either spelling", func(t *testing.T) {
		w := s.register(t, tokA, phone(), 2)
		s.fund(t, tokA, w, "1000")
		key := "withdraw-" + uuid.NewString()
		status, _, first := s.withdraw(t, tokA, w, sberbank, "100", "Idempotency-Key", key)
		moneyOK(t, "withdrawal with a key", status, first)
		body := map[string]any{"bankIdentifier": sberbank, "amount": rawJSON("100")}
		for _, path := range []string{moneyAcct(w) + "/withdrawal", moneyAcct(strings.ToUpper(w)) + "/wifhdrawal"} {
			status, hdr, again := s.do(t, http.MethodPost, path, tokA, body, "Idempotency-Key", key)
			if status != http.StatusOK || string(again) != string(first) || hdr.Get("Idempotent-Replayed") != "true" {
				t.Errorf("retry at %s: %d %s (replayed %q), want the first answer %s", path, status, again, hdr.Get("Idempotent-Replayed"), first)
			}
		}
		s.expectBalance(t, "after the retries", tokA, w, "900.00")
	})

	// PROTOCOL 4.7: the same payment again replays its answer and moves no
	// money, even once the wallet is closed; only new requests meet
	// WALLET_CLOSED.
	c.Run("a payment repeated after its wallet closed", func(t *testing.T) {
		w := s.register(t, tokA, phone())
		s.fund(t, tokA, w, "100")
		token := s.initPayment(t, tokA, w)
		status, _, first := s.pay(t, tokA, w, token, "100", s.A.TSPID)
		paid := moneyOK(t, "the payment", status, first)
		status, data := s.closeWallet(t, tokA, w)
		moneyOK(t, "close", status, data)
		status, _, again := s.pay(t, tokA, w, token, "100", s.A.TSPID)
		if ans := moneyOK(t, "the payment again", status, again); ans["operationId"] != paid["operationId"] {
			t.Errorf("the payment again answered operation %v, want %v", ans["operationId"], paid["operationId"])
		}
		status, _, data = s.pay(t, tokA, w, token, "50", s.A.TSPID)
		expectError(t, "its token for another amount", status, data, http.StatusBadRequest, "TOKEN_INVALID", "token")
		status, _, data = s.do(t, http.MethodGet, moneyAcct(w)+"/payment/initialization", tokA, nil)
		expectError(t, "a new payment", status, data, http.StatusBadRequest, "WALLET_CLOSED")
		s.expectBalance(t, "after the repeats", tokA, w, "0.00")
	})

	c.Run("concurrent requests under one key", func(t *testing.T) {
		w := s.register(t, tokA, phone())
		key := "concurrent-" + uuid.NewString()
		const n = 10
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				status, _, data := s.refill(t, tokA, w, "700", "Idempotency-Key", key)
				if status != http.StatusOK {
					t.Errorf("concurrent refill: %d %s", status, data)
					return
				}
				ids[i] = moneyStr(moneyObject(t, data), "operationId")
			})
		}
		wg.Wait()
		for _, id := range ids {
			if id != ids[0] {
				t.Fatalf("concurrent refills under one key answered several operations: %q", ids)
			}
		}
		if page, _ := s.report(t, tokA, w, ""); moneyNum(page, "totalElements") != "1" {
			t.Errorf("concurrent refills under one key made %v operations", page["totalElements"])
		}
		if got := moneyMonthUsed(s.limits(t, tokA, w), "CREDIT"); got != "700.00" {
			t.Errorf("CREDIT monthUsed %s, want 700.00", got)
		}
	})

	c.Run("keys are per partner", func(t *testing.T) {
		wa, wb := s.register(t, tokA, phone()), s.register(t, tokB, phone())
		key := "shared-" + uuid.NewString()
		a := s.refillOK(t, tokA, wa, "100", "Idempotency-Key", key)
		status, hdr, data := s.refill(t, tokB, wb, "100", "Idempotency-Key", key)
		b := moneyOK(t, "B with A's key", status, data)
		if moneyStr(b, "operationId") == a.OperationID || hdr.Get("Idempotent-Replayed") != "" {
			t.Errorf("B's request under A's key was answered with A's: %s", data)
		}
		// B sending exactly A's request under A's key does not see A's answer.
		key = "shared-" + uuid.NewString()
		s.refillOK(t, tokA, wa, "100", "Idempotency-Key", key)
		status, hdr, data = s.refill(t, tokB, wa, "100", "Idempotency-Key", key)
		expectError(t, "B repeats A's request under A's key", status, data, http.StatusNotFound, "WALLET_NOT_FOUND")
		if hdr.Get("Idempotent-Replayed") != "" {
			t.Errorf("B got a replay of A's request")
		}
		// B used the key for B's own request already: another request under it is a conflict.
		status, _, data = s.refill(t, tokB, wb, "100", "Idempotency-Key", a.OperationID)
		moneyOK(t, "B with a new key", status, data)
		status, _, data = s.refill(t, tokB, wb, "101", "Idempotency-Key", a.OperationID)
		expectError(t, "B reuses its own key", status, data, http.StatusConflict, "IDEMPOTENCY_KEY_REUSED")
	})

	c.Run("key format", func(t *testing.T) {
		w := s.register(t, tokA, phone())
		s.refillOK(t, tokA, w, "1", "Idempotency-Key", strings.Repeat("k", 254)+"1")
		for name, key := range map[string]string{"256 characters": strings.Repeat("k", 256), "non-ASCII": "ключ-" + uuid.NewString()} {
			status, _, data := s.refill(t, tokA, w, "1", "Idempotency-Key", key)
			expectError(t, "Idempotency-Key "+name, status, data, http.StatusBadRequest, "VALIDATION_ERROR", "Idempotency-Key")
		}
		if page, _ := s.report(t, tokA, w, ""); moneyNum(page, "totalElements") != "1" {
			t.Errorf("refused keys made operations: %v", page["totalElements"])
		}
	})

	c.Run("refusals are replayed", func(t *testing.T) {
		w := s.register(t, tokA, phone())
		key := "refused-" + uuid.NewString()
		status, _, first := s.refill(t, tokA, w, "20000", "Idempotency-Key", key)
		expectError(t, "refill above the limit", status, first, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
		// The limit would allow it now, but the key answers as the first time.
		if status, _, data := s.do(t, http.MethodPost, moneyAcct(w)+"/identification/2", tokA, nil); status != http.StatusOK {
			t.Fatalf("identify: %d %s", status, data)
		}
		status, hdr, again := s.refill(t, tokA, w, "20000", "Idempotency-Key", key)
		if status != http.StatusBadRequest || string(again) != string(first) || hdr.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replayed refusal: %d %q %s, want the first answer %s", status, hdr.Get("Idempotent-Replayed"), again, first)
		}
		s.refillOK(t, tokA, w, "20000", "Idempotency-Key", key+"-2")
	})

	c.Run("payment and withdrawal", func(t *testing.T) {
		w := s.register(t, tokA, phone(), 1)
		s.fund(t, tokA, w, "1000")
		token := s.initPayment(t, tokA, w)
		key := "pay-" + uuid.NewString()
		status, _, first := s.pay(t, tokA, w, token, "100", s.A.TSPID, "Idempotency-Key", key)
		moneyOK(t, "payment with a key", status, first)
		status, hdr, again := s.pay(t, tokA, w, token, "100", s.A.TSPID, "Idempotency-Key", key)
		if status != http.StatusOK || string(again) != string(first) || hdr.Get("Idempotent-Replayed") != "true" {
			t.Errorf("payment replay: %d %s", status, again)
		}
		status, _, data := s.pay(t, tokA, w, token, "101", s.A.TSPID, "Idempotency-Key", key)
		expectError(t, "payment key reused", status, data, http.StatusConflict, "IDEMPOTENCY_KEY_REUSED")

		key = "withdraw-" + uuid.NewString()
		status, _, first = s.withdraw(t, tokA, w, sberbank, "200", "Idempotency-Key", key)
		ans := moneyOK(t, "withdrawal with a key", status, first)
		status, _, again = s.withdraw(t, tokA, w, sberbank, "200", "Idempotency-Key", key)
		if status != http.StatusOK || moneyStr(moneyObject(t, again), "operationId") != moneyStr(ans, "operationId") {
			t.Errorf("withdrawal replay: %d %s, want %s", status, again, first)
		}
		s.expectBalance(t, "after replays", tokA, w, "700.00")

		// A refund under a key: retried, it refunds once.
		key = "refund-" + uuid.NewString()
		path := moneyAcct(w) + "/payment/" + token + "/refund"
		status, _, first = s.do(t, http.MethodPost, path, tokA, map[string]any{"amount": "30"}, "Idempotency-Key", key)
		moneyOK(t, "refund with a key", status, first)
		status, _, again = s.do(t, http.MethodPost, path, tokA, map[string]any{"amount": "30"}, "Idempotency-Key", key)
		if status != http.StatusOK || string(again) != string(first) {
			t.Errorf("refund replay: %d %s, want %s", status, again, first)
		}
		s.expectBalance(t, "after the refund replay", tokA, w, "730.00")
	})
}

func moneyIsolation(t *testing.T, e storetest.Engine) {
	s := startMoneyServer(t, e, nil)
	tokA, tokB := s.token(t, s.A), s.token(t, s.B)
	w := s.register(t, tokA, phone(), 1)
	s.fund(t, tokA, w, "1000")
	pay := s.payOK(t, tokA, w, "100", s.A.TSPID)
	paid, op := moneyStr(pay, "token"), moneyStr(pay, "operationId")
	fresh := s.initPayment(t, tokA, w)
	wb := s.register(t, tokB, phone())

	for _, c := range []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/refill", map[string]any{"amount": "10"}},
		{http.MethodGet, "/payment/initialization", nil},
		{http.MethodPost, "/payment", map[string]any{"walletId": w, "token": fresh, "amount": "10", "tsp": s.B.TSPID}},
		{http.MethodPost, "/payment", map[string]any{"walletId": w, "token": fresh, "amount": "10", "tsp": s.A.TSPID}},
		{http.MethodPost, "/payment/" + paid + "/refund", map[string]any{"amount": "10"}},
		{http.MethodPost, "/wifhdrawal", map[string]any{"bankIdentifier": sberbank, "amount": "10"}},
		{http.MethodPost, "/withdrawal", map[string]any{"bankIdentifier": sberbank, "amount": "10"}},
		{http.MethodGet, "/report", nil},
		{http.MethodGet, "/operation/" + op, nil},
	} {
		status, _, data := s.do(t, c.method, moneyAcct(w)+c.path, tokB, c.body)
		expectError(t, "B: "+c.method+" "+c.path, status, data, http.StatusNotFound, "WALLET_NOT_FOUND")
	}
	// Through B's own wallet, A's operation and payment are unknown too.
	status, _, data := s.do(t, http.MethodGet, moneyAcct(wb)+"/operation/"+op, tokB, nil)
	expectError(t, "B: A's operation through B's wallet", status, data, http.StatusNotFound, "OPERATION_NOT_FOUND")
	status, _, data = s.do(t, http.MethodPost, moneyAcct(wb)+"/payment/"+paid+"/refund", tokB, nil)
	expectError(t, "B: refund of A's payment through B's wallet", status, data, http.StatusBadRequest, "TOKEN_INVALID", "token")
	status, _, data = s.pay(t, tokB, wb, fresh, "10", s.B.TSPID)
	expectError(t, "B: A's token on B's wallet", status, data, http.StatusBadRequest, "TOKEN_INVALID", "token")

	// A's wallet is as it was, and A's token still works for A.
	s.expectBalance(t, "A after B's attempts", tokA, w, "900.00")
	if page, _ := s.report(t, tokA, w, ""); moneyNum(page, "totalElements") != "2" {
		t.Errorf("A's report after B's attempts: %v operations, want 2", page["totalElements"])
	}
	status, _, data = s.pay(t, tokA, w, fresh, "10", s.A.TSPID)
	moneyOK(t, "A pays with the token B tried", status, data)
	s.expectBalance(t, "A after paying", tokA, w, "890.00")
}

func moneyConcurrency(t *testing.T, e storetest.Engine) {
	c := runConcurrently(t)
	defer c.Wait()
	// Payouts stay PENDING: the held money is what the races are about.
	s := startMoneyServer(t, e, map[string]string{"WALLET_SANDBOX_PAYOUT_DELAY": "1h"})
	tok := s.token(t, s.A)
	tspA := s.A.TSPID
	const n = 10

	c.Run("a pending withdrawal keeps the wallet open", func(t *testing.T) {
		w := s.register(t, tok, phone(), 1)
		s.fund(t, tok, w, "100")
		status, data := s.closeWallet(t, tok, w)
		expectError(t, "close with money", status, data, http.StatusBadRequest, "WALLET_HAS_BALANCE")
		status, _, data = s.withdraw(t, tok, w, sberbank, "100")
		moneyOK(t, "withdraw everything", status, data)
		s.expectBalance(t, "all held", tok, w, "0.00")
		// Nothing on the balance, but a withdrawal pending.
		status, data = s.closeWallet(t, tok, w)
		expectError(t, "close with a pending withdrawal", status, data, http.StatusBadRequest, "WALLET_HAS_BALANCE")
		moneyEqual(t, "refused close", s.info(t, tok, w), "status", "ACTIVE")
	})
	// parallel runs fn(i) for i in [0, n) at once.
	parallel := func(fn func(i int)) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { fn(i) })
		}
		wg.Wait()
	}

	c.Run("one payment sent many times", func(t *testing.T) {
		w := s.register(t, tok, phone())
		s.fund(t, tok, w, "1000")
		token := s.initPayment(t, tok, w)
		ids := make([]string, n)
		parallel(func(i int) {
			status, _, data := s.pay(t, tok, w, token, "100", tspA)
			if status != http.StatusOK {
				t.Errorf("concurrent repeat of a payment: %d %s", status, data)
				return
			}
			ids[i] = moneyStr(moneyObject(t, data), "operationId")
		})
		for _, id := range ids {
			if id != ids[0] {
				t.Fatalf("one payment sent %d times at once answered several operations: %q", n, ids)
			}
		}
		s.expectBalance(t, "one payment sent many times", tok, w, "900.00")
	})

	c.Run("one token, different payments", func(t *testing.T) {
		w := s.register(t, tok, phone())
		s.fund(t, tok, w, "1000")
		token := s.initPayment(t, tok, w)
		var mu sync.Mutex
		var won []int
		parallel(func(i int) {
			status, _, data := s.pay(t, tok, w, token, fmt.Sprint(i+1), tspA)
			if status == http.StatusOK {
				mu.Lock()
				won = append(won, i+1)
				mu.Unlock()
				return
			}
			expectError(t, "losing payment", status, data, http.StatusBadRequest, "TOKEN_INVALID", "token")
		})
		if len(won) != 1 {
			t.Fatalf("%d payments with one token succeeded, want 1: %v", len(won), won)
		}
		s.expectBalance(t, "after the race", tok, w, fmt.Sprintf("%d.00", 1000-won[0]))
	})

	c.Run("debits racing for the balance", func(t *testing.T) {
		w := s.register(t, tok, phone(), 1)
		s.fund(t, tok, w, "500")
		tokens := make([]string, n)
		for i := range tokens {
			tokens[i] = s.initPayment(t, tok, w)
		}
		var mu sync.Mutex
		accepted := 0
		parallel(func(i int) {
			var (
				status int
				data   []byte
			)
			if i%2 == 0 {
				status, _, data = s.withdraw(t, tok, w, sberbank, "100")
			} else {
				status, _, data = s.pay(t, tok, w, tokens[i], "100", tspA)
			}
			if status == http.StatusOK {
				mu.Lock()
				accepted++
				mu.Unlock()
				return
			}
			expectError(t, "debit above the balance", status, data, http.StatusBadRequest, "INSUFFICIENT_FUNDS", "amount")
		})
		if accepted != 5 {
			t.Errorf("%d debits of 100.00 from 500.00 accepted, want 5", accepted)
		}
		s.expectBalance(t, "after the race", tok, w, "0.00")
	})

	c.Run("refunds racing for one payment", func(t *testing.T) {
		w := s.register(t, tok, phone())
		s.fund(t, tok, w, "1000")
		pay := s.payOK(t, tok, w, "1000", tspA)
		path := moneyAcct(w) + "/payment/" + moneyStr(pay, "token") + "/refund"
		var mu sync.Mutex
		accepted := 0
		parallel(func(int) {
			status, _, data := s.do(t, http.MethodPost, path, tok, map[string]any{"amount": "150"})
			if status == http.StatusOK {
				mu.Lock()
				accepted++
				mu.Unlock()
				return
			}
			expectError(t, "refund above the rest", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "amount")
		})
		if accepted != 6 {
			t.Errorf("%d refunds of 150.00 of a 1000.00 payment accepted, want 6", accepted)
		}
		s.expectBalance(t, "after the refunds", tok, w, "900.00")
	})

	c.Run("confirm and decline at once", func(t *testing.T) {
		w := s.register(t, tok, phone())
		tu := s.refillOK(t, tok, w, "1000")
		answers := make([]string, n)
		parallel(func(i int) {
			action := "confirm"
			if i%2 == 1 {
				action = "decline"
			}
			answers[i] = s.sbp(t, tu.QRC, action)
		})
		final := moneyStr(s.operation(t, tok, w, tu.OperationID), "status")
		for _, a := range answers {
			if a != final {
				t.Errorf("answers %q, final status %s: every answer must give the one outcome", answers, final)
				break
			}
		}
		want := map[string]string{"SUCCESS": "1000.00", "FAILED": "0.00"}[final]
		if want == "" {
			t.Fatalf("final status %s", final)
		}
		s.expectBalance(t, "after confirm and decline at once", tok, w, want)
	})

	c.Run("top-ups racing for the balance limit", func(t *testing.T) {
		w := s.register(t, tok, phone())
		var mu sync.Mutex
		accepted := 0
		parallel(func(i int) {
			status, _, data := s.refill(t, tok, w, "2000")
			if status == http.StatusOK {
				mu.Lock()
				accepted++
				mu.Unlock()
				return
			}
			expectError(t, "top-up above the balance limit", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
		})
		if accepted != 7 {
			t.Errorf("%d top-ups of 2000.00 under a 15000.00 balance limit accepted, want 7", accepted)
		}
		if got := moneyMonthUsed(s.limits(t, tok, w), "CREDIT"); got != "14000.00" {
			t.Errorf("CREDIT monthUsed %s, want 14000.00", got)
		}
	})
}
