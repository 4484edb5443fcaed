package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/store/storetest"
)

// End-to-end tests of two ways a payment or a top-up is refused for reasons
// outside the request, as a partner sees them (PROTOCOL.md 2, 4.6, 4.7):
// a payment token past its lifetime (WALLET_PAYMENT_TOKEN_TTL), and a top-up
// while no SBP provider answers.

// expiryTokenTTL is the payment token lifetime of the expiry test. A token
// carries its expiry in whole seconds, rounded up, so it lives between
// expiryTokenTTL and a second more.
const expiryTokenTTL = 2 * time.Second

// TestE2EPaymentTokenExpiry: a payment with a fresh token succeeds; one with a
// token past WALLET_PAYMENT_TOKEN_TTL is 400 TOKEN_INVALID on `token` and moves
// nothing; a new initialization gives a token that works.
func TestE2EPaymentTokenExpiry(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		s := startMoneyServer(t, e, map[string]string{"WALLET_PAYMENT_TOKEN_TTL": expiryTokenTTL.String()})
		tok := s.token(t, s.A)
		w := s.register(t, tok, phone())
		s.fund(t, tok, w, "1000")
		tsp := s.A.TSPID

		fresh := s.initPayment(t, tok, w)
		status, _, data := s.pay(t, tok, w, fresh, "100.00", tsp)
		first := moneyOK(t, "payment with a fresh token", status, data)
		moneyEqual(t, "payment with a fresh token", first, "status", "SUCCESS")
		moneyEqual(t, "payment with a fresh token", first, "token", fresh)
		moneyEqual(t, "payment with a fresh token", first, "amount", "100.00")
		s.expectBalance(t, "after the fresh payment", tok, w, "900.00")

		stale := s.initPayment(t, tok, w)
		// The server set the token's expiry before it answered: once the
		// lifetime and the rounding second have passed since the answer
		// came, the token is past it.
		answered := time.Now()
		time.Sleep(time.Until(answered.Add(expiryTokenTTL + time.Second + 200*time.Millisecond)))
		status, _, data = s.pay(t, tok, w, stale, "100.00", tsp)
		expectError(t, "payment with an expired token", status, data, http.StatusBadRequest, "TOKEN_INVALID", "token")
		s.expectBalance(t, "after the refused payment", tok, w, "900.00")
		page, items := s.report(t, tok, w, "")
		if moneyNum(page, "totalElements") != "2" || len(items) != 2 {
			t.Errorf("report after the refused payment: %d items, totalElements %s, want the top-up and the first payment",
				len(items), moneyNum(page, "totalElements"))
		}
		if _, payments := s.report(t, tok, w, "operationType=PAYMENT"); len(payments) != 1 ||
			moneyStr(payments[0], "operationId") != moneyStr(first, "operationId") {
			t.Errorf("PAYMENT operations after the refused payment: %v, want only %s", moneyIDs(payments), moneyStr(first, "operationId"))
		}
		if got := moneyMonthUsed(s.limits(t, tok, w), "PAYMENT"); got != "100.00" {
			t.Errorf("PAYMENT monthUsed after the refused payment: %s, want 100.00", got)
		}

		// Repeating the first payment after its token expired replays its
		// answer and moves nothing.
		status, _, data = s.pay(t, tok, w, fresh, "100.00", tsp)
		again := moneyOK(t, "the first payment repeated", status, data)
		moneyEqual(t, "the first payment repeated", again, "operationId", moneyStr(first, "operationId"))
		s.expectBalance(t, "after the repeated payment", tok, w, "900.00")

		next := s.initPayment(t, tok, w)
		if next == stale || next == fresh {
			t.Errorf("a new initialization gave an old token %s", next)
		}
		status, _, data = s.pay(t, tok, w, next, "100.00", tsp)
		paid := moneyOK(t, "payment with a new token", status, data)
		moneyEqual(t, "payment with a new token", paid, "status", "SUCCESS")
		if paid["operationId"] == first["operationId"] {
			t.Errorf("payment with a new token replayed the first payment %v", first["operationId"])
		}
		s.expectBalance(t, "after the payment with a new token", tok, w, "800.00")
		if _, payments := s.report(t, tok, w, "operationType=PAYMENT"); len(payments) != 2 {
			t.Errorf("PAYMENT operations after the new payment: %v, want two", moneyIDs(payments))
		}
	})
}

