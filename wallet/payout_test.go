package wallet_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/perspektiva/walletd/jobs"
	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/sbp"
	"github.com/perspektiva/walletd/store/storetest"
	"github.com/perspektiva/walletd/wallet"
)

// serviceWith returns a second service over the env's database and clock that
// sends payouts through gw. The env's own service (the sandbox) still issues
// the top-ups that fund wallets.
func (v *env) serviceWith(t *testing.T, gw wallet.SBP) *wallet.Service {
	t.Helper()
	svc, err := wallet.NewService(v.db, wallet.Config{SBP: gw, BankName: bankName, Now: v.clock.Now, TopUpTTL: v.ttl})
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	return svc
}

// TestWithdrawalWithoutProvider: with no SBP provider configured, a new
// withdrawal is refused as UNAVAILABLE and holds nothing; one accepted before,
// under another configuration, stays PENDING with its money held, since only
// its provider can say whether it was sent.
func TestWithdrawalWithoutProvider(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		v := newEnv(t, e, envConfig{})
		partner := v.newPartner(t)
		w := v.newWallet(t, partner, "9001234567", wallet.Personalized)
		v.fund(t, partner, w.ID, rub("1000.00"))
		before, err := v.svc.Withdraw(v.ctx, partner, w.ID, sbpBank, rub("300.00"), "")
		if err != nil {
			t.Fatalf("withdraw under the sandbox: %v", err)
		}

		off := v.serviceWith(t, sbp.Unconfigured{})
		_, err = off.Withdraw(v.ctx, partner, w.ID, sbpBank, rub("200.00"), "")
		var we *wallet.Error
		if !errors.As(err, &we) || we.Code != wallet.CodeUnavailable {
			t.Fatalf("withdraw with no provider: %v, want UNAVAILABLE", err)
		}
		if got := v.wallet(t, partner, w.ID).Balance; got != rub("700.00") {
			t.Fatalf("balance = %s, want 700.00: only the first withdrawal held", got)
		}

		// The runner also finds the funding top-up's expiry job, a no-op now.
		runner := jobs.NewRunner(v.db.JobStore(), map[string]jobs.Handler{
			wallet.JobPayout: off.ProcessPayout, wallet.JobExpireTopUp: off.ExpireTopUp,
		}, slog.New(slog.DiscardHandler))
		if _, err := runner.RunOnce(v.ctx); err != nil {
			t.Fatalf("jobs: %v", err)
		}
		got, err := off.Operation(v.ctx, partner, w.ID, before.ID)
		if err != nil || got.Status != wallet.Pending {
			t.Fatalf("the earlier withdrawal = %s, %v; want still PENDING", got.Status, err)
		}
		if bal := v.wallet(t, partner, w.ID).Balance; bal != rub("700.00") {
			t.Fatalf("balance = %s, want 700.00, the earlier withdrawal's money still held", bal)
		}
		v.requireAudit(t)
	})
}

// stubGateway stands in for an external SBP provider: it answers payouts with
// a set result.
type stubGateway struct {
	res wallet.PayoutResult
	err error
}

func (g *stubGateway) IssueTopUp(context.Context, wallet.TopUpOrder) (wallet.TopUpLink, error) {
	return wallet.TopUpLink{}, errors.New("stub: no top-ups")
}

func (g *stubGateway) Payout(context.Context, wallet.PayoutOrder) (wallet.PayoutResult, error) {
	return g.res, g.err
}

func (g *stubGateway) PayoutsAvailable() error { return nil }

// ProcessPayout acts on each provider answer explicitly: only PayoutFailed
// returns the money, PayoutInProgress always asks again (at a default delay
// when the provider names no time), and a status it does not know is an error
// that keeps the money held.
func TestProcessPayoutResults(t *testing.T) {
	t.Parallel()
	later := baseTime.Add(time.Minute)
	cases := []struct {
		name      string
		res       wallet.PayoutResult
		err       error
		wantErr   bool
		wantRetry func(now time.Time) time.Time // nil: settled (zero)
		want      wallet.OperationStatus
		balance   money.Amount
	}{
		{name: "succeeded", res: wallet.PayoutResult{Status: wallet.PayoutSucceeded}, want: wallet.Success, balance: rub("700.00")},
		{name: "failed", res: wallet.PayoutResult{Status: wallet.PayoutFailed}, want: wallet.Failed, balance: rub("1000.00")},
		{
			name: "in progress with a time", res: wallet.PayoutResult{Status: wallet.PayoutInProgress, RetryAt: later},
			wantRetry: func(time.Time) time.Time { return later }, want: wallet.Pending, balance: rub("700.00"),
		},
		{
			name: "in progress without a time", res: wallet.PayoutResult{Status: wallet.PayoutInProgress},
			wantRetry: func(now time.Time) time.Time { return now.Add(10 * time.Second) }, want: wallet.Pending, balance: rub("700.00"),
		},
		{name: "unknown status", res: wallet.PayoutResult{Status: wallet.PayoutStatus(42)}, wantErr: true, want: wallet.Pending, balance: rub("700.00")},
		{name: "provider error", err: errors.New("provider down"), wantErr: true, want: wallet.Pending, balance: rub("700.00")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newEnv(t, storetest.Engines()[0], envConfig{})
			partner := v.newPartner(t)
			w := v.newWallet(t, partner, "9001234567", wallet.Personalized)
			v.fund(t, partner, w.ID, rub("1000.00"))
			gw := &stubGateway{res: tc.res, err: tc.err}
			svc := v.serviceWith(t, gw)
			op, err := svc.Withdraw(v.ctx, partner, w.ID, sbpBank, rub("300.00"), "")
			if err != nil {
				t.Fatal(err)
			}

			retry, err := svc.ProcessPayout(v.ctx, op.ID)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ProcessPayout error = %v, want error %v", err, tc.wantErr)
			}
			switch {
			case tc.wantErr && !retry.IsZero():
				t.Errorf("retry at %s with an error; the runner's backoff decides", retry)
			case tc.wantRetry == nil && !retry.IsZero():
				t.Errorf("retry at %s, want settled", retry)
			case tc.wantRetry != nil && !retry.Equal(tc.wantRetry(v.clock.Now())):
				t.Errorf("retry at %v, want %v", retry, tc.wantRetry(v.clock.Now()))
			}
			got, err := svc.Operation(v.ctx, partner, w.ID, op.ID)
			if err != nil || got.Status != tc.want {
				t.Fatalf("operation = %s, %v; want %s", got.Status, err, tc.want)
			}
			if bal := v.wallet(t, partner, w.ID).Balance; bal != tc.balance {
				t.Fatalf("balance = %s, want %s", bal, tc.balance)
			}
			v.requireAudit(t)

			// Money still held is settled by the provider's later answer.
			if tc.want == wallet.Pending {
				gw.res, gw.err = wallet.PayoutResult{Status: wallet.PayoutSucceeded}, nil
				if retry, err := svc.ProcessPayout(v.ctx, op.ID); err != nil || !retry.IsZero() {
					t.Fatalf("later answer: %v, %v", retry, err)
				}
				if got, _ := svc.Operation(v.ctx, partner, w.ID, op.ID); got.Status != wallet.Success {
					t.Fatalf("after the later answer: %s, want SUCCESS", got.Status)
				}
				v.requireAudit(t)
			}
		})
	}
}
