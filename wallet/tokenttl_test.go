package wallet_test

import (
	"testing"
	"time"

	"github.com/perspektiva/walletd/store/storetest"
	"github.com/perspektiva/walletd/wallet"
)

// TestPaymentTokenLivesItsTTL: a token carries its expiry in whole seconds,
// and one issued in the middle of a second must still live the whole TTL
// (PROTOCOL: valid 15 minutes), not up to a second less.
func TestPaymentTokenLivesItsTTL(t *testing.T) {
	t.Parallel()
	const ttl = 15 * time.Minute
	for _, into := range []time.Duration{0, time.Millisecond, 500 * time.Millisecond, time.Second - time.Microsecond} {
		t.Run(into.String(), func(t *testing.T) {
			t.Parallel()
			v := newEnv(t, storetest.Engine{Name: "sqlite", DSN: storetest.SQLiteDSN}, envConfig{})
			partner := v.newPartner(t)
			tsp := v.newTSP(t, partner, "Кофейня")
			w := v.newWallet(t, partner, "9001234567", wallet.Personalized)
			v.fund(t, partner, w.ID, 100_00)

			issued := baseTime.Add(into)
			v.clock.Set(issued)
			pt, err := v.svc.InitPayment(v.ctx, partner, w.ID)
			if err != nil {
				t.Fatal(err)
			}
			if pt.ExpiresAt.Before(issued.Add(ttl)) || !pt.ExpiresAt.Equal(pt.ExpiresAt.Truncate(time.Second)) {
				t.Fatalf("issued at %s: expiresAt %s, want the whole second at or after %s",
					issued.Format(time.StampMicro), pt.ExpiresAt.Format(time.StampMicro), issued.Add(ttl).Format(time.StampMicro))
			}
			pay := wallet.PaymentRequest{WalletID: w.ID, Token: pt.Token, Amount: 1_00, TSPID: tsp.ID}

			v.clock.Set(pt.ExpiresAt)
			if _, err := v.svc.Pay(v.ctx, partner, pay); wallet.ErrorCode(err) != wallet.CodeTokenInvalid {
				t.Fatalf("payment at expiresAt: %v, want %s", err, wallet.CodeTokenInvalid)
			}
			v.clock.Set(issued.Add(ttl - time.Microsecond))
			if op, err := v.svc.Pay(v.ctx, partner, pay); err != nil || op.Status != wallet.Success {
				t.Fatalf("payment just inside the TTL: %+v, %v", op, err)
			}
		})
	}
}
