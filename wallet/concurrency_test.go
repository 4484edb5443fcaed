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

// outcomes counts the results of concurrent calls by error code ("" for success).
type outcomes struct {
	mu     sync.Mutex
	counts map[wallet.Code]int
	other  []error // errors that are no protocol refusal
}

func (o *outcomes) add(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.counts == nil {
		o.counts = map[wallet.Code]int{}
	}
	if err != nil && wallet.ErrorCode(err) == "" {
		o.other = append(o.other, err)
		return
	}
	o.counts[wallet.ErrorCode(err)]++
}

// require checks the counts exactly: every code seen must be in want.
func (o *outcomes) require(t *testing.T, want map[wallet.Code]int) {
	t.Helper()
	if len(o.other) > 0 {
		t.Fatalf("unexpected errors: %v", o.other)
	}
	for code, n := range o.counts {
		if want[code] != n {
			t.Errorf("outcome %q: got %d, want %d (all: %v)", code, n, want[code], o.counts)
		}
	}
	for code, n := range want {
		if n != 0 && o.counts[code] == 0 {
			t.Errorf("outcome %q: got 0, want %d (all: %v)", code, n, o.counts)
		}
	}
}

// TestConcurrentPaymentsOverdraw: of 40 concurrent payments of 100.00 from a
// wallet holding 1 000.00 exactly 10 go through; the balance never goes below zero.
func TestConcurrentPaymentsOverdraw(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		v := newEnv(t, e, envConfig{})
		partner := v.newPartner(t)
		tsp := v.newTSP(t, partner, "Кофейня «Зерно»")
		w := v.newWallet(t, partner, "9001234567", wallet.Personalized)
		v.fund(t, partner, w.ID, rub("1000.00"))

		var res outcomes
		runParallel(40, func(int) {
			_, err := v.pay(partner, w.ID, tsp.ID, rub("100.00"))
			res.add(err)
		})
		res.require(t, map[wallet.Code]int{"": 10, wallet.CodeInsufficientFunds: 30})

		if got := v.wallet(t, partner, w.ID).Balance; got != 0 {
			t.Errorf("balance %s, want 0.00", got)
		}
		if got := v.limits(t, partner, w.ID).MonthUsed[wallet.Payment]; got != rub("1000.00") {
			t.Errorf("PAYMENT monthUsed %s, want 1000.00", got)
		}
		v.requireAudit(t)
	})
}

// TestConcurrentConfirmations: a top-up confirmed by 20 callers at once is
// credited once; racing confirmations and declines agree on one outcome.
func TestConcurrentConfirmations(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		v := newEnv(t, e, envConfig{})
		partner := v.newPartner(t)
		w := v.newWallet(t, partner, "9001234567", wallet.Personalized)

		op, err := v.svc.Refill(v.ctx, partner, w.ID, rub("700.00"), "")
		if err != nil {
			t.Fatalf("refill: %v", err)
		}
		var (
			res      outcomes
			mu       sync.Mutex
			statuses = map[wallet.OperationStatus]int{}
		)
		runParallel(20, func(int) {
			got, err := v.svc.ConfirmTopUp(v.ctx, op.QRCID)
			res.add(err)
			mu.Lock()
			statuses[got.Status]++
			mu.Unlock()
		})
		res.require(t, map[wallet.Code]int{"": 20})
		if statuses[wallet.Success] != 20 {
			t.Errorf("statuses %v, want SUCCESS from every caller", statuses)
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
			op, err := v.svc.Refill(v.ctx, partner, w.ID, rub("10.00"), "")
			if err != nil {
				t.Fatalf("round %d: refill: %v", round, err)
			}
			var (
				res      outcomes
				mu       sync.Mutex
				statuses = map[wallet.OperationStatus]int{}
			)
			runParallel(10, func(i int) {
				var got wallet.Operation
				var err error
				if (i+round)%2 == 0 {
					got, err = v.svc.ConfirmTopUp(v.ctx, op.QRCID)
				} else {
					got, err = v.svc.DeclineTopUp(v.ctx, op.QRCID)
				}
				res.add(err)
				mu.Lock()
				statuses[got.Status]++
				mu.Unlock()
			})
			res.require(t, map[wallet.Code]int{"": 10})
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
		v.requireAudit(t)
	})
}

