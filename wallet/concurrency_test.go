package wallet_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/store/storetest"
	"github.com/perspektiva/walletd/wallet"
)

// onEveryEngine runs scenario as a parallel subtest on every engine, each time
// on a fresh database with a partner of its own, and audits the ledger after
// it: whatever the scenario raced, every ledger invariant must still hold.
func onEveryEngine(t *testing.T, scenario func(t *testing.T, v *env, partner uuid.UUID)) {
	t.Helper()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		v := newEnv(t, e, envConfig{})
		scenario(t, v, v.newPartner(t))
		v.requireAudit(t)
	})
}

// newShopper registers a PERSONALIZED wallet holding balance, and a TSP of
// the same partner named tspName for it to pay at.
func (v *env) newShopper(t fatalf, partner uuid.UUID, tspName string, balance money.Amount) (wallet.Wallet, wallet.TSP) {
	t.Helper()
	tsp := v.newTSP(t, partner, tspName)
	w := v.newWallet(t, partner, "9001234567", wallet.Personalized)
	v.fund(t, partner, w.ID, balance)
	return w, tsp
}

// race records what a batch of concurrent calls came to.
type race struct {
	mu       sync.Mutex
	codes    map[wallet.Code]int            // by error code, "" for success
	other    []error                        // errors that are no protocol refusal
	statuses map[wallet.OperationStatus]int // status of the operation every call answered with
	ids      map[uuid.UUID]int              // operation every successful call answered with
	limits   map[string]int                 // limit every refusal named, where it named one
}

// runRace makes n calls at once and records what each came to.
func runRace(n int, call func(i int) (wallet.Operation, error)) *race {
	r := &race{
		codes:    map[wallet.Code]int{},
		statuses: map[wallet.OperationStatus]int{},
		ids:      map[uuid.UUID]int{},
		limits:   map[string]int{},
	}
	runParallel(n, func(i int) { r.add(call(i)) })
	return r
}

func (r *race) add(op wallet.Operation, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses[op.Status]++
	if err == nil {
		r.ids[op.ID]++
	}
	if e := (*wallet.Error)(nil); errors.As(err, &e) && e.Details != nil {
		r.limits[e.Details.Limit]++
	}
	if err != nil && wallet.ErrorCode(err) == "" {
		r.other = append(r.other, err)
		return
	}
	r.codes[wallet.ErrorCode(err)]++
}

// require checks the counts by error code exactly: every code seen must be in
// want, and an error that is no protocol refusal fails the test at once.
func (r *race) require(t *testing.T, want map[wallet.Code]int) {
	t.Helper()
	if len(r.other) > 0 {
		t.Fatalf("unexpected errors: %v", r.other)
	}
	for code, n := range r.codes {
		if want[code] != n {
			t.Errorf("outcome %q: got %d, want %d (all: %v)", code, n, want[code], r.codes)
		}
	}
	for code, n := range want {
		if n != 0 && r.codes[code] == 0 {
			t.Errorf("outcome %q: got 0, want %d (all: %v)", code, n, r.codes)
		}
	}
}

// checkBalance reports a wallet whose balance is not want.
func (v *env) checkBalance(t *testing.T, partner, walletID uuid.UUID, want money.Amount) {
	t.Helper()
	if got := v.wallet(t, partner, walletID).Balance; got != want {
		t.Errorf("balance %s, want %s", got, want)
	}
}

// checkMonthUsed reports a wallet whose use of typ this month is not want.
func (v *env) checkMonthUsed(t *testing.T, partner, walletID uuid.UUID, typ wallet.OperationType, want money.Amount) {
	t.Helper()
	if got := v.limits(t, partner, walletID).MonthUsed[typ]; got != want {
		t.Errorf("%s monthUsed %s, want %s", typ, got, want)
	}
}

