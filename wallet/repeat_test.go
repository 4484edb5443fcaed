package wallet_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/wallet"
)

// TestRepeatAfterClose: a request repeated after its wallet closed gets its
// first answer again, as any repeat does; only new requests meet
// WALLET_CLOSED.
func TestRepeatAfterClose(t *testing.T) {
	t.Parallel()
	onEveryEngine(t, func(t *testing.T, v *env, partner uuid.UUID) {
		tsp := v.newTSP(t, partner, "Пекарня")
		w := v.newWallet(t, partner, "9001234567", wallet.Personalized)
		top, err := v.svc.Refill(v.ctx, partner, w.ID, rub("100.00"), "top-up-1")
		if err != nil {
			t.Fatalf("refill: %v", err)
		}
		if _, err := v.svc.ConfirmTopUp(v.ctx, top.QRCID); err != nil {
			t.Fatalf("confirm: %v", err)
		}
		pt, err := v.svc.InitPayment(v.ctx, partner, w.ID)
		if err != nil {
			t.Fatalf("init payment: %v", err)
		}
		payment := wallet.PaymentRequest{WalletID: w.ID, Token: pt.Token, Amount: rub("100.00"), TSPID: tsp.ID}
		paid, err := v.svc.Pay(v.ctx, partner, payment)
		if err != nil {
			t.Fatalf("pay: %v", err)
		}
		if _, err := v.svc.Close(v.ctx, partner, w.ID); err != nil {
			t.Fatalf("close: %v", err)
		}

		other := payment
		other.Amount = rub("50.00")
		tests := []struct {
			name   string
			call   func() (wallet.Operation, error)
			want   wallet.Code      // "" for an answer
			wantOp wallet.Operation // the operation answered again
		}{
			{"the same payment", func() (wallet.Operation, error) { return v.svc.Pay(v.ctx, partner, payment) }, "", paid},
			{"its token with another amount", func() (wallet.Operation, error) { return v.svc.Pay(v.ctx, partner, other) }, wallet.CodeTokenInvalid, wallet.Operation{}},
			{"the same top-up under its key", func() (wallet.Operation, error) {
				return v.svc.Refill(v.ctx, partner, w.ID, rub("100.00"), "top-up-1")
			}, "", top},
			{"another top-up under its key", func() (wallet.Operation, error) {
				return v.svc.Refill(v.ctx, partner, w.ID, rub("50.00"), "top-up-1")
			}, wallet.CodeIdempotencyReused, wallet.Operation{}},
			{"a new top-up", func() (wallet.Operation, error) {
				return v.svc.Refill(v.ctx, partner, w.ID, rub("100.00"), "top-up-2")
			}, wallet.CodeWalletClosed, wallet.Operation{}},
			{"a new payment", func() (wallet.Operation, error) {
				_, err := v.svc.InitPayment(v.ctx, partner, w.ID)
				return wallet.Operation{}, err
			}, wallet.CodeWalletClosed, wallet.Operation{}},
		}
		for _, tt := range tests {
			op, err := tt.call()
			var e *wallet.Error
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("%s: %v, want its first answer", tt.name, err)
			case tt.want == "" && op.ID != tt.wantOp.ID:
				t.Errorf("%s: operation %s, want %s again", tt.name, op.ID, tt.wantOp.ID)
			case tt.want != "" && (!errors.As(err, &e) || e.Code != tt.want):
				t.Errorf("%s: %v, want %s", tt.name, err, tt.want)
			}
		}
		if got := v.wallet(t, partner, w.ID); got.Balance != 0 || got.Status != wallet.Closed {
			t.Errorf("wallet after the repeats: balance %s, status %s; want 0.00, CLOSED", got.Balance, got.Status)
		}
	})
}