// TestConcurrentPaymentsMonthLimit: 30 concurrent payments of 100.00 against a
// partner PAYMENT monthLimit of 1 000.00 on an ELEMENTARY wallet: 10 go through.
func TestConcurrentPaymentsMonthLimit(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		v := newEnv(t, e, envConfig{})
		partner := v.newPartner(t)
		tsp := v.newTSP(t, partner, "Аптека")
		w := v.newWallet(t, partner, "9001234567", wallet.Elementary)
		_, err := v.svc.SetLimits(v.ctx, partner, w.ID, wallet.LimitsPatch{Types: map[wallet.OperationType]wallet.TypePatch{
			wallet.Payment: {Month: wallet.Patch{Set: true, Value: wallet.Some(rub("1000.00"))}},
		}})
		if err != nil {
			t.Fatalf("set limits: %v", err)
		}
		v.fund(t, partner, w.ID, rub("5000.00"))

		var (
			res    outcomes
			mu     sync.Mutex
			limits = map[string]int{}
		)
		runParallel(30, func(int) {
			_, err := v.pay(partner, w.ID, tsp.ID, rub("100.00"))
			res.add(err)
			if e := (*wallet.Error)(nil); errors.As(err, &e) && e.Details != nil {
				mu.Lock()
				limits[e.Details.Limit]++
				mu.Unlock()
			}
		})
		res.require(t, map[wallet.Code]int{"": 10, wallet.CodeLimitExceeded: 20})
		if limits["PAYMENT.monthLimit"] != 20 {
			t.Errorf("refusals named %v, want PAYMENT.monthLimit 20 times", limits)
		}
		// The limit is reached exactly: not one kopeck more.
		if _, err := v.pay(partner, w.ID, tsp.ID, 1); wallet.ErrorCode(err) != wallet.CodeLimitExceeded {
			t.Errorf("a payment of 0.01 at the limit: %v, want LIMIT_EXCEEDED", err)
		}
		if got := v.limits(t, partner, w.ID).MonthUsed[wallet.Payment]; got != rub("1000.00") {
			t.Errorf("PAYMENT monthUsed %s, want 1000.00", got)
		}
		if got := v.wallet(t, partner, w.ID).Balance; got != rub("4000.00") {
			t.Errorf("balance %s, want 4000.00", got)
		}
		v.requireAudit(t)
	})
}

// TestConcurrentPaymentsStatutoryCap: a PERSONALIZED wallet that already
// moved 199 000.00 this month (150 000.00 paid, 49 000.00 withdrawn) has
// 1 000.00 left under the statutory cap of 200 000.00 for PAYMENT + DEBIT;
// of 30 concurrent payments of 100.00 exactly 10 go through, although neither
// type's own monthly limit is reached.
func TestConcurrentPaymentsStatutoryCap(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		v := newEnv(t, e, envConfig{})
		partner := v.newPartner(t)
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

		var (
			res    outcomes
			mu     sync.Mutex
			limits = map[string]int{}
		)
		runParallel(30, func(int) {
			_, err := v.pay(partner, w.ID, tsp.ID, rub("100.00"))
			res.add(err)
			if e := (*wallet.Error)(nil); errors.As(err, &e) && e.Details != nil {
				mu.Lock()
				limits[e.Details.Limit]++
				mu.Unlock()
			}
		})
		res.require(t, map[wallet.Code]int{"": 10, wallet.CodeLimitExceeded: 20})
		if limits["statutoryMonthLimit"] != 20 {
			t.Errorf("refusals named %v, want statutoryMonthLimit 20 times", limits)
		}
		// The cap is reached exactly: not one kopeck more, by either type.
		if _, err := v.pay(partner, w.ID, tsp.ID, 1); wallet.ErrorCode(err) != wallet.CodeLimitExceeded {
			t.Errorf("a payment of 0.01 at the cap: %v, want LIMIT_EXCEEDED", err)
		}
		if _, err := v.svc.Withdraw(v.ctx, partner, w.ID, sbpBank, 1, ""); wallet.ErrorCode(err) != wallet.CodeLimitExceeded {
			t.Errorf("a withdrawal of 0.01 at the cap: %v, want LIMIT_EXCEEDED", err)
		}
		used := v.limits(t, partner, w.ID).MonthUsed
		if used[wallet.Payment] != rub("151000.00") || used[wallet.Debit] != rub("49000.00") {
			t.Errorf("monthUsed PAYMENT %s, DEBIT %s; want 151000.00 and 49000.00", used[wallet.Payment], used[wallet.Debit])
		}
		if got := v.wallet(t, partner, w.ID).Balance; got != rub("4000.00") {
			t.Errorf("balance %s, want 4000.00", got)
		}
		v.requireAudit(t)
	})
}