// checkPaymentsStopAt makes 30 concurrent payments of 100.00 from a wallet
// with 1 000.00 left under the limit named limit: exactly 10 must go through
// and the other 20 be refused naming that limit. The limit must then be
// reached exactly, so that not even 0.01 more can be paid.
func (v *env) checkPaymentsStopAt(t *testing.T, partner, walletID, tspID uuid.UUID, limit string) {
	t.Helper()
	res := runRace(30, func(int) (wallet.Operation, error) {
		return v.pay(partner, walletID, tspID, rub("100.00"))
	})
	res.require(t, map[wallet.Code]int{"": 10, wallet.CodeLimitExceeded: 20})
	if res.limits[limit] != 20 {
		t.Errorf("refusals named %v, want %s 20 times", res.limits, limit)
	}
	if _, err := v.pay(partner, walletID, tspID, 1); wallet.ErrorCode(err) != wallet.CodeLimitExceeded {
		t.Errorf("a payment of 0.01 at %s: %v, want LIMIT_EXCEEDED", limit, err)
	}
}

// TestConcurrentPaymentsOverdraw: of 40 concurrent payments of 100.00 from a
// wallet holding 1 000.00 exactly 10 go through; the balance never goes below zero.
func TestConcurrentPaymentsOverdraw(t *testing.T) {
	t.Parallel()
	onEveryEngine(t, func(t *testing.T, v *env, partner uuid.UUID) {
		w, tsp := v.newShopper(t, partner, "Кофейня «Зерно»", rub("1000.00"))

		res := runRace(40, func(int) (wallet.Operation, error) {
			return v.pay(partner, w.ID, tsp.ID, rub("100.00"))
		})
		res.require(t, map[wallet.Code]int{"": 10, wallet.CodeInsufficientFunds: 30})

		v.checkBalance(t, partner, w.ID, 0)
		v.checkMonthUsed(t, partner, w.ID, wallet.Payment, rub("1000.00"))
	})
}

// TestConcurrentConfirmations: a top-up confirmed by 20 callers at once is
// credited once; racing confirmations and declines agree on one outcome.
func TestConcurrentConfirmations(t *testing.T) {
	t.Parallel()
	onEveryEngine(t, func(t *testing.T, v *env, partner uuid.UUID) {
		w := v.newWallet(t, partner, "9001234567", wallet.Personalized)

		op := v.refill(t, partner, w.ID, rub("700.00"))
		res := runRace(20, func(int) (wallet.Operation, error) {
			return v.svc.ConfirmTopUp(v.ctx, op.QRCID)
		})
		res.require(t, map[wallet.Code]int{"": 20})
		if res.statuses[wallet.Success] != 20 {
			t.Errorf("statuses %v, want SUCCESS from every caller", res.statuses)
		}
		w = v.wallet(t, partner, w.ID)
		if w.Balance != rub("700.00") || w.PendingCredit != 0 {
			t.Errorf("balance %s, pending %s; want 700.00 credited once and nothing pending", w.Balance, w.PendingCredit)
		}
		v.requireAudit(t)

		// Confirmations against declines: each race ends one way, and every
		// caller sees that one way.
		want := w.Balance
		for round := range 6 {
			op := v.refill(t, partner, w.ID, rub("10.00"))
			res := runRace(10, func(i int) (wallet.Operation, error) {
				if (i+round)%2 == 0 {
					return v.svc.ConfirmTopUp(v.ctx, op.QRCID)
				}
				return v.svc.DeclineTopUp(v.ctx, op.QRCID)
			})
			res.require(t, map[wallet.Code]int{"": 10})
			statuses := res.statuses
			if len(statuses) != 1 || (statuses[wallet.Success] != 10 && statuses[wallet.Failed] != 10) {
				t.Fatalf("round %d: callers saw %v, want one outcome (SUCCESS or FAILED) for all", round, statuses)
			}
			if statuses[wallet.Success] == 10 {
				want += rub("10.00")
			}
			final, err := v.svc.Operation(v.ctx, partner, w.ID, op.ID)
			if err != nil {
				t.Fatalf("round %d: operation: %v", round, err)
			}
			if statuses[final.Status] != 10 {
				t.Errorf("round %d: stored status %s, callers saw %v", round, final.Status, statuses)
			}
			got := v.wallet(t, partner, w.ID)
			if got.Balance != want || got.PendingCredit != 0 {
				t.Errorf("round %d: balance %s, pending %s; want %s and nothing pending", round, got.Balance, got.PendingCredit, want)
			}
		}
	})
}

