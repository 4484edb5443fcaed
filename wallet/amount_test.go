package wallet_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/wallet"
)

// TestAmountRefusals: an amount outside the protocol's range is refused with
// the field at fault and why, in the words the HTTP edge uses for the same.
func TestAmountRefusals(t *testing.T) {
	t.Parallel()
	onEveryEngine(t, func(t *testing.T, v *env, partner uuid.UUID) {
		w, tsp := v.newShopper(t, partner, "Пекарня", rub("100.00"))
		pt, err := v.svc.InitPayment(v.ctx, partner, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		const positive, atMost = "должно быть больше нуля", "не более 1 000 000 000.00"
		calls := map[string]func(a money.Amount) error{
			"refill": func(a money.Amount) error { _, err := v.svc.Refill(v.ctx, partner, w.ID, a, ""); return err },
			"pay": func(a money.Amount) error {
				_, err := v.svc.Pay(v.ctx, partner, wallet.PaymentRequest{WalletID: w.ID, Token: pt.Token, Amount: a, TSPID: tsp.ID})
				return err
			},
			"withdraw": func(a money.Amount) error {
				_, err := v.svc.Withdraw(v.ctx, partner, w.ID, sbpBank, a, "")
				return err
			},
			"refund": func(a money.Amount) error { _, err := v.svc.Refund(v.ctx, partner, w.ID, pt.Token, a, ""); return err },
		}
		tests := []struct {
			amount money.Amount
			want   string
		}{
			{-1, positive},
			{money.Max + 1, atMost},
		}
		for name, call := range calls {
			for _, tt := range tests {
				var e *wallet.Error
				err := call(tt.amount)
				if !errors.As(err, &e) || e.Code != wallet.CodeValidation || e.Fields["amount"] != tt.want {
					t.Errorf("%s %d kopecks: %v, want VALIDATION_ERROR amount %q", name, tt.amount, err, tt.want)
				}
			}
		}
		if err := calls["pay"](0); err == nil {
			t.Error("pay 0.00: accepted")
		}
		v.checkBalance(t, partner, w.ID, rub("100.00"))
	})
}