// TestConcurrentRefillSameKey: ten concurrent top-ups under one
// Idempotency-Key make one operation, counted once. Several rounds, so that a
// missing guard shows up reliably.
func TestConcurrentRefillSameKey(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		v := newEnv(t, e, envConfig{})
		partner := v.newPartner(t)
		w := v.newWallet(t, partner, "9001234567", wallet.Elementary)

		const rounds = 5
		for round := 1; round <= rounds; round++ {
			var (
				res outcomes
				mu  sync.Mutex
				ids = map[uuid.UUID]int{}
			)
			key := fmt.Sprintf("refill-key-%d", round)
			runParallel(10, func(int) {
				op, err := v.svc.Refill(v.ctx, partner, w.ID, rub("1500.00"), key)
				res.add(err)
				if err == nil {
					mu.Lock()
					ids[op.ID]++
					mu.Unlock()
				}
			})
			res.require(t, map[wallet.Code]int{"": 10})
			if len(ids) != 1 {
				t.Fatalf("round %d: operation ids %v, want one operation for every caller", round, ids)
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
		page, err := v.svc.Report(v.ctx, partner, w.ID, wallet.ReportFilter{})
		if err != nil {
			t.Fatalf("report: %v", err)
		}
		if page.Total != rounds {
			t.Errorf("report has %d operations, want %d", page.Total, rounds)
		}
		v.requireAudit(t)
	})
}

// TestConcurrentRefunds: ten concurrent refunds of 30.00 of one payment of
// 100.00: three go through, the rest are refused, never more than the payment.
func TestConcurrentRefunds(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		v := newEnv(t, e, envConfig{})
		partner := v.newPartner(t)
		tsp := v.newTSP(t, partner, "Кинотеатр")
		w := v.newWallet(t, partner, "9001234567", wallet.Personalized)
		v.fund(t, partner, w.ID, rub("100.00"))
		pay, err := v.pay(partner, w.ID, tsp.ID, rub("100.00"))
		if err != nil {
			t.Fatalf("pay: %v", err)
		}

		var res outcomes
		runParallel(10, func(int) {
			_, err := v.svc.Refund(v.ctx, partner, w.ID, pay.Token, rub("30.00"), "")
			res.add(err)
		})
		res.require(t, map[wallet.Code]int{"": 3, wallet.CodeValidation: 7})

		got, err := v.svc.Operation(v.ctx, partner, w.ID, pay.ID)
		if err != nil {
			t.Fatalf("operation: %v", err)
		}
		if got.Refunded != rub("90.00") {
			t.Errorf("refunded %s, want 90.00", got.Refunded)
		}
		if bal := v.wallet(t, partner, w.ID).Balance; bal != rub("90.00") {
			t.Errorf("balance %s, want 90.00", bal)
		}
		page, err := v.svc.Report(v.ctx, partner, w.ID, wallet.ReportFilter{Type: wallet.Refund})
		if err != nil {
			t.Fatalf("report: %v", err)
		}
		var sum money.Amount
		for _, op := range page.Operations {
			sum += op.Amount
		}
		if page.Total != 3 || sum != rub("90.00") {
			t.Errorf("report: %d refunds totalling %s, want 3 totalling 90.00", page.Total, sum)
		}
		v.requireAudit(t)
	})
}

// TestConcurrentPaySameToken: one token sent by ten callers at once pays once;
// every caller gets that one payment.
func TestConcurrentPaySameToken(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		v := newEnv(t, e, envConfig{})
		partner := v.newPartner(t)
		tsp := v.newTSP(t, partner, "Пекарня")
		w := v.newWallet(t, partner, "9001234567", wallet.Personalized)
		v.fund(t, partner, w.ID, rub("1000.00"))
		pt, err := v.svc.InitPayment(v.ctx, partner, w.ID)
		if err != nil {
			t.Fatalf("init payment: %v", err)
		}

		var (
			res outcomes
			mu  sync.Mutex
			ids = map[uuid.UUID]int{}
		)
		runParallel(10, func(int) {
			op, err := v.svc.Pay(v.ctx, partner, wallet.PaymentRequest{WalletID: w.ID, Token: pt.Token, Amount: rub("100.00"), TSPID: tsp.ID})
			res.add(err)
			if err == nil {
				mu.Lock()
				ids[op.ID]++
				mu.Unlock()
			}
		})
		res.require(t, map[wallet.Code]int{"": 10})
		if len(ids) != 1 {
			t.Errorf("payment ids %v, want one payment for every caller", ids)
		}
		if got := v.wallet(t, partner, w.ID).Balance; got != rub("900.00") {
			t.Errorf("balance %s, want 900.00", got)
		}
		v.requireAudit(t)
	})
}