// TestConcurrentPaymentsMonthLimit: 30 concurrent payments of 100.00 against a
// partner PAYMENT monthLimit of 1 000.00 on an ELEMENTARY wallet: 10 go through.
func TestConcurrentPaymentsMonthLimit(t *testing.T) {
	t.Parallel()
	onEveryEngine(t, func(t *testing.T, v *env, partner uuid.UUID) {
		tsp := v.newTSP(t, partner, "Аптека")
		w := v.newWallet(t, partner, "9001234567", wallet.Elementary)
		_, err := v.svc.SetLimits(v.ctx, partner, w.ID, wallet.LimitsPatch{Types: map[wallet.OperationType]wallet.TypePatch{
			wallet.Payment: {Month: wallet.Patch{Set: true, Value: wallet.Some(rub("1000.00"))}},
		}})
		if err != nil {
			t.Fatalf("set limits: %v", err)
		}
		v.fund(t, partner, w.ID, rub("5000.00"))

		v.checkPaymentsStopAt(t, partner, w.ID, tsp.ID, "PAYMENT.monthLimit")
		v.checkMonthUsed(t, partner, w.ID, wallet.Payment, rub("1000.00"))
		v.checkBalance(t, partner, w.ID, rub("4000.00"))
	})
}

// TestConcurrentPaymentsStatutoryCap: a PERSONALIZED wallet that already
// moved 199 000.00 this month (150 000.00 paid, 49 000.00 withdrawn) has
// 1 000.00 left under the statutory cap of 200 000.00 for PAYMENT + DEBIT;
// of 30 concurrent payments of 100.00 exactly 10 go through, although neither
// type's own monthly limit is reached.
func TestConcurrentPaymentsStatutoryCap(t *testing.T) {
	t.Parallel()
	onEveryEngine(t, func(t *testing.T, v *env, partner uuid.UUID) {
		tsp := v.newTSP(t, partner, "Магазин")
		w := v.newWallet(t, partner, "9001234567", wallet.Personalized)
		for i := range 3 {
			v.fund(t, partner, w.ID, rub("50000.00"))
			if _, err := v.pay(partner, w.ID, tsp.ID, rub("50000.00")); err != nil {
				t.Fatalf("payment %d: %v", i, err)
			}
		}
		v.fund(t, partner, w.ID, rub("49000.00"))
		if _, err := v.svc.Withdraw(v.ctx, partner, w.ID, sbpBank, rub("49000.00"), ""); err != nil {
			t.Fatalf("withdraw: %v", err)
		}
		v.fund(t, partner, w.ID, rub("5000.00"))

		v.checkPaymentsStopAt(t, partner, w.ID, tsp.ID, "statutoryMonthLimit")
		// The cap binds DEBIT as well as PAYMENT.
		if _, err := v.svc.Withdraw(v.ctx, partner, w.ID, sbpBank, 1, ""); wallet.ErrorCode(err) != wallet.CodeLimitExceeded {
			t.Errorf("a withdrawal of 0.01 at the cap: %v, want LIMIT_EXCEEDED", err)
		}
		v.checkMonthUsed(t, partner, w.ID, wallet.Payment, rub("151000.00"))
		v.checkMonthUsed(t, partner, w.ID, wallet.Debit, rub("49000.00"))
		v.checkBalance(t, partner, w.ID, rub("4000.00"))
	})
}