// TestE2ESBPUnavailable: with no SBP provider to issue links (walletd has no
// external provider adapter yet; with the sandbox off its gateway refuses every
// link, as an unreachable provider would), a top-up is 503 UNAVAILABLE, creates
// no operation and moves no money, the sandbox pages are 404, and the wallet
// keeps working; once the provider is back, the partner's retry with the same
// Idempotency-Key goes through.
func TestE2ESBPUnavailable(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		dsn := e.DSN(t)
		a, b := createPartner(t, dsn, testEnv(nil), "A"), createPartner(t, dsn, testEnv(nil), "B")
		up, stopUp := startMoneyServerOn(t, dsn, a, b, nil)
		tok := up.token(t, a)
		w := up.register(t, tok, phone())
		up.fund(t, tok, w, "1000")
		identified := up.register(t, tok, phone(), 2) // may withdraw
		up.fund(t, tok, identified, "1000")
		stopUp()

		down, stopDown := startMoneyServerOn(t, dsn, a, b, map[string]string{"WALLET_SANDBOX": "false"})
		const key = "sbp-down-retry-1"
		for _, headers := range [][]string{nil, {"Idempotency-Key", key}} {
			req, status, header, data := down.send(t, http.MethodPost, moneyAcct(w)+"/refill", tok,
				map[string]any{"amount": rawJSON("300.00")}, headers...)
			validate(t, req, status, header, data)
			expectError(t, "refill while SBP is down", status, data, http.StatusServiceUnavailable, "UNAVAILABLE")
			if header.Get("Retry-After") == "" {
				t.Errorf("refill while SBP is down: no Retry-After")
			}
		}
		// The partner is told only UNAVAILABLE; the operator's log says why.
		if logs := down.logs.String(); !strings.Contains(logs, "no SBP provider is configured") {
			t.Errorf("the log does not say why the refill was unavailable:\n%s", logs)
		}
		// The sandbox's pages are not served either.
		qrc := uuid.NewString()
		status, _, data := down.do(t, http.MethodGet, "/sandbox/sbp/"+qrc, "", nil)
		expectError(t, "the sandbox bank page", status, data, http.StatusNotFound, "NOT_FOUND")
		status, _, data = down.do(t, http.MethodPost, "/sandbox/sbp/"+qrc+"/confirm", "", nil)
		expectError(t, "a sandbox confirmation", status, data, http.StatusNotFound, "NOT_FOUND")

		// What would be refused anyway is refused as such, before SBP is asked.
		status, _, data = down.refill(t, tok, uuid.NewString(), "100")
		expectError(t, "refill of an unknown wallet while SBP is down", status, data, http.StatusNotFound, "WALLET_NOT_FOUND")
		status, _, data = down.refill(t, tok, w, "20000")
		expectError(t, "refill over the balance limit while SBP is down", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
		down.expectBalance(t, "after the refused top-ups", tok, w, "1000.00")
		if page, items := down.report(t, tok, w, ""); moneyNum(page, "totalElements") != "1" || len(items) != 1 {
			t.Errorf("report after the refused top-ups: %v, want only the first top-up", moneyIDs(items))
		}
		if got := moneyMonthUsed(down.limits(t, tok, w), "CREDIT"); got != "1000.00" {
			t.Errorf("CREDIT monthUsed after the refused top-ups: %s, want 1000.00", got)
		}

		// With no SBP provider a withdrawal could never be paid out: it is
		// refused, and holds nothing.
		req, status, header, data := down.send(t, http.MethodPost, moneyAcct(identified)+"/wifhdrawal", tok,
			map[string]any{"bankIdentifier": sberbank, "amount": rawJSON("100")})
		validate(t, req, status, header, data)
		expectError(t, "withdrawal while SBP is down", status, data, http.StatusServiceUnavailable, "UNAVAILABLE")
		down.expectBalance(t, "after the refused withdrawal", tok, identified, "1000.00")

		// The wallet works for what needs no SBP.
		paid := down.payOK(t, tok, w, "250.00", a.TSPID)
		moneyEqual(t, "payment while SBP is down", paid, "status", "SUCCESS")
		down.expectBalance(t, "after the payment", tok, w, "750.00")
		if page, items := down.report(t, tok, w, ""); moneyNum(page, "totalElements") != "2" || len(items) != 2 ||
			moneyStr(items[0], "operationType") != "PAYMENT" {
			t.Errorf("report after the payment: %v", items)
		}
		stopDown()

		back, _ := startMoneyServerOn(t, dsn, a, b, nil)
		tu := back.refillOK(t, tok, w, "300.00", "Idempotency-Key", key)
		if got := back.sbp(t, tu.QRC, "confirm"); got != "SUCCESS" {
			t.Fatalf("confirm of the retried top-up: %s, want SUCCESS", got)
		}
		back.expectBalance(t, "after the retried top-up", tok, w, "1050.00")
		if page, _ := back.report(t, tok, w, "operationType=CREDIT"); moneyNum(page, "totalElements") != "2" {
			t.Errorf("CREDIT operations after the retried top-up: %v, want two", page["totalElements"])
		}
		moneyAudit(t, dsn)
	})
}