// TestConcurrentRefillSameKey: ten concurrent top-ups under one
// Idempotency-Key make one operation, counted once. Several rounds, so that a
// missing guard shows up reliably.
func TestConcurrentRefillSameKey(t *testing.T) {
	t.Parallel()
	onEveryEngine(t, func(t *testing.T, v *env, partner uuid.UUID) {
		w := v.newWallet(t, partner, "9001234567", wallet.Elementary)

		const rounds = 5
		for round := 1; round <= rounds; round++ {
			key := fmt.Sprintf("refill-key-%d", round)
			res := runRace(10, func(int) (wallet.Operation, error) {
				return v.svc.Refill(v.ctx, partner, w.ID, rub("1500.00"), key)
			})
			res.require(t, map[wallet.Code]int{"": 10})
			if len(res.ids) != 1 {
				t.Fatalf("round %d: operation ids %v, want one operation for every caller", round, res.ids)
			}
			l := v.limits(t, partner, w.ID)
			want := rub("1500.00") * money.Amount(round)
			if got := l.MonthUsed[wallet.Credit]; got != want {
				t.Errorf("round %d: CREDIT monthUsed %s, want %s", round, got, want)
			}
			if got := l.Wallet.PendingCredit; got != want {
				t.Errorf("round %d: pending top-ups %s, want %s", round, got, want)
			}
		}
		if page := v.report(t, partner, w.ID, wallet.ReportFilter{}); page.Total != rounds {
			t.Errorf("report has %d operations, want %d", page.Total, rounds)
		}
	})
}

// TestConcurrentRefunds: ten concurrent refunds of 30.00 of one payment of
// 100.00: three go through, the rest are refused, never more than the payment.
func TestConcurrentRefunds(t *testing.T) {
	t.Parallel()
	onEveryEngine(t, func(t *testing.T, v *env, partner uuid.UUID) {
		w, tsp := v.newShopper(t, partner, "Кинотеатр", rub("100.00"))
		pay, err := v.pay(partner, w.ID, tsp.ID, rub("100.00"))
		if err != nil {
			t.Fatalf("pay: %v", err)
		}

		res := runRace(10, func(int) (wallet.Operation, error) {
			return v.svc.Refund(v.ctx, partner, w.ID, pay.Token, rub("30.00"), "")
		})
		res.require(t, map[wallet.Code]int{"": 3, wallet.CodeValidation: 7})

		got, err := v.svc.Operation(v.ctx, partner, w.ID, pay.ID)
		if err != nil {
			t.Fatalf("operation: %v", err)
		}
		if got.Refunded != rub("90.00") {
			t.Errorf("refunded %s, want 90.00", got.Refunded)
		}
		v.checkBalance(t, partner, w.ID, rub("90.00"))
		page := v.report(t, partner, w.ID, wallet.ReportFilter{Type: wallet.Refund})
		var sum money.Amount
		for _, op := range page.Operations {
			sum += op.Amount
		}
		if page.Total != 3 || sum != rub("90.00") {
			t.Errorf("report: %d refunds totalling %s, want 3 totalling 90.00", page.Total, sum)
		}
	})
}

// TestConcurrentPaySameToken: one token sent by ten callers at once pays once;
// every caller gets that one payment.
func TestConcurrentPaySameToken(t *testing.T) {
	t.Parallel()
	onEveryEngine(t, func(t *testing.T, v *env, partner uuid.UUID) {
		w, tsp := v.newShopper(t, partner, "Пекарня", rub("1000.00"))
		pt, err := v.svc.InitPayment(v.ctx, partner, w.ID)
		if err != nil {
			t.Fatalf("init payment: %v", err)
		}

		res := runRace(10, func(int) (wallet.Operation, error) {
			return v.svc.Pay(v.ctx, partner, wallet.PaymentRequest{WalletID: w.ID, Token: pt.Token, Amount: rub("100.00"), TSPID: tsp.ID})
		})
		res.require(t, map[wallet.Code]int{"": 10})
		if len(res.ids) != 1 {
			t.Errorf("payment ids %v, want one payment for every caller", res.ids)
		}
		v.checkBalance(t, partner, w.ID, rub("900.00"))
	})
}
